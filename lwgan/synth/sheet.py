"""The preview of a synthetic data set (`preview.png`): a few frames of every video in a row, labelled,
and one ground-truth overlay per video (mask outline, keypoints: yellow visible, red occluded)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from lwgan.data.sheet import tile_sheet

THUMBS = 6  # frames per row
FRAME_COLOUR, TRUTH_COLOUR = (90, 90, 90), (46, 125, 50)  # label bands
ACTIONS = {1: "turn", 2: "motion"}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return image[..., ::-1] if image.ndim == 3 else image


def _overlay(image: np.ndarray, mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """image (H, W, 3) uint8, mask (H, W) uint8, keypoints (K, 3) pixel u, v, visibility."""
    out = image.copy()
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    radius = max(1, image.shape[0] // 100)
    for u, v, visible in keypoints:
        colour = (255, 230, 0) if visible > 0.5 else (255, 0, 0)
        cv2.circle(out, (int(round(u)), int(round(v))), radius, colour, -1, cv2.LINE_AA)
    return out


def truth_sheet(out_dir: Path, records: list[dict], thumb: int = 128, max_rows: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 RGB (`lwgan.data.sheet.tile_sheet`): one row per video record (``video``,
    ``frames``, ``action`` keys), `THUMBS` frames labelled with their number (the first two also with the
    video and its action), then the middle frame with its ground truth drawn (green band); of more than
    `max_rows` videos, `max_rows` spread evenly over the list."""
    if len(records) > max_rows:
        records = [records[i] for i in np.linspace(0, len(records) - 1, max_rows).round().astype(int)]
    tiles = []
    for record in records:
        name, frames = record["video"], int(record["frames"])
        middle = frames // 2
        with np.load(out_dir / "gt" / f"{name.replace('/', '_')}.npz") as gt:
            keypoints = gt["keypoints"][middle]
            segments = json.loads(str(gt["info"]))["segments"]
        action = ACTIONS.get(int(record["action"]), "?")
        about = [name, f"{action} ({', '.join(s[0] for s in segments)})"]  # the outfit: manifest.json
        for k, index in enumerate(np.linspace(0, frames - 1, THUMBS).round().astype(int)):
            text = f"{about[k]} {index:04d}" if k < len(about) else f"{index:04d}"
            tiles.append((_read(out_dir / "images" / name / f"{index:04d}.jpg"), text, FRAME_COLOUR))
        image = _read(out_dir / "images" / name / f"{middle:04d}.jpg")
        mask = _read(out_dir / "masks" / name / f"{middle:04d}.png")
        tiles.append((_overlay(image, mask, keypoints), f"{middle:04d} truth", TRUTH_COLOUR))
    return tile_sheet(tiles, thumb, columns=THUMBS + 1)
