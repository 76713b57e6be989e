"""The LWGAN training loop: one readable function from validated options to a trained checkpoint.

Per step (the original's order): G synthesises the batch; every `g_every`-th step G is updated on L_G
with D frozen; every `d_every`-th step D is updated on L_D with G's outputs detached. Learning rates are a
pure function of the step (`lwgan.train.schedule`), the data are a pure function of the step
(`lwgan.data.pairs.StepBatchSampler`) and so are the gradient penalty's interpolation weights, so a run
resumed from a checkpoint computes exactly what an uninterrupted run does (on the CPU, bit for bit).

A non-finite loss stops the run before any optimiser step could corrupt the weights; the last checkpoint
on disk is the last good state. Rank 0 alone writes files and tracks; the others train their share.
"""

from __future__ import annotations

import dataclasses
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

from lwgan import config
from lwgan.data.errors import DataError
from lwgan.data.pairs import PairDataset, PairOptions, StepBatchSampler
from lwgan.errors import UserError
from lwgan.io import remove_temporaries, write_json
from lwgan.nets import Generator, NetOptions, PatchDiscriminator
from lwgan.progress import ProgressLog
from lwgan.train import checkpoint, distributed
from lwgan.train.objective import Batch, LossWeights, Objective, StepLoss, feature_losses
from lwgan.train.schedule import Schedule
from lwgan.train.visuals import loss_curves, sample_grid, write_curves_csv

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
CURVES_FILE = "loss_curves.png"
CONFIG_FILE = "config.json"
FEATURE_NETS_FILE = "feature_nets.json"


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


def net_options(p: config.TrainParams) -> NetOptions:
    return NetOptions(base_width=p.base_width, res_blocks=p.res_blocks, image_size=p.image_size, norm=p.norm,
                      spectral_norm_d=p.spectral_norm, d_layers=p.d_layers, color_head=p.color_head,
                      bg_head=p.bg_head)


def loss_weights(p: config.TrainParams) -> LossWeights:
    return LossWeights(adv=p.lambda_adv, rec=p.lambda_rec, tsf=p.lambda_tsf, face=p.lambda_face,
                       mask=p.lambda_mask, smooth=p.lambda_smooth, style=p.lambda_style,
                       tsf_l1=p.lambda_tsf_l1, real_target=p.real_target, gp=p.gp_weight)


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """The L2 norm of all of a module's gradients together (a 0-d tensor on its device)."""
    return torch.stack([p.grad.detach().float().norm() for p in module.parameters()
                        if p.grad is not None]).norm()


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _worker_init(_: int) -> None:
    """One compute thread per loader process (torch already has one in DataLoader workers)."""
    import cv2

    cv2.setNumThreads(1)


def _check_finite(loss: StepLoss, what: str, step: int, env: distributed.DistEnv, ckpt: Path,
                  saved_step: int | None) -> None:
    finite = torch.isfinite(loss.value.detach()).float().reshape(1)
    if distributed.mean_across(finite, env).item() == 1.0:
        return
    bad = {k: float(v) for k, v in loss.terms.items() if not math.isfinite(float(v))}
    kept = (f"the last good checkpoint {ckpt} (step {saved_step}) is kept" if saved_step is not None
            else "no checkpoint had been written yet")
    raise NonFiniteLoss(f"non-finite {what} loss at step {step} ({bad or 'on another rank'}); training "
                        f"stopped and {kept}. Lower train.lr_g / train.lr_d, or enable train.gp_weight or "
                        "train.spectral_norm, then run again")


