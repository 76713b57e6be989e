"""A small synthetic data set taken through the data stages in one process: synthesise -> prepare -> fit
(ground-truth keypoints, few iterations) -> correspond. For tests and benchmarks that need real caches
without running the pipeline; the stages themselves are what `dvc repro` runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lwgan.body import load_configured
from lwgan.body.fit import FitSettings, fit_all
from lwgan.body.fitting import FitOptions
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.correspond.correspond import build_maps
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.shard import FRAMES_FILE
from lwgan.parallel import PoolOptions
from lwgan.synth.synthesize import SynthOptions, synthesize


@dataclasses.dataclass(frozen=True)
class Caches:
    """The index files of the three caches and the resolved body model."""

    frames: Path
    maps: Path
    smpl: Path
    body: Path


def build_caches(root: Path, side: int = 64, frames_per_action: int = 6, subjects: int = 2,
                 workers: int = 1) -> Caches:
    """`subjects` people (one held out for validation), one outfit, two actions, `frames_per_action`
    frames at side², under `root`."""
    synth = SynthOptions(subjects=subjects, clothes=1, frames_per_action=frames_per_action, image_size=side,
                         val_subjects=1, workers=workers)
    synthesize(synth, BodyModel.default(), root / "synthetic")
    prepare(PrepareOptions(source="iper", root=root / "synthetic", image_size=side, workers=workers),
            root / "frames")
    body = root / "body.npz"
    save_body_model(load_configured("default"), body)
    fit_all(FitSettings(frames_path=root / "frames" / FRAMES_FILE, body_path=body, out_dir=root / "smpl",
                        keypoints="ground_truth", keypoints_root=None,
                        options=FitOptions(camera_iterations=5, pose_iterations=10), overlays_per_video=0),
            PoolOptions(use_ray=False))
    build_maps(root / "smpl" / "smpl.h5", body, root / "maps", side)
    return Caches(root / "frames" / FRAMES_FILE, root / "maps" / "maps.h5", root / "smpl" / "smpl.h5", body)


# The smallest networks that are still the real ones (for a checkpoint that tests can use).
# A tiny but complete training configuration: every loss term on, 32^2 images from 64^2 caches.
TINY_ALL_TERMS = {"image_size": 32, "base_width": 4, "res_blocks": 1, "d_layers": 2, "batch_size": 2,
                  "workers": 0, "epochs_constant": 1.0, "epochs_decay": 1.0, "checkpoint_every": 3,
                  "sample_every": 4, "samples": 2, "lambda_style": 1.0}
TINY_TRAIN = {"image_size": 32, "base_width": 4, "res_blocks": 1, "d_layers": 2, "batch_size": 2,
              "workers": 0, "max_steps": 2}


def train_tiny(caches: Caches, out_dir: Path, side: int = 64, **train: object) -> Path:
    """A briefly trained checkpoint on `caches` (frames of side²): `TINY_TRAIN` updated by `train`;
    returns its path."""
    from lwgan import config
    from lwgan.train.train import TrainPaths
    from lwgan.train.train import train as run

    params = config.from_dict({"data": {"image_size": side}, "tracking": {"enabled": False},
                               "train": {**TINY_TRAIN, **train}})
    return run(params, TrainPaths(caches.frames, caches.maps, caches.smpl, caches.body, out_dir)).checkpoint
