"""Kill -9 matrix: the fit, correspond and train stages, each killed at random moments and run again, against
an uninterrupted run of the same stage.

    python benchmarks/resume.py [--quick] [--kills N] [--seed S]

Each stage script runs as `dvc repro` runs it (a subprocess in its own process group; fit on Ray with two
workers). For every kill: start the stage in a fresh output folder, SIGKILL the whole process group at a
moment drawn uniformly from 5-95 % of the uninterrupted run's wall time, run the stage again to the end
in the same folder, and compare:

identical: fit and correspond outputs byte for byte (every file of the cache folder); train the weights
    and optimiser states of the final checkpoint (sha256 of every tensor) and its loss history without the
    timings.
killed_mid_run: kills that came before the run had finished by itself (a run can be faster than the
    uninterrupted one was).
orphans: processes of the killed run (found by an environment tag) still alive 5 s after the kill.
late_writes: output files that changed between 0.5 s and 5 s after the kill (a worker still writing).
temp_files: temporary files (`.*.tmp*`) left after the second run.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the small synthetic caches the tests build

from _small import TINY_TRAIN, build_caches  # noqa: E402

from lwgan.io import tree_sha256  # noqa: E402
from lwgan.nets.build import CHECKPOINT_FILE  # noqa: E402
from lwgan.parallel import carrying  # noqa: E402

TAG_ENV = "LWGAN_RESUME_TAG"

SIDE = 64


def _tagged(tag: str) -> list[int]:
    return carrying(tag, TAG_ENV)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def _checkpoint_state(folder: Path) -> dict[str, str]:
    """sha256 of the final checkpoint's tensors and of its loss history without timings."""
    import torch

    from lwgan.train import checkpoint

    state = checkpoint.load(folder / CHECKPOINT_FILE)
    out = {}
    for part in ("generator", "discriminator", "opt_g", "opt_d"):
        digest = hashlib.sha256()

        def walk(value, digest=digest):
            if isinstance(value, torch.Tensor):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(value, dict):
                for key in sorted(value, key=str):
                    digest.update(str(key).encode())
                    walk(value[key])
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)
            else:
                digest.update(repr(value).encode())

        walk(state[part])
        out[part] = digest.hexdigest()
    history = [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in state["history"]]
    out["history"] = hashlib.sha256(json.dumps(history, sort_keys=True).encode()).hexdigest()
    out["step"] = str(state["step"])
    return out


class Stage:
    """One stage script with its inputs; `command(out)` writes into the folder `out`."""

    def __init__(self, name: str, args: list[str], params: Path, outputs: list[str]) -> None:
        self.name, self.args, self.params, self.outputs = name, args, params, outputs

    def command(self, out: Path) -> list[str]:
        return [sys.executable, str(ROOT / "stages" / f"{self.name}.py"), "--params", str(self.params),
                *self.args, *[part.replace("{out}", str(out)) for part in self.outputs]]

    def state(self, out: Path) -> dict[str, str]:
        if self.name == "train":
            return _checkpoint_state(out / "models")
        return tree_sha256(out / "cache")


def _start(cmd: list[str], tag: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, TAG_ENV: tag, "RAY_AUTH_MODE": "disabled", "DVC_NO_ANALYTICS": "1"}
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_handle = handle  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen, what: str, log: Path) -> None:
    code = proc.wait()
    proc.log_handle.close()  # type: ignore[attr-defined]
    if code != 0:
        raise RuntimeError(f"{what} exited {code}; see {log}:\n{log.read_text()[-3000:]}")


