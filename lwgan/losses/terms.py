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


def native_bf16(device: torch.device | str) -> bool:
    """Whether bfloat16 runs natively here: CUDA, or a CPU with bfloat16 instructions (oneDNN's check;
    elsewhere bfloat16 is emulated and slower than float32)."""
    if torch.device(device).type == "cuda":
        return True
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def feature_autocast(x: torch.Tensor, enabled: bool) -> torch.autocast:
    """bfloat16 autocast on x's device for a frozen feature network's forward (`enabled`)."""
    return torch.autocast(x.device.type, torch.bfloat16, enabled=enabled)
