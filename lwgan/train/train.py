"""The LWGAN training loop: from validated options to a trained checkpoint, in parts that each do one thing.

`train` is the driver: `build` makes a fresh run (data, schedule, G, D, objective, optimisers, the keys of
its checkpoints; G and D from another run's checkpoint with `train.init_from`, `start_from`); `resume`
continues it from its checkpoint when the same run made it; `replicate` wraps the networks for DDP; then
per batch `train_step` updates the networks and `log_window` turns every `log_every` steps into a history
row, with `write_samples` and `save_checkpoint` on their own periods.

Per step (the original's order): G synthesises the batch; every `g_every`-th step G is updated on L_G
with D frozen; every `d_every`-th step D is updated on L_D with G's outputs detached. Learning rates are a
pure function of the step (`lwgan.train.schedule`), the data are a pure function of the step
(`lwgan.train.pairs.StepBatchSampler`) and so are the gradient penalty's interpolation weights, so a run
resumed from a checkpoint computes exactly what an uninterrupted run does (on the CPU, bit for bit).

A non-finite loss stops the run before any optimiser step could corrupt the weights; the last checkpoint
on disk is the last good state. Rank 0 alone writes files and tracks; the others train their share.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lwgan import config, keep
from lwgan.data.errors import DataError
from lwgan.errors import UserError
from lwgan.io import remove_temporaries, write_json
from lwgan.nets import Generator, PatchDiscriminator
from lwgan.nets.build import (
    CHECKPOINT_FILE,
    CheckpointError,
    net_options,
    read_checkpoint,
    train_params_of,
    trained_on,
)
from lwgan.progress import ProgressLog
from lwgan.train import checkpoint, distributed
from lwgan.train.objective import Batch, LossWeights, Objective, StepLoss, feature_losses
from lwgan.train.pairs import PairDataset, PairOptions, StepBatchSampler
from lwgan.train.schedule import Schedule
from lwgan.train.visuals import loss_curves, sample_grid, write_curves_csv

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
CURVES_FILE = "loss_curves.png"
CONFIG_FILE = "config.json"
FEATURE_NETS_FILE = "feature_nets.json"
# The statistics summed per epoch (for `summarise`); learning rates and timings are not.
EPOCH_TERMS = ("loss/", "raw/", "d/", "grad_norm/")


class Tracker(Protocol):
    """What the loop needs from a tracker (`lwgan.tracking.StageRun` fits)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, flush: bool = True) -> None: ...
    def log_artifacts(self, paths, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...


class NonFiniteLoss(UserError, RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step, the terms and the checkpoint
    that was kept."""


@dataclasses.dataclass(frozen=True)
class TrainPaths:
    """Inputs (the three caches and the body model) and outputs (checkpoint folder, DVC plots folder)."""

    frames: Path
    maps: Path
    smpl: Path
    body: Path
    out_dir: Path
    plots_dir: Path | None = None


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """steps: steps completed in all; resumed_from: the step this process started at (0 = fresh);
    metrics: what metrics/train.json holds; history: the tracked rows."""

    steps: int
    resumed_from: int
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    checkpoint: Path


@dataclasses.dataclass
class TrainRun:
    """One training run in this process: its parts (made by `build`) and its state between steps.

    fast: bf16 autocast and channels_last (CUDA with train.bf16). g_train / d_train: the networks the
    updates run through, the DistributedDataParallel wrappers of generator / discriminator under torchrun
    (`replicate`), the networks themselves otherwise. data_key / code_key / run_key: see
    `lwgan.train.checkpoint`; a checkpoint is resumed only under the same run_key. resolved: what
    config.json and the checkpoint's "config" hold. g_ema: the moving average of G's weights
    (`train.g_ema` > 0), what inference gets; None when off. step: steps done; history: one row per
    logged window; epochs: {epoch: {statistic: [sum over steps, steps]}}; saved_step: the step of the
    checkpoint on disk, None before the first.
    """

    params: config.TrainParams
    seed: int
    paths: TrainPaths
    env: distributed.DistEnv
    device: torch.device
    fast: bool
    pair_opts: PairOptions
    dataset: PairDataset
    schedule: Schedule
    generator: Generator
    discriminator: PatchDiscriminator
    objective: Objective
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    feature_nets: dict[str, dict[str, Any]]
    data_key: str
    code_key: str
    run_key: str
    resolved: dict[str, Any]
    g_train: nn.Module
    d_train: nn.Module
    g_ema: Generator | None = None
    step: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    epochs: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)
    saved_step: int | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.paths.out_dir)

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def global_batch(self) -> int:
        return self.params.batch_size * self.env.world_size

    @property
    def total(self) -> int:
        return self.schedule.total_steps

    @property
    def g_infer(self) -> Generator:
        """The G that samples and the checkpoint's inference weights come from."""
        return self.g_ema if self.g_ema is not None else self.generator


@dataclasses.dataclass
class Window:
    """The statistics of the steps since the last history row (0-d float tensors per name, one per step
    that had it), how many steps, and when the first began (`time.perf_counter`)."""

    values: dict[str, list[torch.Tensor]] = dataclasses.field(default_factory=dict)
    steps: int = 0
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, stats: Mapping[str, torch.Tensor]) -> None:
        for name, value in stats.items():
            self.values.setdefault(name, []).append(value.detach().float())
        self.steps += 1


def loss_weights(p: config.TrainParams) -> LossWeights:
    return LossWeights(adv=p.lambda_adv, rec=p.lambda_rec, tsf=p.lambda_tsf, face=p.lambda_face,
                       mask=p.lambda_mask, smooth=p.lambda_smooth, style=p.lambda_style,
                       tsf_l1=p.lambda_tsf_l1, tsf_l1_body=p.tsf_l1_body, real_target=p.real_target,
                       gp=p.gp_weight)


def train(params: config.Params, paths: TrainPaths, tracker: Tracker | None = None,
          progress: Callable[..., None] | None = None,
          on_checkpoint: Callable[[int, Path], None] | None = None) -> TrainResult:
    """Train LWGAN on the caches in `paths` with `params.train` (and `params.seed`); see the module
    docstring. Resumes from `paths.out_dir / checkpoint.pt` when it was made by the same configuration.
    `on_checkpoint(step, path)` is called (by the main process) after every checkpoint is written."""
    run = build(params, paths)
    resume(run)
    resumed_from = run.step
    progress = progress or ProgressLog("train", "steps", every_s=10.0, start_done=run.step)
    replicate(run)
    if run.env.is_main:
        _write_run_files(run, tracker)
    samples = _sample_batch(run) if run.env.is_main else None
    loader = _loader(run)
    p = run.params
    window = Window()
    started = time.perf_counter()
    if run.step == 0:
        write_samples(run, samples)
    for items in loader:
        window.add(train_step(run, Batch.from_items(items, run.device, channels_last=run.fast)))
        step = run.step
        if step % p.log_every == 0 or step % run.schedule.steps_per_epoch == 0 or step == run.total:
            log_window(run, window, tracker, progress)
        if step % p.sample_every == 0 and step < run.total:
            write_samples(run, samples)
        if step % p.checkpoint_every == 0 and step < run.total:
            save_checkpoint(run, on_checkpoint)

    if run.saved_step != run.step:
        save_checkpoint(run, on_checkpoint)
    write_samples(run, samples)
    metrics = summarise(run.history, run.epochs, run.step, run.schedule, time.perf_counter() - started,
                        resumed_from, run.global_batch, run.feature_nets)
    if run.env.is_main:
        _publish(run, tracker)
    distributed.shutdown()
    return TrainResult(steps=run.step, resumed_from=resumed_from, metrics=metrics, history=run.history,
                       checkpoint=run.ckpt_path)


def build(params: config.Params, paths: TrainPaths) -> TrainRun:
    """Set this process up (process group, device, CPU threads) and make a fresh run at step 0: the pairs,
    the schedule, G then D from `torch.manual_seed(params.seed)` (equal on every rank), the objective with
    its feature networks, both optimisers, and the keys and resolved config its checkpoints carry. Writes
    nothing."""
    p, seed = params.train, params.seed
    env = distributed.from_environment()
    device = distributed.pick_device(p.device, env)
    distributed.init(env, device)
    cuda = device.type == "cuda"
    fast = cuda and p.bf16
    if not cuda:
        torch.set_num_threads(p.threads or max(1, (os.cpu_count() or 1) // env.world_size))

    pair_opts = PairOptions(image_size=p.image_size, source_frames=p.source_frames,
                            visible_faces=p.visible_faces, augment=p.augment,
                            shuffle_channels=p.shuffle_channels, hue_rotation=p.hue_rotation,
                            recolour_share=p.recolour_share, split="train", dev_subject=p.dev_subject,
                            seed=seed)
    dataset = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body, pair_opts)
    global_batch = p.batch_size * env.world_size
    schedule = Schedule(steps_per_epoch=max(1, (p.pairs_per_epoch or len(dataset)) // global_batch),
                        epochs_constant=p.epochs_constant, epochs_decay=p.epochs_decay, final_lr=p.final_lr,
                        max_steps=p.max_steps)

    torch.manual_seed(seed)  # equal initial weights on every rank (DDP also broadcasts rank 0's)
    generator = Generator(net_options(p))
    discriminator = PatchDiscriminator(net_options(p))
    init = start_from(p, generator, discriminator, Path(paths.out_dir) / CHECKPOINT_FILE)
    perceptual, face, infos = feature_losses(p)
    objective = Objective(loss_weights(p), p.image_size, perceptual, face)
    for module in (generator, discriminator, objective):  # before the optimisers: their state follows
        module.to(device)
        if fast:
            module.to(memory_format=torch.channels_last)
    g_ema = copy.deepcopy(generator).requires_grad_(False) if p.g_ema > 0 else None
    opt_g = torch.optim.Adam(generator.parameters(), lr=p.lr_g, betas=p.betas_g)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=p.lr_d, betas=p.betas_d)
    feature_nets = {info.kind: dataclasses.asdict(info) for info in infos}

    data_key, code_key = checkpoint.data_key(paths.maps), checkpoint.code_key()
    resolved = {"seed": seed, "train": config.to_dict(p), "world_size": env.world_size,
                "steps_per_epoch": schedule.steps_per_epoch, "total_steps": schedule.total_steps,
                "pairs": len(dataset), "feature_bf16": perceptual.bf16,
                "trained_on": dataset.frames.data_kind()} | ({"init_from": init} if init else {})
    keyed = config.to_dict(p) | {"feature_bf16": perceptual.bf16} | ({"init_sha256": init["sha256"]} if init
                                                                      else {})
    return TrainRun(params=p, seed=seed, paths=paths, env=env, device=device, fast=fast, pair_opts=pair_opts,
                    dataset=dataset, schedule=schedule, generator=generator, discriminator=discriminator,
                    objective=objective, opt_g=opt_g, opt_d=opt_d, feature_nets=feature_nets,
                    data_key=data_key, code_key=code_key,
                    run_key=checkpoint.run_key(keyed, seed, data_key, code_key),
                    resolved=resolved, g_train=generator, d_train=discriminator, g_ema=g_ema)


def start_from(p: config.TrainParams, generator: Generator, discriminator: PatchDiscriminator,
               own: Path) -> dict[str, Any] | None:
    """With `train.init_from`, load that checkpoint's G and D (its last trained weights, not a moving
    average) into these networks, which must be built with the same options; returns what the run
    records of it (path, sha256, the step it was at, what it was trained on), None without it. The
    run's optimisers and schedule start afresh. A missing, foreign or unfit file is a ConfigError naming
    the param; so is the run's own checkpoint (`own`), which its runs replace."""
    if not p.init_from:
        return None
    path = Path(p.init_from)
    if path.resolve() == own.resolve():
        raise config.ConfigError(f"train.init_from: {path} is this run's own checkpoint, which its runs "
                                 "replace; copy it elsewhere and start from the copy")
    data = path.read_bytes() if path.is_file() else None  # read once: loaded and hashed
    try:
        state = read_checkpoint(path, data=data)
        theirs = net_options(train_params_of(state, path))
    except CheckpointError as err:
        raise config.ConfigError(f"train.init_from: {err}") from err
    mine = net_options(p)
    differ = [f"train.{_PARAM_OF_OPTION.get(f.name, f.name)} {getattr(theirs, f.name)!r} there, "
              f"{getattr(mine, f.name)!r} here" for f in dataclasses.fields(mine)
              if getattr(theirs, f.name) != getattr(mine, f.name)]
    if differ:
        raise config.ConfigError(f"train.init_from: {path} holds other networks than this run builds ("
                                 f"{'; '.join(differ)}); set those params as the checkpoint has them")
    if "discriminator" not in state:
        raise config.ConfigError(f"train.init_from: {path} holds no discriminator; give a checkpoint the "
                                 "train stage wrote")
    generator.load_state_dict(state["generator"])
    discriminator.load_state_dict(state["discriminator"])
    record = {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "step": int(state["step"]),
              "trained_on": trained_on(state)}
    log.info("G and D start from %s (step %d, trained on %s)", path, record["step"], record["trained_on"])
    return record


_PARAM_OF_OPTION = {"spectral_norm_d": "spectral_norm"}  # NetOptions field -> train param, where they differ


def resume(run: TrainRun) -> None:
    """Continue `run` from the checkpoint in its folder when the same run (config, seed, data, code) made
    it: weights, optimiser states, step, history and epoch sums. A checkpoint of another run, or of this
    run past its last step (`train.max_steps` lowered: the capped run is the first steps of the longer
    one, whose state at the cap was not kept), is moved aside by the main process, with a warning naming
    why, and `run` stays at step 0."""
    if run.env.is_main:
        _take_back_kept(run)
    distributed.barrier(run.env)
    if not run.ckpt_path.is_file():
        return
    state = checkpoint.load(run.ckpt_path, map_location=run.device)
    same_run = state["run_key"] == run.run_key
    past_end = same_run and int(state["step"]) > run.total
    distributed.barrier(run.env)  # every rank has read it before the main one may move it aside
    if same_run and not past_end:
        run.generator.load_state_dict(state["generator"])
        if run.g_ema is not None:
            run.g_ema.load_state_dict(state["generator_ema"])
        run.discriminator.load_state_dict(state["discriminator"])
        run.opt_g.load_state_dict(state["opt_g"])
        run.opt_d.load_state_dict(state["opt_d"])
        run.step = run.saved_step = int(state["step"])
        run.history, run.epochs = list(state["history"]), dict(state["epochs"])
        log.info("resuming from %s at step %d of %d", run.ckpt_path, run.step, run.total)
    elif run.env.is_main and past_end:
        kept = checkpoint.set_aside(run.ckpt_path, state)
        log.warning("%s is this run's checkpoint at step %d, past its last step %d (train.max_steps %d); "
                    "it is kept as %s and this run trains from scratch to step %d. To have the longer "
                    "run back, move it back and train with a train.max_steps of at least %d.",
                    run.ckpt_path, int(state["step"]), run.total, run.params.max_steps, kept, run.total,
                    int(state["step"]))
    elif run.env.is_main:
        differs = checkpoint.differences(state, config.to_dict(run.params), run.seed, run.data_key,
                                         run.code_key, run.resolved.get("init_from"))
        kept = checkpoint.set_aside(run.ckpt_path, state)
        log.warning("%s (step %d) was made by another run (%s); it is kept as %s and this run trains "
                    "from scratch. To continue that run instead, move it back and train with the "
                    "config, data and code it was made with.", run.ckpt_path, int(state.get("step", 0)),
                    "; ".join(differs), kept)


def _take_back_kept(run: TrainRun) -> None:
    """When the folder holds no checkpoint of this run but the keep folder does (`lwgan.keep`: DVC's
    checkout at the start of `dvc exp run` replaced or removed the checkpoint a killed run left), set
    the one there aside and put the kept one back, so that `resume` continues it."""
    keep.clean(run.out_dir)
    kept = keep.kept_path(run.out_dir, run.ckpt_path, run.run_key)
    if not kept.is_file():
        return
    if run.ckpt_path.is_file():
        if os.path.samefile(kept, run.ckpt_path):  # the checkpoint is its own kept copy: nothing to do
            return
        state = checkpoint.load(run.ckpt_path)
        if state["run_key"] == run.run_key and int(state["step"]) >= int(checkpoint.load(kept)["step"]):
            return
        if state["run_key"] != run.run_key:
            moved = checkpoint.set_aside(run.ckpt_path, state)
            log.warning("%s (step %d) was made by another run; it is kept as %s, and this run's own "
                        "checkpoint is taken back from %s", run.ckpt_path, int(state.get("step", 0)), moved,
                        kept)
    keep.take_back(run.out_dir, run.ckpt_path, run.run_key)


def release_kept(out_dir: str | Path) -> None:
    """Drop the kept copy (`lwgan.keep`) of the checkpoint in `out_dir`: call it once the stage has
    succeeded, when DVC is about to store the output."""
    keep.release_output(out_dir)


def replicate(run: TrainRun) -> None:
    """Under torchrun, make `run.g_train` / `run.d_train` DistributedDataParallel wrappers of G and D.
    After `resume`: the wrappers are built on (and broadcast) the weights the run continues from."""
    if run.env.enabled:
        ids = [run.device.index] if run.device.type == "cuda" else None
        run.g_train = DistributedDataParallel(run.generator, device_ids=ids)
        run.d_train = DistributedDataParallel(run.discriminator, device_ids=ids)


def train_step(run: TrainRun, batch: Batch) -> dict[str, torch.Tensor]:
    """Step `run.step` on `batch`: both learning rates from the schedule, then G's update (every
    `g_every`-th step, D frozen) and D's (every `d_every`-th step, on G's outputs detached); advances
    `run.step`. Returns the step's statistics as 0-d tensors on the device: "lr/G", "lr/D", and for each
    network updated its total ("loss/G" / "loss/D"), "grad_norm/G" / "grad_norm/D", every weighted term
    ("loss/L_*") and unweighted statistic ("raw/*"), with D also its mean scores "d/real", "d/fake".
    Raises NonFiniteLoss, before the update, when a loss is not finite on some rank."""
    p, step, device, fast = run.params, run.step, run.device, run.fast
    lr_g, lr_d = run.schedule.lr(p.lr_g, step), run.schedule.lr(p.lr_d, step)
    _set_lr(run.opt_g, lr_g)
    _set_lr(run.opt_d, lr_d)
    update_g, update_d = step % p.g_every == 0, step % p.d_every == 0
    stats: dict[str, torch.Tensor] = {"lr/G": torch.tensor(lr_g, device=device),
                                      "lr/D": torch.tensor(lr_d, device=device)}

    run.discriminator.requires_grad_(False)
    with torch.autocast(device.type, torch.bfloat16, enabled=fast), torch.set_grad_enabled(update_g):
        out = run.objective.generate(run.g_train if update_g else run.generator, batch)
        if update_g:
            loss_g = run.objective.generator_loss(out, batch, run.discriminator)
    if update_g:
        stats.update(_update(run, loss_g, "G", run.opt_g, run.generator))
        if run.g_ema is not None:
            average_weights(run.g_ema, run.generator, run.params.g_ema, step)
    run.discriminator.requires_grad_(True)
    if update_d:
        # The penalty's weights are drawn for the global batch from (seed, step) and sliced per rank:
        # N processes compute what one process with the global batch computes, and a resume is exact.
        rng = torch.Generator().manual_seed(checkpoint.content_int(run.seed, step))
        alpha = torch.rand(run.global_batch, generator=rng)[run.env.rank * p.batch_size:][:p.batch_size]
        with torch.autocast(device.type, torch.bfloat16, enabled=fast):
            loss_d = run.objective.discriminator_loss(run.d_train, batch.tgt_img, out.tgt, batch.tgt_cond,
                                                      alpha)
        stats.update(_update(run, loss_d, "D", run.opt_d, run.discriminator))
        stats["d/real"], stats["d/fake"] = loss_d.stats["raw/d_real"], loss_d.stats["raw/d_fake"]
    run.step += 1
    return stats


def _update(run: TrainRun, loss: StepLoss, name: str, optimizer: torch.optim.Optimizer,
            module: nn.Module) -> dict[str, torch.Tensor]:
    """One optimiser step of `module` on `loss` (refused when it is not finite on every rank); returns its
    statistics: the total, every term, the gradient norm."""
    _check_finite(loss, "generator" if name == "G" else "discriminator", run)
    optimizer.zero_grad(set_to_none=True)
    loss.value.backward()
    norm = _grad_norm(module)
    optimizer.step()
    return {f"loss/{name}": loss.value.detach().float(), f"grad_norm/{name}": norm,
            **{f"loss/{k}": v for k, v in loss.terms.items()}, **loss.stats}


def average_weights(average: nn.Module, module: nn.Module, decay: float, step: int) -> None:
    """One update of the moving average `average` of `module`'s weights after step `step`:
    a <- d a + (1 - d) w with d = min(decay, (1 + step) / (10 + step)), the usual warm-up that keeps the
    first steps from tying the average to the initial weights; buffers are copied."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(list(average.parameters()), list(module.parameters()), 1.0 - d)
        for kept, current in zip(average.buffers(), module.buffers(), strict=True):
            kept.copy_(current)


def _check_finite(loss: StepLoss, what: str, run: TrainRun) -> None:
    finite = torch.isfinite(loss.value.detach()).float().reshape(1)
    if distributed.mean_across(finite, run.env).item() == 1.0:
        return
    bad = {k: float(v) for k, v in loss.terms.items() if not math.isfinite(float(v))}
    kept = (f"the last good checkpoint {run.ckpt_path} (step {run.saved_step}) is kept"
            if run.saved_step is not None else "no checkpoint had been written yet")
    raise NonFiniteLoss(f"non-finite {what} loss at step {run.step} ({bad or 'on another rank'}); training "
                        f"stopped and {kept}. Lower train.lr_g / train.lr_d, or enable train.gp_weight or "
                        "train.spectral_norm, then run again")


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """The L2 norm of all of a module's gradients together (a 0-d tensor on its device)."""
    return torch.stack([p.grad.detach().float().norm() for p in module.parameters()
                        if p.grad is not None]).norm()


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def log_window(run: TrainRun, window: Window, tracker: Tracker | None,
               progress: Callable[..., None]) -> dict[str, float]:
    """Close `window`, which ends at `run.step`, into a history row: the mean of every statistic over its
    steps and the ranks, the images per second and the (fractional) epoch. The row is recorded
    (`record_row`), sent to `tracker`, reported to `progress`, and returned; `window` starts afresh."""
    row = reduce_window(window.values, run.env)
    elapsed = time.perf_counter() - window.start
    row["perf/images_per_s"] = run.global_batch * window.steps / max(elapsed, 1e-9)
    row["epoch"] = (run.step - 1) / run.schedule.steps_per_epoch
    record_row(run, row, window.steps)
    if tracker is not None:
        tracker.log_metrics(row, step=run.step, flush=False)
    window.values, window.steps, window.start = {}, 0, time.perf_counter()
    progress(run.step, run.total, extra=_brief(row))
    return row


def reduce_window(window: Mapping[str, list[torch.Tensor]], env: distributed.DistEnv) -> dict[str, float]:
    """Mean of every statistic over the window's steps, then over the ranks (one all-reduce)."""
    names = sorted(window)
    means = torch.stack([torch.stack(window[n]).mean() for n in names]) if names else torch.zeros(0)
    means = distributed.mean_across(means, env)
    return {n: float(v) for n, v in zip(names, means.tolist(), strict=True)}


def record_row(run: TrainRun, row: Mapping[str, float], steps: int) -> None:
    """Append `row`, the means over the `steps` steps that end at `run.step`, to the history, and add its
    `EPOCH_TERMS` (times `steps`) to the sums of the epoch of the window's last step."""
    sums = run.epochs.setdefault(str(run.schedule.epoch(run.step - 1)), {})
    for name, value in row.items():
        if name.startswith(EPOCH_TERMS):
            total, count = sums.get(name, [0.0, 0])
            sums[name] = [total + value * steps, count + steps]
    run.history.append({"step": run.step, **row})


def _brief(row: Mapping[str, float]) -> str:
    keys = ("loss/G", "loss/D", "loss/L_rec", "loss/L_tsf", "perf/images_per_s")
    return " ".join(f"{k.split('/')[-1]} {row[k]:.3g}" for k in keys if k in row)


def save_checkpoint(run: TrainRun, on_checkpoint: Callable[[int, Path], None] | None = None) -> None:
    """Checkpoint `run.step`: check that every rank holds the same weights, then (main process) write the
    checkpoint, the loss curves and plots, and call `on_checkpoint(step, path)`; every rank waits for
    that and records the step as saved."""
    at = run.step
    digest = distributed.check_replicas({"G": run.generator, "D": run.discriminator}, run.env)
    if run.env.enabled and run.env.is_main:
        log.info("step %d: all %d ranks hold the same weights (sha256 %s)", at, run.env.world_size,
                 digest[:16])
    if run.env.is_main:
        checkpoint.save(run.ckpt_path, {
            "step": at, "generator": run.generator.state_dict(),
            **({"generator_ema": run.g_ema.state_dict()} if run.g_ema is not None else {}),
            "discriminator": run.discriminator.state_dict(), "opt_g": run.opt_g.state_dict(),
            "opt_d": run.opt_d.state_dict(), "config": run.resolved, "run_key": run.run_key,
            "data_key": run.data_key, "code_key": run.code_key, "history": run.history, "epochs": run.epochs,
            "feature_nets": run.feature_nets})
        keep.keep(run.out_dir, run.ckpt_path, run.run_key)  # outlives DVC's checkout (lwgan.keep)
        _write_pictures(run.paths, run.out_dir, run.history, at)
        if on_checkpoint is not None:
            on_checkpoint(at, run.ckpt_path)
    distributed.barrier(run.env)
    run.saved_step = at


def write_samples(run: TrainRun, samples: Batch | None) -> None:
    """The sample grid of G at `run.step` on `samples` (`SAMPLES_DIR/step_NNNNNNN.png`); nothing when
    `samples` is None (the processes that do not write)."""
    if samples is None:
        return
    g = run.g_infer
    g.eval()
    with torch.no_grad(), torch.autocast(run.device.type, torch.bfloat16, enabled=run.fast):
        out = run.objective.generate(g, samples)
    g.train()
    sample_grid(run.out_dir / SAMPLES_DIR / f"step_{run.step:07d}.png", samples.src_img, samples.tgt_img, out,
                title=f"step {run.step}")


def _write_run_files(run: TrainRun, tracker: Tracker | None) -> None:
    """Before the first step (main process): clear temporaries a killed run left, write config.json and
    feature_nets.json, and give the tracker the feature networks and run facts."""
    for folder in (run.out_dir, run.paths.plots_dir):
        if folder is not None:
            remove_temporaries(folder)  # left by a run killed while writing
    run.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run.out_dir / CONFIG_FILE, run.resolved)
    write_json(run.out_dir / FEATURE_NETS_FILE, run.feature_nets)
    if tracker is not None:
        tracker.set_tags({f"lwgan.feature_net.{k}": v["note"] for k, v in run.feature_nets.items()} |
                         {"lwgan.resumed_from_step": run.step})
        run_params = {"train.steps_per_epoch": run.schedule.steps_per_epoch, "train.total_steps": run.total,
                      "train.world_size": run.env.world_size,
                      "train.feature_bf16_resolved": run.resolved["feature_bf16"]}
        if "init_from" in run.resolved:
            run_params.update({f"train.init_from.{k}": v for k, v in run.resolved["init_from"].items()
                               if k != "path"})
        for kind, info in run.feature_nets.items():
            run_params.update({f"feature_net.{kind}.source": info["source"],
                               f"feature_net.{kind}.sha256": info["sha256"],
                               f"feature_net.{kind}.substitute": info["substitute"]})
        tracker.log_params(run_params)


def _publish(run: TrainRun, tracker: Tracker | None) -> None:
    """After the last step (main process): the final curves and plots, and the tracker's artifacts."""
    _write_pictures(run.paths, run.out_dir, run.history, run.step)
    if tracker is not None:
        out_dir = run.out_dir
        tracker.log_artifacts([out_dir / CURVES_FILE, out_dir / CONFIG_FILE, out_dir / FEATURE_NETS_FILE])
        tracker.log_artifacts([out_dir / SAMPLES_DIR], SAMPLES_DIR)


def loader_worker_init(_: int) -> None:
    """One compute thread per loader process (torch already has one in DataLoader workers)."""
    import cv2

    cv2.setNumThreads(1)


def _loader(run: TrainRun) -> torch.utils.data.DataLoader:
    """This rank's batches from `run.step` to the end of the schedule."""
    p = run.params
    sampler = StepBatchSampler(len(run.dataset), p.batch_size, start_step=run.step, rank=run.env.rank,
                               world_size=run.env.world_size, seed=run.seed, num_steps=run.total - run.step)
    return torch.utils.data.DataLoader(
        run.dataset, batch_sampler=sampler, num_workers=p.workers, pin_memory=run.device.type == "cuda",
        worker_init_fn=loader_worker_init if p.workers else None, prefetch_factor=4 if p.workers else None,
        # spawned, not forked: a fork of a process whose OpenCV / OpenMP thread pools have run can hang
        multiprocessing_context="spawn" if p.workers else None)


def _sample_batch(run: TrainRun) -> Batch:
    """Fixed pairs for the sample grids: `train.samples` evenly spread over the validation split (the
    training split when there is none), without augmentation."""
    paths, opts, count = run.paths, run.pair_opts, run.params.samples
    try:
        shown = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body,
                            dataclasses.replace(opts, split="val", augment=False))
    except DataError as err:  # no usable validation videos: show training pairs instead
        log.info("sample grids use training pairs (%s)", err)
        shown = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body,
                            dataclasses.replace(opts, augment=False))
    picks = sorted({round(i * (len(shown) - 1) / max(count - 1, 1)) for i in range(count)})
    items = torch.utils.data.default_collate([shown[(0, i)] for i in picks])
    return Batch.from_items(items, run.device, run.fast)


