"""Speed of the three tasks (`lwgan imitate / transfer / view`) from a checkpoint.

    python benchmarks/synthesis.py [--quick]

On a synthetic clip at 256² (made in-process; the photo is another person's first frame):
fit_ms_per_frame: detection (MediaPipe), crop and body fit (params.yaml's fit section) per driving frame.
cpu_frames_per_s: synthesised frames per second of motion imitation (target meshes posed and rasterised
    at the render side, flows, G's transfer stream; the source's SID and background streams once), batch 8,
    at the default configuration (params.yaml: 64², base width 16) and at the paper's (256², base width 64,
    6 residual blocks).
transfer_frames_per_s: the same for appearance transfer (two sources in one Liquid Warping Block), default.
cpu_peak_rss_gb: peak resident memory of this process.
With CUDA, cuda_frames_per_s at both configurations.
Speed does not depend on the weights, so the checkpoints hold freshly initialised networks.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from lwgan import config
from lwgan.apps import media, tasks
from lwgan.apps.person import fit_person
from lwgan.apps.synthesis import Synthesizer
from lwgan.body.detect import MediaPipePeople
from lwgan.body.fitting import FitOptions
from lwgan.body.model import BodyModel
from lwgan.nets import Generator, PatchDiscriminator
from lwgan.nets.build import net_options
from lwgan.synth.synthesize import SynthOptions, synthesize
from lwgan.train import checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"image_size": 256, "base_width": 64, "res_blocks": 6, "d_layers": 4}


def make_checkpoint(path: Path, train: dict) -> Path:
    tree = config.to_dict(config.load(ROOT / "params.yaml"))
    tree["train"].update(train)
    p = config.from_dict(tree).train
    torch.manual_seed(0)
    return checkpoint.save(path, {"step": 0, "generator": Generator(net_options(p)).state_dict(),
                                  "discriminator": PatchDiscriminator(net_options(p)).state_dict(),
                                  "config": {"train": config.to_dict(p)}})


def rate(synth: Synthesizer, run, count: int) -> float:
    run(synth)  # warm-up: first allocations, kernel caches
    if synth.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(synth)
    if synth.device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short clip (8 frames instead of 32)")
    args = parser.parse_args()
    frames = 8 if args.quick else 32
    params = config.load(ROOT / "params.yaml")
    body = BodyModel.default()
    result: dict[str, object] = {"frames": frames, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesize(SynthOptions(subjects=2, clothes=1, frames_per_action=frames, image_size=256,
                                val_subjects=1, workers=1), body, root / "synthetic")
        images = root / "synthetic" / "images"
        fit = FitOptions.from_params(params.fit, footage=True)  # as the commands fit
        people = MediaPipePeople()
        default = make_checkpoint(root / "default.pt", {})
        side = Synthesizer(default, body).side
        photo = fit_person(media.read_image(images / "002" / "1" / "1" / "0000.jpg"), people, body, side,
                           params.data.crop_margin, fit)
        clip = media.read_video(images / "001" / "1" / "2")
        start = time.perf_counter()
        driving = fit_person(clip, people, body, side, params.data.crop_margin, fit)
        result["fit_ms_per_frame"] = 1000 * (time.perf_counter() - start) / len(driving)
        paper = make_checkpoint(root / "paper.pt", PAPER)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            for name, ckpt in (("default", default), ("paper", paper)):
                synth = Synthesizer(ckpt, body, device, batch_size=8)
                result[f"{device}_frames_per_s_{name}"] = rate(
                    synth, lambda s: tasks.imitate(s, photo, driving), len(driving))
        synth = Synthesizer(default, body, "cpu", batch_size=8)
        result["transfer_frames_per_s"] = rate(synth, lambda s: tasks.transfer(s, photo, photo, driving),
                                               len(driving))
    result["cpu_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
