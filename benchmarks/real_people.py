"""Self-imitation on real people: the trained LWGAN against the warp on the real clips of `make footage`.

    python benchmarks/real_people.py [--quick] [--workspace DIR] [--checkpoint PATH] [--max-frames F]
                                     [--train-dev SUBJECT ...] [--fine-tune] [--set SECTION.KEY=VALUE ...]

The six clips of `make footage` (`lwgan.footage`) become a folder data set in DIR (default
benchmarks/out/real_people), named <subject>_<view>: `single_cam01`, `single_cam02`, `single_cam03` (the
Pose2Sim man alone, three cameras of one take), `two_cam01`, `two_cam03` (the same man with a woman) and
`outdoor_jumps` (Sports2D). The pipeline's own stages make its caches there, as `dvc repro` runs them:
body, prepare, fit and correspond, with this workspace's params.yaml but `data.source: folder` over those
clips, every clip in the training split (`data.val_fraction` 0) and the weights paths made absolute. A
rerun reuses every video the stages already made. Then:

- `checkpoint` (default models/checkpoint.pt, the model `make demo` trains on the synthetic set): each
  clip's first usable frame drives through the clip's other usable frames, scored against the real ones
  by the evaluate stage's code (`lwgan.evaluate.evaluate`, self-imitation: SSIM, PSNR, LPIPS, body L1),
  the naive warp beside it; over all clips and per clip.
- `regions`: where the error is, mean |output - truth| over the channels in [-1, 1] units, on the
  target's pixels of three kinds: `known_background` (the background the background stream reads of the
  source, less the target's body), `hole` (the source's grown body, which the target shows as
  background) and `body` (the target's rendered body); for the hole also `fill`, the background stream's
  classical base alone (`train.bg_fill`), which is what the learned residual adds to.
- `composites`: the same self-imitation figures of frames put together from LWGAN's output and the
  warp's, to tell where LWGAN gains or loses against the warp: `lwgan_body` (LWGAN on the target's body,
  the warp everywhere else), `lwgan_hole` (LWGAN in the hole, the warp everywhere else), and
  `warp_with_base_fill` (the warp with the background stream's base fill in its hole instead of the
  naive reference's OpenCV Telea inpainting).
- `with_fill` (beside each model's figures): the same with that base fill in the place of the background
  stream's output (`evaluate.background: fill`; `--background fill` of `lwgan imitate` and the others).
- `body_detail` (the checkpoint's model only; 40 targets per clip): the target's body pixels split by
  whether the source shows their surface point (`seen`: the flow through the faces visible in the source
  reaches them, `lwgan.warp.flow`'s `source_face_index`) or not (`hidden`), each with its mean |output -
  truth| as above (`l1`), and that error split into its low frequencies (`low`: both images' 5x5 box means
  compared) and the rest (`high`), for LWGAN and the warp.
- `--train-dev SUBJECT` (repeatable: single, two or outdoor): the default configuration trained from
  scratch on the other subjects' clips only (`benchmarks/quality.py --workspace DIR --dev SUBJECT`) and
  scored the same way on the held-out subject's clips, the warp beside it; with `--fine-tune`, also the
  same training started from the checkpoint's G and D instead (`train.init_from`), as
  `fine_tuned_without_SUBJECT`; with `--set` (repeatable), trained with those overrides of the
  configuration instead, in folders named after them (`--set train.tsf_detail=5`: held_out_two_tsf_detail-5).

--quick: 4 targets per clip and no training. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lwgan import config, footage  # noqa: E402
from lwgan.evaluate.evaluate import EvalSettings, PairRunner, evaluate, image_scores, spread  # noqa: E402
from lwgan.metrics.lpips import load_lpips  # noqa: E402
from lwgan.nets.build import load_generator  # noqa: E402
from lwgan.nets.inpaint import fill  # noqa: E402
from lwgan.nets.masks import (  # noqa: E402
    BACKGROUND_CHANNEL,
    BACKGROUND_ERODE,
    box_mean,
    known_background,
    scaled_kernel,
)
from lwgan.train.objective import Batch  # noqa: E402
from lwgan.warp.flow import flow_valid  # noqa: E402

# workspace name of each clip: <subject>_<view>, so that `train.dev_subject` holds out a whole take
NAMES = {"portrait_cam01": "single_cam01", "portrait_cam02": "single_cam02", "back_cam03": "single_cam03",
         "two_cam01": "two_cam01", "two_cam03": "two_cam03", "outdoor_jumps": "outdoor_jumps"}
STAGES = ("body", "prepare", "fit", "correspond")
CACHES = {"frames": "data/cache/frames/frames.h5", "maps": "data/cache/maps/maps.h5",
          "smpl": "data/cache/smpl/smpl.h5", "body": "data/body/body.npz"}
WEIGHTS = {("train", "vgg_weights"), ("train", "face_weights"), ("evaluate", "lpips_backbone"),
           ("evaluate", "lpips_linear"), ("evaluate", "feature_weights")}


def workspace_params(workspace: Path) -> dict:
    """This workspace's params with the real clips as a folder data set and absolute weights paths."""
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["data"].update(source="folder", root=str(workspace / "videos"), val_fraction=0.0)
    for section, key in WEIGHTS:
        value = tree[section][key]
        if value and not Path(value).is_absolute() and "://" not in value:
            tree[section][key] = str(ROOT / value)
    return tree


