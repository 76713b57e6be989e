"""The paper's experiments: the variant registry against the paper's text and Table 1, the commands against
README and DVC's own params writer, the stability measures on curves with known answers, and the report's
run selection and numbers on runs in a real MLflow store."""

from __future__ import annotations

import csv
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from dvc.utils.hydra import apply_overrides

from lwgan import config, stage, tracking
from lwgan.experiments import queue, report, stability, variants

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def effective(name: str, scale_name: str) -> dict:
    """The params a variant trains with: params.yaml, the scale, the variant."""
    base = queue.base_params(ROOT / "params.yaml", scale_name)
    return {**base, **variants.resolve(variants.get(name), base)}


# ------------------------------------------------------------------------------------------- registry


def test_registry_holds_every_experiment_of_the_paper():
    assert variants.VARIANT_NAMES == ("baseline", "label_smoothing", "gp10", "gp2", "sn", "ttur_1e-4_4e-4",
                                      "ttur_4e-4_1e-4", "rec_x1.5", "face_x2", "E1", "E2", "E3", "E4")
    for scale_name in variants.SCALES:
        base = queue.base_params(ROOT / "params.yaml", scale_name)
        assert effective("baseline", scale_name) == base
        expected = {"label_smoothing": {"train.real_target": 0.9}, "gp10": {"train.gp_weight": 10.0},
                    "gp2": {"train.gp_weight": 2.0}, "sn": {"train.spectral_norm": True},
                    "ttur_1e-4_4e-4": {"train.lr_g": 1e-4, "train.lr_d": 4e-4},
                    "ttur_4e-4_1e-4": {"train.lr_g": 4e-4, "train.lr_d": 1e-4},
                    "rec_x1.5": {"train.lambda_rec": 1.5 * base["train.lambda_rec"]},
                    "face_x2": {"train.lambda_face": 2.0 * base["train.lambda_face"]}}
        for name, changed in expected.items():
            got = effective(name, scale_name)
            assert {k: v for k, v in got.items() if base[k] != v} == changed, name


# Table 1: SN, GP weight, (η_G, η_D, η_F; "-" = the baseline's final rate and decay), λ_rec; η_F is the
# final learning rate of a linear decay over 15 epochs (the baseline: 25).
TABLE1 = {"E1": (False, 2.0, (1e-4, 3e-4, None), 10.0), "E2": (False, 0.0, (4e-4, 1e-4, 1e-5), 10.0),
          "E3": (True, 0.0, (4e-4, 1e-4, 1e-5), 15.0), "E4": (False, 0.0, (4e-4, 1e-4, 1e-5), 15.0)}
TABLE1_DELTAS = {"E1": (-12.80, -5.75, -16.54), "E2": (-2.03, -2.15, -8.66), "E3": (0.93, -1.25, 32.28),
                 "E4": (-3.37, -2.49, 17.32)}


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_ensembles_are_table_1_at_paper_scale(name):
    sn, gp, (lr_g, lr_d, final), rec = TABLE1[name]
    p = effective(name, "paper")
    assert p["train.spectral_norm"] is sn and p["train.gp_weight"] == gp and p["train.lambda_rec"] == rec
    assert (p["train.lr_g"], p["train.lr_d"]) == (lr_g, lr_d)
    assert p["train.final_lr"] == (final if final else 2e-6)
    assert (p["train.epochs_constant"], p["train.epochs_decay"]) == ((5.0, 15.0) if final else (5.0, 25.0))
    assert (p["train.image_size"], p["train.base_width"], p["train.res_blocks"]) == (256, 64, 6)
    reported = variants.get(name).paper_delta
    assert tuple(reported[k] for k in ("L_face", "L_tsf", "L_rec")) == TABLE1_DELTAS[name]
    # at the CPU default the decay keeps the same share of the baseline's (15 / 25 of 1 epoch)
    assert effective(name, "default")["train.epochs_decay"] == (0.6 if final else 1.0)


def test_unknown_names_are_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(variants.VariantError, match="unknown variant 'gp5'.*gp10"):
        variants.get("gp5")
    with pytest.raises(variants.VariantError, match="unknown scale 'huge'.*paper"):
        queue.commands([], "huge", ROOT / "params.yaml")
    with pytest.raises(variants.VariantError, match="unknown variant 'gp5'.*gp10"):
        queue.commands(["gp5"], "default", ROOT / "params.yaml")
    # tracking.variant is a free label (the config does not know the paper's variants), but a safe one
    path = tmp_path / "params.yaml"
    path.write_text("tracking:\n  variant: my-try.2\n")
    assert config.load(path).tracking.variant == "my-try.2"
    path.write_text("tracking:\n  variant: two words\n")
    with pytest.raises(config.ConfigError, match=r"tracking\.variant: got 'two words', must match"):
        config.load(path)


