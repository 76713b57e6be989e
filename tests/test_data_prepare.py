"""prepare() on a tiny iPER-layout tree with bad inputs: what is prepared, skipped and why, the crop, the
index, resuming after kill -9 and after damaged shards, stale shards, and the failure fraction."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from _toy import BLOB_BGR, ToyVideo, write_iper_tree

from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.data.iper import parse_list_line
from lwgan.data.prepare import PrepareOptions, prepare, release_kept
from lwgan.data.report import TooManyFailures
from lwgan.io import tree_sha256

ROOT = Path(__file__).resolve().parents[1]
SIZE = 48

# On disk: six videos. Lists: one listed video is missing (009_1_1), one video is unlisted (004_1_1).
VIDEOS = {
    "001_1_1": ToyVideo(seed=1),
    "001_1_2": ToyVideo(seed=2, travel=(0.25, 0.5)),
    "002_1_1": ToyVideo(seed=3),                    # frame 3 is a corrupt jpg
    "002_1_2": ToyVideo(seed=4),                    # frame 5 has another size
    "003_1_1": ToyVideo(seed=5, travel=(0.5, 0.75)),  # no masks: the box comes from motion
    "004_1_1": ToyVideo(seed=6),                    # on disk, in no list
}
TRAIN = ["001/1/1", "001_1_2", "002/1/1.mp4", "002/1/2", "009/1/1"]
VAL = ["003/1/1"]
PREPARED = ["001_1_1", "001_1_2", "002_1_1", "002_1_2", "003_1_1"]


def build_iper_tree(root: Path) -> Path:
    write_iper_tree(root, VIDEOS, TRAIN, VAL)
    (root / "images/002/1/1/0003.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(root / "images/002/1/2/0005.jpg"), np.zeros((50, 40, 3), np.uint8))
    for mask in (root / "masks/003/1/1").iterdir():
        mask.unlink()
    (root / "masks/003/1/1").rmdir()
    return root


def options(root: Path, **kw) -> PrepareOptions:
    return PrepareOptions(source="iper", root=root, image_size=SIZE, **kw)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_iper_tree(tmp_path / "iper")


def shard_times(out: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in (out / "videos").glob("*.h5")}


def test_prepare_iper_tree(tree, tmp_path):
    out = tmp_path / "out"
    events = []
    report = prepare(options(tree), out, progress=events.append)

    assert [v.video_id for v in report.videos] == PREPARED
    assert [(p.video_id, "listed in train.txt" in p.reason) for p in report.failed] == [("009_1_1", True)]
    assert "009" in report.failed[0].path
    assert [(p.video_id, "not listed" in p.reason) for p in report.ignored] == [("004_1_1", True)]
    assert report.failed_fraction == pytest.approx(1 / 6)
    by_id = {v.video_id: v for v in report.videos}
    assert by_id["003_1_1"].split == "val" and by_id["001_1_1"].split == "train"
    assert {v: by_id[v].box_method for v in PREPARED} == {**dict.fromkeys(PREPARED, "mask"),
                                                         "003_1_1": "motion"}
    # bad frames are left out, named, and the rest of the video is kept
    (bad,) = by_id["002_1_1"].dropped
    assert bad.path.endswith("0003.jpg") and "cannot be decoded" in bad.reason
    (odd,) = by_id["002_1_2"].dropped
    assert odd.path.endswith("0005.jpg") and "40x50" in odd.reason and "64x96" in odd.reason
    assert len(report.dropped_frames) == 2

    # progress: one event per video at least, frames done rising to the total
    assert events[-1].videos_done == 5 and events[-1].frames_done == events[-1].frames_total == 38
    assert [e.frames_done for e in events] == sorted(e.frames_done for e in events)

    cache = FramesCache(out / "frames.h5")
    assert cache.videos == tuple(PREPARED)
    assert cache.split("val") == ("003_1_1",)
    assert {v: cache.num_frames(v) for v in PREPARED} == {**dict.fromkeys(PREPARED, 8), "002_1_1": 7,
                                                         "002_1_2": 7}
    np.testing.assert_array_equal(cache.frame_index("002_1_1"), [0, 1, 2, 4, 5, 6, 7])
    frame = cache.frame("001_1_1", 0)
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8

    for video_id in PREPARED:
        x0, y0, side = by_id[video_id].crop_box
        ux0, uy0, ux1, uy1 = VIDEOS[video_id].union_box()
        slack = 2 if by_id[video_id].box_method == "motion" else 0
        assert x0 <= ux0 + slack and y0 <= uy0 + slack
        assert x0 + side >= ux1 - slack and y0 + side >= uy1 - slack
        # and in the pixels: the red blob is inside every cropped frame, clear of its border
        blob_rgb = np.array(BLOB_BGR[::-1])
        for image in cache.frames(video_id, range(cache.num_frames(video_id))):
            red = np.abs(image.astype(int) - blob_rgb).max(axis=2) < 40
            assert red.sum() > 0.05 * SIZE * SIZE
            assert not red[0].any() and not red[-1].any() and not red[:, 0].any() and not red[:, -1].any()

    index = json.loads((out / "index.json").read_text())
    assert index["splits"] == {"train": PREPARED[:4], "val": ["003_1_1"]}
    assert {v: e["num_frames"] for v, e in index["videos"].items()} == \
        {v: cache.num_frames(v) for v in PREPARED}
    assert index["num_frames"] == 38 and index["options"]["image_size"] == SIZE
    saved = json.loads((out / "report.json").read_text())
    assert saved["failed"][0]["video_id"] == "009_1_1" and saved["metrics"]["frames_dropped"] == 2


def test_missing_root_is_an_immediate_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=str(missing)):
        prepare(options(missing), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no iPER videos"):
        prepare(options(tmp_path / "empty"), tmp_path / "out")


def test_failure_fraction_raises_after_everything_is_written(tree, tmp_path):
    out = tmp_path / "out"
    report = prepare(options(tree, max_failure_fraction=0.1), out)
    for name in ("frames.h5", "index.json", "report.json"):
        assert (out / name).is_file()
    assert len(FramesCache(out / "frames.h5").videos) == 5
    with pytest.raises(TooManyFailures, match="1 of 6 videos failed") as info:
        report.raise_for_failures()
    assert "009" in str(info.value) and info.value.report is report
    # the message names the param and a value that lets 1 of 6 pass (1/6 rounded up to a twentieth)
    suggested = re.search(r"-S data\.max_failure_fraction=([0-9.]+)", str(info.value))
    assert suggested and float(suggested.group(1)) == 0.2
    prepare(options(tree, max_failure_fraction=float(suggested.group(1))), out).raise_for_failures()


def test_resume_redoes_only_deleted_and_damaged_shards(tree, tmp_path):
    out = tmp_path / "out"
    prepare(options(tree), out)
    release_kept(out)  # as the stage does once it has succeeded: nothing kept to take back
    before = shard_times(out)
    (out / "videos/001_1_2.h5").unlink()
    (out / "videos/002_1_2.h5").write_bytes(b"half a shard")
    (out / "videos/.001_1_1.abcd.tmp.h5").write_bytes(b"left by a killed run")
    report = prepare(options(tree), out)
    assert sorted(report.prepared_ids) == ["001_1_2", "002_1_2"]
    assert report.num_reused == 3
    after = shard_times(out)
    assert {v for v in PREPARED if after[v] != before[v]} == {"001_1_2", "002_1_2"}
    assert not list((out / "videos").glob(".*"))
    # a reused video reports what it reported when it was made
    assert [p.path for p in {v.video_id: v for v in report.videos}["002_1_1"].dropped][0].endswith("0003.jpg")


def test_changed_options_or_source_redo_the_affected_shards(tree, tmp_path):
    out = tmp_path / "out"
    prepare(options(tree), out)
    assert set(prepare(options(tree, crop_margin=0.3), out).prepared_ids) == set(PREPARED)
    # options that do not change the frames do not redo anything
    assert prepare(options(tree, crop_margin=0.3, max_failure_fraction=0.5), out).prepared_ids == ()
    for path in (tree / "images").rglob("*.jpg"):  # new modification times, same bytes: nothing to redo
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert prepare(options(tree, crop_margin=0.3), out).prepared_ids == ()
    copy = tmp_path / "copy"  # a copy of the same files (a fresh clone) has the same fingerprints
    shutil.copytree(tree, copy)
    prepare(options(copy, crop_margin=0.3), tmp_path / "again")

    def fingerprints(folder: Path) -> dict[str, str]:
        out = {}
        for shard in sorted((folder / "videos").glob("*.h5")):
            with h5py.File(shard, "r") as handle:
                out[shard.stem] = handle[shard.stem].attrs["source_fingerprint"]
        return out

    assert fingerprints(tmp_path / "again") == fingerprints(out) and len(fingerprints(out)) == 5
    image = cv2.imread(str(tree / "images/001/1/1/0002.jpg"))
    cv2.imwrite(str(tree / "images/001/1/1/0002.jpg"), 255 - image)
    assert prepare(options(tree, crop_margin=0.3), out).prepared_ids == ("001_1_1",)
    assert fingerprints(out)["001_1_1"] != fingerprints(tmp_path / "again")["001_1_1"]
    (tree / "val.txt").write_text("003/1/1\n001/1/2\n")  # moved from train to val: its split changed
    (tree / "train.txt").write_text("001/1/1\n002/1/1\n002/1/2\n")
    report = prepare(options(tree, crop_margin=0.3), out)
    assert report.prepared_ids == ("001_1_2",)
    assert FramesCache(out / "frames.h5").info("001_1_2").split == "val"


def test_resume_after_kill_9(tree, tmp_path):
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from lwgan.data.prepare import PrepareOptions, prepare
        def progress(event):
            if event.videos_done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        options = PrepareOptions(source="iper", root=Path({str(tree)!r}), image_size={SIZE})
        prepare(options, Path({str(out)!r}), progress=progress)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    assert len(list((out / "videos").glob("*.h5"))) == 2 and not (out / "frames.h5").exists()
    report = prepare(options(tree), out)
    assert report.num_reused == 2 and len(report.prepared_ids) == 3


def test_iper_video_release_form(tmp_path):
    root = tmp_path / "release"
    write_iper_tree(root, {"001_1_1": ToyVideo(seed=1), "002_3_2": ToyVideo(seed=2)}, ["001_1_1.mp4"],
                    ["002/3/2"], masks=False, as_mp4=True)
    report = prepare(options(root), tmp_path / "out")
    assert [(v.video_id, v.split, v.num_frames, v.fps) for v in report.videos] == \
        [("001_1_1", "train", 8, 25.0), ("002_3_2", "val", 8, 25.0)]
    assert not report.failed
    with h5py.File(tmp_path / "out/videos/001_1_1.h5") as f:
        assert f["001_1_1"].attrs["source_kind"] == "file"


def test_no_lists_means_an_automatic_split(tmp_path):
    root = tmp_path / "iper"
    write_iper_tree(root, {f"00{i}_1_1": ToyVideo(seed=i, frames=3) for i in range(1, 6)}, [], [])
    (root / "train.txt").unlink()
    (root / "val.txt").unlink()
    report = prepare(options(root, val_fraction=0.4), tmp_path / "out")
    splits = {v.video_id: v.split for v in report.videos}
    assert len(splits) == 5 and set(splits.values()) == {"train", "val"}
    assert prepare(options(root, val_fraction=0.4), tmp_path / "out2").videos[0].split == \
        splits[report.videos[0].video_id]


@pytest.mark.parametrize(("line", "video_id"), [
    ("001/1/1", "001_1_1"), ("001_1_1", "001_1_1"), ("001/1/1.mp4", "001_1_1"), (" 012/10/2/ \n", "012_10_2"),
    ("images/001/1/1", "001_1_1"), ("001_1_1.mp4", "001_1_1"), ("garbage", None), ("001/1", None),
])
def test_parse_list_line(line, video_id):
    assert parse_list_line(line) == video_id


def test_list_problems_are_reported(tree, tmp_path):
    (tree / "val.txt").write_text("003/1/1\n001/1/1\nnot a video\n")  # 001_1_1 is also in train.txt
    report = prepare(options(tree, max_failure_fraction=1.0), tmp_path / "out")
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in report.failed}
    assert "listed in both" in reasons["val.txt:2"] and "does not name a video" in reasons["val.txt:3"]
    assert "001_1_1" not in [v.video_id for v in report.videos]


def test_invalid_option_names_the_option(tmp_path):
    with pytest.raises(ValueError, match="frame_step = 0"):
        PrepareOptions(source="iper", root=tmp_path, frame_step=0)
    with pytest.raises(ValueError, match="source = 'youtube'"):
        PrepareOptions(source="youtube", root=tmp_path)  # type: ignore[arg-type]


def test_empty_frame_folder_fails_with_its_name(tmp_path):
    root = tmp_path / "iper"
    write_iper_tree(root, {"001_1_1": ToyVideo(seed=1, frames=3)}, ["001/1/1", "005/1/1"], [])
    empty = root / "images/005/1/1"
    empty.mkdir(parents=True)
    (empty / "Thumbs.db").write_bytes(b"not an image")
    report = prepare(options(root, max_failure_fraction=1.0), tmp_path / "out")
    assert [v.video_id for v in report.videos] == ["001_1_1"]
    (problem,) = report.failed
    assert problem.video_id == "005_1_1" and str(empty) in problem.reason
    assert "no readable image files" in problem.reason


def test_same_data_gives_the_same_bytes(tree, tmp_path):
    """What DVC hashes carries no run state: a rerun that reuses every shard, and a first run into another
    folder, leave every file of the cache byte for byte as the first run wrote it."""
    first = prepare(options(tree), tmp_path / "a")
    written = tree_sha256(tmp_path / "a")
    again = prepare(options(tree), tmp_path / "a")
    assert again.num_reused == len(first.videos) > 0 and tree_sha256(tmp_path / "a") == written
    prepare(options(tree), tmp_path / "b")
    assert tree_sha256(tmp_path / "b") == written
    saved = json.loads((tmp_path / "a" / "report.json").read_text())
    assert "seconds" not in saved["metrics"] and "reused" not in saved["videos"][0]
    assert first.metrics()["seconds"] > 0  # the timings are still there for the metrics file
