"""What a person looks at while LWGAN trains: sample grids, loss curves, and the curves as a DVC plot.

Sample grid: one row per fixed pair, columns

    source | target (real) | warped source | output | attention A_t | background I_bg

with labels on top; images are upscaled (nearest) to at least `MIN_TILE` px so a 64^2 run stays readable.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from lwgan.io import atomic_path, write_png
from lwgan.nets import GeneratorOutput
from lwgan.render.shade import to_uint8

COLUMNS = ("source", "target", "warped source", "output", "attention", "background")
MIN_TILE = 128
LABEL_HEIGHT = 20


def sample_grid(path: str | Path, src: torch.Tensor, tgt: torch.Tensor, out: GeneratorOutput,
                title: str = "") -> np.ndarray:
    """Write the grid (module docstring) for B pairs as a PNG; returns it as (H, W, 3) uint8 RGB.

    src, tgt: (B, 3, H, W) in [-1, 1]; out: G's outputs for those pairs.
    """
    columns = [src, tgt, out.warped_src, out.tgt, out.tgt_attention, out.bg]
    # images in [-1, 1], the attention mask (one channel) in [0, 1]
    tiles = [to_uint8(c, low=0.0 if c.shape[1] == 1 else -1.0, channels_first=True) for c in columns]
    batch, h, w = tiles[0].shape[:3]
    scale = max(1, math.ceil(MIN_TILE / h))
    th, tw = h * scale, w * scale
    top = LABEL_HEIGHT * (2 if title else 1)
    grid = np.full((top + batch * th, len(columns) * tw, 3), 255, np.uint8)
    for c, (name, images) in enumerate(zip(COLUMNS, tiles, strict=True)):
        cv2.putText(grid, name, (c * tw + 4, top - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for r in range(batch):
            tile = cv2.resize(images[r], (tw, th), interpolation=cv2.INTER_NEAREST)
            grid[top + r * th : top + (r + 1) * th, c * tw : (c + 1) * tw] = tile
    if title:
        cv2.putText(grid, title, (4, LABEL_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    write_png(path, grid)
    return grid


def write_curves_csv(path: str | Path, history: Sequence[Mapping[str, float]]) -> Path:
    """The tracked rows as CSV (a DVC plot: x = step), columns = the union of the rows' keys."""
    keys = sorted({k for row in history for k in row} - {"step"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *keys])
        for row in history:
            writer.writerow([int(row["step"]), *(f"{row[k]:.6g}" if k in row else "" for k in keys)])
    return Path(path)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate((np.full(window - 1, values[0]), values))
    return np.convolve(padded, kernel, mode="valid")


def loss_curves(path: str | Path, history: Sequence[Mapping[str, float]], title: str = "") -> Path | None:
    """Plot G's weighted terms, D's terms and mean scores, gradient norms and learning rates over the
    steps (raw values faint, a moving average bold) as a PNG. Returns None for an empty history."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([row["step"] for row in history], dtype=float)
    panels = (
        ("generator terms (weighted)", [k for k in history[-1] if k.startswith("loss/L_") and "_D_" not in k
                                        and k != "loss/L_GP"] + ["loss/G"]),
        ("discriminator", ["loss/D", "loss/L_D_real", "loss/L_D_fake", "loss/L_GP", "d/real", "d/fake"]),
        ("gradient norms", ["grad_norm/G", "grad_norm/D"]),
        ("learning rates", ["lr/G", "lr/D"]),
    )
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    window = max(1, len(history) // 50)
    for ax, (name, keys) in zip(axes.flat, panels, strict=True):
        for key in keys:
            pts = [(row["step"], row[key]) for row in history if key in row]
            if not pts:
                continue
            x, y = np.array(pts, dtype=float).T
            line = ax.plot(x, y, alpha=0.25, linewidth=0.8)[0]
            ax.plot(x, _smooth(y, window), color=line.get_color(), linewidth=1.6, label=key.split("/")[-1])
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_xlim(steps.min(), max(steps.max(), steps.min() + 1))
        if name == "gradient norms":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
