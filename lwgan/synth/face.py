"""A drawn face and hair on the head part, placed from the rest-pose face keypoints (eyes, nose, ears).

The face is on the front of the head (+Z in the rest pose): eyes with irises, brows, a mouth, a hint of
nose shadow; hair covers the top and back of the head down to the nape (short) or the neck (long).
Features are bold on purpose: at 256 x 256 the face spans only ~15 pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Subject:
    """A person: shape coefficients (S,), skin, hair and eye colours (RGB uint8 triples), hair length."""

    index: int
    betas: tuple[float, ...]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    eyes: tuple[int, int, int]


SCLERA = np.array([236, 234, 228], dtype=np.float32) / 255.0
PUPIL = np.array([12, 10, 10], dtype=np.float32) / 255.0


@dataclasses.dataclass(frozen=True)
class FaceLayout:
    """Rest-pose anchors in metres: the two eyes (3,) each, the nose tip (3,), the ears' mean depth z and
    height y."""

    eyes: tuple[np.ndarray, np.ndarray]
    nose: np.ndarray
    ear_z: float
    ear_y: float


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0


def paint_head(base: np.ndarray, rest: np.ndarray, face: FaceLayout, subject: Subject) -> np.ndarray:
    """Draw hair and face onto the head's skin colours.

    base: (P, 3) float32 RGB in [0, 1] of head points; rest: (P, 3) their rest positions.
    Returns (P, 3) float32.
    """
    out = base.copy()
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    eye_y = float(np.mean([e[1] for e in face.eyes]))
    eye_z = float(np.mean([e[2] for e in face.eyes]))
    front = z > eye_z - 0.035
    skin = np.asarray(subject.skin, dtype=np.float32) / 255.0
    hair = np.asarray(subject.hair, dtype=np.float32) / 255.0

    nose_x, nose_y = float(face.nose[0]), float(face.nose[1])
    shadow = front & _ellipse(x, y, nose_x, nose_y - 0.006, 0.011, 0.006)
    out[shadow] = skin * 0.82
    mouth_y = nose_y - 0.03
    mouth = front & _ellipse(x, y, nose_x, mouth_y, 0.021, 0.0075)
    lips = skin * np.array([0.78, 0.42, 0.42], dtype=np.float32) + np.array([0.12, 0.0, 0.0], np.float32)
    out[mouth] = lips
    out[mouth & (np.abs(y - mouth_y) < 0.0016)] = skin * 0.35

    brow_colour = hair * 0.7
    for ex, ey, _ in face.eyes:
        white = front & _ellipse(x, y, ex, ey, 0.0155, 0.009)
        out[white] = SCLERA
        iris = white & _ellipse(x, y, ex, ey, 0.0075, 0.0075)
        out[iris] = np.asarray(subject.eyes, dtype=np.float32) / 255.0
        out[white & _ellipse(x, y, ex, ey, 0.0036, 0.0036)] = PUPIL
        arch = ey + 0.021 + 0.004 * (1.0 - np.clip(((x - ex) / 0.02) ** 2, 0.0, 1.0))
        brow = front & (np.abs(y - arch) < 0.0035) & (np.abs(x - ex) < 0.021)
        out[brow] = brow_colour

    # Hairline: high on the forehead, dropping behind the ears to the nape or, for long hair, the neck.
    forehead = eye_y + 0.042
    nape = (float(rest[:, 1].min()) + 0.01) if subject.long_hair else face.ear_y - 0.035
    behind = np.clip((z - (face.ear_z - 0.01)) / 0.04, 0.0, 1.0)  # 0 behind the ears, 1 in front
    line = nape + (forehead - nape) * behind
    line = line - 0.012 * np.cos(x / 0.09 * np.pi)  # a softly rounded fringe
    strands = 0.9 + 0.1 * np.sin(x * 420.0 + 60.0 * y)
    covered = y > line
    out[covered] = hair * strands[covered, None].astype(np.float32)
    return out
