"""The keep folder (lwgan.keep): links where the file system has them, copies where not, and release."""

from __future__ import annotations

import os
import shutil

import pytest

from lwgan import keep


def test_kept_units_are_links_outside_the_output_and_come_back(tmp_path):
    output = tmp_path / "out"
    unit = output / "videos" / "a.h5"
    unit.parent.mkdir(parents=True)
    unit.write_bytes(b"finished work")
    kept = keep.keep(output, unit, "k1")
    assert kept == tmp_path / ".lwgan-keep" / "out" / "videos" / "a.h5.k1"
    assert os.path.samefile(kept, unit)
    unit.unlink()  # DVC's checkout removes it (or replaces it by another file)
    assert keep.take_back(output, unit, "k1") and unit.read_bytes() == b"finished work"
    assert not keep.take_back(output, unit, "k2")
    with pytest.raises(ValueError):
        keep.kept_path(output, tmp_path / "elsewhere.h5", "k1")


def test_without_hard_links_a_copy_is_kept_and_released_by_its_bytes(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    output = tmp_path / "models"
    unit = output / "checkpoint.pt"
    output.mkdir()
    unit.write_bytes(b"step 9")
    same = keep.keep(output, unit, "run-a")
    assert not os.path.samefile(same, unit) and same.read_bytes() == b"step 9"
    unit2 = output / "other.pt"
    unit2.write_bytes(b"another")
    other = keep.keep(output, unit2, "run-b")
    (output.parent / ".lwgan-keep" / "models" / "checkpoint.pt.run-c").write_bytes(b"step 4 of run c")
    unit2.write_bytes(b"changed since")  # replaced by another run's file: its kept copy is not the same
    assert keep.release_output(output) == 1  # its own bytes only; run c's unfinished work stays
    assert not same.exists() and other.exists()
    assert (output.parent / ".lwgan-keep" / "models" / "checkpoint.pt.run-c").exists()


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    from _small import build_caches

    return build_caches(tmp_path_factory.mktemp("keep") / "caches", 64, frames_per_action=2)


def test_frames_shards_dvc_checkout_removed_are_taken_back_not_decoded_again(caches, tmp_path):
    from lwgan.data.prepare import PrepareOptions, prepare, release_kept

    options = PrepareOptions(source="iper", root=caches.frames.parents[1] / "synthetic", image_size=64,
                             workers=1)
    out = tmp_path / "frames"
    first = prepare(options, out)
    assert first.num_reused == 0 and first.videos
    shards = {p.name: p.read_bytes() for p in (out / "videos").glob("*.h5")}
    shutil.rmtree(out)  # `dvc exp run`'s forced checkout, the stage having been killed before DVC stored it
    again = prepare(options, out)
    assert again.num_reused == len(first.videos) == len(shards)
    assert {p.name: p.read_bytes() for p in (out / "videos").glob("*.h5")} == shards
    kept = tmp_path / ".lwgan-keep" / "frames" / "videos"
    assert len(list(kept.iterdir())) == len(shards)
    release_kept(out)
    assert not list(kept.iterdir())


def test_correspondence_shards_dvc_checkout_removed_are_taken_back_not_rebuilt(caches, tmp_path):
    from lwgan.correspond.correspond import build_maps, release_kept

    c = caches
    out = tmp_path / "maps"
    first = build_maps(c.smpl, c.body, out, 64)
    assert first["videos_reused"] == 0
    shards = {p.name: p.read_bytes() for p in (out / "videos").glob("*.h5")}
    shutil.rmtree(out)  # `dvc exp run`'s forced checkout, the stage having been killed before DVC stored it
    again = build_maps(c.smpl, c.body, out, 64)
    assert again["videos_reused"] == first["videos"] == len(shards) > 0
    assert {p.name: p.read_bytes() for p in (out / "videos").glob("*.h5")} == shards
    kept = tmp_path / ".lwgan-keep" / "maps" / "videos"
    assert len(list(kept.iterdir())) == len(shards)
    release_kept(out)
    assert not list(kept.iterdir())
