"""The SMPL cache: fitted body parameters per frame, one HDF5 shard per video (the fit stage's output).

Layout of ``videos/<video_id>.h5`` (kind ``lwgan-smpl``, schema `SCHEMA_VERSION`):

    root attrs   kind, schema_version, key (hash of frames shard, body model, fit options and keypoint
                 source), complete, video_id
    /<video_id>  attrs: split, keypoint_source, body_hash, image_size
        betas            (S,) float32      one body shape per video
        pose             (N, 72) float32   axis-angle per joint, joint 0 = global orientation (HMR convention)
        cam              (N, 3) float32    weak perspective (s, tx, ty), lwgan.geometry
        keypoints        (N, K, 3) float32 the 2D keypoints fitted (cache pixels u, v + confidence)
        status           (N,) uint8        bit flags, `lwgan.body.fitting` (0 = fitted normally)
        reprojection_px  (N,) float32      mean keypoint error of the fit, pixels
        frame            (N,) int64        position of each row in the frames cache's video
        quality/<name>   (N,) float32      per-frame quality measures (found, silhouette_iou, mpjpe_mm, ...)

``smpl.h5`` links every shard (see `lwgan.data.h5util`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lwgan.data.h5util import LazyH5
from lwgan.io import atomic_path

KIND = "lwgan-smpl"
SCHEMA_VERSION = 1
INDEX_FILE = "smpl.h5"
ARRAYS = ("betas", "pose", "cam", "keypoints", "status", "reprojection_px", "frame")


def write_smpl_shard(path: Path, video_id: str, key: str, arrays: Mapping[str, np.ndarray],
                     attrs: Mapping[str, Any], quality: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write one video's fit atomically; `arrays` must hold every name in `ARRAYS`."""
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"SMPL shard of {video_id!r} lacks {missing}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(kind=KIND, schema_version=SCHEMA_VERSION, key=key, video_id=video_id)
        group = handle.create_group(video_id)
        group.attrs.update(dict(attrs))
        for name in ARRAYS:
            group.create_dataset(name, data=np.asarray(arrays[name]), compression="gzip", shuffle=True)
        for name, values in (quality or {}).items():
            group.create_dataset(f"quality/{name}", data=np.asarray(values, np.float32))
        handle.attrs["complete"] = True
    return Path(path)


class SmplCache(LazyH5):
    """Read fitted parameters: ``cache.params(video)`` -> dict of the arrays in `ARRAYS`."""

    KIND = KIND
    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "SMPL cache"
    MAKE_HINT = "run the fit stage"

    def params(self, video: str) -> dict[str, np.ndarray]:
        group = self.group(video)
        return {name: group[name][()] for name in ARRAYS}

    def quality(self, video: str) -> dict[str, np.ndarray]:
        """Per-frame quality measures stored with the fit (may be empty)."""
        group = self.group(video)
        return {name: group["quality"][name][()] for name in group["quality"]} if "quality" in group else {}

    def info(self, video: str) -> dict[str, Any]:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.group(video).attrs.items()}

    def num_frames(self, video: str) -> int:
        return int(self.group(video)["pose"].shape[0])
