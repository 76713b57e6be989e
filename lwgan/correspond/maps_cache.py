"""The correspondence cache: per frame, what the transformation flow between any two frames needs.

Only what cannot be recomputed cheaply is stored (bytes per frame matter at iPER's 241,564 frames);
barycentrics and the conditioning map follow from these in one vectorised step each
(`lwgan.render.raster.barycentrics`, `conditioning_map`).

Layout of ``videos/<video_id>.h5`` (kind ``lwgan-maps``, schema `SCHEMA_VERSION`):

    root attrs   kind, schema_version, key (hash of the SMPL shard, body model and image size), complete
    /<video_id>  attrs: image_size, body_hash, split
        face_index  (N, H, W) int32, -1 background; one chunk per frame, shuffle + gzip
        verts_xy    (N, V, 2) uint16: projected vertex x, y in NDC as fixed point,
                    value = round((ndc + XY_OFFSET) * XY_SCALE); resolution 1/16384 NDC (~0.008 px at 256²)
        head_box    (N, 4) float32 NDC (x0, y0, x1, y1)
        frame       (N,) int64 position in the frames cache's video

``maps.h5`` links every shard. `MapsCache.records` returns `Correspondence` records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lwgan.correspond.maps import Correspondence
from lwgan.data.h5util import LazyH5
from lwgan.io import atomic_path
from lwgan.render.raster import barycentrics, conditioning_map

KIND = "lwgan-maps"
SCHEMA_VERSION = 1
INDEX_FILE = "maps.h5"
XY_OFFSET, XY_SCALE = 2.0, 16384.0  # NDC in [-2, 2) -> [0, 65536)


def encode_xy(xy: np.ndarray) -> np.ndarray:
    """(..., 2) NDC float -> uint16 fixed point (clipped to [-2, 2))."""
    return np.clip(np.round((xy + XY_OFFSET) * XY_SCALE), 0, 65535).astype(np.uint16)


def decode_xy(stored: np.ndarray) -> np.ndarray:
    """uint16 fixed point -> (..., 2) float32 NDC."""
    return stored.astype(np.float32) / XY_SCALE - XY_OFFSET


def write_maps_shard(path: Path, video_id: str, key: str, face_index: np.ndarray, verts_xy: np.ndarray,
                     head_box: np.ndarray, frame: np.ndarray, attrs: Mapping[str, Any]) -> Path:
    """Write one video's correspondence maps atomically. face_index (N, H, W) int32, verts_xy (N, V, 2)
    float NDC, head_box (N, 4), frame (N,)."""
    n, height, width = face_index.shape
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(kind=KIND, schema_version=SCHEMA_VERSION, key=key, video_id=video_id)
        group = handle.create_group(video_id)
        group.attrs.update(dict(attrs))
        group.create_dataset("face_index", data=face_index.astype(np.int32), chunks=(1, height, width),
                             compression="gzip", compression_opts=4, shuffle=True)
        xy = encode_xy(np.asarray(verts_xy))
        group.create_dataset("verts_xy", data=xy, chunks=(1, *xy.shape[1:]), compression="gzip",
                             compression_opts=4, shuffle=True)
        group.create_dataset("head_box", data=np.asarray(head_box, np.float32))
        group.create_dataset("frame", data=np.asarray(frame, np.int64))
        handle.attrs["complete"] = True
    return Path(path)


class MapsCache(LazyH5):
    """Correspondence records of cached frames, rebuilt from face index and projected vertices.

    faces (F, 3) and surface_coords (V, 3) come from the body model the cache was made with.
    """

    KIND = KIND
    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "correspondence cache"
    MAKE_HINT = "run the correspond stage"

    def __init__(self, path: str | Path, faces: torch.Tensor, surface_coords: torch.Tensor) -> None:
        super().__init__(path)
        self.faces = faces.long()
        self.surface_coords = surface_coords.float()

    def num_frames(self, video: str) -> int:
        return int(self.group(video)["face_index"].shape[0])

    def records(self, video: str, indices: Sequence[int]) -> Correspondence:
        """Records of frames `indices` of `video` (B = len(indices)); depth is not stored (weak
        perspective), so verts[..., 2] is 0."""
        group = self.group(video)
        order = np.asarray(indices, dtype=np.int64)
        face_index = torch.from_numpy(np.stack([group["face_index"][i] for i in order]))  # (B, H, W)
        xy = torch.from_numpy(decode_xy(np.stack([group["verts_xy"][i] for i in order])))  # (B, V, 2)
        verts = torch.cat((xy, torch.zeros_like(xy[..., :1])), dim=-1)  # (B, V, 3)
        bary = barycentrics(face_index, verts, self.faces)
        return Correspondence(
            face_index=face_index,
            bary=bary,
            verts=verts,
            cond=conditioning_map(face_index, bary, self.faces, self.surface_coords),
            head_box=torch.from_numpy(group["head_box"][()][order]),
        )
