"""Train-stage speed and memory: the pair loader and the training step.

    python benchmarks/train.py [--quick]

On a small synthetic set at 256² (made in-process: synthesise -> prepare -> fit -> correspond):
loader_pairs_per_s: pairs (images, conditioning maps, the flow T by gather) per second from the DataLoader
    with `train.workers` worker processes, at the default training size (64²) and at the paper's (256²).
cpu_train_steps_per_s: optimiser steps (one G and one D update) per second of the real training loop at
    the default configuration (params.yaml), start-up and the first steps excluded.
cpu_peak_rss_gb: peak resident memory of that run: the training process plus its loader workers.
With CUDA: cuda_train_steps_per_s and cuda_peak_mem_gb of the real training loop at the paper configuration
(256², batch 4, base width 64, 6 residual blocks, bf16 autocast) with `cuda_workers` loader processes;
cuda_compute_steps_per_s, the same steps on one batch already on the device (the GPU's own rate, no
loader); loader_pairs_per_s_256_cuda_workers, the loader at 256² with those workers; and loader_headroom =
that rate over the pairs the GPU's own rate consumes (target >= 5; below 1 the GPU waits for data).
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from lwgan import config
from lwgan.train.objective import Batch
from lwgan.train.pairs import PairDataset, PairOptions, StepBatchSampler
from lwgan.train.train import TrainPaths, build, loader_worker_init, train, train_step

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the small synthetic caches the tests build

from _small import Caches, build_caches  # noqa: E402

PAPER = {"image_size": 256, "base_width": 64, "res_blocks": 6, "d_layers": 4, "batch_size": 4}


def loader_rate(c: Caches, image_size: int, batch: int, workers: int, steps: int) -> float:
    dataset = PairDataset(c.frames, c.maps, c.smpl, c.body, PairOptions(image_size=image_size, augment=True))
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatchSampler(len(dataset), batch, num_steps=steps + 2),
        num_workers=workers, multiprocessing_context="spawn" if workers else None,
        worker_init_fn=loader_worker_init if workers else None, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it), next(it)  # workers started and warm
    start = time.perf_counter()
    count = sum(len(items["flow"]) for items in it)
    return count / (time.perf_counter() - start)


def _params(train_params: dict, **overrides) -> config.Params:
    """params.yaml with `train_params` and `overrides` in its train section, tracking off."""
    tree = config.to_dict(config.load(ROOT / "params.yaml"))
    tree["train"].update(train_params, **overrides)
    tree["tracking"]["enabled"] = False
    return config.from_dict(tree)


def train_rate(c: Caches, out: Path, train_params: dict, steps: int, skip: int) -> dict[str, float]:
    params = _params(train_params, max_steps=steps + skip, checkpoint_every=10**9, sample_every=10**9,
                     log_every=1)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train(params, TrainPaths(c.frames, c.maps, c.smpl, c.body, out))
    rates = [row["perf/images_per_s"] / params.train.batch_size for row in result.history[skip:]]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # the largest loader worker
    stats = {"steps_per_s": len(rates) / sum(1.0 / r for r in rates), "rss_gb_trainer": own,
             "rss_gb": own + params.train.workers * child}
    if torch.cuda.is_available():
        stats["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return stats


def compute_rate(c: Caches, out: Path, train_params: dict, steps: int, skip: int) -> dict[str, float]:
    """Steps per second of `train_step` on one batch that stays on the device: G, D, the feature networks,
    backward and both optimisers, with no loader in the way."""
    run = build(_params(train_params, workers=0), TrainPaths(c.frames, c.maps, c.smpl, c.body, out))
    items = torch.utils.data.default_collate([run.dataset[i] for i in range(run.params.batch_size)])
    batch = Batch.from_items(items, run.device, channels_last=run.fast)
    sync = torch.cuda.synchronize if run.device.type == "cuda" else (lambda: None)
    for _ in range(skip):
        train_step(run, batch)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(run, batch)
    sync()
    return {"steps_per_s": steps / (time.perf_counter() - start)}


def _child(queue, fn, args) -> None:
    queue.put(fn(*args))


def in_fresh_process(*args, fn=train_rate) -> dict[str, float]:
    """`fn` (`train_rate`) in a process of its own (not a daemon: it starts loader workers), so that its peak
    memory is the training run's alone."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    stats = queue.get()
    proc.join()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and steps (< 2 minutes)")
    args = parser.parse_args()
    defaults = config.load(ROOT / "params.yaml").train
    frames, loader_steps, steps = (10, 20, 12) if args.quick else (40, 60, 40)
    result: dict[str, float | int | str] = {"quick": args.quick, "workers": defaults.workers}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        caches = build_caches(tmp_path / "data", side=256, frames_per_action=frames, subjects=2, workers=2)
        for size in (defaults.image_size, 256):
            result[f"loader_pairs_per_s_{size}"] = loader_rate(caches, size, defaults.batch_size,
                                                               defaults.workers, loader_steps)
        result["loader_pairs_per_s"] = result[f"loader_pairs_per_s_{defaults.image_size}"]
        cpu = dataclasses.asdict(defaults) | {"device": "cpu"}
        cpu_stats = in_fresh_process(caches, tmp_path / "cpu", cpu, steps, 3)
        result["cpu_train_steps_per_s"] = cpu_stats["steps_per_s"]
        result["cpu_peak_rss_gb"] = cpu_stats["rss_gb"]  # the trainer + each worker at the largest's peak
        result["cpu_peak_rss_gb_trainer"] = cpu_stats["rss_gb_trainer"]
        if torch.cuda.is_available():
            workers = max(2, min(12, (os.cpu_count() or 4) - 2))
            result["cuda_workers"] = workers
            paper = PAPER | {"device": "cuda", "workers": workers}
            cuda_stats = in_fresh_process(caches, tmp_path / "cuda", paper, steps, 5)
            result["cuda_train_steps_per_s"] = cuda_stats["steps_per_s"]
            result["cuda_peak_mem_gb"] = cuda_stats["peak_mem_gb"]
            own = in_fresh_process(caches, tmp_path / "cuda_compute", paper, steps, 5, fn=compute_rate)
            result["cuda_compute_steps_per_s"] = own["steps_per_s"]
            pairs = loader_rate(caches, 256, PAPER["batch_size"], workers, loader_steps)
            result["loader_pairs_per_s_256_cuda_workers"] = pairs
            result["loader_headroom"] = pairs / (PAPER["batch_size"] * own["steps_per_s"])
        else:
            result["cuda"] = "not available: cuda_train_steps_per_s and cuda_peak_mem_gb need a CUDA device"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