def train(params: config.Params, paths: TrainPaths, tracker: Tracker | None = None,
          progress: Callable[..., None] | None = None,
          on_checkpoint: Callable[[int, Path], None] | None = None) -> TrainResult:
    """Train LWGAN on the caches in `paths` with `params.train` (and `params.seed`); see the module
    docstring. Resumes from `paths.out_dir / checkpoint.pt` when it was made by the same configuration.
    `on_checkpoint(step, path)` is called (by the main process) after every checkpoint is written."""
    p, seed = params.train, params.seed
    env = distributed.from_environment()
    device = distributed.pick_device(p.device, env)
    distributed.init(env, device)
    cuda = device.type == "cuda"
    fast = cuda and p.bf16
    if not cuda:
        torch.set_num_threads(p.threads or max(1, (os.cpu_count() or 1) // env.world_size))
    out_dir = Path(paths.out_dir)
    ckpt_path = out_dir / checkpoint.CHECKPOINT_FILE

    pair_opts = PairOptions(image_size=p.image_size, source_frames=p.source_frames,
                            visible_faces=p.visible_faces, augment=p.augment,
                            shuffle_channels=p.shuffle_channels, split="train", dev_subject=p.dev_subject,
                            seed=seed)
    dataset = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body, pair_opts)
    global_batch = p.batch_size * env.world_size
    schedule = Schedule(steps_per_epoch=max(1, (p.pairs_per_epoch or len(dataset)) // global_batch),
                        epochs_constant=p.epochs_constant, epochs_decay=p.epochs_decay, final_lr=p.final_lr,
                        max_steps=p.max_steps)
    total = schedule.total_steps

    torch.manual_seed(seed)  # equal initial weights on every rank (DDP also broadcasts rank 0's)
    generator = Generator(net_options(p))
    discriminator = PatchDiscriminator(net_options(p))
    perceptual, face, infos = feature_losses(p)
    objective = Objective(loss_weights(p), p.image_size, perceptual, face)
    for module in (generator, discriminator, objective):  # before the optimisers: their state follows
        module.to(device)
        if fast:
            module.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(generator.parameters(), lr=p.lr_g, betas=p.betas_g)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=p.lr_d, betas=p.betas_d)
    feature_nets = {info.kind: dataclasses.asdict(info) for info in infos}

    data_key, code_key = checkpoint.data_key(paths.maps), checkpoint.code_key()
    key = checkpoint.run_key(config.to_dict(p), seed, data_key, code_key)
    resolved = {"seed": seed, "train": config.to_dict(p), "world_size": env.world_size,
                "steps_per_epoch": schedule.steps_per_epoch, "total_steps": total, "pairs": len(dataset)}
    step, history, epochs = 0, [], {}
    saved_step: int | None = None
    if ckpt_path.is_file():
        state = checkpoint.load(ckpt_path, map_location=device)
        if state["run_key"] == key:
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            step = saved_step = int(state["step"])
            history, epochs = list(state["history"]), dict(state["epochs"])
            log.info("resuming from %s at step %d of %d", ckpt_path, step, total)
        elif env.is_main:
            differs = checkpoint.differences(state, config.to_dict(p), seed, data_key, code_key)
            kept = checkpoint.set_aside(ckpt_path, state)
            log.warning("%s (step %d) was made by another run (%s); it is kept as %s and this run trains "
                        "from scratch. To continue that run instead, move it back and train with the "
                        "config, data and code it was made with.", ckpt_path, int(state.get("step", 0)),
                        "; ".join(differs), kept)
    resumed_from = step
    progress = progress or ProgressLog("train", "steps", every_s=10.0, start_done=step)

    g_train: nn.Module = generator
    d_train: nn.Module = discriminator
    if env.enabled:
        ids = [device.index] if cuda else None
        g_train = DistributedDataParallel(generator, device_ids=ids)
        d_train = DistributedDataParallel(discriminator, device_ids=ids)

    if env.is_main:
        for folder in (out_dir, paths.plots_dir):
            if folder is not None:
                remove_temporaries(folder)  # left by a run killed while writing
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / CONFIG_FILE, resolved)
        write_json(out_dir / FEATURE_NETS_FILE, feature_nets)
        if tracker is not None:
            tracker.set_tags({f"lwgan.feature_net.{k}": v["note"] for k, v in feature_nets.items()} |
                             {"lwgan.resumed_from_step": resumed_from})
            run_params = {"train.steps_per_epoch": schedule.steps_per_epoch, "train.total_steps": total,
                          "train.world_size": env.world_size}
            for kind, info in feature_nets.items():
                run_params.update({f"feature_net.{kind}.source": info["source"],
                                   f"feature_net.{kind}.sha256": info["sha256"],
                                   f"feature_net.{kind}.substitute": info["substitute"]})
            tracker.log_params(run_params)
    samples = _sample_batch(paths, pair_opts, p.samples, device, fast) if env.is_main else None

    def save(at: int) -> None:
        nonlocal saved_step
        digest = distributed.check_replicas({"G": generator, "D": discriminator}, env)
        if env.enabled and env.is_main:
            log.info("step %d: all %d ranks hold the same weights (sha256 %s)", at, env.world_size,
                     digest[:16])
        if env.is_main:
            checkpoint.save(ckpt_path, {
                "step": at, "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "config": resolved, "run_key": key,
                "data_key": data_key, "code_key": code_key, "history": history, "epochs": epochs,
                "feature_nets": feature_nets})
            _write_pictures(paths, out_dir, history, at)
            if on_checkpoint is not None:
                on_checkpoint(at, ckpt_path)
        distributed.barrier(env)
        saved_step = at

    def show(at: int) -> None:
        if samples is not None:
            generator.eval()
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=fast):
                out = objective.generate(generator, samples)
            generator.train()
            sample_grid(out_dir / SAMPLES_DIR / f"step_{at:07d}.png", samples.src_img, samples.tgt_img, out,
                        title=f"step {at}")

    def update(loss: StepLoss, name: str, optimizer: torch.optim.Optimizer,
               module: nn.Module) -> dict[str, torch.Tensor]:
        """One optimiser step of `module` on `loss` (refused when it is not finite on every rank); returns
        its statistics: the total, every term, the gradient norm."""
        _check_finite(loss, "generator" if name == "G" else "discriminator", step, env, ckpt_path, saved_step)
        optimizer.zero_grad(set_to_none=True)
        loss.value.backward()
        norm = _grad_norm(module)
        optimizer.step()
        return {f"loss/{name}": loss.value.detach().float(), f"grad_norm/{name}": norm,
                **{f"loss/{k}": v for k, v in loss.terms.items()}, **loss.stats}

    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatchSampler(len(dataset), p.batch_size, start_step=step, rank=env.rank,
                                                world_size=env.world_size, seed=seed, num_steps=total - step),
        num_workers=p.workers, pin_memory=cuda, worker_init_fn=_worker_init if p.workers else None,
        prefetch_factor=4 if p.workers else None,
        # spawned, not forked: a fork of a process whose OpenCV / OpenMP thread pools have run can hang
        multiprocessing_context="spawn" if p.workers else None)
    window: dict[str, list[torch.Tensor]] = {}
    window_start, window_steps = time.perf_counter(), 0
    started = time.perf_counter()
    if step == 0 and env.is_main and samples is not None:
        show(0)
    for items in loader:
        batch = Batch.from_items(items, device, channels_last=fast)
        lr_g, lr_d = schedule.lr(p.lr_g, step), schedule.lr(p.lr_d, step)
        _set_lr(opt_g, lr_g)
        _set_lr(opt_d, lr_d)
        update_g, update_d = step % p.g_every == 0, step % p.d_every == 0
        stats: dict[str, torch.Tensor] = {"lr/G": torch.tensor(lr_g, device=device),
                                          "lr/D": torch.tensor(lr_d, device=device)}

        discriminator.requires_grad_(False)
        with torch.autocast(device.type, torch.bfloat16, enabled=fast), torch.set_grad_enabled(update_g):
            out = objective.generate(g_train if update_g else generator, batch)
            if update_g:
                loss_g = objective.generator_loss(out, batch, discriminator)
        if update_g:
            stats.update(update(loss_g, "G", opt_g, generator))
        discriminator.requires_grad_(True)
        if update_d:
            # The penalty's weights are drawn for the global batch from (seed, step) and sliced per rank:
            # N processes compute what one process with the global batch computes, and a resume is exact.
            rng = torch.Generator().manual_seed(checkpoint.content_int(seed, step))
            alpha = torch.rand(global_batch, generator=rng)[env.rank * p.batch_size:][:p.batch_size]
            with torch.autocast(device.type, torch.bfloat16, enabled=fast):
                loss_d = objective.discriminator_loss(d_train, batch.tgt_img, out.tgt, batch.tgt_cond, alpha)
            stats.update(update(loss_d, "D", opt_d, discriminator))
            stats["d/real"], stats["d/fake"] = loss_d.stats["raw/d_real"], loss_d.stats["raw/d_fake"]
        for name, value in stats.items():
            window.setdefault(name, []).append(value.detach().float())
        step += 1
        window_steps += 1

        epoch_done = step % schedule.steps_per_epoch == 0
        if step % p.log_every == 0 or epoch_done or step == total:
            row = _reduce_window(window, env)
            elapsed = time.perf_counter() - window_start
            row["perf/images_per_s"] = global_batch * window_steps / max(elapsed, 1e-9)
            row["epoch"] = (step - 1) / schedule.steps_per_epoch
            sums = epochs.setdefault(str(schedule.epoch(step - 1)), {})
            for name, value in row.items():
                if name.startswith(("loss/", "raw/", "d/", "grad_norm/")):
                    total_count = sums.get(name, [0.0, 0])
                    sums[name] = [total_count[0] + value * window_steps, total_count[1] + window_steps]
            history.append({"step": step, **row})
            if tracker is not None:
                tracker.log_metrics(row, step=step, flush=False)
            window, window_start, window_steps = {}, time.perf_counter(), 0
            progress(step, total, extra=_brief(row))
        if step % p.sample_every == 0 and step < total:
            show(step)
        if step % p.checkpoint_every == 0 and step < total:
            save(step)

    if saved_step != step:
        save(step)
    show(step)
    seconds = time.perf_counter() - started
    metrics = summarise(history, epochs, step, schedule, seconds, resumed_from, global_batch, feature_nets)
    if env.is_main:
        _write_pictures(paths, out_dir, history, step)
        if tracker is not None:
            tracker.log_artifacts([out_dir / CURVES_FILE, out_dir / CONFIG_FILE, out_dir / FEATURE_NETS_FILE])
            tracker.log_artifacts([out_dir / SAMPLES_DIR], SAMPLES_DIR)
    distributed.shutdown()
    return TrainResult(steps=step, resumed_from=resumed_from, metrics=metrics, history=history,
                       checkpoint=ckpt_path)


