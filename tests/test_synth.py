"""The synthetic data set on disk: layout, determinism, split, ground truth against the pictures, resume."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lwgan.body.cameras import axis_angle_to_matrix
from lwgan.body.model import BodyModel
from lwgan.body.poses import euler_to_axis_angle
from lwgan.body.priors import joint_limits
from lwgan.body.sequence import project_video
from lwgan.render.raster import RasterSettings, rasterize
from lwgan.synth.synthesize import SynthOptions, synthesize

TINY = SynthOptions(subjects=2, clothes=1, frames_per_action=6, image_size=64, val_subjects=1, seed=3)
VIDEOS = ["001/1/1", "001/1/2", "002/1/1", "002/1/2"]


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.default()


@pytest.fixture(scope="module")
def dataset(body: BodyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    calls: list[tuple[int, int]] = []
    report = synthesize(TINY, body, out, progress=lambda done, total: calls.append((done, total)))
    assert report.rendered_videos == 4 and report.reused_videos == 0 and report.frames == 24
    assert calls[0] == (0, 24) and calls[-1] == (24, 24)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _gt(root: Path, video: str) -> dict[str, np.ndarray]:
    with np.load(root / "gt" / f"{video.replace('/', '_')}.npz") as data:
        return {key: data[key] for key in data.files}


def test_layout_and_counts(dataset: Path) -> None:
    for video in VIDEOS:
        images = sorted(p.name for p in (dataset / "images" / video).iterdir())
        masks = sorted(p.name for p in (dataset / "masks" / video).iterdir())
        assert images == [f"{i:04d}.jpg" for i in range(6)]
        assert masks == [f"{i:04d}.png" for i in range(6)]
        image = cv2.imread(str(dataset / "images" / video / "0000.jpg"))
        mask = cv2.imread(str(dataset / "masks" / video / "0000.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        gt = _gt(dataset, video)
        assert gt["pose"].shape == (6, 72) and gt["cam"].shape == (6, 3) and gt["betas"].shape == (10,)
        assert gt["keypoints"].shape == (6, 17, 3) and gt["joints3d"].shape == (6, 24, 3)
        assert int(gt["image_size"]) == 64 and gt["skin_tone"].dtype == np.uint8 and str(gt["outfit"])
    assert (dataset / "preview.png").is_file()
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["counts"] == {"subjects": 2, "clothes": 1, "videos": 4, "frames": 24, "train_videos": 2,
                                  "val_videos": 2}
    assert [v["video"] for v in manifest["videos"]] == VIDEOS
    assert not (dataset / ".partial").exists()


def test_split_is_by_subject(dataset: Path) -> None:
    train = (dataset / "train.txt").read_text().split()
    val = (dataset / "val.txt").read_text().split()
    assert train == VIDEOS[:2] and val == VIDEOS[2:]
    assert not {v.split("/")[0] for v in train} & {v.split("/")[0] for v in val}


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(
    dataset: Path, body: BodyModel, tmp_path: Path
) -> None:
    again = tmp_path / "b"
    synthesize(dataclasses.replace(TINY, workers=2), body, again)
    first, second = _files(dataset), _files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_pictures(dataset: Path, body: BodyModel, tmp_path: Path) -> None:
    other = tmp_path / "c"
    synthesize(dataclasses.replace(TINY, seed=4, subjects=1, val_subjects=0), body, other)
    frame = "images/001/1/1/0000.jpg"
    assert (other / frame).read_bytes() != (dataset / frame).read_bytes()


def test_masks_are_the_silhouette_of_the_ground_truth(dataset: Path, body: BodyModel) -> None:
    seen_loose = False
    for video in VIDEOS:
        gt = _gt(dataset, video)
        verts = project_video(body, gt["betas"], gt["pose"], gt["cam"])
        silhouette = rasterize(verts, body.faces, RasterSettings(64, 64)).silhouette.numpy()
        masks = np.stack([cv2.imread(str(dataset / "masks" / video / f"{i:04d}.png"), cv2.IMREAD_UNCHANGED)
                          for i in range(6)])
        # the body's silhouette, and beside it only what the video wears loose (a skirt, hanging hair)
        assert (masks[silhouette] == 255).all()
        loose = json.loads(str(gt["info"])).get("loose", {})
        extra = (masks == 255) & ~silhouette
        assert extra.any() == bool(loose), (video, loose)
        seen_loose = seen_loose or bool(loose)
        if "skirt" not in loose:  # then the extra pixels are hanging hair: in the body's upper half
            rows_extra = np.flatnonzero(extra.any(axis=(0, 2)))
            hips = np.flatnonzero(silhouette.any(axis=(0, 2)))
            assert rows_extra.size == 0 or rows_extra.max() < hips[0] + 0.55 * (hips[-1] - hips[0])
        coverage = silhouette.mean(axis=(1, 2))
        assert (coverage > 0.02).all()
        rows = np.flatnonzero(silhouette[0].any(axis=1))
        height = (rows[-1] - rows[0] + 1) / 64
        if video.endswith("/1"):  # standing in an A-pose: the person spans 55-65 % of the height
            assert 0.5 < height < 0.7
    assert seen_loose


def test_without_loose_pieces_masks_are_exactly_the_silhouette(body: BodyModel, tmp_path: Path) -> None:
    options = dataclasses.replace(TINY, subjects=1, val_subjects=0, frames_per_action=3, loose=0.0)
    synthesize(options, body, tmp_path)
    for video in ("001/1/1", "001/1/2"):
        gt = _gt(tmp_path, video)
        assert "loose" not in json.loads(str(gt["info"]))
        verts = project_video(body, gt["betas"], gt["pose"], gt["cam"])
        silhouette = rasterize(verts, body.faces, RasterSettings(64, 64)).silhouette.numpy()
        masks = np.stack([cv2.imread(str(tmp_path / "masks" / video / f"{i:04d}.png"), cv2.IMREAD_UNCHANGED)
                          for i in range(3)])
        np.testing.assert_array_equal(masks == 255, silhouette)


def test_visible_keypoints_fall_on_the_person(dataset: Path) -> None:
    visible_count = occluded_count = 0
    for video in VIDEOS:
        keypoints = _gt(dataset, video)["keypoints"]
        for i in range(6):
            mask = cv2.imread(str(dataset / "masks" / video / f"{i:04d}.png"), cv2.IMREAD_UNCHANGED)
            grown = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0  # face keypoints sit on the outline
            for u, v, visible in keypoints[i]:
                if visible:
                    visible_count += 1
                    assert grown[int(round(v)), int(round(u))], (video, i, u, v)
                else:
                    occluded_count += 1
    assert visible_count > 0 and occluded_count > 0


def test_the_turn_covers_a_full_circle(dataset: Path) -> None:
    gt = _gt(dataset, "001/1/1")
    rotation = axis_angle_to_matrix(torch.from_numpy(gt["pose"][:, :3]).double())  # (N, 3, 3)
    facing = rotation[:, :, 2].numpy()  # the body's forward axis in camera axes
    angle = np.unwrap(np.arctan2(facing[:, 0], -facing[:, 2]))  # 0 = facing the camera
    assert abs(facing[0, 2] + 1) < 1e-5  # first frame faces the camera (camera looks along +z)
    assert abs(abs(angle[-1] - angle[0]) - 2 * math.pi) < 1e-4
    assert np.all(np.diff(angle) * np.sign(angle[-1] - angle[0]) > 0)  # one way round


def test_motion_stays_within_joint_limits_and_matches_the_pose(dataset: Path) -> None:
    limits = joint_limits()
    for video in VIDEOS:
        gt = _gt(dataset, video)
        euler = gt["euler"].astype(np.float64)  # (N, 24, 3)
        assert (euler >= limits[..., 0] - 1e-4).all() and (euler <= limits[..., 1] + 1e-4).all()
        local = euler_to_axis_angle(torch.from_numpy(euler[:, 1:])).numpy().reshape(len(euler), -1)
        np.testing.assert_allclose(gt["pose"][:, 3:], local, atol=1e-5)


def test_rerun_reuses_finished_videos_and_redoes_missing_ones(
    dataset: Path, body: BodyModel, tmp_path: Path
) -> None:
    copy = tmp_path / "d"
    shutil.copytree(dataset, copy)
    before = _files(copy)
    report = synthesize(TINY, body, copy)
    assert report.rendered_videos == 0 and report.reused_videos == 4
    assert _files(copy) == before

    (copy / ".synth" / "001_1_2.json").unlink()  # as if interrupted before the marker was written
    (copy / ".partial" / "002_1_1" / "images").mkdir(parents=True)  # a half-written temporary folder
    report = synthesize(TINY, body, copy)
    assert report.rendered_videos == 1
    assert _files(copy) == before

    report = synthesize(dataclasses.replace(TINY, subjects=1, val_subjects=0), body, copy)
    assert report.rendered_videos == 0
    assert sorted(p.name for p in (copy / "images").iterdir()) == ["001"]
    assert not (copy / "gt" / "002_1_1.npz").exists()

    report = synthesize(dataclasses.replace(TINY, frames_per_action=7), body, copy)
    assert report.rendered_videos == 4  # another frame count changes every video's key


@pytest.mark.parametrize(
    ("field", "value"),
    [("subjects", 0), ("val_subjects", 2), ("image_size", 8), ("seed", -1), ("workers", 1.5),
     ("clothes", "2")],
)
def test_bad_options_name_the_key(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"synth.{field}"):
        SynthOptions(**{**dataclasses.asdict(TINY), field: value})


def test_ambient_max_softens_the_shading_as_the_light_model_says(body: BodyModel, tmp_path: Path) -> None:
    """synth.ambient_max changes only the ambient light of each video, drawn from the same point of its
    stream: with lit = a + (1 - a) * c (c in [0, 1], the same surface under the same light), a body pixel
    of the set at ambient a1 is lit1 / lit2 times the same pixel at a2 > a1, a ratio between a1 / a2 (in
    shadow) and 1 (facing the light); the background does not change. The default keeps every key."""
    base = dataclasses.replace(TINY, subjects=1, val_subjects=0, frames_per_action=2, loose=0.0,
                               image_size=128)
    hard, flat = tmp_path / "hard", tmp_path / "flat"
    synthesize(base, body, hard)
    soft = dataclasses.replace(base, ambient_max=1.0)
    assert synthesize(soft, body, flat).rendered_videos == 2  # another light: other keys
    assert synthesize(dataclasses.replace(base, ambient_max=0.55), body, hard).reused_videos == 2
    for video in ("001/1/1", "001/1/2"):
        a1, a2 = (json.loads(str(_gt(root, video)["info"]))["ambient"] for root in (hard, flat))
        u = (a1 - 0.4) / 0.15  # the stream's draw, the same in both sets
        assert 0.0 <= u <= 1.0 and a2 == pytest.approx(0.4 + 0.6 * u, abs=1e-6)
        for i in range(2):
            images = [cv2.imread(str(root / "images" / video / f"{i:04d}.jpg")).astype(np.float64)
                      for root in (hard, flat)]
            mask = cv2.imread(str(hard / "masks" / video / f"{i:04d}.png"), cv2.IMREAD_UNCHANGED) > 0
            inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            bright = inner & (images[1].min(axis=2) > 40)  # well above the JPEG's noise
            ratio = (images[0][bright] / images[1][bright]).mean(axis=1)
            assert len(ratio) > 50
            assert np.percentile(ratio, 2) > a1 / a2 - 0.05 and np.percentile(ratio, 98) < 1.05
            assert np.percentile(ratio, 5) < 0.5 * (1 + a1 / a2)  # some of the body is in the shade
            outside = ~(cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
            assert np.abs(images[0] - images[1])[outside].mean() < 1.0
