"""The frames cache reader: API, exactness against a slow reference, DataLoader workers, the contact
sheet and damaged or foreign files."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from _toy import ToyVideo, write_iper_tree
from torch.utils.data import DataLoader, Dataset

from lwgan.body.model import BodyModel
from lwgan.data.cache import FramesCache
from lwgan.data.crop import CropBox, apply_crop
from lwgan.data.errors import DataError
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.sheet import contact_sheet, sheet_size, tile_sheet
from lwgan.synth.synthesize import SynthOptions, synthesize

SIZE = 32
VIDEOS = {"001_1_1": ToyVideo(seed=1, frames=6), "001_1_2": ToyVideo(seed=2, frames=5),
          "002_1_1": ToyVideo(seed=3, frames=7)}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cache")
    root = base / "iper"
    write_iper_tree(root, VIDEOS, ["001/1/1", "002/1/1"], ["001/1/2"])
    outs = {}
    for codec in ("jpeg", "lzf"):
        prepare(PrepareOptions(source="iper", root=root, image_size=SIZE, codec=codec), base / codec)
        outs[codec] = base / codec / "frames.h5"
    outs["root"] = root
    return outs


def test_reader_api(prepared):
    cache = FramesCache(prepared["jpeg"])
    assert cache.videos == ("001_1_1", "001_1_2", "002_1_1") and len(cache) == 3
    assert cache.split("val") == ("001_1_2",) and cache.split("train") == ("001_1_1", "002_1_1")
    assert cache.num_frames("002_1_1") == 7
    np.testing.assert_array_equal(cache.frame_index("001_1_2"), np.arange(5))
    batch = cache.frames("002_1_1", [6, 0, 3])
    assert batch.shape == (3, SIZE, SIZE, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], cache.frame("002_1_1", -1))
    info = cache.info("001_1_1")
    assert info.box_method == "mask" and info.source_size == (96, 64) and info.num_frames == 6
    assert cache.attrs["codec"] == "jpeg" and cache.attrs["image_size"] == SIZE
    with pytest.raises(IndexError, match="out of range"):
        cache.frame("001_1_1", 6)
    with pytest.raises(KeyError, match="009_1_1"):
        cache.frame("009_1_1", 0)


def test_lzf_frames_equal_a_slow_reference_and_jpeg_is_close(prepared):
    lossless, jpeg = FramesCache(prepared["lzf"]), FramesCache(prepared["jpeg"])
    for video in lossless.videos:
        crop = CropBox(*lossless.info(video).crop_box)
        subject, cloth, action = video.split("_")
        for i, number in enumerate(lossless.frame_index(video)):
            folder = prepared["root"] / "images" / subject / cloth / action
            source = cv2.imread(str(folder / f"{number:04d}.jpg"))
            want = cv2.cvtColor(apply_crop(source, crop, SIZE), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(lossless.frame(video, i), want)
            err = np.mean((jpeg.frame(video, i).astype(float) - want) ** 2)
            assert 10 * np.log10(255**2 / max(err, 1e-9)) > 30  # PSNR, dB


def test_reader_pickles_without_its_handle_and_reads_from_any_directory(prepared, tmp_path, monkeypatch):
    cache = FramesCache(prepared["jpeg"])
    first = cache.frame("001_1_1", 2)
    assert cache._file is not None
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._file is None and not clone._open_videos
    monkeypatch.chdir(tmp_path)  # external links resolve next to frames.h5, not in the working directory
    np.testing.assert_array_equal(clone.frame("001_1_1", 2), first)


class FrameDataset(Dataset):
    def __init__(self, cache: FramesCache) -> None:
        self.cache = cache
        self.items = [(v, i) for v in cache.videos for i in range(cache.num_frames(v))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> torch.Tensor:
        video, i = self.items[k]
        return torch.from_numpy(self.cache.frame(video, i))


@pytest.mark.parametrize("start", ["fork", "spawn"])  # fork inherits the open handle, spawn pickles
def test_dataloader_with_two_workers(prepared, start):
    cache = FramesCache(prepared["jpeg"])
    dataset = FrameDataset(cache)
    want = torch.stack([dataset[k] for k in range(len(dataset))])  # the parent has the file open now
    loader = DataLoader(dataset, batch_size=4, num_workers=2, shuffle=False, multiprocessing_context=start)
    got = torch.cat(list(loader))
    assert torch.equal(got, want) and got.shape == (18, SIZE, SIZE, 3)


def test_contact_sheet(prepared, tmp_path):
    cache = FramesCache(prepared["jpeg"])
    path = tmp_path / "sheet.png"
    sheet = contact_sheet(cache, path, tile=48, columns=2)
    assert sheet_size(3, 48, 2) == (2 * (48 + 18), 96)
    assert sheet.shape == (*sheet_size(3, 48, 2), 3)
    on_disk = cv2.imread(str(path))
    assert on_disk.shape == sheet.shape
    np.testing.assert_array_equal(cv2.cvtColor(on_disk, cv2.COLOR_BGR2RGB), sheet)
    # the val video's label band is orange, the train videos' green
    assert tuple(sheet[48 + 1, 48 + 1]) == (198, 90, 0) and tuple(sheet[48 + 1, 1]) == (46, 125, 50)


def test_tile_sheet_lays_out_resized_tiles_over_their_label_bands():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (30 + 7 * k, 40, 3), dtype=np.uint8) for k in range(5)]
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (10, 10, 10), (250, 250, 0)]
    sheet = tile_sheet([(im, f"t{k}", c) for k, (im, c) in enumerate(zip(images, colours, strict=True))],
                       tile=32, columns=3)
    assert sheet.shape == (*sheet_size(5, 32, 3), 3) == (2 * (32 + 18), 96, 3)
    for k, image in enumerate(images):
        y, x = divmod(k, 3)
        y, x = y * (32 + 18), x * 32
        np.testing.assert_array_equal(sheet[y:y + 32, x:x + 32],
                                      cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA))
        assert tuple(sheet[y + 32 + 1, x + 31]) == colours[k]  # the band's far corner, clear of the text
    assert (sheet[50:, 64:] == 255).all()  # the short row's empty place stays white
    with pytest.raises(ValueError, match="at least one tile"):
        tile_sheet([])


def test_data_kind_tells_the_synthetic_set_from_footage(prepared, tmp_path, monkeypatch):
    """A cache of lwgan's synthetic set says "synthetic", found from any working directory when its root
    was given relative to where prepare ran; an iPER tree says "footage"; a root that has gone,
    "unknown"."""
    assert FramesCache(prepared["jpeg"]).data_kind() == "footage"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    synthesize(SynthOptions(subjects=2, clothes=1, frames_per_action=2, image_size=SIZE, val_subjects=1,
                            workers=1), BodyModel.default(), Path("raw"))
    prepare(PrepareOptions(source="iper", root=Path("raw"), image_size=SIZE, workers=1), Path("cache"))
    assert FramesCache("cache/frames.h5").data_kind() == "synthetic"
    monkeypatch.chdir(tmp_path)
    assert FramesCache(work / "cache" / "frames.h5").data_kind() == "synthetic"
    (work / "raw").rename(tmp_path / "moved")
    assert FramesCache(work / "cache" / "frames.h5").data_kind() == "unknown"


def test_missing_damaged_and_foreign_files(tmp_path, prepared):
    with pytest.raises(DataError, match="does not exist"):
        FramesCache(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.h5"):
        _ = FramesCache(tmp_path / "junk.h5").videos
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f.attrs.update(kind="lwgan.frames", schema_version=0)
    with pytest.raises(DataError, match="schema version 0"):
        _ = FramesCache(tmp_path / "old.h5").videos
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs.update(kind="lwgan-maps", schema_version=1)
    with pytest.raises(DataError, match="other.h5 is not a frames cache: it is a 'lwgan-maps' file"):
        _ = FramesCache(tmp_path / "other.h5").videos
    shard = prepared["jpeg"].parent / "videos" / "001_1_1.h5"
    single = FramesCache(shard)  # a shard is a cache of one video
    assert single.videos == ("001_1_1",) and single.num_frames("001_1_1") == 6
