"""Overlays of one tracked curve for every variant, for the report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lwgan.io import atomic_path


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` rows, (N,) -> (N,); the first rows average over what precedes them."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values
    sums = np.cumsum(np.concatenate(([0.0], values)))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (sums[index] - sums[start]) / (index - start)


def overlay(path: str | Path, series: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "",
            shade_from: float | None = None) -> Path:
    """One PNG: each variant's curve (steps (N,), values (N,)) as tracked (faint) and as a moving average
    over 1/50 of its rows (bold), in one colour per variant; steps >= `shade_from` shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.get_cmap("tab20" if len(series) > 10 else "tab10")
    for i, (name, (steps, values)) in enumerate(series.items()):
        colour = colours(i % colours.N)
        ax.plot(steps, values, color=colour, alpha=0.2, linewidth=0.7)
        ax.plot(steps, moving_average(values, max(1, len(values) // 50)), color=colour, linewidth=1.6,
                label=name)
    if shade_from is not None:
        last = max(float(steps[-1]) for steps, _ in series.values() if len(steps))
        ax.axvspan(shade_from, last, color="0.9", zorder=0)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(series) > 7 else 1)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
