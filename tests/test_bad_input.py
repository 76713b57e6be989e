"""Bad input, one case per kind, through the real entry points (the stage scripts as `dvc repro` runs them,
and the `lwgan` command): each ends with exit status 2 and one ``error:`` line that names the input, no
traceback, and every file computed before (caches, checkpoint, body model, params) byte for byte as it was.
`--debug` brings the traceback back."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import runpy
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from _small import TINY_TRAIN, build_caches, train_tiny

from lwgan import cli
from lwgan.data.h5util import shard_path
from lwgan.io import tree_sha256

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32


class _Hostile:
    """Unpickling this runs code: it would create the file named by `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real caches and a real checkpoint (the computed files), and one bad file of each kind."""
    root = tmp_path_factory.mktemp("bad_input")
    work = root / "work"
    caches = build_caches(work / "data", SIDE, frames_per_action=3)
    ckpt = train_tiny(caches, work / "models", side=SIDE)
    params = work / "params.yaml"
    plain = {"data": {"image_size": SIDE}, "tracking": {"enabled": False}, "ray": {"enabled": False},
             "train": TINY_TRAIN}
    params.write_text(yaml.safe_dump(plain))
    bad = root / "bad"
    bad.mkdir()
    marker = root / "code_ran"
    files = {
        "missing": bad / "missing.h5",
        "text": bad / "notes.txt",
        "empty": bad / "empty.bin",
        "noise": bad / "noise.bin",
        "hostile_pkl": bad / "hostile.pkl",
        "hostile_pt": bad / "hostile.pt",
        "foreign_pt": bad / "foreign.pt",
        "half_ckpt": bad / "half_checkpoint.pt",
        "body_keys": bad / "body_missing_keys.npz",
        "layout_pt": bad / "wrong_layout.pth",
        "empty_dir": bad / "empty_folder",
    }
    files["text"].write_text("these are notes, not data\n")
    files["empty"].write_bytes(b"")
    files["noise"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["hostile_pkl"].write_bytes(pickle.dumps(_Hostile(marker)))
    torch.save({"G": _Hostile(marker)}, files["hostile_pt"])
    torch.save({"weights": torch.zeros(3)}, files["foreign_pt"])
    whole = ckpt.read_bytes()
    files["half_ckpt"].write_bytes(whole[: len(whole) // 2])
    np.savez(files["body_keys"], v_template=np.zeros((10, 3)))
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, files["layout_pt"])
    files["empty_dir"].mkdir()

    # a copy of the frames cache with one shard cut short, and one claiming a future schema version
    truncated = root / "frames_truncated"
    shutil.copytree(caches.frames.parent, truncated)
    with h5py.File(caches.frames, "r") as index:
        video = sorted(index.keys())[0]
    shard = shard_path(truncated, video)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    future = root / "frames_future"
    shutil.copytree(caches.frames.parent, future)
    with h5py.File(future / caches.frames.name, "r+") as index:
        index.attrs["schema_version"] = 99
    files["truncated_frames"] = truncated / caches.frames.name
    files["future_frames"] = future / caches.frames.name
    return {"root": root, "work": work, "caches": caches, "ckpt": ckpt, "params": params, "plain": plain,
            "files": files, "marker": marker, "video": video}


def _params(world, name: str, **sections) -> Path:
    """A params file: the plain one with `sections` merged in (section -> {key: value})."""
    tree = {k: dict(v) for k, v in world["plain"].items()}
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    path = world["root"] / "bad" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _stage(name: str, *args: object) -> list[str]:
    return [str(ROOT / "stages" / f"{name}.py"), *map(str, args)]


@contextlib.contextmanager
def _escaped(err: io.StringIO):
    """An exception that escaped the entry point is written as the traceback a user would see."""
    try:
        yield
    except Exception:
        import traceback

        err.write(traceback.format_exc())
        raise


def _run(argv: list[str]) -> tuple[int, str]:
    """Run a stage script (in this process, as ``python stages/X.py`` would) or the `lwgan` command;
    the exit status and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), _escaped(err):
        if argv[0] == "lwgan":
            try:
                code = cli.main(argv[1:])
            except SystemExit as stop:  # argparse's refusal of an option's value
                code = stop.code if isinstance(stop.code, int) else 1
        else:
            saved = sys.argv
            sys.argv = list(argv)
            try:
                runpy.run_path(argv[0], run_name="__main__")
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            finally:
                sys.argv = saved
    return code, err.getvalue()


def _cases(world, out: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (command line, texts its message must hold: the input's name and what is wrong)."""
    c, f, p = world["caches"], world["files"], world["params"]
    fit_out = ["--out-dir", out / "smpl", "--metrics", out / "fit.json"]
    corr_out = ["--out-dir", out / "maps", "--metrics", out / "correspond.json"]
    train_out = ["--out-dir", out / "models", "--plots", out / "plots", "--metrics", out / "train.json"]
    eval_out = ["--out-dir", out / "eval", "--metrics", out / "eval.json"]

    def fit(frames=c.frames, body=c.body, params=p):
        return _stage("fit", "--params", params, "--frames", frames, "--body", body, *fit_out)

    def correspond(smpl=c.smpl, body=c.body, params=p):
        return _stage("correspond", "--params", params, "--smpl", smpl, "--body", body, *corr_out)

    def train(frames=c.frames, maps=c.maps, smpl=c.smpl, body=c.body, params=p):
        return _stage("train", "--params", params, "--frames", frames, "--maps", maps, "--smpl", smpl,
                      "--body", body, *train_out)

    def evaluate(checkpoint=world["ckpt"], params=p, maps=c.maps):
        return _stage("evaluate", "--params", params, "--frames", c.frames, "--maps", maps, "--smpl", c.smpl,
                      "--body", c.body, "--checkpoint", checkpoint, *eval_out)

    photo = sorted((c.frames.parents[1] / "synthetic" / "images").rglob("*.jpg"))[0]
    app = ["--checkpoint", world["ckpt"], "--body", c.body, "--params", p]
    view = ["lwgan", "view", "--source", photo, "-o", out / "view.mp4"]

    def lw(*args):
        return list(map(str, args))

    return {
        # params files
        "params missing": (fit(params=f["missing"]), [str(f["missing"]), "not found"]),
        "params binary": (lw("lwgan", "params", "check", c.frames), [str(c.frames), "not a params file"]),
        "params empty": (fit(params=f["empty"]), [str(f["empty"]), "empty"]),
        "params unknown key": (fit(params=_params(world, "unknown", train={"lr_gg": 1.0})), ["train.lr_gg"]),
        "params wrong type": (fit(params=_params(world, "type", fit={"pose_iterations": "many"})),
                              ["fit.pose_iterations", "many"]),
        "params out of range": (train(params=_params(world, "range", train={"lr_g": -1.0})),
                                ["train.lr_g", "-1.0"]),
        "params not a mapping": (lw("lwgan", "params", "show", f["text"]), [str(f["text"]), "mapping"]),
        # body models
        "body missing": (fit(body=f["missing"]), [str(f["missing"])]),
        "body hostile pickle": (lw("lwgan", "view", "--source", photo, "-o", out / "v.mp4", "--checkpoint",
                                   world["ckpt"], "--body", f["hostile_pkl"], "--params", p),
                                [str(f["hostile_pkl"])]),
        "body missing keys": (correspond(body=f["body_keys"]), [str(f["body_keys"])]),
        "body not a model": (train(body=f["text"]), [str(f["text"])]),
        "body model in params": (_stage("body", "--params", _params(world, "bodypkl", body={
            "model": str(f["hostile_pkl"])}), "--out-dir", out / "body", "--metrics", out / "body.json"),
            [str(f["hostile_pkl"])]),
        # photos and videos
        "photo missing": (lw("lwgan", "view", "--source", f["missing"], "-o", out / "a.mp4", *app),
                          [str(f["missing"])]),
        "photo not an image": (lw("lwgan", "view", "--source", f["text"], "-o", out / "b.mp4", *app),
                               [str(f["text"])]),
        "video not a video": (lw("lwgan", "imitate", "--source", photo, "--driving", f["noise"], "-o",
                                 out / "c.mp4", *app), [str(f["noise"])]),
        "video empty folder": (lw("lwgan", "imitate", "--source", photo, "--driving", f["empty_dir"], "-o",
                                  out / "d.mp4", *app), [str(f["empty_dir"])]),
        "folder source missing": (_stage("prepare", "--params", _params(world, "folder", data={
            "source": "folder", "root": str(f["missing"])}), "--synthetic-root", out / "none", "--out-dir",
            out / "frames", "--metrics", out / "prepare.json"), [str(f["missing"])]),
        "folder source without videos": (_stage("prepare", "--params", _params(world, "folder_empty", data={
            "source": "folder", "root": str(f["empty_dir"])}), "--synthetic-root", out / "none",
            "--out-dir", out / "frames2", "--metrics", out / "prepare2.json"), [str(f["empty_dir"])]),
        # caches
        "frames missing": (fit(frames=f["missing"]), [str(f["missing"])]),
        "frames not hdf5": (fit(frames=f["noise"]), [str(f["noise"])]),
        "frames of another kind": (fit(frames=c.maps), [str(c.maps)]),
        "frames future schema": (fit(frames=f["future_frames"]), [str(f["future_frames"]), "99"]),
        "frames shard truncated": (train(frames=f["truncated_frames"]),
                                   [world["video"]]),
        "smpl of another kind": (correspond(smpl=c.frames), [str(c.frames)]),
        "maps empty file": (train(maps=f["empty"]), [str(f["empty"])]),
        # checkpoints
        "checkpoint missing": (evaluate(checkpoint=f["missing"]), [str(f["missing"])]),
        "checkpoint foreign": (evaluate(checkpoint=f["foreign_pt"]), [str(f["foreign_pt"])]),
        "checkpoint truncated": (lw(*view[:-2], "-o", out / "e.mp4", "--checkpoint", f["half_ckpt"],
                                    "--body", c.body, "--params", p), [str(f["half_ckpt"])]),
        "checkpoint text": (lw(*view[:-2], "-o", out / "e2.mp4", "--checkpoint", f["text"], "--body", c.body,
                               "--params", p), [str(f["text"]), "cannot be read"]),
        "checkpoint hostile": (lw(*view[:-2], "-o", out / "f.mp4", "--checkpoint", f["hostile_pt"],
                                  "--body", c.body, "--params", p), [str(f["hostile_pt"])]),
        "checkpoint other networks": (lw(*view[:-2], "-o", out / "g.mp4", "--checkpoint", world["ckpt"],
                                         "--body", c.body, "--params",
                                         _params(world, "wider", train={"base_width": 8})),
                                      [str(world["ckpt"]), "base_width"]),
        # weight files
        "weights wrong layout": (evaluate(params=_params(world, "layout", evaluate={
            "feature_weights": str(f["layout_pt"])})), [str(f["layout_pt"])]),
        "weights corrupt": (evaluate(params=_params(world, "corrupt", evaluate={
            "lpips_backbone": str(f["noise"])})), [str(f["noise"])]),
        "weights text": (evaluate(params=_params(world, "textweights", evaluate={
            "lpips_backbone": str(f["text"])})), [str(f["text"]), "cannot be read"]),
        "weights missing": (evaluate(params=_params(world, "noweights", evaluate={
            "inception_weights": str(f["missing"])})), [str(f["missing"])]),
        "train weights missing": (train(params=_params(world, "novgg", train={
            "vgg_weights": str(f["missing"])})), [str(f["missing"])]),
        # experiments
        "unknown experiment": (lw("lwgan", "experiments", "queue", "E99", "--dry-run"), ["E99"]),
    }


def test_every_kind_of_bad_input_is_one_line_naming_it_and_destroys_nothing(world, tmp_path):
    before = tree_sha256(world["work"])
    cases = _cases(world, tmp_path)
    assert len(cases) >= 25
    failed = []
    for name, (argv, texts) in cases.items():
        try:
            code, err = _run(argv)
        except Exception as escaped:
            code, err = None, f"Traceback: {escaped!r}"
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        problems = []
        if code != 2:
            problems.append(f"exit {code}")
        if "Traceback" in err:
            problems.append("traceback")
        if len(lines) != 1:
            problems.append(f"{len(lines)} error lines")
        message = err[err.find("error:"):] if lines else ""
        problems += [f"{text!r} not named" for text in texts if text not in message]
        if problems:
            failed.append(f"{name}: {', '.join(problems)}\n    {err.strip()[-600:]}")
    assert not failed, "\n".join(failed)
    assert tree_sha256(world["work"]) == before
    assert not world["marker"].exists(), "a hostile pickle ran code"


def test_a_bad_number_on_the_command_line_is_refused_before_any_work(world, tmp_path):
    c = world["caches"]
    photo = sorted((c.frames.parents[1] / "synthetic" / "images").rglob("*.jpg"))[0]
    app = ["--checkpoint", str(world["ckpt"]), "--body", str(c.body), "--params", str(world["params"])]
    imitate = ["lwgan", "imitate", "--source", str(photo), "--driving", str(photo.parent), *app]
    view = ["lwgan", "view", "--source", str(photo), *app]
    cases = {
        "--frame-step": (imitate, "0", "at least 1"), "--max-frames": (imitate, "-1", "at least 0"),
        "--batch-size": (imitate, "0", "at least 1"), "--personalize": (imitate, "-2", "at least 0"),
        "--personalize-lr": (imitate, "-1", "greater than 0"), "--frames": (view, "0", "at least 1"),
        "--fps": (view, "0", "greater than 0"), "--degrees": (view, "nan", "finite"),
        "--elevation": (view, "100", "between -90 and 90"),
    }
    for option, (argv, value, words) in cases.items():
        out = tmp_path / f"{option.strip('-')}.mp4"
        started = time.perf_counter()
        code, err = _run([*argv, "-o", str(out), f"{option}={value}"])
        assert code == 2 and "Traceback" not in err, (option, err)
        assert f"argument {option}: " in err and words in err and value in err, (option, err)
        assert not out.exists() and not out.with_name(out.name + ".json").exists()
        assert time.perf_counter() - started < 5, f"{option} was refused only after work began"


def test_a_stage_script_run_as_dvc_runs_it_prints_one_line(world, tmp_path):
    import subprocess

    f = world["files"]
    argv = _stage("fit", "--params", world["params"], "--frames", f["noise"], "--body", world["caches"].body,
                  "--out-dir", tmp_path / "smpl", "--metrics", tmp_path / "fit.json")
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot open frames cache {f['noise']}")


def test_debug_shows_the_traceback(world, tmp_path):
    f = world["files"]
    argv = ["lwgan", "params", "check", str(f["text"])]
    assert _run(argv)[0] == 2
    with pytest.raises(Exception, match="mapping"):
        _run([*argv, "--debug"])
    os.environ["LWGAN_DEBUG"] = "1"
    try:
        with pytest.raises(Exception, match="mapping"):
            _run(argv)
    finally:
        del os.environ["LWGAN_DEBUG"]
