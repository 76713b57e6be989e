"""Data-parallel training from `torchrun`'s environment (nanoGPT's pattern).

`torchrun --nproc_per_node=N stages/train.py ...` sets RANK, LOCAL_RANK and WORLD_SIZE; without them the
run is a single process. NCCL on CUDA, gloo on the CPU. Rank 0 alone writes files and tracks. Nothing
random depends on the rank: weights start equal on every rank, the step-indexed sampler splits each global
batch, and the penalty's interpolation weights are drawn for the global batch and sliced, so N processes
compute what one process with the global batch would.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

from lwgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """rank / world_size / local_rank of this process; `enabled` when launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistEnv:
    """The process's place in the job, from torchrun's variables (one process when they are absent)."""
    return DistEnv(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
                   local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(kind: str, env: DistEnv) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> this process's device (cuda:LOCAL_RANK for CUDA)."""
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if env.local_rank >= count:  # NCCL refuses two ranks on one GPU, with a message that names neither
        raise UserError(f"this process is local rank {env.local_rank} but the node has {count} CUDA "
                        f"device(s): start at most {count} per node (torchrun --nproc_per_node={count}), "
                        "or train on the CPU with train.device=cpu")
    return torch.device("cuda", env.local_rank)


def init(env: DistEnv, device: torch.device) -> None:
    """Join the process group (no-op for a single process)."""
    if not env.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank,
                            world_size=env.world_size, timeout=datetime.timedelta(minutes=30))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_across(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Element-wise mean of a tensor over all ranks (the tensor itself for one process)."""
    if not env.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / env.world_size


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


class ReplicasDiverged(RuntimeError):
    """The ranks of a data-parallel job no longer hold the same weights."""


def weights_digest(modules: dict[str, torch.nn.Module]) -> str:
    """sha256 of every floating-point tensor of the modules' state dicts (parameters and buffers), in
    key order, as the bytes they hold."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, value in modules[name].state_dict().items():
            if torch.is_floating_point(value):
                digest.update(f"{name}.{key}".encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_replicas(modules: dict[str, torch.nn.Module], env: DistEnv) -> str:
    """Check that every rank holds bit-identical weights and return their digest. Data-parallel training
    keeps them so exactly: the weights start as rank 0's, every rank applies the same all-reduced
    gradients through the same optimiser arithmetic, and buffers are broadcast from rank 0. Raises
    `ReplicasDiverged` naming the ranks that differ from rank 0. A single process has nothing to compare
    and returns ""."""
    if not env.enabled:
        return ""
    local = weights_digest(modules)
    gathered: list[str | None] = [None] * env.world_size
    dist.all_gather_object(gathered, local)
    differ = [rank for rank, value in enumerate(gathered) if value != gathered[0]]
    if differ:
        names = ", ".join(sorted(modules))
        raise ReplicasDiverged(f"ranks {differ} hold other weights than rank 0 ({names})")
    return local
