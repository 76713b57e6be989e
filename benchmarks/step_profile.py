"""Where a CPU training step's time goes: data, G, D, the feature networks, backward, the optimisers.

    python benchmarks/step_profile.py [--quick] [--steps N] [--set train.KEY=VALUE ...] [--bf16]
                                      [--channels-last]

Runs the train stage's step (the same networks, objective and loader as `lwgan.train.train.train`, built
from params.yaml and the workspace caches: `dvc repro correspond` makes them) for N steps after two of
warm-up, timing each part on the wall clock (CPU work is synchronous): waiting for the loader, G's
forward, L_G's forward split into D, the perceptual network (VGG), the face network and the rest, L_G's
backward, G's optimiser, L_D's forward, backward and optimiser. The backward passes cannot be split by
module on the clock, so the feature networks' share of L_G's backward is measured apart: their forward
and backward on the step's images with gradients, less their forward. --bf16 runs the step under CPU
bfloat16 autocast, --channels-last puts the networks and images in channels-last memory (the CUDA path's
two speed-ups), to measure whether they pay on this CPU.
The last line of stdout is one JSON object: ms per step of each part, the step total and the shares.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lwgan import config  # noqa: E402
from lwgan.nets import Generator, PatchDiscriminator  # noqa: E402
from lwgan.nets.build import net_options  # noqa: E402
from lwgan.train.objective import Batch, Objective, feature_losses  # noqa: E402
from lwgan.train.pairs import PairDataset, PairOptions  # noqa: E402
from lwgan.train.train import loss_weights  # noqa: E402

CACHES = {"frames": "data/cache/frames/frames.h5", "maps": "data/cache/maps/maps.h5",
          "smpl": "data/cache/smpl/smpl.h5", "body": "data/body/body.npz"}


class Clock:
    """Accumulates wall time per part; modules get hooks that time their forward."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)
        self.on = False

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        if self.on:
            self.ms[name] += (now - since) * 1000.0
        return now

    def time_forward(self, module: torch.nn.Module, name: str) -> None:
        started: list[float] = []

        def before(*_: object) -> None:
            started.append(time.perf_counter())

        def after(*_: object) -> None:  # returns None: a hook's return value would replace the output
            self.add(name, started.pop())

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--bf16", action="store_true", help="CPU bfloat16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    steps = 6 if args.quick else args.steps
    params = config.load(args.params, config.parse_assignments(args.overrides))
    p = params.train
    caches = {k: ROOT / v for k, v in CACHES.items()}
    missing = [str(v) for v in caches.values() if not v.exists()]
    if missing:
        sys.exit(f"error: {missing[0]} does not exist; run `dvc repro correspond` first")
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    torch.manual_seed(params.seed)

    dataset = PairDataset(caches["frames"], caches["maps"], caches["smpl"], caches["body"],
                          PairOptions(image_size=p.image_size, source_frames=p.source_frames,
                                      visible_faces=p.visible_faces, augment=p.augment, split="train",
                                      seed=params.seed))
    loader = torch.utils.data.DataLoader(dataset, batch_size=p.batch_size, shuffle=True, drop_last=True,
                                         num_workers=p.workers, prefetch_factor=4 if p.workers else None,
                                         multiprocessing_context="spawn" if p.workers else None)
    generator, discriminator = Generator(net_options(p)), PatchDiscriminator(net_options(p))
    perceptual, face, _ = feature_losses(p)
    objective = Objective(loss_weights(p), p.image_size, perceptual, face)
    if args.channels_last:
        for module in (generator, discriminator, objective):
            module.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(generator.parameters(), lr=p.lr_g, betas=p.betas_g)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=p.lr_d, betas=p.betas_d)
    clock = Clock()
    clock.time_forward(objective.perceptual, "L_G forward: perceptual net")
    if objective.face is not None:
        clock.time_forward(objective.face, "L_G forward: face net")
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=args.bf16)

    batches = iter(loader)
    step_ms = []
    feature_backward = 0.0
    for step in range(steps + 2):
        clock.on = step >= 2
        t0 = t = time.perf_counter()
        try:
            items = next(batches)
        except StopIteration:
            batches = iter(loader)
            items = next(batches)
        t = clock.add("data (waiting for the loader)", t)
        batch = Batch.from_items(items, torch.device("cpu"), channels_last=args.channels_last)
        discriminator.requires_grad_(False)
        with autocast:
            out = objective.generate(generator, batch)
            t = clock.add("G forward", t)
            loss_g = objective.generator_loss(out, batch, discriminator)
        t = clock.add("L_G forward (all)", t)
        opt_g.zero_grad(set_to_none=True)
        loss_g.value.backward()
        t = clock.add("L_G backward (G and the feature nets)", t)
        opt_g.step()
        t = clock.add("G optimiser", t)
        discriminator.requires_grad_(True)
        with autocast:
            loss_d = objective.discriminator_loss(discriminator, batch.tgt_img, out.tgt, batch.tgt_cond)
        t = clock.add("L_D forward", t)
        opt_d.zero_grad(set_to_none=True)
        loss_d.value.backward()
        t = clock.add("L_D backward", t)
        opt_d.step()
        t = clock.add("D optimiser", t)
        if clock.on:
            step_ms.append((t - t0) * 1000.0)
            # the feature networks' part of L_G's backward, on this step's images
            fake = out.tgt.detach().requires_grad_(True)
            clock.on = False  # not a part of the step
            with autocast:
                value = objective.perceptual(fake, batch.tgt_img)[0].value
                if objective.face is not None:
                    value = value + objective.face(fake, batch.tgt_img, batch.tgt_head_box,
                                                   batch.tgt_face_kp).value
            s = time.perf_counter()
            value.backward()
            feature_backward += (time.perf_counter() - s) * 1000.0
    clock.on = False
    n = len(step_ms)
    ms = {k: v / n for k, v in clock.ms.items()}
    # L_D's share inside L_G's forward: D's forward on the fakes is what is left after the feature nets,
    # G's losses themselves being elementwise
    features = ms.get("L_G forward: perceptual net", 0.0) + ms.get("L_G forward: face net", 0.0)
    ms["L_G forward: D and the elementwise terms"] = ms.pop("L_G forward (all)") - features
    ms["of which the feature nets' backward"] = feature_backward / n
    total = sum(step_ms) / n
    shares = {k: round(v / total, 3) for k, v in ms.items() if not k.startswith("of which")}
    print(f"{'part':48s} {'ms/step':>9s} {'share':>6s}")
    for k, v in ms.items():
        print(f"{k:48s} {v:9.1f} {v / total:6.1%}")
    print(f"{'step (wall clock)':48s} {total:9.1f}")
    print(json.dumps({"steps": n, "image_size": p.image_size, "batch_size": p.batch_size,
                      "base_width": p.base_width, "threads": torch.get_num_threads(), "bf16": args.bf16,
                      "channels_last": args.channels_last, "step_ms": round(total, 1),
                      "ms": {k: round(v, 1) for k, v in ms.items()}, "shares": shares}))


if __name__ == "__main__":
    main()