def build(workspace: Path) -> None:
    """The real clips linked into WORKSPACE/videos and the caches made by the pipeline's stages."""
    clips = {name: footage.available(name) for name in NAMES}
    missing = [name for name, path in clips.items() if path is None]
    if missing:
        sys.exit(f"error: the real clips {', '.join(missing)} are missing: run `make footage` first")
    videos = workspace / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for name, path in clips.items():
        link = videos / f"{NAMES[name]}{path.suffix}"
        if not link.is_symlink() or link.resolve() != path.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(path.resolve())
    (workspace / "params.yaml").write_text(yaml.safe_dump(workspace_params(workspace), sort_keys=False))
    commands = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    for stage in STAGES:
        words = commands[stage]["cmd"].split()
        words[0:2] = [sys.executable, str(ROOT / words[1])]  # python stages/X.py -> this interpreter, repo
        print(f"[real_people] {stage}: {' '.join(words[1:2])}", flush=True)
        subprocess.run(words, cwd=workspace, env=env, check=True)


def settings(workspace: Path, checkpoint: Path, out_dir: Path, max_frames: int,
             dev: str = "") -> EvalSettings:
    """The evaluate stage's settings for WORKSPACE's clips: all of them, or held-out subject `dev`'s."""
    params = config.load(workspace / "params.yaml").evaluate
    caches = {k: workspace / v for k, v in CACHES.items()}
    return EvalSettings(frames=caches["frames"], maps=caches["maps"], smpl=caches["smpl"],
                        body=caches["body"], checkpoint=checkpoint, out_dir=out_dir, max_frames=max_frames,
                        lpips_backbone=params.lpips_backbone, lpips_linear=params.lpips_linear,
                        feature_weights="", cross_imitation=False, split="dev" if dev else "all",
                        dev_subject=dev, background="learned")


