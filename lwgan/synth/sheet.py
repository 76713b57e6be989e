"""The preview of a synthetic data set (`preview.png`): a few frames of every video in a row, labelled,
and one ground-truth overlay per video (mask outline, keypoints: yellow visible, red occluded)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

THUMBS = 6  # frames per row
ACTIONS = {1: "turn", 2: "motion"}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return image[..., ::-1] if image.ndim == 3 else image


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour=(20, 20, 20), scale=0.35) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


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
    """(H, W, 3) uint8 RGB: one row per video record (``video``, ``frames``, ``action``, ``outfit`` keys);
    of more than `max_rows` videos, `max_rows` spread evenly over the list."""
    if len(records) > max_rows:
        records = [records[i] for i in np.linspace(0, len(records) - 1, max_rows).round().astype(int)]
    rows = []
    strip = 14
    for record in records:
        name, frames = record["video"], int(record["frames"])
        picks = np.linspace(0, frames - 1, THUMBS).round().astype(int)
        tiles = []
        for index in picks:
            image = _read(out_dir / "images" / name / f"{index:04d}.jpg")
            tile = np.ascontiguousarray(cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA))
            _text(tile, f"{index:04d}", (3, thumb - 4), (255, 255, 255))
            tiles.append(tile)
        middle = frames // 2
        image = _read(out_dir / "images" / name / f"{middle:04d}.jpg")
        mask = _read(out_dir / "masks" / name / f"{middle:04d}.png")
        with np.load(out_dir / "gt" / f"{name.replace('/', '_')}.npz") as gt:
            keypoints = gt["keypoints"][middle]
            segments = json.loads(str(gt["info"]))["segments"]
        overlay = _overlay(image, mask, keypoints)
        tile = np.ascontiguousarray(cv2.resize(overlay, (thumb, thumb), interpolation=cv2.INTER_AREA))
        _text(tile, f"{middle:04d} truth", (3, thumb - 4), (255, 255, 255))
        tiles.append(tile)
        row = np.concatenate(tiles, axis=1)
        label = np.full((strip, row.shape[1], 3), 245, dtype=np.uint8)
        action = ACTIONS.get(int(record["action"]), "?")
        moves = ", ".join(s[0] for s in segments)
        _text(label, f"{name} {action} ({moves}) | {record['outfit']}"[:150], (3, strip - 4))
        rows.append(np.concatenate((label, row), axis=0))
    return np.concatenate(rows, axis=0)
