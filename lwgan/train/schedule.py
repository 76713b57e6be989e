"""Learning-rate schedule as a pure function of the step, so a resumed run is exact (nanoGPT's rule).

The original LWGAN keeps both learning rates constant for `epochs_constant` epochs and then decays them
linearly to `final_lr` over `epochs_decay` epochs. lwgan decays per step rather than once per epoch (the
same line, without the staircase):

    lr(step) = base                                                  if e <= N
             = base + (final - base) * min(1, (e - N) / M)          otherwise,     e = step / steps_per_epoch

N = epochs_constant, M = epochs_decay. M = 0 keeps the base rate throughout.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The run's length and learning-rate schedule, in steps.

    steps_per_epoch: optimiser steps in one epoch (pairs per epoch / global batch), >= 1.
    epochs_constant / epochs_decay: N and M above (fractions allowed).
    final_lr: the rate both networks reach at the end of the decay.
    max_steps: a cap on the run's length (0 = none).
    """

    steps_per_epoch: int
    epochs_constant: float
    epochs_decay: float
    final_lr: float
    max_steps: int = 0

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    @property
    def total_steps(self) -> int:
        """Steps of the whole run: the epochs' steps (rounded up), capped by max_steps."""
        steps = math.ceil((self.epochs_constant + self.epochs_decay) * self.steps_per_epoch)
        return min(steps, self.max_steps) if self.max_steps else steps

    def epoch(self, step: int) -> int:
        """The epoch a step belongs to (0-based)."""
        return step // self.steps_per_epoch

    def lr(self, base: float, step: int) -> float:
        """The learning rate at `step` for a network whose initial rate is `base`."""
        epochs = step / self.steps_per_epoch
        if epochs <= self.epochs_constant or self.epochs_decay <= 0:
            return base
        progress = min(1.0, (epochs - self.epochs_constant) / self.epochs_decay)
        return base + (self.final_lr - base) * progress
