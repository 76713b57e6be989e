"""The correspond stage's work: for every fitted video, the correspondence maps of every frame at the
frames cache's resolution, into the correspondence cache (`lwgan.correspond.maps_cache`), resumably:
a shard is redone only when the SMPL shard, the body model or the image size it was made from changed."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import h5py

from lwgan import keep
from lwgan.body.model import BodyModel
from lwgan.correspond import maps_cache
from lwgan.correspond.maps import correspond_sequence
from lwgan.data.h5util import (
    content_key,
    file_digest,
    remove_stale,
    shard_is_current,
    shard_path,
    write_index,
)
from lwgan.data.smpl_cache import SmplCache
from lwgan.progress import ProgressLog

log = logging.getLogger(__name__)


def release_kept(out_dir: Path) -> None:
    """Drop the kept copies (`lwgan.keep`) of the shards the cache now holds: call it once the stage has
    succeeded, when DVC is about to store the output."""
    keep.release_output(out_dir)


def build_maps(smpl_path: Path, body_path: Path, out_dir: Path, image_size: int) -> dict[str, Any]:
    """Write the correspondence cache for every video of the SMPL cache; returns the stage's metrics."""
    smpl = SmplCache(smpl_path)
    body = BodyModel.from_file(body_path)
    digest = file_digest(body_path)
    videos = smpl.videos
    keep.clean(out_dir)
    remove_stale(out_dir, keep=videos)
    progress = ProgressLog("correspond", "frames")
    total = sum(smpl.num_frames(v) for v in videos)
    done = reused = 0
    seconds = 0.0
    for video in videos:
        with h5py.File(shard_path(smpl_path.parent, video), "r") as handle:
            smpl_key = str(handle.attrs["key"])
        key = content_key(maps_cache.KIND, maps_cache.SCHEMA_VERSION, smpl_key, digest, image_size)
        path = shard_path(out_dir, video)
        n = smpl.num_frames(video)
        if keep.current_or_taken_back(out_dir, path, key, functools.partial(
                shard_is_current, path, maps_cache.KIND, maps_cache.SCHEMA_VERSION, key)):
            reused += 1
        else:
            start = time.perf_counter()
            params = smpl.params(video)
            maps = correspond_sequence(body, params["betas"], params["pose"], params["cam"], image_size)
            maps_cache.write_maps_shard(path, video, key, maps["face_index"], maps["verts_xy"],
                                        maps["head_box"], params["frame"],
                                        {"image_size": image_size, "body_hash": digest,
                                         "split": smpl.info(video).get("split", "")})
            keep.keep(out_dir, path, key)  # outlives DVC's checkout (lwgan.keep)
            seconds += time.perf_counter() - start
        done += n
        progress(done, total)
    write_index(out_dir / maps_cache.INDEX_FILE, maps_cache.KIND, maps_cache.SCHEMA_VERSION, videos,
                {"image_size": image_size, "body_hash": digest})
    stored = 0
    for video in videos:
        with h5py.File(shard_path(out_dir, video), "r") as handle:
            group = handle[video]
            stored += sum(group[name].id.get_storage_size() for name in group)
    computed = total if reused == 0 else None
    metrics = {"videos": len(videos), "videos_reused": reused, "frames": total,
               "cache_kb_per_frame": stored / 1024 / max(total, 1)}
    if computed and seconds > 0:
        metrics["ms_per_frame"] = 1000 * seconds / computed
    return metrics
