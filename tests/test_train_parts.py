"""The training loop's parts on their own, on real tiny caches: `build` against networks made directly,
`resume` of the same run and of another, one `train_step` against Adam's first-step bound, and the
window's reduction into history rows and epoch sums in closed form."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _small import TINY_ALL_TERMS, Caches, build_caches

from lwgan import config
from lwgan.errors import UserError
from lwgan.nets import Generator, PatchDiscriminator
from lwgan.nets.build import net_options
from lwgan.train.distributed import DistEnv, pick_device
from lwgan.train.objective import Batch
from lwgan.train.pairs import StepBatchSampler
from lwgan.train.schedule import Schedule
from lwgan.train.train import (
    TrainPaths,
    TrainRun,
    Window,
    build,
    log_window,
    reduce_window,
    resume,
    save_checkpoint,
    summarise,
    train_step,
)

TINY = TINY_ALL_TERMS


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Caches:
    return build_caches(tmp_path_factory.mktemp("parts"), 64, frames_per_action=6)


def params(seed: int = 0, **train) -> config.Params:
    return config.from_dict({"seed": seed, "data": {"image_size": 64}, "train": {**TINY, **train},
                             "tracking": {"enabled": False}})


def paths(c: Caches, out: Path) -> TrainPaths:
    return TrainPaths(c.frames, c.maps, c.smpl, c.body, out / "models", out / "plots")


def batch_at(run: TrainRun, step: int) -> Batch:
    """The batch the loop's loader gives at `step` (one process)."""
    sampler = StepBatchSampler(len(run.dataset), run.params.batch_size, start_step=step, seed=run.seed,
                               num_steps=1)
    (keys,) = list(sampler)
    return Batch.from_items(torch.utils.data.default_collate([run.dataset[k] for k in keys]), run.device)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_build_makes_the_configured_networks_from_the_seed_and_writes_nothing(caches, tmp_path):
    run = build(params(seed=3), paths(caches, tmp_path))
    p = run.params
    torch.manual_seed(3)  # the seed, then G, then D: what every rank does
    g, d = Generator(net_options(p)), PatchDiscriminator(net_options(p))
    for built, direct in ((run.generator, g), (run.discriminator, d)):
        assert sum(t.numel() for t in built.parameters()) == sum(t.numel() for t in direct.parameters())
        assert same(weights(built), weights(direct))
    assert run.opt_g.param_groups[0]["params"] == list(run.generator.parameters())
    assert run.opt_d.param_groups[0]["params"] == list(run.discriminator.parameters())
    assert run.g_train is run.generator and run.d_train is run.discriminator  # one process: no DDP
    assert (run.step, run.saved_step, run.history, run.epochs) == (0, None, [], {})
    assert run.schedule.steps_per_epoch == len(run.dataset) // p.batch_size
    assert run.total == 2 * run.schedule.steps_per_epoch  # one constant epoch, one decaying
    assert run.resolved["seed"] == 3 and run.resolved["pairs"] == len(run.dataset)
    assert build(params(seed=3), paths(caches, tmp_path)).run_key == run.run_key
    assert build(params(seed=4), paths(caches, tmp_path)).run_key != run.run_key
    assert not tmp_path.joinpath("models").exists()


def test_resume_restores_the_same_run_exactly_and_sets_another_runs_checkpoint_aside(caches, tmp_path,
                                                                                     caplog):
    first = build(params(), paths(caches, tmp_path))
    initial = weights(first.generator)
    resume(first)  # nothing to resume from
    assert (first.step, first.saved_step, first.history) == (0, None, [])
    window = Window()
    window.add(train_step(first, batch_at(first, 0)))
    log_window(first, window, None, lambda *_, **__: None)
    save_checkpoint(first)
    assert first.saved_step == 1 and first.ckpt_path.is_file()

    again = build(params(), paths(caches, tmp_path))
    assert same(weights(again.generator), initial)
    resume(again)
    assert (again.step, again.saved_step) == (1, 1)
    assert again.history == first.history and again.epochs == first.epochs
    for name in ("generator", "discriminator"):
        assert same(weights(getattr(again, name)), weights(getattr(first, name)))
    for name in ("opt_g", "opt_d"):
        a, b = getattr(again, name).state_dict()["state"], getattr(first, name).state_dict()["state"]
        assert a.keys() == b.keys() and all(same(a[i], b[i]) for i in a)

    other = build(params(lambda_style=0.0), paths(caches, tmp_path))
    before = first.ckpt_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="lwgan.train.train"):
        resume(other)
    assert (other.step, other.saved_step, other.history) == (0, None, [])
    assert same(weights(other.generator), initial)
    (kept,) = (tmp_path / "models" / "previous").glob("checkpoint.*.step1.pt")
    assert kept.read_bytes() == before and not first.ckpt_path.exists()
    assert "train.lambda_style 1.0 -> 0.0" in caplog.text and str(kept) in caplog.text


def test_a_checkpoint_past_a_lowered_max_steps_is_set_aside_and_the_capped_run_starts_over(caches, tmp_path,
                                                                                           caplog):
    first = build(params(), paths(caches, tmp_path))
    initial = weights(first.generator)
    window = Window()
    for step in range(2):
        window.add(train_step(first, batch_at(first, step)))
    log_window(first, window, None, lambda *_, **__: None)
    save_checkpoint(first)
    before = first.ckpt_path.read_bytes()

    at_cap = build(params(max_steps=2), paths(caches, tmp_path))  # max_steps is not part of the run key
    assert at_cap.run_key == first.run_key and at_cap.total == 2
    resume(at_cap)
    assert at_cap.step == 2 and same(weights(at_cap.generator), weights(first.generator))

    capped = build(params(max_steps=1), paths(caches, tmp_path))
    with caplog.at_level(logging.WARNING, logger="lwgan.train.train"):
        resume(capped)
    assert (capped.step, capped.saved_step, capped.history) == (0, None, [])
    assert same(weights(capped.generator), initial)
    (kept,) = (tmp_path / "models" / "previous").glob("checkpoint.*.step2.pt")
    assert kept.read_bytes() == before and not first.ckpt_path.exists()
    assert "past its last step 1 (train.max_steps 1)" in caplog.text and str(kept) in caplog.text