def run_stage(stage: Stage, work: Path, kills: int, rng: random.Random) -> dict:
    log = work / f"{stage.name}.log"
    ref = work / f"{stage.name}_ref"
    begin = time.perf_counter()
    _finish(_start(stage.command(ref), f"ref-{uuid.uuid4().hex}", log), f"{stage.name} (uninterrupted)", log)
    wall = time.perf_counter() - begin
    reference = stage.state(ref)
    rows = []
    for k in range(kills):
        out = work / f"{stage.name}_kill{k}"
        tag = f"lwgan-resume-{uuid.uuid4().hex}"
        at = rng.uniform(0.05, 0.95) * wall
        proc = _start(stage.command(out), tag, log)
        time.sleep(at)
        finished_before = proc.poll() is not None
        if not finished_before:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.log_handle.close()  # type: ignore[attr-defined]
        time.sleep(0.5)
        snapshot = tree_sha256(out) if out.exists() else {}
        time.sleep(4.5)
        orphans = [_command_line(pid) for pid in _tagged(tag)]
        for pid in _tagged(tag):
            os.kill(pid, signal.SIGKILL)
        later = tree_sha256(out) if out.exists() else {}
        late_writes = sorted(name for name in set(snapshot) | set(later)
                             if snapshot.get(name) != later.get(name))
        resumed_at = time.perf_counter()
        _finish(_start(stage.command(out), f"again-{uuid.uuid4().hex}", log), f"{stage.name} (rerun)", log)
        temp_files = sorted(p.name for p in out.rglob(".*.tmp*"))
        state = stage.state(out)
        rows.append({"killed_at_s": round(at, 2), "finished_before_kill": finished_before,
                     "identical": state == reference,
                     "differing": sorted(k2 for k2 in set(state) | set(reference)
                                         if state.get(k2) != reference.get(k2))[:5],
                     "orphans": len(orphans), "orphan_commands": orphans[:5],
                     "late_writes": late_writes[:5], "temp_files": temp_files[:5],
                     "rerun_s": round(time.perf_counter() - resumed_at, 1)})
        print(f"{stage.name}: kill {k + 1}/{kills} at {at:.1f} s of {wall:.1f}: {rows[-1]}", flush=True)
    return {"uninterrupted_s": round(wall, 1), "kills": rows,
            "killed_mid_run": sum(not r["finished_before_kill"] for r in rows),
            "all_identical": all(r["identical"] for r in rows),
            "orphans": sum(r["orphans"] for r in rows),
            "late_writes": sum(len(r["late_writes"]) for r in rows),
            "temp_files": sum(len(r["temp_files"]) for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills per stage on the smallest data")
    parser.add_argument("--kills", type=int, default=None, help="kills per stage (default 3 quick, else 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = parser.parse_args()
    kills = args.kills or (3 if args.quick else 5)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="lwgan-resume-") as tmp:
        work = Path(tmp)
        frames_per_action = 4 if args.quick else 8
        caches = build_caches(work / "data", SIDE, frames_per_action=frames_per_action)
        params = work / "params.yaml"
        steps = 6 if args.quick else 12
        params.write_text(yaml.safe_dump({
            "data": {"image_size": SIDE}, "tracking": {"enabled": False},
            "fit": {"keypoints": "ground_truth", "pose_iterations": 30, "camera_iterations": 10,
                    "overlays_per_video": 1},
            "ray": {"enabled": True, "workers": 2},
            "train": {**TINY_TRAIN, "max_steps": steps, "checkpoint_every": 2, "sample_every": 2,
                      "samples": 2}}))
        body = str(caches.body)
        stages = [
            Stage("fit", ["--frames", str(caches.frames), "--body", body],
                  params, ["--out-dir", "{out}/cache", "--metrics", "{out}/fit.json"]),
            Stage("correspond", ["--smpl", str(caches.smpl), "--body", body],
                  params, ["--out-dir", "{out}/cache", "--metrics", "{out}/correspond.json"]),
            Stage("train", ["--frames", str(caches.frames), "--maps", str(caches.maps), "--smpl",
                            str(caches.smpl), "--body", body],
                  params, ["--out-dir", "{out}/models", "--plots", "{out}/plots", "--metrics",
                           "{out}/train.json"]),
        ]
        results = {stage.name: run_stage(stage, work, kills, rng) for stage in stages}
    summary = {
        "kills_per_stage": kills, "seed": args.seed, "stages": results,
        "all_identical": all(r["all_identical"] for r in results.values()),
        "orphans": sum(r["orphans"] for r in results.values()),
        "late_writes": sum(r["late_writes"] for r in results.values()),
        "temp_files": sum(r["temp_files"] for r in results.values()),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
