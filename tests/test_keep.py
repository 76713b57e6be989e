"""The keep folder (lwgan.keep): links where the file system has them, copies where not, and release."""

from __future__ import annotations

import os

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
    assert keep.release_same(output, unit) == 1  # its own bytes only; run c's unfinished work stays
    assert not same.exists() and other.exists()
    assert (output.parent / ".lwgan-keep" / "models" / "checkpoint.pt.run-c").exists()
    assert keep.release_same(output, unit2) == 1 and not other.exists()