def test_a_variant_the_params_refuse_is_not_queued(tmp_path):
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("final_lr: 0.000002", "final_lr: 0.00015")
    path.write_text(text)
    with pytest.raises(queue.QueueError, match=r"variant ttur_1e-4_4e-4 at scale default: .*train\.final_lr"):
        queue.commands(["gp10", "ttur_1e-4_4e-4"], "default", path)


# ------------------------------------------------------------------------------------------- commands


def test_readme_lists_every_variant_command_and_the_paper_scale():
    for cmd in queue.commands([], "default", ROOT / "params.yaml", queue=False):
        assert " ".join(cmd) in README, " ".join(cmd)
    block = re.search(r"dvc exp run -n paper (.*?)\n```", README, re.S).group(1).replace("\\\n", " ")
    sets = dict(s.split("=", 1) for s in re.findall(r"-S (\S+)", block))
    assert sets == {k: variants.format_value(v) for k, v in variants.SCALES["paper"].items()}


@pytest.mark.parametrize("scale_name", sorted(variants.SCALES))
def test_dvc_writes_every_command_so_that_lwgan_reads_it_back(tmp_path, scale_name):
    """DVC's own -S writer (Hydra overrides into params.yaml), then lwgan's strict loader."""
    for cmd in queue.commands([], scale_name, ROOT / "params.yaml"):
        path = tmp_path / "params.yaml"
        shutil.copy(ROOT / "params.yaml", path)
        sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-S"]
        apply_overrides(str(path), sets)
        loaded = config.flatten(config.to_dict(config.load(path)))
        for item in sets:
            key, text = item.split("=", 1)
            assert variants.format_value(loaded[key]) == text, (cmd, key)


def test_params_read_yaml_1_2_floats(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  final_lr: 1e-05\n  lr_g: 4.0E-4\n  lr_d: 0.0001\ndata:\n  root: '1e-05'\n"
                    "  source: folder\n")
    p = config.load(path)
    assert (p.train.final_lr, p.train.lr_g, p.train.lr_d) == (1e-5, 4e-4, 1e-4) and p.data.root == "1e-05"


def test_experiment_names_and_values():
    assert variants.experiment_name("gp10", "default") == "gp10"
    assert variants.experiment_name("gp10", "paper", "run2") == "gp10-paper-run2"
    assert [variants.format_value(v) for v in (1e-5, 2e-6, 15.0, 25 * 0.6, 0.9, True, 8)] == [
        "0.00001", "0.000002", "15", "15", "0.9", "true", "8"]


# ------------------------------------------------------------------------------------------- stability


def test_oscillation_of_a_trend_plus_a_known_residual():
    steps = np.arange(1, 301, dtype=float)
    trend = 5.0 - 0.01 * steps
    assert stability.oscillation(steps, trend) == pytest.approx(0.0, abs=1e-9)  # a falling loss is calm
    s_tail, _ = stability.tail(steps, trend)
    assert s_tail[0] == 201 and len(s_tail) == 100  # the last third: step > 200
    # a residual orthogonal to the line's basis on the tail: the measure is exactly its RMS
    wave = np.sin(s_tail * 0.7)
    basis = np.stack([np.ones_like(s_tail), s_tail], axis=1)
    wave -= basis @ np.linalg.lstsq(basis, wave, rcond=None)[0]
    values = trend.copy()
    values[200:] += 0.3 * wave
    values[:200] += np.random.default_rng(0).normal(0.0, 5.0, 200)  # what happens before the tail is not read
    rms = 0.3 * float(np.sqrt(np.mean(wave**2)))
    assert stability.oscillation(steps, values) == pytest.approx(rms, rel=1e-9)
    assert stability.relative_oscillation(steps, values) == pytest.approx(
        100.0 * rms / abs(values[200:].mean()), rel=1e-9)
    # rows arrive in any order; white noise of known spread reads as that spread
    noise = np.random.default_rng(1).normal(0.0, 0.2, 30000)
    order = np.random.default_rng(2).permutation(30000)
    t = np.arange(1, 30001, dtype=float)
    assert stability.oscillation(t[order], (1.0 + noise)[order]) == pytest.approx(0.2, rel=0.03)


