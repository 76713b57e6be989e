"""The training loop on real tiny caches: schedule, exact resume, checkpoints, divergence, tracking to a
real MLflow store, published-layout feature weights, and DDP on two CPU processes against one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _small import TINY_ALL_TERMS, Caches, build_caches
from test_feature_nets import vgg19_checkpoint

from lwgan import config, tracking
from lwgan.nets import Generator
from lwgan.nets.build import CHECKPOINT_FILE, CheckpointError, load_generator, net_options
from lwgan.train import checkpoint
from lwgan.train.schedule import Schedule
from lwgan.train.train import (
    CONFIG_FILE,
    CURVES_FILE,
    FEATURE_NETS_FILE,
    NonFiniteLoss,
    TrainPaths,
    average_weights,
    build,
    release_kept,
    train,
)
from lwgan.weights import WeightsError

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_ALL_TERMS


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Caches:
    return build_caches(tmp_path_factory.mktemp("train"), 64, frames_per_action=6)


def params(**train) -> config.Params:
    return config.from_dict({"data": {"image_size": 64}, "train": {**TINY, **train},
                             "tracking": {"enabled": False}})


def paths(c: Caches, out: Path) -> TrainPaths:
    return TrainPaths(c.frames, c.maps, c.smpl, c.body, out / "models", out / "plots")


def losses(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """The rows without timings (the only values that differ between equal runs)."""
    return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in history]


def test_schedule_is_constant_then_linear_to_the_final_rate():
    s = Schedule(steps_per_epoch=10, epochs_constant=2, epochs_decay=3, final_lr=1e-6)
    assert s.total_steps == 50
    assert [s.lr(1e-4, k) for k in (0, 10, 20)] == [1e-4] * 3
    assert math.isclose(s.lr(1e-4, 35), 1e-4 + (1e-6 - 1e-4) * 0.5)
    assert math.isclose(s.lr(1e-4, 50), 1e-6) and math.isclose(s.lr(1e-4, 80), 1e-6)
    assert all(s.lr(1e-4, k) >= s.lr(1e-4, k + 1) for k in range(60))
    assert Schedule(10, 1, 0, 0.0).lr(3e-4, 99) == 3e-4
    assert Schedule(10, 2, 3, 1e-6, max_steps=7).total_steps == 7


def test_resumed_run_logs_exactly_what_an_uninterrupted_run_logs(caches, tmp_path):
    # On the CPU, where every kernel is deterministic; CUDA's atomic-add backward kernels (grid_sample,
    # index_add) vary in the last bits from run to run, resumed or not.
    # With a moving average of G's weights, which must resume exactly too.
    whole = train(params(max_steps=8, device="cpu", g_ema=0.9), paths(caches, tmp_path / "whole"))
    first = train(params(max_steps=5, device="cpu", g_ema=0.9), paths(caches, tmp_path / "split"))
    assert first.steps == 5 and checkpoint.load(first.checkpoint)["step"] == 5
    rest = train(params(max_steps=8, device="cpu", g_ema=0.9), paths(caches, tmp_path / "split"))
    assert rest.resumed_from == 5 and rest.steps == 8
    assert losses(rest.history) == losses(whole.history)
    a, b = checkpoint.load(whole.checkpoint), checkpoint.load(rest.checkpoint)
    for key in ("generator", "generator_ema", "discriminator"):
        assert all(torch.equal(a[key][n], b[key][n]) for n in a[key])
    # Every loss term of the paper, D's mean scores, gradient norms, learning rates and speed are tracked.
    row = whole.history[-1]
    for name in ("loss/L_adv", "loss/L_rec", "loss/L_tsf", "loss/L_face", "loss/L_mask", "loss/L_smooth",
                 "loss/L_style", "loss/L_D_real", "loss/L_D_fake", "loss/G", "loss/D", "d/real", "d/fake",
                 "grad_norm/G", "grad_norm/D", "lr/G", "lr/D", "perf/images_per_s"):
        assert name in row and math.isfinite(row[name]), name
    assert [r["step"] for r in whole.history] == list(range(1, 9))


class _Crash(Exception):
    pass


def _crash_at(step: int):
    def on_checkpoint(at: int, path: Path) -> None:
        if at == step:
            raise _Crash(at)
    return on_checkpoint


def test_a_run_whose_checkpoint_dvc_replaced_or_removed_resumes_from_the_keep_folder(caches, tmp_path):
    # `dvc exp run` checks every output out to its locked version before it runs, by force: the checkpoint
    # a crashed run left in models/ is replaced by the locked one (another run's) or removed with the
    # folder. The run's keep folder outlives that, and the rerun continues where the crash stopped.
    p = params(max_steps=6, checkpoint_every=2, device="cpu")
    whole = train(p, paths(caches, tmp_path / "whole"))
    other = train(params(max_steps=1, device="cpu", lambda_rec=7.0), paths(caches, tmp_path / "other"))
    for checkout in ("replaced", "removed"):
        out = tmp_path / checkout
        with pytest.raises(_Crash):
            train(p, paths(caches, out), on_checkpoint=_crash_at(4))
        models = out / "models"
        kept = sorted((out / ".lwgan-keep" / "models").iterdir())
        assert [k.name.split(".")[:2] for k in kept] == [["checkpoint", "pt"]]
        assert kept[0].stat().st_ino == (models / CHECKPOINT_FILE).stat().st_ino  # a link, not a copy
        shutil.rmtree(models)  # what DVC's checkout does to the folder
        if checkout == "replaced":
            models.mkdir()
            shutil.copy(other.checkpoint, models / CHECKPOINT_FILE)
        rest = train(p, paths(caches, out))
        assert rest.resumed_from == 4 and rest.steps == 6
        assert losses(rest.history) == losses(whole.history)
        if checkout == "replaced":  # the other run's checkpoint is set aside, not lost
            aside = list((models / "previous").glob("*.pt"))
            assert len(aside) == 1 and checkpoint.load(aside[0])["step"] == 1
        assert any((out / ".lwgan-keep" / "models").iterdir())  # until the stage has succeeded
        release_kept(out / "models")
        assert not any((out / ".lwgan-keep" / "models").iterdir())


def test_the_weight_average_follows_its_closed_form_and_is_what_inference_loads(caches, tmp_path):
    # Weights held at w: after updates t = 0..k-1 from a0 the average is w + (a0 - w) * prod_t d_t,
    # d_t = min(decay, (1 + t) / (10 + t)).
    torch.manual_seed(0)
    average, module = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    a0 = average.weight.detach().clone()
    for t in range(40):
        average_weights(average, module, 0.95, t)
    shrink = math.prod(min(0.95, (1 + t) / (10 + t)) for t in range(40))
    torch.testing.assert_close(average.weight, module.weight + (a0 - module.weight) * shrink)

    result = train(params(max_steps=3, g_ema=0.5, device="cpu"), paths(caches, tmp_path))
    state = checkpoint.load(result.checkpoint)
    ema, last = state["generator_ema"], state["generator"]
    assert any(not torch.equal(ema[n], last[n]) for n in last)
    loaded, _ = load_generator(result.checkpoint, torch.device("cpu"))
    assert all(torch.equal(v, ema[n]) for n, v in loaded.state_dict().items())
    weights, _ = checkpoint.generator_state(result.checkpoint)
    assert all(torch.equal(weights[n], ema[n]) for n in ema)


def test_checkpoint_holds_both_networks_optimisers_and_config(caches, tmp_path, caplog):
    result = train(params(max_steps=2, spectral_norm=True, gp_weight=10.0, real_target=0.9),
                   paths(caches, tmp_path))
    state = checkpoint.load(result.checkpoint)
    assert state["step"] == 2 and state["config"]["train"]["gp_weight"] == 10.0
    assert state["opt_g"]["state"] and state["opt_d"]["state"]  # Adam moments of both networks
    assert any(k.endswith("parametrizations.weight.original") for k in state["discriminator"])
    weights, cfg = checkpoint.generator_state(result.checkpoint)
    g = Generator(net_options(config.from_dict({"data": {"image_size": 64}, "train": cfg["train"]}).train))
    g.load_state_dict(weights)
    assert "loss/L_GP" in result.history[-1] and result.history[-1]["raw/gp"] >= 0
    out = tmp_path / "models"
    assert json.loads((out / CONFIG_FILE).read_text())["train"]["spectral_norm"] is True
    assert (out / CURVES_FILE).is_file() and (out / "samples" / "step_0000002.png").is_file()
    header = (tmp_path / "plots" / "losses.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "step" and "loss/L_rec" in header
    # Another configuration does not resume from this checkpoint: it trains from scratch, and the old
    # checkpoint is kept aside byte for byte, the log naming what differs and where it went.
    before = result.checkpoint.read_bytes()
    with caplog.at_level(logging.WARNING, logger="lwgan.train.train"):
        fresh = train(params(max_steps=1), paths(caches, tmp_path))
    assert fresh.resumed_from == 0 and checkpoint.load(fresh.checkpoint)["config"]["train"]["gp_weight"] == 0
    kept = list((out / "previous").glob("checkpoint.*.step2.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == before
    message = caplog.text
    assert "train.gp_weight 10.0 -> 0.0" in message and "train.spectral_norm True -> False" in message
    assert str(kept[0]) in message and "max_steps" not in message  # a run-time knob is no difference


def test_a_run_starts_from_another_runs_networks_records_which_and_resumes_as_itself(caches, tmp_path,
                                                                                      caplog):
    first = train(params(max_steps=2, device="cpu"), paths(caches, tmp_path / "first"))
    init = tmp_path / "init.pt"
    shutil.copyfile(first.checkpoint, init)
    saved = torch.load(init, weights_only=True)  # read here, not through the code under test
    p = params(max_steps=3, device="cpu", init_from=str(init))
    run = build(p, paths(caches, tmp_path / "tuned"))
    fresh = build(params(max_steps=3), paths(caches, tmp_path))
    for net, key in ((run.generator, "generator"), (run.discriminator, "discriminator")):
        assert all(torch.equal(v, saved[key][n]) for n, v in net.state_dict().items()), key
    assert not all(torch.equal(v, saved["generator"][n]) for n, v in fresh.generator.state_dict().items())
    digest = hashlib.sha256(init.read_bytes()).hexdigest()
    assert run.resolved["init_from"] == {"path": str(init), "sha256": digest, "step": 2,
                                         "trained_on": "synthetic"}
    assert run.run_key != fresh.run_key and run.opt_g.state_dict()["state"] == {}  # optimisers start afresh
    # Trained from there, interrupted and resumed, it ends where an uninterrupted fine-tuning does.
    whole = train(p, paths(caches, tmp_path / "whole"))
    train(params(max_steps=2, device="cpu", init_from=str(init)), paths(caches, tmp_path / "split"))
    rest = train(p, paths(caches, tmp_path / "split"))
    assert rest.resumed_from == 2 and losses(rest.history) == losses(whole.history)
    assert json.loads((tmp_path / "whole" / "models" / CONFIG_FILE).read_text())["init_from"]["step"] == 2
    # Another starting file is another run: not resumed, the old checkpoint kept aside.
    shutil.copyfile(whole.checkpoint, init)
    with caplog.at_level(logging.WARNING, logger="lwgan.train.train"):
        again = train(p, paths(caches, tmp_path / "split"))
    assert again.resumed_from == 0 and list((tmp_path / "split" / "models" / "previous").glob("*.pt"))
    assert f"train.init_from's file (sha256 {digest[:12]} -> " in caplog.text


def test_a_start_that_cannot_be_used_is_an_error_naming_the_param(caches, tmp_path):
    made = train(params(max_steps=1, device="cpu"), paths(caches, tmp_path / "made")).checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for path, words in ((tmp_path / "none.pt", "does not exist"), (junk, "cannot be read")):
        with pytest.raises(config.ConfigError, match=words) as info:
            build(params(init_from=str(path)), paths(caches, tmp_path / "b"))
        assert str(info.value).startswith("train.init_from: ") and str(path) in str(info.value)
    with pytest.raises(config.ConfigError) as info:
        build(params(init_from=str(made), base_width=8, spectral_norm=True), paths(caches, tmp_path / "b"))
    message = str(info.value)
    assert "train.base_width 4 there, 8 here" in message and "train.spectral_norm False there" in message
    with pytest.raises(config.ConfigError, match="this run's own checkpoint"):
        build(params(init_from=str(made)), paths(caches, tmp_path / "made"))
    assert made.is_file()  # nothing was touched


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(caches, tmp_path):
    # A learning rate of 1e30 makes D's scores overflow after its first update.
    p = params(max_steps=6, checkpoint_every=1, lr_d=1e30, final_lr=0.0)
    with pytest.raises(NonFiniteLoss) as info:
        train(p, paths(caches, tmp_path))
    message = str(info.value)
    assert "step 1" in message and "L_adv" in message and "step 1)" in message and "is kept" in message
    kept = checkpoint.load(tmp_path / "models" / CHECKPOINT_FILE)
    assert kept["step"] == 1
    assert all(torch.isfinite(t).all() for t in kept["generator"].values())


def test_the_code_key_ignores_comments_docstrings_and_layout_but_not_code():
    a = ('"""Module."""\nclass A:\n    """Doc."""\n    def f(self, x):\n        """Doc."""\n'
         '        return x + 1  # one\n')
    b = 'class A:\n    # a comment\n    def f(self, x):\n        return (x +\n                1)\n'
    c = 'class A:\n    def f(self, x):\n        return x + 2\n'
    assert checkpoint.code_tree(a) == checkpoint.code_tree(b) != checkpoint.code_tree(c)
    only_doc = 'def g():\n    """Nothing else."""\n'
    assert checkpoint.code_tree(only_doc) == checkpoint.code_tree("def g():\n    pass\n")
    assert checkpoint.code_tree('x = "a string, not a docstring"') != checkpoint.code_tree("x = 1")


def test_differences_name_params_seed_data_and_code():
    state = {"config": {"seed": 0, "train": {"base_width": 16, "workers": 2, "lr_g": 1e-4}},
             "data_key": "d0", "code_key": "c0"}
    now = {"base_width": 8, "workers": 0, "lr_g": 1e-4}
    assert checkpoint.differences(state, now, 1, "d1", "c1") == [
        "train.base_width 16 -> 8", "seed 0 -> 1", "data", "training code"]
    assert checkpoint.differences(state, {"base_width": 16, "workers": 0, "lr_g": 1e-4}, 0, "d0", "c0") == [
        "config, data or training code (the checkpoint predates the record of which)"]
    started = {**state, "config": {**state["config"], "init_from": {"sha256": "a" * 64}}}
    assert checkpoint.differences(started, now, 0, "d0", "c0", {"sha256": "b" * 64}) == [
        "train.base_width 16 -> 8", f"train.init_from's file (sha256 {'a' * 12} -> {'b' * 12})"]


def test_a_checkpoint_set_aside_never_replaces_another(tmp_path):
    for n in range(3):
        (tmp_path / "checkpoint.pt").write_bytes(bytes([n]))
        kept = checkpoint.set_aside(tmp_path / "checkpoint.pt", {"run_key": "abcdef0123456789", "step": 7})
        assert kept.read_bytes() == bytes([n]) and not (tmp_path / "checkpoint.pt").exists()
    names = sorted(p.name for p in (tmp_path / "previous").iterdir())
    assert names == ["checkpoint.abcdef012345.step7.2.pt", "checkpoint.abcdef012345.step7.3.pt",
                     "checkpoint.abcdef012345.step7.pt"]


def test_a_damaged_checkpoint_is_named(tmp_path):
    # Each kind of junk makes torch.load raise another exception type (KeyError for text starting with
    # "h", UnpicklingError for random bytes, RuntimeError for a zip without a torch archive).
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "not a tensor")
    for junk in (b"not a checkpoint", b"hello", np.random.default_rng(0).bytes(1000), archive.read_bytes()):
        bad = tmp_path / CHECKPOINT_FILE
        bad.write_bytes(junk)
        with pytest.raises(CheckpointError, match=f"checkpoint {bad} cannot be read"):
            checkpoint.load(bad)


def test_default_feature_networks_are_the_fetched_files_and_a_missing_one_stops_the_run(caches, tmp_path):
    defaults = config.TrainParams()
    files = {"vgg16": ROOT / defaults.vgg_weights, "dlib": ROOT / defaults.face_weights}
    if not all(f.is_file() for f in files.values()):
        pytest.skip("the pretrained networks are not in data/weights: run `make weights`")
    p = params(max_steps=1, vgg_weights=str(files["vgg16"]), face_weights=str(files["dlib"]))
    train(p, paths(caches, tmp_path))
    nets = json.loads((tmp_path / "models" / FEATURE_NETS_FILE).read_text())
    assert set(nets) == {"vgg16", "dlib"}
    for kind, path in files.items():
        assert nets[kind]["substitute"] is False and nets[kind]["source"] == str(path)
        assert nets[kind]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match=r"train\.face_weights: the weights file .*nowhere\.pth does not "
                                           r"exist"):
        train(params(max_steps=1, vgg_weights=str(files["vgg16"]),
                     face_weights=str(tmp_path / "nowhere.pth")), paths(caches, tmp_path / "other"))
    assert not (tmp_path / "other" / "models" / "checkpoint.pt").exists()


def test_tracked_to_mlflow_with_feature_weights_from_a_published_layout(caches, tmp_path):
    vgg = tmp_path / "vgg19.pth"
    torch.save(vgg19_checkpoint(), vgg)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    p = params(max_steps=3, perceptual_net="vgg19", vgg_weights=str(vgg), face_net="sphere20a",
               face_weights="", substitute_nets=True)
    with tracking.StageRun("train", params={"train.max_steps": 3}, experiment="t", tracking_uri=uri) as run:
        train(p, paths(caches, tmp_path), tracker=run)
    (found,) = tracking.search_runs(experiment="t", tracking_uri=uri)
    assert found["params"]["feature_net.vgg19.substitute"] == "False"
    assert found["params"]["feature_net.vgg19.source"] == str(vgg)
    assert found["params"]["feature_net.vgg19.sha256"] == hashlib.sha256(vgg.read_bytes()).hexdigest()
    assert found["params"]["feature_net.sphere20a.substitute"] == "True"
    assert "SUBSTITUTE" in found["tags"]["lwgan.feature_net.sphere20a"]
    history = tracking.metric_history(found["run_id"], "loss/L_tsf", tracking_uri=uri)
    assert [s for s, _ in history] == [1, 2, 3]
    nets = json.loads((tmp_path / "models" / FEATURE_NETS_FILE).read_text())
    assert nets["vgg19"]["substitute"] is False and nets["sphere20a"]["substitute"] is True
    artifacts = Path(tracking.artifact_dir(found["run_id"], tracking_uri=uri))
    assert (artifacts / CURVES_FILE).is_file() and list((artifacts / "samples").glob("*.png"))


def _free_port() -> int:
    """A TCP port free on this machine now (a fixed one collides with another run of the suite)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_global_batch(caches, tmp_path):
    import yaml

    stabilised = {"gp_weight": 10.0, "spectral_norm": True}  # double backward and power iterations too
    # gloo on the CPU: one GPU cannot hold two ranks, and CUDA kernels are not bit-reproducible
    tree = {"data": {"image_size": 64},
            "train": {**TINY, **stabilised, "batch_size": 1, "max_steps": 3, "device": "cpu"},
            "tracking": {"enabled": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(ROOT / "stages" / "train.py"), "--params", str(tmp_path / "params.yaml"),
           "--frames", str(caches.frames), "--maps", str(caches.maps), "--smpl", str(caches.smpl),
           "--body", str(caches.body), "--out-dir", str(tmp_path / "ddp"), "--plots", str(tmp_path / "plots"),
           "--metrics", str(tmp_path / "train.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["global_batch"] == 2 and metrics["steps"] == 3
    ddp = checkpoint.load(tmp_path / "ddp" / CHECKPOINT_FILE)
    # What is exact: data parallelism keeps the ranks' weights bit-identical after every step (the same
    # all-reduced gradients through the same Adam arithmetic); the stage checks it at every checkpoint
    # and would have failed otherwise.
    assert "step 3: all 2 ranks hold the same weights" in proc.stderr
    # Against one process with the global batch: before any update both compute the same function of the
    # same weights on the same 2 samples, so the losses and the all-reduced gradients' norm differ only by
    # float32 summation order: a sum of n terms in another order moves by about sqrt(n) * 6e-8 relative,
    # under 1e-4 for the n <= 1e6 terms of these reductions. After the first update the runs are no longer
    # comparable this way: a gradient component near zero may change sign with the summation order, and
    # Adam's first step moves that weight by the full learning rate either way.
    single = train(params(**stabilised, batch_size=2, max_steps=1, threads=1, device="cpu"),
                   paths(caches, tmp_path / "one"))
    first, reference = losses(ddp["history"])[0], losses(single.history)[0]
    compared = [k for k in reference if k.startswith(("loss/", "grad_norm/"))]
    assert {"loss/G", "loss/D", "loss/L_GP", "grad_norm/G", "grad_norm/D"} <= set(compared)
    for key in compared:
        assert math.isclose(first[key], reference[key], rel_tol=1e-4, abs_tol=1e-7), \
            (key, first[key], reference[key])
    assert ddp["config"]["world_size"] == 2


def _replicas_worker(rank: int, port: int, same: bool, out: str) -> None:
    from lwgan.train.distributed import DistEnv, ReplicasDiverged, check_replicas

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=2)
    torch.manual_seed(0 if same else rank)
    net = torch.nn.Linear(3, 2)
    try:
        check_replicas({"net": net}, DistEnv(rank, 2, rank))
        result = "same"
    except ReplicasDiverged as err:
        result = str(err)
    Path(out, f"{rank}.txt").write_text(result)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("same", [True, False])
def test_the_replica_check_tells_equal_weights_from_different_ones(tmp_path, same):
    torch.multiprocessing.spawn(_replicas_worker, args=(_free_port(), same, str(tmp_path)), nprocs=2)
    results = {(tmp_path / f"{rank}.txt").read_text() for rank in (0, 1)}
    assert results == ({"same"} if same else {"ranks [1] hold other weights than rank 0 (net)"})


def test_objective_under_bfloat16_autocast_and_channels_last(caches):
    # The CUDA fast path (bf16 autocast, channels_last) run through CPU autocast: every loss stays a
    # finite float32 scalar and both networks receive gradients.
    from lwgan.losses import FaceLoss, PerceptualLoss
    from lwgan.nets import PatchDiscriminator, load_feature_net
    from lwgan.train.objective import Batch, Objective
    from lwgan.train.pairs import PairDataset, PairOptions
    from lwgan.train.train import loss_weights

    p = params(gp_weight=10.0, lambda_style=1.0).train
    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, PairOptions(p.image_size))
    batch = Batch.from_items(torch.utils.data.default_collate([data[0], data[1]]), torch.device("cpu"),
                             channels_last=True)
    g, d = Generator(net_options(p)), PatchDiscriminator(net_options(p))
    for m in (g, d):
        m.to(memory_format=torch.channels_last)
    objective = Objective(loss_weights(p), p.image_size,
                          PerceptualLoss(load_feature_net("vgg19", None, substitute=True)[0]),
                          FaceLoss(load_feature_net("sphere20a", None, substitute=True)[0]))
    with torch.autocast("cpu", torch.bfloat16):
        out = objective.generate(g, batch)
        loss_g = objective.generator_loss(out, batch, d)
        loss_d = objective.discriminator_loss(d, batch.tgt_img, out.tgt, batch.tgt_cond)
    # the direct heads output bfloat16; residual heads add their bfloat16 output to float32 priors
    assert out.tgt.dtype == (torch.bfloat16 if p.color_head == "direct" else torch.float32)
    assert out.tgt_attention.dtype == torch.float32 or p.color_head == "direct"
    for loss in (loss_g, loss_d):
        assert loss.value.dtype == torch.float32 and torch.isfinite(loss.value)
    (loss_g.value + loss_d.value).backward()
    assert all(t.grad is not None for t in (next(g.parameters()), next(d.parameters())))


def test_target_l1_counts_the_rendered_body_as_train_tsf_l1_body_says(caches):
    """L_tsf_l1 of a real batch against numpy: lambda_tsf_l1 times the mean over pixels of |fake - real|
    weighted `tsf_l1_body` on the target's rendered body (the cond's background channel at 0) and 1 on
    its background; with 1 it is the plain L1."""
    from lwgan.losses import PerceptualLoss
    from lwgan.nets import load_feature_net
    from lwgan.train.objective import Batch, Objective
    from lwgan.train.pairs import PairDataset, PairOptions
    from lwgan.train.train import loss_weights

    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, PairOptions(32))
    batch = Batch.from_items(torch.utils.data.default_collate([data[0], data[1]]), torch.device("cpu"))
    fake = torch.rand_like(batch.tgt_img) * 2 - 1
    error = np.abs(fake.numpy() - batch.tgt_img.numpy())  # (B, 3, H, W)
    body = batch.tgt_cond[:, 3:4].numpy() < 0.5  # the background channel, read without the code's constant
    assert 0.05 < body.mean() < 0.7  # a body is rendered
    for weight in (1.0, 3.0):
        p = params(lambda_tsf_l1=200.0, tsf_l1_body=weight, lambda_face=0.0).train
        objective = Objective(loss_weights(p), p.image_size,
                              PerceptualLoss(load_feature_net("vgg19", None, substitute=True)[0]), None)
        out = objective.generate(Generator(net_options(p)), batch)
        out = dataclasses.replace(out, tgt=fake)
        loss = objective.generator_loss(out, batch, lambda image, cond: torch.zeros(len(image), 1, 2, 2))
        expected = 200.0 * (error * np.where(body, weight, 1.0)).mean()
        assert loss.terms["L_tsf_l1"].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_stage_killed_mid_run_resumes_and_ends_as_an_uninterrupted_run(caches, tmp_path):
    import signal
    import time

    import yaml

    tree = {"data": {"image_size": 64}, "tracking": {"enabled": False},
            "train": {**TINY, "max_steps": 9, "checkpoint_every": 3, "workers": 1, "threads": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    out = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(tmp_path / "params.yaml"),
           "--frames", str(caches.frames), "--maps", str(caches.maps), "--smpl", str(caches.smpl),
           "--body", str(caches.body), "--out-dir", str(out / "models"), "--plots", str(out / "plots"),
           "--metrics", str(out / "train.json")]
    ckpt = out / "models" / CHECKPOINT_FILE
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (ckpt.is_file() and checkpoint.load(ckpt)["step"] >= 3):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its loader worker, as a lost machine would
    proc.wait()
    interrupted_at = checkpoint.load(ckpt)["step"]
    assert 3 <= interrupted_at < 9 and not (out / "train.json").exists()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "train.json").read_text())
    assert metrics["resumed_from_step"] == interrupted_at and metrics["steps"] == 9
    whole = train(config.from_dict(tree), paths(caches, tmp_path / "whole"))
    assert losses(checkpoint.load(ckpt)["history"]) == losses(whole.history)


def test_update_ratio_of_g_and_d(caches, tmp_path):
    rows = train(params(max_steps=4, g_every=1, d_every=2, sample_every=100), paths(caches, tmp_path)).history
    assert ["loss/D" in r for r in rows] == [True, False, True, False]  # D on steps 0 and 2
    assert all("loss/G" in r and "grad_norm/G" in r for r in rows)
    rows = train(params(max_steps=3, g_every=3, sample_every=100), paths(caches, tmp_path / "g")).history
    assert ["loss/G" in r for r in rows] == [True, False, False] and all("loss/D" in r for r in rows)
