"""Procedural cloth patterns on a body's surface, in arc-length coordinates around and along an axis.

A garment's pattern is evaluated at surface points given by an angle around the trunk or limb axis and a
distance along it (metres of the rest pose). The number of repeats around the axis is rounded to an
integer so patterns close up seamlessly at the back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PATTERNS = ("plain", "hstripes", "vstripes", "checks", "dots", "diagonal")


@dataclasses.dataclass(frozen=True)
class Garment:
    """A pattern (one of `PATTERNS`) in two RGB uint8 colours with a repeat of `period` metres."""

    pattern: str
    colour_a: tuple[int, int, int]
    colour_b: tuple[int, int, int]
    period: float

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")
        if not self.period > 0:
            raise ValueError(f"Garment.period must be > 0 metres, got {self.period}")

    def describe(self) -> str:
        if self.pattern == "plain":
            return colour_name(self.colour_a)
        return f"{colour_name(self.colour_a)}/{colour_name(self.colour_b)} {self.pattern}"


def pattern_weight(garment: Garment, angle: np.ndarray, along: np.ndarray, radius: float) -> np.ndarray:
    """(P,) float64 in [0, 1]: how much of colour_b is at each point (0 = colour_a).

    angle: (P,) radians around the axis; along: (P,) metres along it; radius: metres, the axis' rough
    radius, which turns the angle into an arc length.
    """
    repeats = max(1, round(2.0 * np.pi * radius / garment.period))
    u = angle / (2.0 * np.pi) * repeats  # (P,) pattern cells around the axis, integer-periodic
    v = along / garment.period  # (P,) pattern cells along the axis
    kind = garment.pattern
    if kind == "plain":
        return np.zeros_like(u)
    if kind == "hstripes":
        return (v % 1.0 < 0.5).astype(np.float64)
    if kind == "vstripes":
        return (u % 1.0 < 0.5).astype(np.float64)
    if kind == "checks":  # gingham: the overlap of the two stripe sets is darkest
        return 0.5 * ((u % 1.0 < 0.5).astype(np.float64) + (v % 1.0 < 0.5))
    if kind == "diagonal":
        return ((u + v) % 1.0 < 0.5).astype(np.float64)
    row = np.floor(v)  # dots: staggered rows
    du = (u + 0.5 * (row % 2)) % 1.0 - 0.5
    dv = v % 1.0 - 0.5
    return (du * du + dv * dv < 0.3**2).astype(np.float64)


_NAMED = {
    "black": (20, 20, 20), "grey": (128, 128, 128), "white": (240, 240, 240), "red": (200, 30, 30),
    "orange": (230, 130, 30), "yellow": (230, 210, 40), "olive": (120, 120, 30), "green": (40, 150, 50),
    "teal": (30, 130, 130), "cyan": (60, 200, 220), "blue": (40, 70, 200), "navy": (25, 30, 90),
    "purple": (120, 40, 150), "pink": (230, 120, 170), "brown": (110, 65, 30), "beige": (220, 200, 160),
    "maroon": (110, 20, 30), "sky": (130, 180, 230), "lime": (150, 220, 60), "magenta": (200, 40, 160),
}  # fmt: skip


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest of a few named colours (for descriptions only)."""
    names = list(_NAMED)
    table = np.asarray([_NAMED[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((table - np.asarray(rgb, dtype=np.float64)) ** 2).sum(1)))]
