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
    data_key, code_key  its data and code parts (`data_key`, `code_key`), to say which differs
    history             tracked rows so far: [{"step": s, "<name>": value, ...}, ...]
    epochs              per-epoch sums of every loss term: {"<epoch>": {"<name>": [sum, count]}}
    feature_nets        which perceptual and face networks were used and where their weights came from

A checkpoint of another run (other config, data or training code) is never overwritten: `set_aside` moves
it to `previous/checkpoint.<run key>.step<N>.pt` beside it, and `differences` says what differs.
The code key hashes the syntax trees of the training code without docstrings (comments are not in a
syntax tree), so editing a comment, a docstring or the layout keeps a run resumable.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import torch

from lwgan.data.h5util import content_key, shard_path
from lwgan.io import atomic_path
from lwgan.nets.build import FORMAT, VERSION, inference_weights, read_checkpoint

# Train params that change how a run is executed, not what it computes: a checkpoint made under other
# values of these is still resumed.
RUNTIME_KEYS = ("workers", "device", "threads", "max_steps", "checkpoint_every", "log_every",
                "sample_every", "samples")


def save(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint atomically; `state` holds every key of the module docstring but format/version."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return Path(path)


load = read_checkpoint  # training resumes through the same reader as inference


def generator_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """G's inference weights (see `inference_weights`) and the run's config from a checkpoint."""
    state = load(path)
    return inference_weights(state), state["config"]


# The code that computes a run's numbers (what the train stage lists as its code dependencies).
CODE = ("lwgan/train", "lwgan/nets", "lwgan/losses", "lwgan/warp", "lwgan/train/pairs.py",
        "lwgan/correspond/maps_cache.py", "lwgan/correspond/maps.py")


def code_tree(source: str) -> str:
    """The syntax tree of Python `source` without docstrings, as text: what the code computes, not how it
    is written down (comments, docstrings, line breaks and spacing leave it unchanged)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_key() -> str:
    """Hash of the code in `CODE` (`code_tree` of every file): a changed loss or network is not resumed
    from an old state, a changed comment is."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for entry in CODE:
        path = package.parent / entry
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.relative_to(package.parent).as_posix().encode())
            digest.update(code_tree(source.read_text()).encode())
    return digest.hexdigest()[:32]


def differences(state: Mapping[str, Any], train: Mapping[str, Any], seed: int, data: str, code: str,
                init: Mapping[str, Any] | None = None) -> list[str]:
    """What makes checkpoint `state` another run than (train params dict, seed, data key, code key, the
    record of the checkpoint it started from, `train.init_from`): "train.KEY OLD -> NEW" per differing
    param (run-time knobs aside), "seed", "train.init_from's file (sha256 OLD -> NEW)", "data",
    "training code"."""
    config = state.get("config", {})
    old = config.get("train", {})
    out = [f"train.{k} {old.get(k)!r} -> {train.get(k)!r}"
           for k in sorted(set(old) | set(train)) if k not in RUNTIME_KEYS and old.get(k) != train.get(k)]
    if config.get("seed", seed) != seed:
        out.append(f"seed {config.get('seed')} -> {seed}")
    started = [str((r or {}).get("sha256", "none"))[:12] for r in (config.get("init_from"), init)]
    if started[0] != started[1]:  # another starting file, maybe at the same path
        out.append(f"train.init_from's file (sha256 {started[0]} -> {started[1]})")
    for name, key, now in (("data", "data_key", data), ("training code", "code_key", code)):
        if key in state and state[key] != now:
            out.append(name)
    if not out:
        out.append("config, data or training code (the checkpoint predates the record of which)")
    return out


def set_aside(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Move the checkpoint at `path` (whose contents are `state`) to
    `previous/checkpoint.<run key>.step<N>.pt` beside it, never over another file; returns where."""
    path = Path(path)
    folder = path.parent / "previous"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{path.stem}.{str(state.get('run_key', 'unknown'))[:12]}.step{int(state.get('step', 0))}"
    target, n = folder / f"{stem}{path.suffix}", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}.{n}{path.suffix}"
    os.replace(path, target)
    return target


def run_key(train: Mapping[str, Any], seed: int, data: str, code: str) -> str:
    """Hash of everything that determines a run's numbers (the train params as a dict without
    `RUNTIME_KEYS`, the seed, `data_key`, `code_key`): a checkpoint is resumed only under the same key."""
    tree = {k: v for k, v in train.items() if k not in RUNTIME_KEYS}
    return content_key("lwgan.train", VERSION, tree, seed, data, code)


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
