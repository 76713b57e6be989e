"""The value every loss returns: a differentiable scalar plus named statistics for logging."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """value: scalar tensor to back-propagate (float32, unweighted unless the function takes a weight).
    stats: name -> detached scalar tensor (no host sync happens here; the caller decides when to read)."""

    value: torch.Tensor
    stats: Mapping[str, torch.Tensor]


def detached(**values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Statistics dict of detached float32 scalars."""
    return {name: value.detach().float() for name, value in values.items()}


def wide(x: torch.Tensor) -> torch.Tensor:
    """x in at least float32 (half and bfloat16 are widened, float64 stays float64)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
