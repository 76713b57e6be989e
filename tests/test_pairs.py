"""Training pairs read from real tiny caches (synthesise -> prepare -> fit -> correspond): shapes, purity of
an item in (seed, epoch, index), the source rule, status flags, the flow against a direct computation and
against the images, flip augmentation, DataLoader workers, errors; and the step-indexed batch sampler."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from _small import Caches, build_caches
from torch.utils.data import DataLoader, default_collate

from lwgan.body.fitting import LOW_CONFIDENCE, NO_PERSON
from lwgan.body.model import BodyModel
from lwgan.correspond.maps_cache import MapsCache
from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.data.h5util import shard_path
from lwgan.data.shard import FRAMES_FILE
from lwgan.render.raster import barycentrics
from lwgan.train.pairs import ColorJitter, PairDataset, PairOptions, StepBatchSampler
from lwgan.warp.flow import flow, flow_valid, resize_flow, warp

SIDE = 64  # the caches' side
TRAIN = ("001_1_1", "001_1_2")


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Caches:
    return build_caches(tmp_path_factory.mktemp("pairs"), SIDE)


def dataset(c: Caches, image_size: int = SIDE, smpl: Path | None = None, frames: Path | None = None,
            **options) -> PairDataset:
    return PairDataset(frames or c.frames, c.maps, smpl or c.smpl, c.body, PairOptions(image_size, **options))


def with_status(c: Caches, folder: Path, flags: dict[str, dict[int, int]]) -> Path:
    """A copy of the SMPL cache with status bits set: {video: {row: bits}}; returns its index file."""
    shutil.copytree(c.smpl.parent, folder)
    for video, rows in flags.items():
        with h5py.File(shard_path(folder, video), "r+") as handle:
            status = handle[video]["status"][()]
            for row, bits in rows.items():
                status[row] |= bits
            handle[video]["status"][...] = status
    return folder / c.smpl.name


def assert_items_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_items_have_the_documented_shapes_ranges_and_dtypes(caches):
    ds = dataset(caches, 32, augment=True)
    assert ds.videos == TRAIN and len(ds) == 12 and ds.targets.shape == (12, 2)
    item = ds[(2, 5)]
    shapes = {"src_img": (3, 32, 32), "tgt_img": (3, 32, 32), "src_cond": (4, 32, 32),
              "tgt_cond": (4, 32, 32), "flow": (32, 32, 2), "src_head_box": (4,), "tgt_head_box": (4,),
              "tgt_face_kp": (5, 3), "src_valid": (1, 32, 32), "tgt_valid": (1, 32, 32), "index": ()}
    assert {k: tuple(v.shape) for k, v in item.items()} == shapes
    assert item["src_valid"].eq(1).all() and item["tgt_valid"].eq(1).all()  # the synthetic crops never pad
    assert all(v.dtype == torch.float32 for k, v in item.items() if k != "index")
    assert item["index"].dtype == torch.int64 and int(item["index"]) == 5
    for name in ("src_img", "tgt_img"):
        assert item[name].min() >= -1 and item[name].max() <= 1 and item[name].std() > 0.1
    for name in ("src_cond", "tgt_cond"):
        assert item[name].min() >= 0 and item[name].max() <= 1
    batch = default_collate([ds[(0, 0)], ds[(0, 1)]])
    assert batch["flow"].shape == (2, 32, 32, 2) and batch["index"].tolist() == [0, 1]
    assert len(dataset(caches, split="val")) == 12 and len(dataset(caches, split="all")) == 24


def test_a_dev_subject_moves_one_training_person_out_of_training_and_never_touches_validation(caches):
    val = dataset(caches, split="val").videos
    dev = dataset(caches, split="dev", dev_subject="001")
    assert dev.videos == TRAIN and len(dev) == 12  # the person's training videos, every usable frame
    assert dataset(caches, split="val", dev_subject="001").videos == val
    with pytest.raises(DataError, match="no usable frames in split 'train'"):  # its only training person
        dataset(caches, dev_subject="001")
    assert dataset(caches, dev_subject="009").videos == TRAIN  # another person: training is unchanged
    with pytest.raises(DataError, match="no usable frames in split 'dev'"):
        dataset(caches, split="dev", dev_subject=val[0].split("_")[0])  # a validation person is not dev
    with pytest.raises(ValueError, match="dev_subject"):
        PairOptions(SIDE, split="dev")


def test_an_item_is_a_pure_function_of_seed_epoch_and_index(caches):
    ds, again = dataset(caches, augment=True), dataset(caches, augment=True)
    assert_items_equal(ds[(3, 7)], again[(3, 7)])
    assert_items_equal(ds[7], ds[(0, 7)])
    assert not torch.equal(ds[(0, 7)]["tgt_img"], ds[(1, 7)]["tgt_img"]), "epochs draw anew"
    assert ds.draw(0, 7) != dataset(caches, augment=True, seed=1).draw(0, 7)
    plain = dataset(caches)
    assert len({plain.draw(epoch, 7).src for epoch in range(20)}) > 1
    # Items must not read the global random states (numpy's legacy one included).
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    first = plain[(4, 2)]
    np.random.seed(1)  # noqa: NPY002
    torch.manual_seed(1)
    assert_items_equal(first, plain[(4, 2)])


def test_the_source_is_one_of_the_first_k_usable_frames_of_the_targets_video(caches):
    ds = dataset(caches, source_frames=3)
    for index, (video_pos, row) in enumerate(ds.targets):
        seen = set()
        for epoch in range(30):
            draw = ds.draw(epoch, index)
            assert draw.video == ds.videos[video_pos] and draw.tgt == row and not draw.flip
            seen.add(draw.src)
        assert seen == {0, 1, 2}


def test_flagged_frames_are_never_source_or_target(caches, tmp_path):
    smpl = with_status(caches, tmp_path / "smpl", {"001_1_1": {0: NO_PERSON, 2: NO_PERSON},
                                                   "001_1_2": {1: LOW_CONFIDENCE}})
    ds = dataset(caches, smpl=smpl, source_frames=3)
    rows = {video: [int(r) for p, r in ds.targets if ds.videos[p] == video] for video in ds.videos}
    assert rows == {"001_1_1": [1, 3, 4, 5], "001_1_2": [0, 1, 2, 3, 4, 5]}
    sources = {ds.draw(epoch, i).src for i in range(4) for epoch in range(30)}
    assert sources == {1, 3, 4}, "the first three usable frames, flagged ones left out"
    with pytest.raises(ValueError, match="row 2 of video '001_1_1'"):
        ds.pair("001_1_1", 1, 2)
    strict = dataset(caches, smpl=smpl, skip_status=NO_PERSON | LOW_CONFIDENCE)
    assert [int(r) for p, r in strict.targets if strict.videos[p] == "001_1_2"] == [0, 2, 3, 4, 5]


@pytest.mark.parametrize("visible", [False, True])
def test_the_flow_equals_a_direct_computation_from_the_records(caches, visible):
    body = BodyModel.from_file(caches.body)
    records = MapsCache(caches.maps, body.faces, body.surface_coords).records("001_1_2", [1, 4])
    direct = flow(records.face_index[1:2], records.bary[1:2], records.verts[0:1], body.faces,
                  source_face_index=records.face_index[0:1] if visible else None)
    assert flow_valid(direct).sum() > 20
    full = dataset(caches, visible_faces=visible).pair("001_1_2", 1, 4, visible_flow=True)
    assert torch.equal(full["flow"], direct[0])
    # beside it, from the same records, the flow through the faces the source shows, whatever the option
    seen = flow(records.face_index[1:2], records.bary[1:2], records.verts[0:1], body.faces,
                source_face_index=records.face_index[0:1])
    assert torch.equal(full["visible_flow"], seen[0])
    assert flow_valid(seen).sum() < flow_valid(flow(records.face_index[1:2], records.bary[1:2],
                                                    records.verts[0:1], body.faces)).sum()
    assert "visible_flow" not in dataset(caches).pair("001_1_2", 1, 4)
    assert torch.equal(full["tgt_cond"], records.cond[1]) and torch.equal(full["src_head_box"],
                                                                           records.head_box[0])
    half = dataset(caches, 32, visible_faces=visible).pair("001_1_2", 1, 4)
    assert torch.equal(half["flow"], resize_flow(direct, (32, 32))[0])
    # the flow alone, without the frames, by the dataset's option or by the argument
    assert torch.equal(dataset(caches, visible_faces=visible).pair_flow("001_1_2", 1, 4), direct[0])
    assert torch.equal(dataset(caches, visible_faces=not visible).pair_flow("001_1_2", 1, 4,
                                                                         visible_faces=visible), direct[0])


def test_downsampled_images_and_conditions(caches):
    item = dataset(caches, 32).pair("001_1_2", 2, 5)
    frame = FramesCache(caches.frames).frame("001_1_2", 5)
    small = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA)
    assert torch.equal(item["tgt_img"], torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1)
    background = item["tgt_cond"][3]
    assert set(background.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(background == 0, flow_valid(item["flow"][None])[0]), "one rule for body pixels"
    assert (item["tgt_cond"][:3, background == 1] == 0).all()
    codes = item["tgt_cond"][:3, background == 0]
    assert codes.max() <= 1 and codes.min() >= 0 and codes.sum(0).min() > 0


def test_warping_the_source_reproduces_the_target_on_the_body(caches):
    ds = dataset(caches, source_frames=6)
    generator = torch.Generator().manual_seed(0)
    errors, shuffled = [], []
    for video in ds.videos:
        for src in range(6):
            for tgt in range(6):
                item = ds.pair(video, src, tgt)
                t = item["flow"][None]
                valid = flow_valid(t)[0]
                order = torch.randperm(int(valid.sum()), generator=generator)
                mixed = t.clone()
                mixed[0][valid] = t[0][valid][order]
                for out, grid in ((errors, t), (shuffled, mixed)):
                    diff = (warp(item["src_img"][None], grid)[0] - item["tgt_img"]).abs().mean(0)
                    out.append(diff[valid])
    error, baseline = torch.cat(errors).mean(), torch.cat(shuffled).mean()
    assert error < 0.7 * baseline, (float(error), float(baseline))


def test_visible_faces_leave_at_least_as_many_pixels_outside(caches):
    every, visible = dataset(caches), dataset(caches, visible_faces=True)
    fewer = 0
    for src in range(3):
        for tgt in range(6):
            a = flow_valid(every.pair("001_1_2", src, tgt)["flow"][None])
            b = flow_valid(visible.pair("001_1_2", src, tgt)["flow"][None])
            assert not (b & ~a).any()
            fewer += int(b.sum() < a.sum())
    assert fewer > 0


@pytest.mark.parametrize("size", [SIDE, 32])
def test_flipping_the_pair_commutes_with_the_flow(caches, size):
    ds = dataset(caches, size)
    plain, flipped = ds.pair("001_1_1", 1, 3), ds.pair("001_1_1", 1, 3, flip=True)
    for name in ("src_img", "tgt_img", "src_cond", "tgt_cond"):  # area sums add in mirrored order
        assert torch.allclose(flipped[name], plain[name].flip(-1), atol=1e-6), name
    assert torch.equal(flipped["tgt_cond"][3], plain["tgt_cond"][3].flip(-1))
    x0, y0, x1, y1 = plain["tgt_head_box"]
    assert torch.equal(flipped["tgt_head_box"], torch.stack((-x1, y0, -x0, y1)))
    # Face keypoints (nose, left eye, right eye, left ear, right ear) lie in the head box; in the mirror
    # image x changes sign and the person's left and right swap.
    kp = plain["tgt_face_kp"]
    assert ((kp[:, 0] >= x0) & (kp[:, 0] <= x1) & (kp[:, 1] >= y0) & (kp[:, 1] <= y1)).all()
    mirror_kp = kp[[0, 2, 1, 4, 3]] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(flipped["tgt_face_kp"], mirror_kp, atol=1e-6)
    valid = flow_valid(plain["flow"][None])[0]
    assert valid.sum() > 20 and torch.equal(flow_valid(flipped["flow"][None])[0], valid.flip(-1))
    mirrored = plain["flow"].flip(1) * torch.tensor([-1.0, 1.0])
    assert (flipped["flow"] - mirrored)[valid.flip(-1)].abs().max() < 1e-6
    # The flipped records are those of the mirrored geometry: barycentrics recomputed from them agree.
    body = BodyModel.from_file(caches.body)
    rec = MapsCache(caches.maps, body.faces, body.surface_coords).records("001_1_1", [1, 3])
    face_index, verts = rec.face_index.flip(2), rec.verts * torch.tensor([-1.0, 1.0, 1.0])
    bary = barycentrics(face_index, verts, body.faces)
    direct = resize_flow(flow(face_index[1:2], bary[1:2], verts[0:1], body.faces), (size, size))[0]
    assert (flipped["flow"] - direct)[valid.flip(-1)].abs().max() < 1e-5


def test_colour_jitter_is_one_pointwise_map_for_both_images(caches):
    ds = dataset(caches, augment=True)
    draws = [ds.draw(epoch, 3) for epoch in range(40)]
    assert 0 < sum(d.flip for d in draws) < 40
    for d in draws:
        factors = (d.jitter.brightness, d.jitter.contrast, d.jitter.saturation)
        assert all(0.9 <= f <= 1.1 for f in factors) and all(0.95 <= g <= 1.05 for g in d.jitter.gain)
    jitter = ColorJitter(1.1, 1.1, 0.9, (1.05, 1.0, 0.95))
    plain, jittered = ds.pair("001_1_2", 0, 4), ds.pair("001_1_2", 0, 4, jitter=jitter)
    for name in ("src_img", "tgt_img"):
        assert torch.allclose(jittered[name], jitter.apply(plain[name]), atol=1e-6)
        assert jittered[name].min() >= -1 and jittered[name].max() <= 1
        assert (jittered[name] - plain[name]).abs().mean() > 0.01
    for name in ("flow", "src_cond", "tgt_cond", "tgt_head_box"):
        assert torch.equal(jittered[name], plain[name])
    colours = torch.rand(3, 1, 1) * 2 - 1  # the same colour in either image maps to the same colour
    assert torch.equal(jitter.apply(colours.expand(3, 2, 2))[:, 0, 0], jitter.apply(colours)[:, 0, 0])
    item = ds[(5, 3)]
    d = ds.draw(5, 3)
    assert_items_equal(item, {**ds.pair(d.video, d.src, d.tgt, d.flip, d.jitter), "index": item["index"]})


def test_channel_shuffle_is_one_rgb_order_for_both_images_and_keeps_the_draws_before_it(caches):
    plain_ds, ds = dataset(caches, augment=True), dataset(caches, augment=True, shuffle_channels=True)
    draws = [ds.draw(epoch, 3) for epoch in range(60)]
    orders = {d.jitter.channels for d in draws}
    assert orders == set(itertools.permutations(range(3)))  # all six orders occur
    for epoch, d in enumerate(draws):  # the flip and the jitter factors are those without the shuffle
        base = plain_ds.draw(epoch, 3)
        assert (d.src, d.flip) == (base.src, base.flip)
        assert dataclasses.replace(d.jitter, channels=(0, 1, 2)) == base.jitter
    order = (2, 0, 1)
    jitter = ColorJitter(1.0, 1.0, 1.0, (1.0, 1.0, 1.0), order)
    plain, shuffled = ds.pair("001_1_2", 0, 4), ds.pair("001_1_2", 0, 4, jitter=jitter)
    for name in ("src_img", "tgt_img"):  # output channel i is input channel order[i], in both images
        assert np.allclose(shuffled[name].numpy(), plain[name].numpy()[list(order)], atol=1e-6)
    assert torch.equal(shuffled["flow"], plain["flow"])


def test_hue_rotation_turns_the_yiq_chroma_of_both_images_as_scikit_image_does(caches):
    from skimage.color import rgb2yiq, yiq2rgb

    angle = 2.0
    jitter = ColorJitter(1.0, 1.0, 1.0, (1.0, 1.0, 1.0), hue=angle)
    ds = dataset(caches, augment=True, hue_rotation=True)
    plain, turned = ds.pair("001_1_2", 0, 4), ds.pair("001_1_2", 0, 4, jitter=jitter)
    for name in ("src_img", "tgt_img"):
        rgb = (plain[name].numpy().transpose(1, 2, 0) + 1.0) / 2.0
        yiq = rgb2yiq(rgb)
        c, s = np.cos(angle), np.sin(angle)
        i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
        yiq[..., 1], yiq[..., 2] = c * i - s * q, s * i + c * q
        want = np.clip(yiq2rgb(yiq), 0.0, 1.0) * 2.0 - 1.0
        got = turned[name].numpy().transpose(1, 2, 0)
        assert np.abs(got - want).max() < 2e-3
        assert np.abs(got - plain[name].numpy().transpose(1, 2, 0)).mean() > 0.01  # colours did turn
    assert torch.equal(turned["flow"], plain["flow"])
    grey = torch.full((3, 2, 2), 0.3)  # the grey axis stays where it is
    assert torch.allclose(jitter.apply(grey), grey, atol=1e-6)


def test_recolour_share_recolours_that_share_of_the_pairs_and_keeps_the_other_draws(caches):
    plain_ds = dataset(caches, augment=True)
    shuffled_ds = dataset(caches, augment=True, shuffle_channels=True)
    both_ds = dataset(caches, augment=True, shuffle_channels=True, hue_rotation=True)
    half_ds = dataset(caches, augment=True, hue_rotation=True, recolour_share=0.5)
    none_ds = dataset(caches, augment=True, shuffle_channels=True, hue_rotation=True, recolour_share=0.0)
    n = 400
    for epoch in range(n):
        base, shuffled, both = plain_ds.draw(epoch, 3), shuffled_ds.draw(epoch, 3), both_ds.draw(epoch, 3)
        assert (both.src, both.flip, both.jitter.channels) == (shuffled.src, shuffled.flip,
                                                              shuffled.jitter.channels)
        assert dataclasses.replace(both.jitter, hue=0.0) == shuffled.jitter
        assert -np.pi <= both.jitter.hue < np.pi
        none = none_ds.draw(epoch, 3)
        assert none.jitter == base.jitter  # share 0: the factors drawn, nothing recoloured
        half = half_ds.draw(epoch, 3)
        assert dataclasses.replace(half.jitter, hue=0.0) == base.jitter
    turned = [half_ds.draw(epoch, 3).jitter.hue != 0.0 for epoch in range(n)]
    assert abs(sum(turned) / n - 0.5) < 0.1  # binomial(400, 0.5): sd 0.025
    hues = np.array([both_ds.draw(epoch, 3).jitter.hue for epoch in range(n)])
    assert np.histogram(hues, bins=4, range=(-np.pi, np.pi))[0].min() > n / 8  # spread over the circle


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_deliver_the_in_process_tensors(caches, context):
    ds = dataset(caches, 32, augment=True, visible_faces=True)
    assert all(reader._file is None for reader in (ds.frames, ds.maps, ds.smpl)), "no handle left open"
    sampler = StepBatchSampler(len(ds), batch_size=2, start_step=5, num_steps=4, seed=3)
    keys = [key for batch in sampler for key in batch]
    loader = DataLoader(ds, batch_size=2, num_workers=2, sampler=keys, multiprocessing_context=context)
    batches = list(loader)
    assert len(batches) == 4
    by_steps = list(DataLoader(ds, batch_sampler=sampler, num_workers=2, multiprocessing_context=context))
    for got, again, step_keys in zip(batches, by_steps, [sampler.keys(s) for s in range(5, 9)], strict=True):
        assert_items_equal(got, default_collate([ds[key] for key in step_keys]))
        assert_items_equal(got, again)


def test_errors_name_the_file_and_the_value(caches, tmp_path):
    with pytest.raises(DataError, match=rf"{caches.frames}.*side 64.*image_size 48"):
        dataset(caches, 48)
    frames = tmp_path / "frames"
    shutil.copytree(caches.frames.parent, frames)
    with h5py.File(frames / FRAMES_FILE, "r+") as handle:
        del handle["001_1_2"]
    with pytest.raises(DataError, match=rf"'001_1_2' of the correspondence cache {caches.maps}.*{frames}"):
        dataset(caches, frames=frames / FRAMES_FILE)
    smpl = with_status(caches, tmp_path / "smpl", {v: dict.fromkeys(range(6), NO_PERSON)
                                                   for v in ("002_1_1", "002_1_2")})
    with pytest.raises(DataError, match=rf"no usable frames in split 'val' of {caches.maps}"):
        dataset(caches, smpl=smpl, split="val")
    assert len(dataset(caches, smpl=smpl, split="all")) == 12
    with pytest.raises(ValueError, match="split"):
        PairOptions(32, split="test")


def test_the_ranks_of_a_global_batch_partition_it():
    ranks = [StepBatchSampler(23, batch_size=3, rank=r, world_size=2, seed=5) for r in range(2)]
    assert ranks[0].steps_per_epoch == 3
    for step in range(7):
        keys = [key for sampler in ranks for key in sampler.keys(step)]
        assert len(keys) == len(set(keys)) == 6 and len({epoch for epoch, _ in keys}) == 1
    epoch = [key for step in range(3) for sampler in ranks for key in sampler.keys(step)]
    assert len(set(epoch)) == 18 and all(0 <= i < 23 for _, i in epoch)


def test_keys_of_a_step_are_what_iterating_from_zero_yields():
    from_zero = list(StepBatchSampler(10, batch_size=2, seed=1, num_steps=12))
    for start in (0, 4, 5, 11):
        resumed = StepBatchSampler(10, batch_size=2, seed=1, start_step=start, num_steps=12 - start)
        assert list(resumed) == from_zero[start:] and len(resumed) == 12 - start
        assert resumed.keys(start) == from_zero[start]
    assert [epoch for epoch, _ in from_zero[4]] == [0, 0] and [epoch for epoch, _ in from_zero[5]] == [1, 1]
    epochs = [sorted(i for batch in from_zero[e * 5 : (e + 1) * 5] for _, i in batch) for e in range(2)]
    assert epochs[0] == epochs[1] == list(range(10))
    orders = [[i for batch in from_zero[e * 5 : (e + 1) * 5] for _, i in batch] for e in range(2)]
    assert orders[0] != orders[1], "each epoch reshuffles"
    endless = StepBatchSampler(10, batch_size=2, seed=1)
    assert next(iter(endless)) == from_zero[0]
    with pytest.raises(TypeError):
        len(endless)


def test_too_few_items_for_one_global_batch_is_refused():
    with pytest.raises(ValueError, match=r"5 items.*batch_size 3 x world_size 2"):
        StepBatchSampler(5, batch_size=3, world_size=2)


def test_a_cross_video_pair_takes_its_source_from_the_other_video(caches):
    body = BodyModel.from_file(caches.body)
    maps = MapsCache(caches.maps, body.faces, body.surface_coords)
    source, target = maps.records("001_1_1", [2]), maps.records("001_1_2", [4])
    data = dataset(caches)
    crossed = data.pair("001_1_2", 2, 4, src_video="001_1_1")
    assert torch.equal(crossed["flow"], flow(target.face_index, target.bary, source.verts, body.faces)[0])
    assert torch.equal(data.pair_flow("001_1_2", 2, 4, src_video="001_1_1"), crossed["flow"])
    assert torch.equal(crossed["src_img"], data.pair("001_1_1", 2, 2)["src_img"])
    assert torch.equal(crossed["tgt_img"], data.pair("001_1_2", 4, 4)["tgt_img"])
    assert torch.equal(crossed["src_cond"], source.cond[0])
    assert torch.equal(crossed["tgt_cond"], target.cond[0])