def test_tail_keeps_a_minimum_of_rows_and_quarters_split_the_run():
    assert len(stability.tail([1, 2], [0.0, 1.0])[0]) == 2
    assert list(stability.tail([1, 2, 3, 4], [0.0] * 4, 0.1)[0]) == [2, 3, 4]
    assert math.isnan(stability.oscillation([1, 2], [0.0, 1.0]))
    assert stability.quarters(range(1, 9), range(1, 9)) == [1.5, 3.5, 5.5, 7.5]
    q = stability.quarters([4, 8], [1.0, 2.0])
    assert q[1] == 1.0 and q[3] == 2.0 and math.isnan(q[0]) and math.isnan(q[2])


def test_d_state_saturated_flat_balanced():
    steps = np.arange(1, 31)
    ones = np.ones(30)
    assert stability.d_state(steps, ones, -ones).state == "saturated"
    smoothed = stability.d_state(steps, 0.9 * ones, -ones, real_target=0.9)  # reaches both targets
    assert smoothed.saturated and smoothed.margin == pytest.approx(1.0)
    flat = stability.d_state(steps, 0.05 * ones, -0.03 * ones)
    assert flat.state == "flat" and flat.flat_share == 1.0
    balanced = stability.d_state(steps, 0.5 * ones, -0.5 * ones)
    assert balanced.state == "balanced" and balanced.margin == pytest.approx(0.5)
    # 'held' means held: saturated in 8 of the 10 tail rows is not saturated
    real = ones.copy()
    real[[21, 25]] = 0.0
    held = stability.d_state(steps, real, -ones)
    assert held.saturated_share == pytest.approx(0.8) and held.state == "balanced"


def test_relative_delta_is_the_papers_sign():
    assert stability.relative_delta(90.0, 100.0) == pytest.approx(-10.0)
    assert stability.relative_delta(132.28, 100.0) == pytest.approx(32.28)
    assert math.isnan(stability.relative_delta(1.0, 0.0))


# ------------------------------------------------------------------------------------------- report


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def track(monkeypatch, variant: str, train: dict, curve: dict, finals: dict, data: str = "data-a",
          evaluation: dict | None = None) -> str:
    """A train run (and an evaluate run of the same group) as the stages track them."""
    time.sleep(0.01)  # distinct start times
    params = config.from_dict({"tracking": {"variant": variant}, "train": train})
    group = f"group-{variant}-{time.time_ns()}"
    monkeypatch.setenv("LWGAN_RUN_GROUP", group)
    monkeypatch.setenv("DVC_EXP_NAME", variant)
    steps = len(next(iter(curve.values())))
    with stage.tracked_run("train", params, ("seed", "train")) as run:
        for i in range(steps):
            run.log_metrics({k: v[i] for k, v in curve.items()}, step=i + 1, flush=False)
        run.log_metrics({"steps": steps, **{f"loss.{k}": v for k, v in finals.items()}}, step=steps)
        run.set_tags({tracking.TAG_DATA: data})
        train_id = run.run_id
    if evaluation is not None:
        with stage.tracked_run("evaluate", params, ("evaluate",)) as run:
            run.log_metrics({f"self_imitation.lwgan.{k}": v for k, v in evaluation.items()})
    return train_id


def curve(n: int = 30, level: float = 1.0) -> dict:
    t = np.arange(n, dtype=float)
    return {"loss/L_face": list(level * (5.0 - 0.05 * t + 0.1 * (-1.0) ** t)),
            "loss/L_rec": list(level * (2.0 - 0.01 * t)), "d/real": [0.95] * n, "d/fake": [-0.97] * n}


