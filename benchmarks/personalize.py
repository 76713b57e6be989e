"""What personalisation (`lwgan imitate --personalize N`) gives on people the model never saw.

    python benchmarks/personalize.py [--quick] [--checkpoint PATH] [--steps 0,20,50,100] [--lr LR]
                                     [--max-frames F] [--videos K] [--background learned|fill]
                                     [--workspace DIR --split all]

For each validation video of the workspace caches (`dvc repro correspond`; the validation people were
never trained on), its first usable frame is the "photo": G of the checkpoint (default
models/checkpoint.pt) is fine-tuned on it for N steps exactly as `lwgan imitate --personalize N` does
(`lwgan.apps.personalize`: the photo's identity and mirrored pairs, the checkpoint's objective against its
frozen D), from a fresh copy for each N, and then drives the photo through the video's other usable fitted
frames (all, or `--max-frames` of them evenly spread) with the tasks' own synthesis (`lwgan.apps.synthesis`).
Each output is scored against the real frame: SSIM, PSNR, LPIPS (the evaluate stage's AlexNet v0.1) and
body L1 (inside the target's fitted body), the mean over every target; the naive warp (the photo warped by
T over its inpainted background, the evaluate stage's reference) on the same targets beside them.
`seconds_per_step`: one personalisation step. --quick: N in 0, 10; 4 targets of 2 videos.
--background fill: the background stream's classical fill where the person stood (`--background` of
the apps). --workspace DIR reads the caches, body model and params of another workspace (e.g. the real
clips' of `benchmarks/real_people.py`, whose clips are all in the training split: `--split all`).
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from lwgan import config
from lwgan.apps.personalize import personalize
from lwgan.apps.synthesis import Synthesizer
from lwgan.body.fitting import NO_PERSON
from lwgan.body.model import BodyModel
from lwgan.data.cache import FramesCache
from lwgan.data.smpl_cache import SmplCache
from lwgan.evaluate.evaluate import image_scores, naive_reference, spread
from lwgan.metrics.lpips import load_lpips
from lwgan.nets.masks import BACKGROUND_CHANNEL
from lwgan.nets.options import BACKGROUND_CHOICES
from lwgan.train.pairs import PairDataset, PairOptions

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("ssim", "psnr", "lpips", "masked_l1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "checkpoint.pt")
    ap.add_argument("--steps", default="0,20,50,100", help="the N to compare, comma-separated")
    ap.add_argument("--lr", type=float, default=1e-4, help="personalisation learning rate (the CLI's)")
    ap.add_argument("--max-frames", type=int, default=0, help="targets per video (0 = all)")
    ap.add_argument("--videos", type=int, default=0, help="at most K validation videos (0 = all)")
    ap.add_argument("--tune-background", action="store_true", help="fine-tune the background stream too")
    ap.add_argument("--background", default="learned", choices=BACKGROUND_CHOICES,
                    help="where the person stood: G's background stream or its classical fill alone")
    ap.add_argument("--workspace", type=Path, default=ROOT, help="whose caches, body model and params")
    ap.add_argument("--split", default="val", choices=("val", "train", "all"), help="whose videos")
    args = ap.parse_args()
    steps = [0, 10] if args.quick else sorted({int(s) for s in args.steps.split(",")})
    max_frames, max_videos = (4, 2) if args.quick else (args.max_frames, args.videos)
    workspace = args.workspace.resolve()
    params = config.load(workspace / "params.yaml")
    caches = workspace / "data" / "cache"
    body_path = workspace / "data" / "body" / "body.npz"
    body = BodyModel.from_file(body_path)
    frames, smpl = FramesCache(caches / "frames" / "frames.h5"), SmplCache(caches / "smpl" / "smpl.h5")
    e = params.evaluate
    lpips = load_lpips(e.lpips_net, ROOT / e.lpips_backbone, ROOT / e.lpips_linear)
    reference = Synthesizer(args.checkpoint, body, background=args.background)
    videos = PairDataset(caches / "frames" / "frames.h5", caches / "maps" / "maps.h5",
                         caches / "smpl" / "smpl.h5", body_path,
                         PairOptions(image_size=reference.size, split=args.split, augment=False)).videos
    videos = videos[:max_videos] if max_videos else videos
    trained = {k: v.clone() for k, v in reference.generator.state_dict().items()}
    totals: dict[str, dict[str, list[np.ndarray]]] = {str(n): {m: [] for m in METRICS} for n in steps}
    totals["naive"] = {m: [] for m in METRICS}
    step_seconds: list[float] = []
    for video in videos:
        fit = smpl.params(video)
        usable = np.flatnonzero((fit["status"] & NO_PERSON) == 0)
        if len(usable) < 2:
            continue
        source_row, targets = usable[0], spread(usable[1:], max_frames)
        photo = frames.frame(video, int(fit["frame"][source_row]))
        truth = reference.images(frames.frames(video, fit["frame"][targets]))  # (N, 3, S, S)
        verts = reference.vertices(fit["betas"], fit["pose"][targets], fit["cam"][targets])
        record = reference.records(verts)
        tgt_body = 1.0 - reference.conds(record)[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
        source_verts = reference.vertices(fit["betas"], fit["pose"][[source_row]], fit["cam"][[source_row]])
        source = reference.source(photo, source_verts)
        naive = naive_reference(SimpleNamespace(src_img=source.img.expand(len(targets), -1, -1, -1),
                                                src_cond=source.cond.expand(len(targets), -1, -1, -1),
                                                flow=reference.flow(record, source)))
        for name, values in image_scores(naive, truth, tgt_body, lpips).items():
            totals["naive"][name].append(values)
        for n in steps:
            reference.generator.load_state_dict(trained)  # the checkpoint's G again for every N
            started = time.perf_counter()
            personalize(reference, [source], n, args.lr, background=args.tune_background)
            if n:
                step_seconds.append((time.perf_counter() - started) / n)
            out = reference.run([source], verts, [None])
            out = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1
            for name, values in image_scores(out, truth, tgt_body, lpips).items():
                totals[str(n)][name].append(values)
            print(f"{video}: {n} steps, body L1 {float(np.mean(totals[str(n)]['masked_l1'][-1])):.4f} "
                  f"(naive {float(np.mean(totals['naive']['masked_l1'][-1])):.4f})", flush=True)
    result = {"checkpoint": str(args.checkpoint), "image_size": reference.size, "lr": args.lr,
              "tune_background": args.tune_background, "background": args.background,
              "workspace": str(workspace), "split": args.split,
              "videos": len(totals["naive"]["ssim"]),
              "targets": int(sum(len(v) for v in totals["naive"]["ssim"])),
              "seconds_per_step": round(float(np.mean(step_seconds)), 3) if step_seconds else None,
              "by_steps": {k: {m: round(float(np.mean(np.concatenate(v[m]))), 5) for m in METRICS}
                           for k, v in totals.items()}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