def test_a_step_moves_each_network_by_its_own_learning_rate_and_returns_the_rows_statistics(caches, tmp_path):
    lr_g, lr_d = 1e-4, 3e-4
    run = build(params(lr_g=lr_g, lr_d=lr_d, g_every=2, gp_weight=10.0), paths(caches, tmp_path))
    g0, d0 = weights(run.generator), weights(run.discriminator)
    stats = train_step(run, batch_at(run, 0))
    assert run.step == 1
    # Adam's first step moves every weight by lr * g / (|g| + eps): at most lr, and lr where |g| >> eps.
    for module, start, lr in ((run.generator, g0, lr_g), (run.discriminator, d0, lr_d)):
        moved = max((p.detach() - start[n]).abs().max().item() for n, p in module.named_parameters())
        assert 0.99 * lr < moved < 1.001 * lr
    terms = {"loss/L_adv", "loss/L_rec", "loss/L_tsf", "loss/L_face", "loss/L_mask", "loss/L_smooth",
             "loss/L_style", "loss/L_D_real", "loss/L_D_fake", "loss/L_GP"}
    assert {"lr/G", "lr/D", "loss/G", "loss/D", "grad_norm/G", "grad_norm/D", "d/real", "d/fake"} | terms \
        <= set(stats)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in stats.values())
    assert math.isclose(stats["lr/G"].item(), lr_g, rel_tol=1e-6)
    assert math.isclose(stats["lr/D"].item(), lr_d, rel_tol=1e-6)
    window = Window()
    window.add(stats)
    row = log_window(run, window, None, lambda *_, **__: None)
    assert set(row) == set(stats) | {"perf/images_per_s", "epoch"}
    assert run.history == [{"step": 1, **row}]
    assert all(row[k] == pytest.approx(v.item(), rel=1e-6) for k, v in stats.items())

    # Step 1 with g_every 2: D alone is updated; G's weights and statistics are untouched.
    g1, d1 = weights(run.generator), weights(run.discriminator)
    stats = train_step(run, batch_at(run, 1))
    assert same(weights(run.generator), g1) and not same(weights(run.discriminator), d1)
    assert "loss/D" in stats and not any(k.endswith("/G") and k != "lr/G" for k in stats)
    assert "loss/L_rec" not in stats


class Recorder:
    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.progress: list[tuple[int, int]] = []

    def log_metrics(self, metrics, step=0, flush=True) -> None:
        self.metrics.append((step, dict(metrics)))

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        self.progress.append((done, total))


def test_windows_reduce_to_means_and_epochs_weight_them_by_their_steps():
    t = torch.tensor
    assert reduce_window({"loss/G": [t(1.0), t(3.0)], "loss/D": [t(4.0)]}, DistEnv()) == \
        {"loss/D": 4.0, "loss/G": 2.0}
    assert reduce_window({}, DistEnv()) == {}

    # Steps 1..6 with loss/G = step, epochs of 4 steps, rows after steps 3, 4 (the epoch's end) and 6.
    schedule = Schedule(steps_per_epoch=4, epochs_constant=1.0, epochs_decay=1.0, final_lr=0.0)
    run = SimpleNamespace(env=DistEnv(), schedule=schedule, total=schedule.total_steps, global_batch=2,
                          step=0, history=[], epochs={})
    record = Recorder()
    window = Window()
    for step in range(1, 7):
        window.add({"loss/G": t(float(step)), "lr/G": t(0.5)})
        run.step = step
        if step in (3, 4, 6):
            log_window(run, window, record, record)
            assert window.steps == 0 and window.values == {}
    rows = [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in run.history]
    assert rows == [{"step": 3, "loss/G": 2.0, "lr/G": 0.5, "epoch": 0.5},
                    {"step": 4, "loss/G": 4.0, "lr/G": 0.5, "epoch": 0.75},
                    {"step": 6, "loss/G": 5.5, "lr/G": 0.5, "epoch": 1.25}]
    assert run.epochs == {"0": {"loss/G": [10.0, 4]}, "1": {"loss/G": [11.0, 2]}}  # learning rates aside
    assert [s for s, _ in record.metrics] == [3, 4, 6] and record.progress == [(3, 8), (4, 8), (6, 8)]
    assert [{"step": s, **m} for s, m in record.metrics] == run.history
    # the last epoch's mean of steps 5 and 6
    assert summarise(run.history, run.epochs, 6, schedule, 1.0, 0, 2, {})["loss"] == {"G": 5.5}


def test_more_ranks_on_a_node_than_gpus_is_an_error_naming_the_fix(monkeypatch):
    # a node with one GPU, as torch reports it; NCCL would fail later with "Duplicate GPU detected"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto", DistEnv(rank=0, world_size=2, local_rank=0)) == torch.device("cuda", 0)
    with pytest.raises(UserError, match=r"local rank 1 .* 1 CUDA device.*nproc_per_node=1.*device=cpu"):
        pick_device("cuda", DistEnv(rank=1, world_size=2, local_rank=1))
    assert pick_device("cpu", DistEnv(rank=1, world_size=2, local_rank=1)) == torch.device("cpu")
