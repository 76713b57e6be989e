"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one file written atomically (temporary file + `os.replace`), so an interrupted write never
leaves half a checkpoint, and it is plain data (`torch.load(..., weights_only=True)` reads it; no pickled
modules). Its keys:

    format, version     "lwgan.train.checkpoint", `VERSION`
    step                optimiser steps completed (the next step to run)
    generator           G's state dict (without DDP's "module." prefix)
    discriminator       D's state dict, spectral-norm vectors included (the original never released D)
    opt_g, opt_d        the two Adam states
    config              the resolved options of the run (nested dict), as `lwgan.config.to_dict` gives them
    run_key             hash of what determines the run's numbers (config without run-time knobs, data,
                        training code): `run_key`
    history             tracked rows so far: [{"step": s, "<name>": value, ...}, ...]
    epochs              per-epoch sums of every loss term: {"<epoch>": {"<name>": [sum, count]}}
    feature_nets        where the VGG19 and SphereFace weights came from
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import torch

from lwgan.data.h5util import content_key, shard_path
from lwgan.io import atomic_path

FORMAT = "lwgan.train.checkpoint"
VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"
# Train params that change how a run is executed, not what it computes: a checkpoint made under other
# values of these is still resumed.
RUNTIME_KEYS = ("workers", "device", "threads", "max_steps", "checkpoint_every", "log_every",
                "sample_every", "samples")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this run; the message names the file."""


def save(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint atomically; `state` holds every key of the module docstring but format/version."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return Path(path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save`; a damaged or foreign file raises CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                              "damaged: delete it to train from scratch") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lwgan training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has version {state.get('version')}; this lwgan reads "
                              f"version {VERSION}")
    return state


def generator_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """G's weights and the run's config from a checkpoint (for inference and evaluation)."""
    state = load(path)
    return state["generator"], state["config"]


# The code that computes a run's numbers (what the train stage lists as its code dependencies).
CODE = ("lwgan/train", "lwgan/nets", "lwgan/losses", "lwgan/warp", "lwgan/data/pairs.py",
        "lwgan/data/maps_cache.py", "lwgan/render/correspond.py")


def code_key() -> str:
    """Hash of the source files in `CODE`: a changed loss or network is not resumed from an old state."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for entry in CODE:
        path = package.parent / entry
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.relative_to(package.parent).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def run_key(train: Mapping[str, Any], seed: int, data: str) -> str:
    """Hash of everything that determines a run's numbers (the train params as a dict without
    `RUNTIME_KEYS`, the seed, `data_key`, `code_key`): a checkpoint is resumed only under the same key."""
    tree = {k: v for k, v in train.items() if k not in RUNTIME_KEYS}
    return content_key("lwgan.train", VERSION, tree, seed, data, code_key())


def data_key(maps_path: str | Path) -> str:
    """Hash of the correspondence shards' producing keys (each covers its SMPL shard, which covers its
    frames shard): the data a run was trained on, without reading the data."""
    maps = Path(maps_path)
    keys = {}
    with h5py.File(maps, "r") as index:
        videos = sorted(index.keys())
    for video in videos:
        with h5py.File(shard_path(maps.parent, video), "r") as handle:
            keys[video] = str(handle.attrs["key"])
    return content_key(keys)


def content_int(*parts: Any) -> int:
    """A 63-bit seed from JSON-able parts (seed, step), stable across processes and runs."""
    return int(content_key(*parts)[:15], 16)
