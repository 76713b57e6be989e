"""Measures of a training run's stability, for the words the paper uses ("fewer oscillations", "D's mean
output dropped to zero and did not change", "one adversary overpowering the other") made into numbers.

Every measure reads a tracked curve: steps (N,) int, values (N,) float, one row per tracked step (a row is
the mean of `train.log_every` steps), and looks at the run's tail: the rows whose step lies in the last
`fraction` of the run (default a third; at least `MIN_TAIL_ROWS` rows).

    oscillation     root mean square of the residual after a least-squares straight line over the tail:
                    what is left of the curve once its trend is taken out (a falling loss is not an
                    oscillating one); relative: divided by the mean of the tail, in per cent, so that
                    losses of different weights and variants compare.
    quarters        the mean over each quarter of the run's steps (D's mean output on real and fake "over
                    time").
    D state         from D's mean outputs, with the adversarial loss's targets (reals `real_target`, fakes
                    -1; G pulls fakes to 0). The normalised margin m = (d_real - d_fake) / (real_target + 1)
                    is 1 when D reaches both targets and 0 when it cannot tell real from fake.
                    'saturated': m >= SATURATED_MARGIN in at least HELD of the tail rows (D wins outright,
                    G's adversarial gradient carries little information);
                    'flat': |d_real| and |d_fake| both <= FLAT_LEVEL in at least HELD of the tail rows (D's
                    outputs sit at zero on both, the paper's observation under a gradient penalty);
                    'balanced' otherwise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TAIL_FRACTION = 1.0 / 3.0
MIN_TAIL_ROWS = 3
SATURATED_MARGIN = 0.9
FLAT_LEVEL = 0.1
HELD = 0.9


def _curve(steps, values) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=float)
    v = np.asarray(values, dtype=float)
    if s.shape != v.shape or s.ndim != 1:
        raise ValueError(f"steps and values must be 1-d of one length, got {s.shape} and {v.shape}")
    order = np.argsort(s, kind="stable")
    return s[order], v[order]


def tail(steps, values, fraction: float = TAIL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the last `fraction` of the run: step > (1 - fraction) * last step, and at least
    `MIN_TAIL_ROWS` rows (all of them when the curve is shorter)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"tail fraction must be in (0, 1], got {fraction}")
    s, v = _curve(steps, values)
    if len(s) == 0:
        return s, v
    keep = s > (1.0 - fraction) * s[-1]
    first = min(int(np.argmax(keep)) if keep.any() else len(s), max(len(s) - MIN_TAIL_ROWS, 0))
    return s[first:], v[first:]


def oscillation(steps, values, fraction: float = TAIL_FRACTION) -> float:
    """RMS of the tail's residual after a least-squares line (units of the values); NaN with < 3 rows."""
    s, v = tail(steps, values, fraction)
    if len(s) < 3:
        return float("nan")
    design = np.stack([s - s.mean(), np.ones_like(s)], axis=1)  # (N, 2): slope, intercept
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    residual = v - design @ coef
    return float(np.sqrt(np.mean(residual**2)))


def relative_oscillation(steps, values, fraction: float = TAIL_FRACTION) -> float:
    """`oscillation` divided by |mean of the tail|, in per cent; NaN when that mean is 0."""
    _, v = tail(steps, values, fraction)
    mean = float(np.mean(v)) if len(v) else float("nan")
    if not mean:
        return float("nan")
    return 100.0 * oscillation(steps, values, fraction) / abs(mean)


def tail_mean(steps, values, fraction: float = TAIL_FRACTION) -> float:
    """Mean of the tail's values; NaN for an empty curve."""
    _, v = tail(steps, values, fraction)
    return float(np.mean(v)) if len(v) else float("nan")


def quarters(steps, values, parts: int = 4) -> list[float]:
    """Mean over each of `parts` equal spans of (0, last step]; NaN for a span without rows."""
    s, v = _curve(steps, values)
    if len(s) == 0:
        return [float("nan")] * parts
    index = np.clip(np.ceil(s / s[-1] * parts).astype(int) - 1, 0, parts - 1)
    return [float(v[index == k].mean()) if (index == k).any() else float("nan") for k in range(parts)]


@dataclasses.dataclass(frozen=True)
class DState:
    """D's behaviour over the tail (module docstring): state is 'saturated', 'flat' or 'balanced';
    margin: mean normalised margin m; saturated_share / flat_share: shares of tail rows meeting each rule."""

    state: str
    margin: float
    saturated_share: float
    flat_share: float

    @property
    def saturated(self) -> bool:
        return self.state == "saturated"


def d_state(steps, d_real, d_fake, real_target: float = 1.0, fraction: float = TAIL_FRACTION) -> DState:
    """Classify D from its mean outputs on real and fake images (same steps) over the run's tail."""
    s_real, real = tail(steps, d_real, fraction)
    s_fake, fake = tail(steps, d_fake, fraction)
    if len(real) == 0 or not np.array_equal(s_real, s_fake):
        raise ValueError("d_real and d_fake must be tracked at the same steps")
    margin = (real - fake) / (real_target + 1.0)
    saturated = float(np.mean(margin >= SATURATED_MARGIN))
    flat = float(np.mean((np.abs(real) <= FLAT_LEVEL) & (np.abs(fake) <= FLAT_LEVEL)))
    state = "saturated" if saturated >= HELD else "flat" if flat >= HELD else "balanced"
    return DState(state, float(np.mean(margin)), saturated, flat)


def relative_delta(value: float, baseline: float) -> float:
    """100 * (value - baseline) / |baseline| (the paper's ΔL: negative = lower than the baseline); NaN
    when the baseline is 0."""
    if not baseline:
        return float("nan")
    return 100.0 * (value - baseline) / abs(baseline)
