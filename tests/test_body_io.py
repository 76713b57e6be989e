"""Body-model loading: .npz, plain pickle, official-layout SMPL pickle without chumpy/scipy, refusals."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
from _tiny_body import tiny_smpl_arrays

from lwgan.body.model_io import (
    BodyModelData,
    BodyModelError,
    load_body_model,
    make_body_model_data,
    save_body_model,
)


def _assert_matches(data: BodyModelData, arrays: dict[str, np.ndarray]) -> None:
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_allclose(getattr(data, key), arrays[key], atol=1e-6, err_msg=key)
    assert data.v_template.dtype == np.float32 and data.J_regressor.dtype == np.float32
    assert data.f.dtype == np.int64 and data.kintree_table.dtype == np.int64
    assert data.kintree_table[0, 0] == -1  # official files store 2**32 - 1 for the root's parent
    np.testing.assert_array_equal(data.kintree_table[0, 1:], arrays["kintree_table"][0, 1:])


def test_npz_round_trip_keeps_arrays_and_names(tmp_path):
    arrays = tiny_smpl_arrays()
    num_v = len(arrays["v_template"])
    data = make_body_model_data(
        {
            **arrays,
            "part_labels": np.zeros(num_v, int),
            "part_names": ("head",),
            "joint_names": [str(i) for i in range(24)],
        }
    )
    path = save_body_model(data, tmp_path / "body.npz")
    loaded = load_body_model(path)
    _assert_matches(loaded, arrays)
    assert loaded.part_names == ("head",) and loaded.joint_names == tuple(str(i) for i in range(24))
    assert loaded.source == str(path)
    assert oct(path.stat().st_mode)[-3:] == "644"


def test_plain_pickle_of_numpy_arrays(tmp_path):
    arrays = tiny_smpl_arrays()
    for protocol in (2, 4, 5):
        path = tmp_path / f"plain{protocol}.pkl"
        path.write_bytes(pickle.dumps(arrays, protocol=protocol))
        _assert_matches(load_body_model(path), arrays)


class _FakeCh:
    """Pickles like chumpy.ch.Ch: state is the instance dict minus its caches."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False

    def __getstate__(self) -> dict:
        return dict(self.__dict__)


class _FakeCsc:
    """Pickles like scipy's csc_matrix (state: data, indices, indptr, _shape, maxprint)."""

    def __init__(self, dense: np.ndarray) -> None:
        columns = [np.flatnonzero(dense[:, c]) for c in range(dense.shape[1])]
        self.indices = np.concatenate(columns).astype(np.int32)
        self.indptr = np.concatenate(([0], np.cumsum([len(c) for c in columns]))).astype(np.int32)
        self.data = np.concatenate([dense[rows, c] for c, rows in enumerate(columns)])
        self._shape = dense.shape
        self.maxprint = 50

    def __getstate__(self) -> dict:
        return dict(self.__dict__)


@pytest.fixture
def fake_official_classes(monkeypatch):
    """Stand-ins registered under chumpy's and scipy's module names, so pickle writes those names."""
    made = {}
    for module_name, base, name in (
        ("chumpy.ch", _FakeCh, "Ch"),
        ("scipy.sparse.csc", _FakeCsc, "csc_matrix"),
    ):
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            monkeypatch.setitem(
                sys.modules, ".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth]))
            )
        cls = type(name, (base,), {"__module__": module_name, "__qualname__": name})
        setattr(sys.modules[module_name], name, cls)
        made[name] = cls
    return made["Ch"], made["csc_matrix"]


def test_official_layout_pickle_loads_without_chumpy_or_scipy(tmp_path, fake_official_classes):
    ch, csc_matrix = fake_official_classes
    arrays = tiny_smpl_arrays()
    official = {
        "v_template": ch(arrays["v_template"]),
        "shapedirs": ch(arrays["shapedirs"]),
        "posedirs": arrays["posedirs"],
        "J_regressor": csc_matrix(arrays["J_regressor"]),
        "weights": ch(arrays["weights"]),
        "kintree_table": arrays["kintree_table"],
        "f": arrays["f"],
        "bs_type": "lrotmin",
        "vert_sym_idxs": np.arange(len(arrays["v_template"])),
    }
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    payload = pickle.dumps(official, protocol=2)
    assert b"chumpy.ch" in payload and b"scipy.sparse.csc" in payload
    path.write_bytes(payload)
    for module_name in ("chumpy", "chumpy.ch", "scipy", "scipy.sparse", "scipy.sparse.csc"):
        sys.modules.pop(module_name)  # the loader must not need them
    _assert_matches(load_body_model(path), arrays)


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit(f"touch {marker}")}))
    with pytest.raises(BodyModelError, match=r"refusing to unpickle (posix|os|nt)\.system") as caught:
        load_body_model(path)
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_unknown_classes_are_refused(tmp_path):
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(BodyModelError, match=r"builtins\.eval"):
        load_body_model(path)


def test_missing_key_names_file_and_key(tmp_path):
    arrays = tiny_smpl_arrays()
    del arrays["weights"]
    path = tmp_path / "incomplete.npz"
    np.savez(path, **arrays)
    with pytest.raises(BodyModelError, match="weights") as caught:
        load_body_model(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("shapedirs", lambda a: a["shapedirs"][:-1]),
        ("posedirs", lambda a: a["posedirs"][:, :, :10]),
        ("kintree_table", lambda a: a["kintree_table"][:, :5]),
        ("f", lambda a: a["f"].astype(np.float32)),
    ],
)
def test_wrong_shape_or_dtype_names_file_and_key(tmp_path, key, bad):
    arrays = tiny_smpl_arrays()
    arrays[key] = bad(arrays)
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(BodyModelError, match=f"'{key}'") as caught:
        load_body_model(path)
    assert str(path) in str(caught.value)


def test_extras_file_overrides_and_rejects_unknown_keys(tmp_path):
    arrays = tiny_smpl_arrays()
    num_v = len(arrays["v_template"])
    model = tmp_path / "model.npz"
    np.savez(model, **arrays, part_labels=np.zeros(num_v, int), part_names=np.array(["torso"]))
    extras = tmp_path / "extras.npz"
    labels = np.arange(num_v) % 2
    np.savez(extras, part_labels=labels, part_names=np.array(["head", "torso"]))
    data = load_body_model(model, extras_path=extras)
    np.testing.assert_array_equal(data.part_labels, labels)
    assert data.part_names == ("head", "torso")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, weights=arrays["weights"])
    with pytest.raises(BodyModelError, match="unknown key.*weights"):
        load_body_model(model, extras_path=wrong)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(BodyModelError, match="no such body-model file"):
        load_body_model(tmp_path / "absent.npz")
    other = tmp_path / "model.json"
    other.write_text("{}")
    with pytest.raises(BodyModelError, match="unsupported"):
        load_body_model(other)
