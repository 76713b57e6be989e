"""Photo backgrounds of the synthetic set (`lwgan.synth.photos`, `synth.photos`): checked against the
photos as scikit-image's and scikit-learn's own loaders give them, and against the set drawn without them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.transform
import sklearn.datasets

from lwgan.body.model import BodyModel
from lwgan.synth.photos import PHOTOS, Photo, PhotoError, photo_background, read_photo
from lwgan.synth.synthesize import SynthOptions, photo_stream, synthesize


def _reference(name: str) -> np.ndarray:
    """The photo as its package's own loader returns it, (H, W, 3) uint8 RGB."""
    if name in ("china", "flower"):
        return sklearn.datasets.load_sample_image(f"{name}.jpg")
    if name.startswith("motorcycle"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skimage.data, name)()


def test_every_recorded_photo_is_there_and_reads_as_its_package_loads_it() -> None:
    for photo in PHOTOS:
        image = read_photo(photo)
        reference = _reference(photo.name)
        assert image.shape == reference.shape and image.dtype == np.uint8, photo.name
        # JPEG decoders may differ in the last bit or two; PNGs must match exactly
        assert np.abs(image.astype(int) - reference.astype(int)).mean() < 1.0, photo.name
        if photo.member.endswith(".png"):
            np.testing.assert_array_equal(image, reference)


def test_a_background_is_the_recorded_crop_of_the_recorded_photo() -> None:
    seen = set()
    for seed in range(12):
        size = (96, 512)[seed % 2]  # shrinking and, at the synthetic set's own size, enlarging
        image, drawn = photo_background(np.random.default_rng(seed), size, size)
        assert image.shape == (size, size, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        x0, y0, side = drawn["box"]
        crop = _reference(drawn["photo"])[y0 : y0 + side, x0 : x0 + side].astype(np.float64) / 255.0
        if drawn["mirrored"]:
            crop = crop[:, ::-1]
        expected = np.clip(skimage.transform.resize(crop, (size, size), order=3, anti_aliasing=True)
                           * np.asarray(drawn["gain"]), 0, 1)
        assert np.abs(image - expected).mean() < 0.015, (seed, drawn)  # a crop 15 px off: 0.05-0.12
        seen.add(drawn["photo"])
    assert len(seen) >= 4  # the draw ranges over the photos


def test_a_changed_or_missing_photo_is_an_error_naming_the_file() -> None:
    coffee = next(p for p in PHOTOS if p.name == "coffee")
    with pytest.raises(PhotoError, match=r"coffee\.png: sha256 .* not the recorded 0{64}"):
        read_photo(dataclasses.replace(coffee, sha256="0" * 64))
    with pytest.raises(PhotoError, match=r"nowhere\.png is missing from 'skimage'"):
        read_photo(Photo("nowhere", "skimage", "data/nowhere.png", "0" * 64))
    with pytest.raises(PhotoError, match="'no_such_package' is not installed.*synth.photos to 0"):
        read_photo(Photo("x", "no_such_package", "x.png", "0" * 64))


def test_photos_change_only_the_videos_in_front_of_a_photo(tmp_path: Path) -> None:
    body = BodyModel.default()
    plain = SynthOptions(subjects=2, clothes=1, frames_per_action=3, image_size=64, val_subjects=0, seed=5,
                         photos=0.0)
    mixed = dataclasses.replace(plain, photos=0.5)
    chosen = {s.name for s in mixed.specs() if photo_stream(s, mixed) is not None}
    assert 0 < len(chosen) < len(mixed.specs())  # this seed draws both kinds
    synthesize(plain, body, tmp_path / "plain")
    before = {v["video"]: v for v in json.loads((tmp_path / "plain" / "manifest.json").read_text())["videos"]}
    report = synthesize(mixed, body, tmp_path / "plain")  # the same folder: only photo videos are redone
    assert report.rendered_videos == len(chosen)
    after = {v["video"]: v for v in json.loads((tmp_path / "plain" / "manifest.json").read_text())["videos"]}
    for name, record in after.items():
        if name in chosen:
            assert record["background"] == "photo" and record["photo"] in {p.name for p in PHOTOS}
            assert record["content_hash"] != before[name]["content_hash"]
            with np.load(tmp_path / "plain" / "gt" / f"{name.replace('/', '_')}.npz") as gt:
                info = json.loads(str(gt["info"]))
            assert info["background"] == "photo" and info["photo"]["photo"] == record["photo"]
        else:
            assert record == before[name]
