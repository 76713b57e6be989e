"""Where inside the body a trained LWGAN and the naive warp differ: self-imitation's body L1 split into
the body's interior and its edge (the fitted mesh's pixels within `--edge` px of its silhouette), with
G's attention there.

    python benchmarks/body_error.py [--quick] [--checkpoint PATH] [--edge PX] [--max-frames F]
                                    [--dev SUBJECT]

On the evaluate stage's pairs (each validation video's first usable frame driving its other frames,
`--max-frames` targets per video evenly spread; `--dev SUBJECT` takes that training person's videos
instead, for a development run of `benchmarks/quality.py`), with the workspace caches (`dvc repro
correspond`) and a checkpoint (default models/checkpoint.pt). For LWGAN, the naive reference and LWGAN's
colour head alone (its output with the attention at the rendered mask, so the background stream does not
enter the body), each region's L1 per image in [0, 1] units averaged over the images, as the evaluate
stage's body L1 (`lwgan.metrics.image.masked_l1`); `edge_share`: the edge's share of the body's pixels;
`attention`: G's mean attention (1 = its inpainted background) in each region.
--quick: 4 targets per video. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lwgan.evaluate.evaluate import naive_reference, spread
from lwgan.metrics.image import masked_l1
from lwgan.nets.build import load_generator
from lwgan.nets.masks import BACKGROUND_CHANNEL, BACKGROUND_ERODE, erode, scaled_kernel
from lwgan.train.objective import Batch, generate
from lwgan.train.pairs import PairDataset, PairOptions

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ("body", "interior", "edge")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "checkpoint.pt")
    ap.add_argument("--edge", type=int, default=2, help="edge band width in pixels of G's image size")
    ap.add_argument("--max-frames", type=int, default=16, help="targets per video (0 = all)")
    ap.add_argument("--dev", default="", metavar="SUBJECT")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    max_frames = 4 if args.quick else args.max_frames
    torch.set_grad_enabled(False)
    generator, train = load_generator(args.checkpoint, torch.device("cpu"))
    caches = ROOT / "data" / "cache"
    data = PairDataset(caches / "frames" / "frames.h5", caches / "maps" / "maps.h5",
                       caches / "smpl" / "smpl.h5", ROOT / "data" / "body" / "body.npz",
                       PairOptions(image_size=train.image_size, split="dev" if args.dev else "val",
                                   dev_subject=args.dev, augment=False))
    bg_kernel = scaled_kernel(BACKGROUND_ERODE, train.image_size)
    l1: dict[str, dict[str, list[np.ndarray]]] = {m: {r: [] for r in REGIONS}
                                                  for m in ("lwgan", "naive", "lwgan_color_head")}
    attention: dict[str, list[float]] = {"interior": [], "edge": []}
    pixels = {"interior": 0.0, "edge": 0.0}
    pairs = 0
    for v, video in enumerate(data.videos):
        source = int(data.sources[v][0])
        rows = data.targets[data.targets[:, 0] == v, 1]
        rows = spread(rows[rows != source], max_frames)
        for start in range(0, len(rows), args.batch_size):
            items = [data.pair(video, source, int(r)) for r in rows[start:start + args.batch_size]]
            batch = Batch.from_items(torch.utils.data.default_collate(items), torch.device("cpu"))
            out = generate(generator, batch, bg_kernel)
            rendered_bg = batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
            body = 1.0 - rendered_bg
            interior = erode(body, 2 * args.edge + 1)
            masks = {"body": body, "interior": interior, "edge": body - interior}
            outputs = {"lwgan": out.tgt, "naive": naive_reference(batch), "lwgan_color_head": out.tgt_color}
            for method, image in outputs.items():
                for region, mask in masks.items():
                    l1[method][region].append(masked_l1(image, batch.tgt_img, mask, batch.tgt_valid).numpy())
            for region in ("interior", "edge"):
                mask = masks[region]
                attention[region].append(float((out.tgt_attention * mask).sum()))
                pixels[region] += float(mask.sum())
            pairs += len(items)
    result = {"checkpoint": str(args.checkpoint), "image_size": train.image_size, "edge_px": args.edge,
              "pairs": pairs, "split": f"dev {args.dev}" if args.dev else "val",
              "edge_share": round(pixels["edge"] / (pixels["edge"] + pixels["interior"]), 4),
              "attention": {r: round(sum(attention[r]) / pixels[r], 4) for r in attention},
              "l1": {m: {r: round(float(np.nanmean(np.concatenate(v))), 5) for r, v in regions.items()}
                     for m, regions in l1.items()}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
