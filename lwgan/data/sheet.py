"""Sheets of labelled pictures (`tile_sheet`), and the contact sheet of a frames cache: the middle frame of
every video, labelled with its id and split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.io import write_png

LABEL_HEIGHT = 18  # pixels of the label band under each tile
SPLIT_COLOURS = {"train": (46, 125, 50), "val": (198, 90, 0)}  # RGB band colours
OTHER_COLOUR = (90, 90, 90)


def sheet_size(num_videos: int, tile: int, columns: int) -> tuple[int, int]:
    """(height, width) of the sheet for `num_videos` tiles of side `tile` in at most `columns` columns."""
    cols = min(columns, num_videos)
    rows = math.ceil(num_videos / cols)
    return rows * (tile + LABEL_HEIGHT), cols * tile


Tile = tuple[np.ndarray, str, tuple[int, int, int]]  # image (h, w, 3) uint8 RGB, label, band colour


def tile_sheet(tiles: Sequence[Tile], tile: int = 128, columns: int = 8) -> np.ndarray:
    """The one way lwgan lays out pictures to look at: every image resized to `tile` pixels square above
    a band of `LABEL_HEIGHT` pixels holding its label in white on its colour, in rows of at most `columns`.

    Returns (H, W, 3) uint8 RGB with (H, W) = `sheet_size(len(tiles), tile, columns)`, white where a row
    is short."""
    if not tiles:
        raise ValueError("a sheet needs at least one tile")
    height, width = sheet_size(len(tiles), tile, columns)
    sheet = np.full((height, width, 3), 255, np.uint8)
    cols = min(columns, len(tiles))
    for k, (image, text, colour) in enumerate(tiles):
        row, col = divmod(k, cols)
        y, x = row * (tile + LABEL_HEIGHT), col * tile
        sheet[y:y + tile, x:x + tile] = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        band = np.empty((LABEL_HEIGHT, tile, 3), np.uint8)
        band[:] = colour
        _label(band, text)
        sheet[y + tile:y + tile + LABEL_HEIGHT, x:x + tile] = band
    return sheet


def contact_sheet(cache: FramesCache, path: str | Path, tile: int = 128, columns: int = 8) -> np.ndarray:
    """Write a PNG of the middle frame of every video in `cache` (sorted by id), each `tile` pixels square
    above a band with "<video id> <split>" coloured by split (train green, val orange) (`tile_sheet`).

    Returns the sheet, (H, W, 3) uint8 RGB with (H, W) = `sheet_size(len(cache), tile, columns)`.
    """
    videos = cache.videos
    if not videos:
        raise DataError(f"frames cache {cache.path} holds no videos; there is nothing to show")
    tiles = []
    for video in videos:
        split = cache.info(video).split
        tiles.append((cache.frame(video, cache.num_frames(video) // 2), f"{video} {split}",
                      SPLIT_COLOURS.get(split, OTHER_COLOUR)))
    sheet = tile_sheet(tiles, tile, columns)
    try:
        write_png(path, sheet)
    except OSError as err:
        raise DataError(f"cannot write contact sheet {path}") from err
    return sheet


def _label(band: np.ndarray, text: str) -> None:
    """Draw `text` in white into `band` (in place), shrunk to fit its width."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = 0.4
    (w, _), _ = cv2.getTextSize(text, font, scale, thickness)
    if w > band.shape[1] - 4:
        scale *= (band.shape[1] - 4) / w
    (_, h), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (2, (band.shape[0] + h) // 2)
    cv2.putText(band, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
