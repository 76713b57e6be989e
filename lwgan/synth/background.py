"""Procedural backgrounds: a colour gradient, a room (wall, skirting board and a floor in perspective),
flat shapes, or value noise; each drawn per video from its own random stream, with muted colours so the
person stands out. Images are (H, W, 3) float32 RGB in [0, 1]; positions are NDC (`lwgan.geometry`).
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

BACKGROUNDS = ("gradient", "room", "shapes", "noise")


def _muted(rng: np.random.Generator, value: tuple[float, float] = (0.35, 0.9)) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(*value))
    return np.asarray(rgb, dtype=np.float32)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) NDC x and y of the pixel centres."""
    xs = (2.0 * np.arange(width, dtype=np.float32) + 1.0) / width - 1.0
    ys = (2.0 * np.arange(height, dtype=np.float32) + 1.0) / height - 1.0
    return np.meshgrid(xs, ys)


def value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4) -> np.ndarray:
    """(H, W) float32 in [0, 1]: smooth random field, the sum of bicubically enlarged random grids."""
    field = np.zeros((height, width), dtype=np.float32)
    total = 0.0
    for octave in range(octaves):
        cells = 3 * 2**octave
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        weight = 0.5**octave
        field += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += weight
    field /= total
    low, high = field.min(), field.max()
    return (field - low) / max(float(high - low), 1e-6)


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    x, y = _grid(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + 0.5 * (np.cos(angle) * x + np.sin(angle) * y), 0, 1)[..., None]
    image = (1 - t) * _muted(rng) + t * _muted(rng)
    for _ in range(int(rng.integers(0, 8))):  # soft out-of-focus discs
        cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.05, 0.3)
        disc = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))[..., None]
        image = image + 0.25 * disc * (_muted(rng, (0.7, 1.0)) - image)
    return image


def _room(rng: np.random.Generator, height: int, width: int, floor_y: float) -> np.ndarray:
    x, y = _grid(height, width)
    wall = np.broadcast_to(_muted(rng, (0.55, 0.92)), (height, width, 3)).copy()
    if rng.random() < 0.5:  # wallpaper stripes
        period = rng.uniform(0.06, 0.2)
        wall *= (1.0 - 0.06 * (np.sin(np.pi * x / period) > 0))[..., None]
    else:
        wall *= (0.93 + 0.07 * value_noise(rng, height, width, 3))[..., None]
    split = floor_y - rng.uniform(0.12, 0.3)  # the wall meets the floor above the feet
    horizon = split - rng.uniform(0.5, 0.9)  # where the floor's lines would meet
    depth = np.maximum(y - horizon, 1e-3)  # (H, W) grows towards the viewer
    vanish = rng.uniform(-0.3, 0.3)
    across = (x - vanish) / depth * rng.uniform(3.0, 6.0)
    floor = np.broadcast_to(_muted(rng, (0.25, 0.6)), (height, width, 3)).copy()
    if rng.random() < 0.5:  # boards
        shade = 0.9 + 0.1 * ((np.floor(across) % 2) == 0)
    else:  # tiles
        ahead = 1.0 / depth * rng.uniform(1.0, 2.0)
        shade = 0.88 + 0.12 * ((np.floor(across) + np.floor(ahead)) % 2 == 0)
    floor *= (shade * (0.85 + 0.15 * np.clip(depth / 2.0, 0, 1)))[..., None]
    image = np.where((y > split)[..., None], floor, wall)
    board = (y > split - 0.025) & (y <= split)
    image[board] = image[board] * 0.75
    return image


def _shapes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = (_muted(rng) * 255).astype(np.uint8)
    scale = float(min(height, width))
    for _ in range(int(rng.integers(10, 30))):
        colour = tuple(int(c) for c in (_muted(rng) * 255).astype(np.uint8))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.04, 0.2) * scale
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(canvas, (int(cx), int(cy)), int(size), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            box = cv2.boxPoints(((cx, cy), (size * 2, size * rng.uniform(0.5, 2)), rng.uniform(0, 180)))
            cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], colour, cv2.LINE_AA)
        else:
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2])
            points = np.stack((cx + size * np.cos(angles), cy + size * np.sin(angles)), axis=1)
            cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], colour, cv2.LINE_AA)
    blur = max(1, int(scale / 256)) * 2 + 1
    return cv2.GaussianBlur(canvas, (blur, blur), 0).astype(np.float32) / 255.0


def _noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    field = value_noise(rng, height, width, int(rng.integers(3, 6)))[..., None]
    if rng.random() < 0.5:  # marble veins
        field = 0.5 + 0.5 * np.sin(field * rng.uniform(8.0, 16.0))
    return (1 - field) * _muted(rng) + field * _muted(rng)


def make_background(
    rng: np.random.Generator, height: int, width: int, floor_y: float
) -> tuple[np.ndarray, str]:
    """A background of a kind drawn from `BACKGROUNDS`: ((H, W, 3) float32 RGB in [0, 1], kind).

    floor_y: NDC y where the person's feet touch the floor; a room's floor starts above it.
    """
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if kind == "gradient":
        image = _gradient(rng, height, width)
    elif kind == "room":
        image = _room(rng, height, width, floor_y)
    elif kind == "shapes":
        image = _shapes(rng, height, width)
    else:
        image = _noise(rng, height, width)
    return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32), kind


def add_shadow(
    image: np.ndarray, centre_x: float, floor_y: float, half_width: float, strength: float
) -> None:
    """Darken a soft elliptical contact shadow in place, centred at (centre_x, floor_y) NDC.

    image: (H, W, 3) float32; half_width: NDC half width of the ellipse (its height is a quarter of it).
    """
    height, width = image.shape[:2]
    half_height = 0.25 * half_width
    x0 = max(0, int((centre_x - 2 * half_width + 1) * width / 2))
    x1 = min(width, int((centre_x + 2 * half_width + 1) * width / 2) + 1)
    y0 = max(0, int((floor_y - 2 * half_height + 1) * height / 2))
    y1 = min(height, int((floor_y + 2 * half_height + 1) * height / 2) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    xs = (2.0 * np.arange(x0, x1, dtype=np.float32) + 1.0) / width - 1.0
    ys = (2.0 * np.arange(y0, y1, dtype=np.float32) + 1.0) / height - 1.0
    r2 = ((xs[None, :] - centre_x) / half_width) ** 2 + ((ys[:, None] - floor_y) / half_height) ** 2
    image[y0:y1, x0:x1] *= (1.0 - strength * np.exp(-2.0 * r2))[..., None]
