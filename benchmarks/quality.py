"""Output quality over training: the trained LWGAN against the naive warp, self-imitation on the validation
videos at several points of one training run.

    python benchmarks/quality.py [--quick] [--steps N] [--points K] [--max-frames F] [--dev SUBJECT]
                                 [--set train.KEY=VALUE ...] [--out DIR] [--curve PNG] [--workspace DIR]

Trains the configuration of params.yaml (with the --set overrides) from the workspace caches (`dvc repro
correspond` makes them) in a fresh folder for N steps (default: the configuration's own schedule), keeps a
checkpoint at step 0 and at K evenly spaced steps, and evaluates each with the evaluate stage's code
(`lwgan.evaluate.evaluate`, self-imitation only, F targets per validation video): SSIM, PSNR, LPIPS and
body L1 for LWGAN and for the naive reference (the source warped by T over its inpainted background).
Writes DIR/quality.json and the curve (each metric against minutes of training, naive as a line) to
DIR/quality.png or --curve. The validation person is held out of training and nothing may be tuned on
it: to compare settings, `--dev SUBJECT` holds one training person out of training instead
(`train.dev_subject`) and evaluates on that person's videos; the validation split is not read.
--workspace DIR reads the caches and params.yaml of another workspace (e.g. the real clips'
of `benchmarks/real_people.py`) instead of this one's.
--quick: 60 steps, 2 points, 4 targets per video (under 3 minutes on 2 cores).
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from lwgan import config
from lwgan.evaluate.evaluate import EvalSettings, evaluate
from lwgan.nets import Generator, PatchDiscriminator
from lwgan.nets.build import CHECKPOINT_FILE, net_options
from lwgan.train import checkpoint
from lwgan.train.pairs import PairDataset, PairOptions
from lwgan.train.schedule import Schedule
from lwgan.train.train import TrainPaths, start_from, train

ROOT = Path(__file__).resolve().parents[1]
METRICS = (("ssim", "SSIM", True), ("psnr", "PSNR (dB)", True), ("lpips", "LPIPS", False),
           ("masked_l1", "body L1", False))
CACHES = {"frames": "data/cache/frames/frames.h5", "maps": "data/cache/maps/maps.h5",
          "smpl": "data/cache/smpl/smpl.h5", "body": "data/body/body.npz"}


def step0_checkpoint(params: config.Params, path: Path, own: Path) -> None:
    """G at step 0 exactly as `train` builds it (same seed; with `train.init_from`, that checkpoint's G), in
    a checkpoint the evaluator reads; own: the run's checkpoint."""
    torch.manual_seed(params.seed)
    generator = Generator(net_options(params.train))
    start_from(params.train, generator, PatchDiscriminator(net_options(params.train)), own)
    checkpoint.save(path, {"generator": generator.state_dict(),
                           "config": {"train": config.to_dict(params.train)}})


def write_curve(path: Path, points: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    minutes = [p["train_minutes"] for p in points]
    for ax, (key, label, higher) in zip(axes, METRICS, strict=True):
        lwgan = [p["lwgan"].get(key) for p in points]
        naive = [p["naive"].get(key) for p in points]
        if None in lwgan:
            ax.set_title(f"{label}: not computed")
            continue
        ax.plot(minutes, lwgan, "o-", color="tab:blue", label="LWGAN")
        ax.plot(minutes, naive, "--", color="tab:gray", label="naive warp")
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)")
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workspace", type=Path, default=ROOT, help="where the caches and params.yaml are")
    ap.add_argument("--params", type=Path, default=None, help="default: WORKSPACE/params.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--steps", type=int, default=0, help="training steps (0 = the configuration's schedule)")
    ap.add_argument("--points", type=int, default=4, help="evaluations after step 0, evenly spaced")
    ap.add_argument("--max-frames", type=int, default=16, help="self-imitation targets per validation video")
    ap.add_argument("--dev", default="", metavar="SUBJECT",
                    help="hold this training person out of training and evaluate on it, not on validation")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "quality")
    ap.add_argument("--curve", type=Path, default=None, help="where the PNG goes (default: OUT/quality.png)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.points, args.max_frames = args.steps or 60, 2, 4
    caches = {k: args.workspace / v for k, v in CACHES.items()}
    missing = [str(p) for p in caches.values() if not p.exists()]
    if missing:
        sys.exit(f"error: missing {', '.join(missing)}: run `dvc repro correspond` first")

    try:
        overrides = config.parse_assignments(args.overrides)
    except ValueError as err:
        sys.exit(f"error: --set {err}")
    if args.steps:
        overrides["train.max_steps"] = args.steps
    if args.dev:
        overrides["train.dev_subject"] = args.dev
    base = config.load(args.params or args.workspace / "params.yaml", overrides)
    tree = config.to_dict(base)
    tree["tracking"]["enabled"] = False
    run_dir = args.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    snaps = run_dir / "snapshots"
    snaps.mkdir(parents=True)
    # the schedule's total steps (the loop's arithmetic), to space the checkpoints
    pairs = len(PairDataset(caches["frames"], caches["maps"], caches["smpl"], caches["body"],
                            PairOptions(image_size=base.train.image_size, split="train",
                                        dev_subject=args.dev)))
    p = base.train
    total = Schedule(steps_per_epoch=max(1, (p.pairs_per_epoch or pairs) // p.batch_size),
                  epochs_constant=p.epochs_constant, epochs_decay=p.epochs_decay, final_lr=p.final_lr,
                  max_steps=p.max_steps).total_steps
    every = max(1, total // max(1, args.points))
    tree["train"].update(checkpoint_every=every, sample_every=every)
    params = config.from_dict(tree)

    step0_checkpoint(params, snaps / "step_0000000.pt", run_dir / "model" / CHECKPOINT_FILE)
    times = {0: 0.0}
    started = time.perf_counter()
    paused = 0.0

    def keep(step: int, path: Path) -> None:
        nonlocal paused
        t0 = time.perf_counter()
        times[step] = (t0 - started - paused) / 60
        shutil.copyfile(path, snaps / f"step_{step:07d}.pt")
        paused += time.perf_counter() - t0

    result = train(params, TrainPaths(caches["frames"], caches["maps"], caches["smpl"], caches["body"],
                                      run_dir / "model"), on_checkpoint=keep)
    points = []
    for snap in sorted(snaps.glob("step_*.pt")):
        step = int(snap.stem.split("_")[1])
        settings = EvalSettings(frames=caches["frames"], maps=caches["maps"], smpl=caches["smpl"],
                                body=caches["body"], checkpoint=snap, out_dir=run_dir / f"eval_{step:07d}",
                                max_frames=args.max_frames, feature_weights="", cross_imitation=False,
                                split="dev" if args.dev else "val", dev_subject=args.dev)
        m = evaluate(settings)
        row = {"step": step, "train_minutes": round(times[step], 3),
               **{method: {k: round(v, 4) for k, v in m["self_imitation"][method].items()}
                  for method in ("lwgan", "naive")}}
        points.append(row)
        print(json.dumps(row), flush=True)
    changed = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "params.yaml"
    curve = args.curve or args.out / "quality.png"
    videos = f"held-out training person {args.dev}" if args.dev else "the validation videos"
    write_curve(curve, points, f"self-imitation on {videos}, {m['pairs']} pairs; {changed}")
    final = points[-1]
    beats = {k: (final["lwgan"][k] > final["naive"][k]) == higher
             for k, _, higher in METRICS if k in final["lwgan"]}
    summary = {"config": changed, "steps": result.steps, "train_minutes": final["train_minutes"],
               "pairs": m["pairs"], "final": {"lwgan": final["lwgan"], "naive": final["naive"]},
               "beats_naive": beats, "points": points, "curve": str(curve)}
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
