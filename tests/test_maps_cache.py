"""The correspondence cache: written from fitted parameters, read back as records good for the flow."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest
import torch

from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.correspond.maps import correspond, correspond_sequence
from lwgan.correspond.maps_cache import (
    INDEX_FILE,
    KIND,
    SCHEMA_VERSION,
    MapsCache,
    decode_xy,
    encode_xy,
    write_maps_shard,
)
from lwgan.data.h5util import content_key, shard_is_current, shard_path, write_index
from lwgan.render.raster import RasterSettings
from lwgan.synth.synthesize import SynthOptions, synthesize
from lwgan.warp.flow import flow, flow_valid

SIZE = 96


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    body = BodyModel.default()
    root = tmp_path_factory.mktemp("synth")
    # loose=0: no skirt or hanging hair, so that the masks are the body's silhouettes
    synthesize(SynthOptions(subjects=2, clothes=1, frames_per_action=5, image_size=SIZE, val_subjects=1,
                            loose=0.0), body, root)
    return body, root


def test_fixed_point_xy_round_trip():
    xy = np.random.default_rng(0).uniform(-1.9, 1.9, size=(50, 2)).astype(np.float32)
    assert np.abs(decode_xy(encode_xy(xy)) - xy).max() <= 0.5 / 16384 + 1e-7


def test_cache_round_trip_matches_masks_and_full_precision_flow(synthetic, tmp_path):
    body, root = synthetic
    gt = np.load(root / "gt" / "001_1_2.npz")
    maps = correspond_sequence(body, gt["betas"], gt["pose"], gt["cam"], SIZE, chunk=2)
    n = len(gt["pose"])
    assert maps["face_index"].shape == (n, SIZE, SIZE) and maps["verts_xy"].shape == (n, body.num_vertices, 2)
    for i in range(n):  # the synthetic masks are the rasteriser's silhouettes of the same parameters
        mask = cv2.imread(str(root / "masks" / "001" / "1" / "2" / f"{i:04d}.png"), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(maps["face_index"][i] >= 0, mask > 127)

    key = content_key("test", 1)
    path = write_maps_shard(shard_path(tmp_path, "v"), "v", key, maps["face_index"], maps["verts_xy"],
                            maps["head_box"], np.arange(n), {"image_size": SIZE})
    assert shard_is_current(path, KIND, SCHEMA_VERSION, key)
    assert not shard_is_current(path, KIND, SCHEMA_VERSION, content_key("other"))
    write_index(tmp_path / INDEX_FILE, KIND, SCHEMA_VERSION, ["v"], {"image_size": SIZE})
    cache = MapsCache(tmp_path / INDEX_FILE, body.faces, body.surface_coords)
    assert cache.videos == ("v",) and cache.num_frames("v") == n
    src, tgt = cache.records("v", [0]), cache.records("v", [3])

    verts = project_video(body, gt["betas"], gt["pose"], gt["cam"])
    full = correspond(verts, body.faces, body.surface_coords, body.head_mask, RasterSettings(SIZE, SIZE))
    assert torch.equal(tgt.face_index, full.face_index[3:4])
    assert torch.allclose(tgt.cond, full.cond[3:4], atol=2e-3)
    cached_flow = flow(tgt.face_index, tgt.bary, src.verts, body.faces, src.face_index)
    exact_flow = flow(full.face_index[3:4], full.bary[3:4], verts[0:1], body.faces, full.face_index[0:1])
    valid = flow_valid(exact_flow)
    assert torch.equal(flow_valid(cached_flow), valid) and valid.any()
    pixel = 2.0 / SIZE
    assert (cached_flow - exact_flow)[valid].abs().max() < 0.01 * pixel

    with h5py.File(path) as handle:  # bytes per frame at this size, compressed
        size = handle["v/face_index"].id.get_storage_size() + handle["v/verts_xy"].id.get_storage_size()
    assert size / n < 40_000


def test_stale_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs.update(kind="something-else", schema_version=1)
    with pytest.raises(Exception, match="something-else"):
        _ = MapsCache(path, torch.zeros(1, 3, dtype=torch.long), torch.zeros(3, 3)).videos


def test_barycentrics_of_a_sliver_made_collinear_by_the_fixed_point_stay_finite():
    # A face of the default body read back from the cache as three collinear points (seen on a real fit):
    # the weights must be finite, in [0, 1] and sum to 1, never NaN or extrapolated.
    from lwgan.render.raster import barycentrics

    verts = torch.tensor([[[0.0154, -0.5508, 0.0], [0.0184, -0.5508, 0.0], [0.0204, -0.5508, 0.0],
                           [-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    face_index = torch.tensor([[[0, 1], [1, -1]]], dtype=torch.int32)
    bary = barycentrics(face_index, verts, faces)
    assert torch.isfinite(bary).all()
    assert torch.allclose(bary[0, 0, 0], torch.full((3,), 1 / 3))
    covered = face_index[0] >= 0
    assert torch.allclose(bary[0][covered].sum(-1), torch.ones(int(covered.sum())))
    assert (bary >= 0).all() and (bary <= 1).all()