def test_report_table_from_tracked_runs(store, monkeypatch, tmp_path):
    finals = {"L_face": 40.0, "L_tsf": 2.0, "L_rec": 1.25}
    base = track(monkeypatch, "baseline", {}, curve(), finals, evaluation={"ssim": 0.5, "psnr": 20.0,
                                                                           "masked_l1": 0.1})
    gp10 = track(monkeypatch, "gp10", {"gp_weight": 10.0}, curve(level=0.5),
                 {"L_face": 34.8, "L_tsf": 1.7, "L_rec": 1.25}, evaluation={"ssim": 0.55, "psnr": 21.0,
                                                                           "masked_l1": 0.09})
    track(monkeypatch, "gp10", {"gp_weight": 10.0, "lr_g": 1e-4}, curve(), finals)  # newer, not this baseline
    track(monkeypatch, "rec_x1.5", {"lambda_rec": 20.0}, curve(), finals)  # mislabelled: 1.5 x 10 is 15
    track(monkeypatch, "sn", {"spectral_norm": True}, curve(), finals, data="data-b")
    e3 = track(monkeypatch, "E3", {"spectral_norm": True, "lr_g": 4e-4, "lr_d": 1e-4, "final_lr": 1e-5,
                                   "epochs_decay": 0.6, "lambda_rec": 15.0}, curve(20), finals)

    built = report.build(tmp_path / "out", experiment="lwgan")
    rows = {r["variant"]: r for r in built.rows}
    assert list(rows) == ["baseline", "gp10", "E3"]
    assert [rows[n]["train_run"] for n in ("baseline", "gp10", "E3")] == [base, gp10, e3]
    assert built.selection.passed_over.keys() == {"gp10", "rec_x1.5", "sn"}
    assert "an older one is in the table" in built.selection.passed_over["gp10"]
    assert "train.lambda_rec is 20.0, the variant has 15" in built.selection.passed_over["rec_x1.5"]
    assert "other data" in built.selection.passed_over["sn"]
    gp = rows["gp10"]
    assert gp["dL_L_face"] == pytest.approx(-13.0) and gp["dL_L_tsf"] == pytest.approx(-15.0)
    assert gp["dL_L_rec"] == 0.0 and gp["paper_dL_L_face"] == -13.0 and gp["gp_weight"] == 10.0
    assert (gp["ssim"], gp["psnr"], gp["masked_l1"]) == (0.55, 21.0, 0.09) and gp["lpips"] is None
    assert rows["E3"]["evaluate_run"] is None and rows["E3"]["ssim"] is None
    # L_face alternates ±0.1 (±0.05 at half the level) around a line: its RMS after the line is taken out
    steps = np.arange(1, 31, dtype=float)
    assert rows["baseline"]["osc_L_face"] == pytest.approx(
        stability.oscillation(steps, curve()["loss/L_face"]))
    assert rows["baseline"]["osc_L_face"] == pytest.approx(0.1, rel=0.02)
    assert gp["osc_L_face"] == pytest.approx(0.05, rel=0.02)
    assert rows["baseline"]["osc_L_rec"] == pytest.approx(0.0, abs=1e-9)
    assert rows["baseline"]["d_state"] == "saturated" and rows["baseline"]["d_real_q1"] == pytest.approx(0.95)
    assert rows["baseline"]["d_margin"] == pytest.approx(0.96)

    table = list(csvrows(built.table))
    assert [r["variant"] for r in table] == ["baseline", "gp10", "E3"]
    assert float(table[1]["dL_L_face"]) == gp["dL_L_face"] and table[2]["ssim"] == ""
    page = built.markdown.read_text()
    assert ("| gp10 | – | 10 | (2e-4, 2e-4, 2e-6) | 1 + 1 | 10 | 5 | 1 | −13.00 % | −15.00 % | +0.00 % "
            "| −13.00 / −15.00 / – | 0.550 | 21.00 | 0.0900 |") in page
    assert "`rec_x1.5`" in page and "Not run yet:" in page
    assert {p.name for p in built.pictures} == {"curves_L_face.png", "curves_L_rec.png", "curves_d_real.png",
                                                 "curves_d_fake.png"}


def csvrows(path: Path):
    with path.open() as handle:
        yield from csv.DictReader(handle)


def test_report_needs_a_baseline(store, monkeypatch, tmp_path):
    track(monkeypatch, "gp10", {"gp_weight": 10.0}, curve(), {"L_face": 1.0, "L_tsf": 1.0, "L_rec": 1.0})
    with pytest.raises(report.ReportError, match="no finished train run tagged lwgan.variant=baseline"):
        report.build(tmp_path / "out", experiment="lwgan")


def test_a_resumed_train_run_carries_its_checkpoints_whole_curve(store, tmp_path):
    """The baseline queued after `dvc repro` resumes the workspace's finished checkpoint: its run must hold
    the curve all the same."""
    from _small import build_caches
    from test_train import params as train_params
    from test_train import paths

    from lwgan.train.checkpoint import data_key
    from lwgan.train.train import train

    caches = build_caches(tmp_path / "caches", 64, frames_per_action=4)
    p = train_params(max_steps=3, workers=0)
    ids = []
    for _ in range(2):
        with tracking.StageRun("train", experiment="lwgan") as run:
            result = train(p, paths(caches, tmp_path), tracker=run)
            stage.record_training(run, result.history, result.resumed_from, caches.maps)
            ids.append((run.run_id, result.resumed_from))
    (first, fresh), (second, resumed) = ids
    assert (fresh, resumed) == (0, 3)
    for run_id in (first, second):
        assert [s for s, _ in tracking.metric_history(run_id, "loss/L_rec")] == [1, 2, 3]
        (found,) = [r for r in tracking.search_runs(experiment="lwgan") if r["run_id"] == run_id]
        assert found["tags"][tracking.TAG_DATA] == data_key(caches.maps)
    assert tracking.metric_history(first, "d/real") == tracking.metric_history(second, "d/real")