def _reduce_window(window: Mapping[str, list[torch.Tensor]], env: distributed.DistEnv) -> dict[str, float]:
    """Mean of every statistic over the window's steps, then over the ranks (one all-reduce)."""
    names = sorted(window)
    means = torch.stack([torch.stack(window[n]).mean() for n in names]) if names else torch.zeros(0)
    means = distributed.mean_across(means, env)
    return {n: float(v) for n, v in zip(names, means.tolist(), strict=True)}


def _brief(row: Mapping[str, float]) -> str:
    keys = ("loss/G", "loss/D", "loss/L_rec", "loss/L_tsf", "perf/images_per_s")
    return " ".join(f"{k.split('/')[-1]} {row[k]:.3g}" for k in keys if k in row)


def _sample_batch(paths: TrainPaths, opts: PairOptions, count: int, device: torch.device,
                  channels_last: bool) -> Batch:
    """Fixed pairs for the sample grids: evenly spread over the validation split (the training split when
    there is none), without augmentation."""
    try:
        shown = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body,
                            dataclasses.replace(opts, split="val", augment=False))
    except DataError as err:  # no usable validation videos: show training pairs instead
        log.info("sample grids use training pairs (%s)", err)
        shown = PairDataset(paths.frames, paths.maps, paths.smpl, paths.body,
                            dataclasses.replace(opts, augment=False))
    picks = sorted({round(i * (len(shown) - 1) / max(count - 1, 1)) for i in range(count)})
    items = torch.utils.data.default_collate([shown[(0, i)] for i in picks])
    return Batch.from_items(items, device, channels_last)


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