class RegionErrors:
    """Mean |output - truth| (channel mean, [-1, 1] units) of LWGAN, the warp and, on the hole, the
    background stream's base fill, on the target's known-background, hole and body pixels, with each
    region's pixel count, and the `composites` (module docstring); fed the evaluate stage's batches
    (`evaluate`'s `on_batch`), so the generator runs once."""

    def __init__(self, s: EvalSettings) -> None:
        _, train = load_generator(s.checkpoint, torch.device("cpu"))  # the kernel and fill it trained with
        self.bg_kernel = scaled_kernel(BACKGROUND_ERODE, train.image_size)
        self.fill = train.bg_fill
        self.lpips = load_lpips(s.lpips_net, s.lpips_backbone, s.lpips_linear)
        self.sums: dict[str, dict[str, float]] = {}
        self.composite_scores: dict[str, dict[str, list[float]]] = {}

    def __call__(self, batch: Batch, outputs: Mapping[str, torch.Tensor]) -> None:
        known = known_background(batch.src_cond, self.bg_kernel, batch.src_person)
        body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
        valid = torch.ones_like(body) if batch.tgt_valid is None else batch.tgt_valid
        hole = (1 - known) * (1 - body)
        regions = {"known_background": known * (1 - body) * valid, "hole": hole * valid, "body": body * valid}
        images = dict(outputs)
        images["fill"] = fill(batch.src_img * known, known, self.fill)
        for region, mask in regions.items():
            total = self.sums.setdefault(region, {"pixels": 0.0})
            total["pixels"] += float(mask.sum())
            for name, image in images.items():
                if name == "fill" and region != "hole":
                    continue
                error = (image - batch.tgt_img).abs().mean(dim=1, keepdim=True)
                total[name] = total.get(name, 0.0) + float((error * mask).sum())
        model, warp = outputs["lwgan"], outputs["naive"]
        composites = {"lwgan_body": model * body + warp * (1 - body),
                      "lwgan_hole": model * hole + warp * (1 - hole),
                      "warp_with_base_fill": images["fill"] * hole + warp * (1 - hole)}
        for name, image in composites.items():
            figures = image_scores(image, batch.tgt_img, body, self.lpips, batch.tgt_valid)
            for metric, values in figures.items():
                self.composite_scores.setdefault(name, {}).setdefault(metric, []).extend(values.tolist())

    def means(self) -> dict[str, dict[str, float]]:
        return {region: {name: round(value / max(total["pixels"], 1.0), 4) if name != "pixels" else int(value)
                         for name, value in total.items()} for region, total in self.sums.items()}

    def composite_means(self) -> dict[str, dict[str, float]]:
        return {name: {metric: round(sum(v) / len(v), 4) for metric, v in values.items()}
                for name, values in self.composite_scores.items()}


def scored(s: EvalSettings) -> dict:
    """Self-imitation of `s`, with the region errors and, as `with_fill`, the same figures when G's
    background stream gives its classical base alone (`Generator.use_background("fill")`)."""
    result = _scored(s)
    fill = _scored(dataclasses.replace(s, background="fill", out_dir=Path(s.out_dir) / "with_fill"))
    result["with_fill"] = {k: fill[k] for k in ("self_imitation", "regions", "composites", "grid")}
    return result


def _scored(s: EvalSettings) -> dict:
    regions = RegionErrors(s)
    m = evaluate(s, on_batch=regions)
    rounded = {method: {k: round(v, 4) for k, v in values.items()} for method, values in
               m["self_imitation"].items()}
    per_clip = {video: {method: {k: round(v, 4) for k, v in values.items()} for method, values in row.items()}
                for video, row in m["per_video"].items()}
    return {"pairs": m["pairs"], "clips": m["videos"], "self_imitation": rounded, "per_clip": per_clip,
            "regions": regions.means(), "composites": regions.composite_means(),
            "grid": str(Path(s.out_dir) / "grid.png")}


DETAIL_TARGETS = 40  # per clip, for body_detail
DETAIL_BOX = 5  # the box mean that splits an error into low and high frequencies


def body_detail(s: EvalSettings) -> dict[str, dict[str, dict[str, float]]]:
    """Module docstring: region -> method -> l1 / low / high, and each region's pixel count."""
    run = PairRunner(s)
    data = run.data
    sums: dict[str, dict[str, float]] = {}

    for v, video in enumerate(data.videos):
        source = int(data.sources[v][0])
        rows = data.targets[data.targets[:, 0] == v, 1]
        rows = spread(rows[rows != source], DETAIL_TARGETS)
        for batch, outputs, flows in run.batches(video, source, rows, visible=True):
            body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
            valid = torch.ones_like(body) if batch.tgt_valid is None else batch.tgt_valid
            seen = flow_valid(flows)[:, None].float() * body * valid
            truth = batch.tgt_img
            low_truth = box_mean(truth, DETAIL_BOX)
            pixel_errors = {}  # "method.kind" -> (B, 1, H, W) mean |error| over the channels
            for name, image in outputs.items():
                low = box_mean(image, DETAIL_BOX)
                errors = {"l1": image - truth, "low": low - low_truth,
                          "high": (image - low) - (truth - low_truth)}
                for kind, error in errors.items():
                    pixel_errors[f"{name}.{kind}"] = error.abs().mean(1, keepdim=True)
            for region, mask in (("seen", seen), ("hidden", body * valid - seen)):
                total = sums.setdefault(region, {"pixels": 0.0})
                total["pixels"] += float(mask.sum())
                for key, pixel in pixel_errors.items():
                    total[key] = total.get(key, 0.0) + float((pixel * mask).sum())
    out: dict[str, dict[str, dict[str, float]]] = {}
    for region, total in sums.items():
        pixels = max(total.pop("pixels"), 1.0)
        out[region] = {"pixels": {"count": int(pixels)}}
        for key, value in total.items():
            name, kind = key.split(".")
            out[region].setdefault(name, {})[kind] = round(value / pixels, 4)
    return out


