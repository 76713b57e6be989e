"""A folder of user videos: discovery, bad files, motion boxes, frame selection, the automatic split and
preparing with worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _toy import ToyVideo, write_video_file

from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.data.folder import auto_split, video_id_for
from lwgan.data.prepare import PrepareOptions, prepare

SIZE = 40
CLIPS = {
    "walk": ToyVideo(frames=10, height=64, width=96, seed=1, blob_size=(0.15, 0.5), travel=(0.2, 0.7)),
    "dance__take_1": ToyVideo(frames=9, height=72, width=72, seed=2, blob_size=(0.2, 0.5), travel=(0.4, 0.7)),
}


def build_folder(root: Path) -> Path:
    write_video_file(CLIPS["walk"], root / "walk.mp4")
    write_video_file(CLIPS["dance__take_1"], root / "dance" / "take 1.avi", fourcc="MJPG")
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(b"")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return build_folder(tmp_path / "videos")


def folder_options(root: Path, **kw) -> PrepareOptions:
    return PrepareOptions(source="folder", root=root, image_size=SIZE, **kw)


def test_prepare_folder(folder, tmp_path):
    out = tmp_path / "out"
    report = prepare(folder_options(folder, max_failure_fraction=0.5), out)
    assert [v.video_id for v in report.videos] == ["dance__take_1", "walk"]
    failed = {Path(p.path).name: p.reason for p in report.failed}
    assert set(failed) == {"broken.mp4", "empty.mp4"}
    assert "cannot open" in failed["broken.mp4"] and "empty (0 bytes)" in failed["empty.mp4"]
    assert [Path(p.path).name for p in report.ignored] == ["notes.txt"]
    assert report.failed_fraction == 0.5
    report.raise_for_failures()  # exactly at the limit: allowed

    cache = FramesCache(out / "frames.h5")
    for video in report.videos:
        clip = CLIPS[video.video_id]
        assert cache.num_frames(video.video_id) == clip.frames
        assert video.box_method == "motion" and video.source_size == (clip.height, clip.width)
        x0, y0, side = video.crop_box
        ux0, uy0, ux1, uy1 = clip.union_box()
        assert x0 <= ux0 + 2 and y0 <= uy0 + 2 and x0 + side >= ux1 - 2 and y0 + side >= uy1 - 2
    # the split is by name over every video file found, usable or not
    split = auto_split(["broken", "dance__take_1", "empty", "walk"], 0.2)
    assert {v.video_id: v.split for v in report.videos} == {v: split[v] for v in ("dance__take_1", "walk")}


def test_frame_step_and_limit(folder, tmp_path):
    report = prepare(folder_options(folder, frame_step=2, max_frames_per_video=3, max_failure_fraction=1.0),
                     tmp_path / "out")
    cache = FramesCache(tmp_path / "out" / "frames.h5")
    for video in ("walk", "dance__take_1"):
        np.testing.assert_array_equal(cache.frame_index(video), [0, 2, 4])
    assert report.num_frames == 6


def test_workers_give_the_same_frames(folder, tmp_path):
    one = prepare(folder_options(folder, max_failure_fraction=1.0), tmp_path / "one")
    two = prepare(folder_options(folder, max_failure_fraction=1.0, workers=2), tmp_path / "two")
    assert [v.video_id for v in two.videos] == [v.video_id for v in one.videos]
    assert {Path(p.path).name for p in two.failed} == {"broken.mp4", "empty.mp4"}
    a, b = FramesCache(tmp_path / "one" / "frames.h5"), FramesCache(tmp_path / "two" / "frames.h5")
    for video in a.videos:
        n = a.num_frames(video)
        np.testing.assert_array_equal(a.frames(video, range(n)), b.frames(video, range(n)))


def test_folder_without_videos_is_an_error(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match="no video files under"):
        prepare(folder_options(tmp_path / "docs"), tmp_path / "out")


def test_output_folder_inside_the_root_is_not_read(folder):
    out = folder / "prepared"
    prepare(folder_options(folder, max_failure_fraction=1.0), out)
    report = prepare(folder_options(folder, max_failure_fraction=1.0), out)
    assert report.num_reused == 2 and not any("prepared" in p.path for p in report.ignored)


def test_auto_split_is_deterministic_stable_and_near_the_fraction():
    ids = [f"clip_{i:04d}" for i in range(2000)]
    split = auto_split(ids, 0.2)
    assert split == auto_split(list(reversed(ids)), 0.2)
    assert 0.17 < sum(s == "val" for s in split.values()) / len(ids) < 0.23
    more = auto_split(ids + ["extra_1", "extra_2"], 0.2)
    assert all(more[v] == split[v] for v in ids)  # adding videos never moves the others
    assert sorted(auto_split(["a", "b"], 0.2).values()) == ["train", "val"]
    assert set(auto_split(["a", "b", "c"], 0.0).values()) == {"train"}


@pytest.mark.parametrize(("relative", "video_id"), [
    ("walk.mp4", "walk"), ("dance/take 1.avi", "dance__take_1"), ("a/b/c.d.mkv", "a__b__c.d"),
    ("é t.mp4", "__t"),
])
def test_video_ids(relative, video_id):
    assert video_id_for(Path(relative)) == video_id


def test_truncated_video_keeps_its_decodable_frames(tmp_path):
    root = tmp_path / "videos"
    write_video_file(ToyVideo(frames=12, seed=3), root / "cut.avi", fourcc="MJPG")
    data = (root / "cut.avi").read_bytes()
    (root / "cut.avi").write_bytes(data[: len(data) // 2])
    report = prepare(folder_options(root), tmp_path / "out")
    (video,) = report.videos
    assert 0 < video.num_frames < 12
    assert any("truncated" in note for note in video.notes)


def test_static_video_falls_back_to_a_centred_square(tmp_path):
    root = tmp_path / "videos"
    write_video_file(ToyVideo(frames=6, height=64, width=96, travel=(0.3, 0.3)), root / "still.mp4")
    (video,) = prepare(folder_options(root), tmp_path / "out").videos
    assert video.box_method == "centre" and video.crop_box == (16, 0, 64)
    assert any("no consistent moving foreground" in note for note in video.notes)