def _write_pictures(paths: TrainPaths, out_dir: Path, history: list[dict[str, float]], step: int) -> None:
    loss_curves(out_dir / CURVES_FILE, history, title=f"LWGAN training, step {step}")
    if paths.plots_dir is not None and history:
        write_curves_csv(Path(paths.plots_dir) / "losses.csv", history)


def summarise(history: list[dict[str, float]], epochs: Mapping[str, Mapping[str, list[float]]], step: int,
              schedule: Schedule, seconds: float, resumed_from: int, global_batch: int,
              feature_nets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """metrics/train.json: the last epoch's mean of every tracked term (weighted `loss` as the original
    logs them and the paper's Table 1 compares them; unweighted `raw`; D's mean scores), run facts."""
    last = max(epochs, key=int) if epochs else None
    means = {name: s / max(n, 1) for name, (s, n) in (epochs[last] if last else {}).items()}

    def group(prefix: str) -> dict[str, float]:
        return {k.removeprefix(prefix): v for k, v in sorted(means.items()) if k.startswith(prefix)}

    rates = [row["perf/images_per_s"] for row in history[-20:] if "perf/images_per_s" in row]
    return {
        "steps": step, "epochs": step / schedule.steps_per_epoch, "last_epoch": int(last) if last else 0,
        "steps_per_epoch": schedule.steps_per_epoch, "resumed_from_step": resumed_from,
        "loss": group("loss/"), "raw": group("raw/"), "d": group("d/"), "grad_norm": group("grad_norm/"),
        "images_per_s": sum(rates) / len(rates) if rates else 0.0,
        "seconds_this_run": seconds, "global_batch": global_batch,
        "feature_net_substitutes": sum(bool(v["substitute"]) for v in feature_nets.values()),
    }