def variant_name(overrides: list[str]) -> str:
    """A folder-name suffix for the `--set` overrides: ["train.tsf_detail=5"] -> "_tsf_detail-5"."""
    return "".join("_" + o.split(".", 1)[-1].replace("=", "-").replace("/", "-") for o in overrides)


def trained_on_the_others(workspace: Path, subject: str, max_frames: int, init: Path | None = None,
                          overrides: list[str] | None = None) -> dict:
    """The default configuration (with quality.py's `overrides`, SECTION.KEY=VALUE) trained on every clip
    but `subject`'s (from scratch, or from checkpoint `init`'s G and D), scored on `subject`'s."""
    overrides = overrides or []
    out = workspace / ((f"fine_tuned_without_{subject}" if init else f"held_out_{subject}")
                       + variant_name(overrides))
    started = time.perf_counter()
    sets = ([f"train.init_from={init.resolve()}"] if init else []) + overrides
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--workspace", str(workspace),
                    "--dev", subject, "--points", "1", "--max-frames", str(max_frames), "--out", str(out),
                    *(arg for value in sets for arg in ("--set", value))], cwd=ROOT, check=True)
    summary = json.loads((out / "quality.json").read_text())
    result = scored(settings(workspace, out / "run" / "model" / "checkpoint.pt", out / "scored", max_frames,
                             dev=subject))
    return {"set": overrides, "steps": summary["steps"], "train_minutes": summary["train_minutes"],
            "minutes_with_evaluation": round((time.perf_counter() - started) / 60, 2), **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 targets per clip, no training")
    ap.add_argument("--workspace", type=Path, default=ROOT / "benchmarks" / "out" / "real_people")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "checkpoint.pt")
    ap.add_argument("--max-frames", type=int, default=0, help="targets per clip (0 = every usable frame)")
    ap.add_argument("--train-dev", action="append", default=[], metavar="SUBJECT",
                    help="train on the other clips and score this subject's (single, two, outdoor)")
    ap.add_argument("--fine-tune", action="store_true",
                    help="with --train-dev: also train from the checkpoint's G and D (train.init_from)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                    help="with --train-dev: train with this override (quality.py --set); the held-out "
                         "folders are named after the overrides")
    args = ap.parse_args()
    if args.quick:
        args.max_frames, args.train_dev = args.max_frames or 4, []
    if args.overrides and not args.train_dev:
        sys.exit("error: --set changes the held-out trainings' configuration: give --train-dev SUBJECT too")
    if not args.checkpoint.is_file():
        sys.exit(f"error: no checkpoint at {args.checkpoint}: run `make demo` (or give --checkpoint)")
    workspace = args.workspace.resolve()
    build(workspace)
    model = scored(settings(workspace, args.checkpoint, workspace / "eval", args.max_frames))
    model["body_detail"] = body_detail(settings(workspace, args.checkpoint, workspace / "eval", 0))
    result = {"workspace": str(workspace), "checkpoint": str(args.checkpoint), "trained_model": model}
    for subject in args.train_dev:
        result[f"trained_without_{subject}"] = trained_on_the_others(workspace, subject, args.max_frames,
                                                                     overrides=args.overrides)
        if args.fine_tune:
            result[f"fine_tuned_without_{subject}"] = trained_on_the_others(
                workspace, subject, args.max_frames, args.checkpoint, args.overrides)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
