"""Reading and writing SMPL-format body models as plain numpy arrays.

A body model is the SMPL key set (``v_template``, ``shapedirs``, ``posedirs``, ``J_regressor``,
``weights``, ``kintree_table``, ``f``) plus optional per-vertex extras that lwgan needs and that must
never be hard-coded for one topology (keypoint regressor, body-part labels, surface coordinates).

Accepted files
    ``.npz``      numpy archive (read with ``allow_pickle=False``); the format lwgan writes.
    ``.pkl``      a pickle holding a dict of numpy arrays, or the official SMPL ``.pkl`` (a Python-2 pickle
                  whose arrays are chumpy ``Ch`` objects and whose ``J_regressor`` is a scipy sparse
                  matrix). Neither chumpy nor scipy is needed: the pickle is read by a restricted
                  unpickler (`lwgan.safe_pickle`) that rebuilds numpy arrays, reads chumpy ``Ch``
                  and scipy ``csc_matrix``/``csr_matrix`` objects as dense arrays, and refuses every
                  other class (a pickle can run arbitrary code).

Array layout of `BodyModelData` (V vertices, F faces, J joints, S shape components, K keypoints)
    v_template      (V, 3) float32   rest vertices, Y up, body facing +Z, metres
    shapedirs       (V, 3, S) float32
    posedirs        (V, 3, 9 (J - 1)) float32   pose-corrective blend shapes (official SMPL layout)
    J_regressor     (J, V) float32   dense
    weights         (V, J) float32   skinning weights, rows sum to 1
    kintree_table   (2, J) int64     row 0: parent of each joint (root: -1), row 1: joint ids 0..J-1
    f               (F, 3) int64     triangles (indices into the vertices)
    joint_names     J names or None
    kp_regressor    (K, V) float32 or None, with kp_names (K names)
    part_labels     (V,) int64 in [0, len(part_names)) or None, with part_names
    surface_coords  (V, 3) float32 in [0, 1] or None
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from lwgan.errors import UserError
from lwgan.io import write_npz
from lwgan.safe_pickle import UnsafePickleError, load_restricted_pickle

SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
EXTRA_KEYS = (
    "joint_names",
    "kp_regressor",
    "kp_names",
    "part_labels",
    "part_names",
    "surface_coords",
)
_NAME_KEYS = ("joint_names", "kp_names", "part_names")


class BodyModelError(UserError, ValueError):
    """A body-model file is unreadable, refused, or has a missing or malformed key."""


@dataclasses.dataclass(frozen=True, eq=False)
class BodyModelData:
    """An SMPL-format body model as numpy arrays; shapes and dtypes in the module docstring.

    Construct it through `load_body_model` or `make_body_model_data`, which normalise dtypes; the
    constructor itself only validates.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    f: np.ndarray
    joint_names: tuple[str, ...] | None = None
    kp_regressor: np.ndarray | None = None
    kp_names: tuple[str, ...] | None = None
    part_labels: np.ndarray | None = None
    part_names: tuple[str, ...] | None = None
    surface_coords: np.ndarray | None = None
    source: str = "<in memory>"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.f.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def parents(self) -> np.ndarray:
        """(J,) int64 parent of each joint, -1 for the root."""
        parents = self.kintree_table[0].copy()
        parents[0] = -1
        return parents

    @property
    def has_extras(self) -> bool:
        """True when keypoint regressor, part labels and surface coordinates are all present."""
        return all(
            getattr(self, key) is not None
            for key in ("kp_regressor", "kp_names", "part_labels", "part_names", "surface_coords")
        )

    def arrays(self) -> dict[str, Any]:
        """All present keys (SMPL keys and extras) as a dict, names as tuples."""
        keys = SMPL_KEYS + EXTRA_KEYS
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


def make_body_model_data(mapping: dict[str, Any], source: str = "<in memory>") -> BodyModelData:
    """Build a validated `BodyModelData` from a dict of array-likes (extra keys are ignored).

    Dtypes are normalised (float32 arrays, int64 indices, tuples of names); a missing SMPL key or a
    malformed value raises `BodyModelError` naming ``source`` and the key.
    """
    missing = [key for key in SMPL_KEYS if key not in mapping]
    if missing:
        raise BodyModelError(
            f"{source}: missing key(s) {', '.join(missing)}; an SMPL-format body model needs "
            f"{', '.join(SMPL_KEYS)}"
        )
    values: dict[str, Any] = {}
    for key in SMPL_KEYS + EXTRA_KEYS:
        if key not in mapping or mapping[key] is None:
            continue
        values[key] = _normalise(key, mapping[key], source)
    return BodyModelData(**values, source=source)


def load_body_model(path: str | os.PathLike, extras_path: str | os.PathLike | None = None) -> BodyModelData:
    """Read a body model from ``path`` (.npz or .pkl) and optionally override its extras.

    ``extras_path`` is an .npz holding any of `EXTRA_KEYS` (e.g. a part segmentation for a
    user-supplied SMPL model); its arrays replace the model file's. Missing extras stay None:
    `lwgan.body.extras.complete_extras` derives them.
    """
    path = Path(path)
    mapping = _read_mapping(path)
    if extras_path is not None:
        extras_path = Path(extras_path)
        extras = _read_mapping(extras_path)
        unknown = sorted(set(extras) - set(EXTRA_KEYS))
        if unknown:
            raise BodyModelError(
                f"{extras_path}: unknown key(s) {', '.join(unknown)}; an extras file may hold "
                f"{', '.join(EXTRA_KEYS)}"
            )
        mapping = {**mapping, **extras}
        source = f"{path} (extras from {extras_path})"
    else:
        source = str(path)
    return make_body_model_data(mapping, source=source)


def save_body_model(data: BodyModelData, path: str | os.PathLike) -> Path:
    """Write ``data`` as a compressed .npz, atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    arrays = {
        key: (np.array(value, dtype=np.str_) if key in _NAME_KEYS else value)
        for key, value in data.arrays().items()
    }
    write_npz(path, arrays)  # deterministic bytes: an unchanged model does not look changed to DVC
    return path


# ---------------------------------------------------------------------------------------------------
# Reading


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BodyModelError(f"{path}: no such body-model file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise BodyModelError(f"{path}: not a readable .npz archive ({error})") from error
    if suffix in (".pkl", ".pickle"):
        try:
            loaded = load_restricted_pickle(path)
        except UnsafePickleError as error:
            raise BodyModelError(str(error)) from error
        if not isinstance(loaded, dict):
            raise BodyModelError(f"{path}: the pickle holds a {type(loaded).__name__}, expected a dict")
        return {str(key): value for key, value in loaded.items()}
    raise BodyModelError(f"{path}: unsupported body-model file type {suffix!r}; use .npz or .pkl")


# ---------------------------------------------------------------------------------------------------
# Normalising and validating


def _normalise(key: str, value: Any, source: str) -> Any:
    if key in _NAME_KEYS:
        try:
            names = tuple(str(name) for name in np.asarray(value).reshape(-1).tolist())
        except (TypeError, ValueError) as error:
            raise BodyModelError(f"{source}: key {key!r} must be a list of names ({error})") from error
        return names
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise BodyModelError(f"{source}: key {key!r} is not an array ({error})") from error
    if array.dtype == object:
        raise BodyModelError(f"{source}: key {key!r} holds Python objects, expected a numeric array")
    if key in ("f", "part_labels"):
        if not np.issubdtype(array.dtype, np.integer):
            raise BodyModelError(f"{source}: key {key!r} must hold integers, got dtype {array.dtype}")
        return array.astype(np.int64)
    if key == "kintree_table":
        if not np.issubdtype(array.dtype, np.integer):
            raise BodyModelError(f"{source}: key 'kintree_table' must hold integers, got dtype {array.dtype}")
        # Official SMPL files store the root's parent as 2**32 - 1; lwgan uses -1.
        table = array.astype(np.int64)
        if table.ndim == 2 and table.shape[0] == 2 and table.shape[1] > 0:
            table[0, 0] = -1
        return table
    if not np.issubdtype(array.dtype, np.number):
        raise BodyModelError(f"{source}: key {key!r} must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_shape(data: BodyModelData, key: str, expected: tuple[int | None, ...]) -> None:
    array = getattr(data, key)
    ok = array.ndim == len(expected) and all(
        want is None or have == want for have, want in zip(array.shape, expected, strict=True)
    )
    if not ok:
        wanted = "(" + ", ".join("*" if n is None else str(n) for n in expected) + ")"
        raise BodyModelError(f"{data.source}: key {key!r} has shape {tuple(array.shape)}, expected {wanted}")


def _validate(data: BodyModelData) -> None:
    src = data.source
    _check_shape(data, "v_template", (None, 3))
    num_v = data.v_template.shape[0]
    _check_shape(data, "J_regressor", (None, num_v))
    num_j = data.J_regressor.shape[0]
    if num_j < 1:
        raise BodyModelError(f"{src}: key 'J_regressor' has no joints")
    _check_shape(data, "shapedirs", (num_v, 3, None))
    _check_shape(data, "posedirs", (num_v, 3, 9 * (num_j - 1)))
    _check_shape(data, "weights", (num_v, num_j))
    _check_shape(data, "kintree_table", (2, num_j))
    _check_shape(data, "f", (None, 3))
    parents = data.kintree_table[0]
    bad = [j for j in range(1, num_j) if not 0 <= parents[j] < j]
    if bad:
        raise BodyModelError(
            f"{src}: key 'kintree_table' gives joint {bad[0]} the parent {parents[bad[0]]}; every joint's "
            "parent must come before it (parent index < joint index)"
        )
    if data.f.size and (data.f.min() < 0 or data.f.max() >= num_v):
        raise BodyModelError(f"{src}: key 'f' indexes vertex {data.f.max()} outside [0, {num_v})")
    if data.joint_names is not None and len(data.joint_names) != num_j:
        raise BodyModelError(f"{src}: key 'joint_names' has {len(data.joint_names)} names for {num_j} joints")
    if (data.kp_regressor is None) != (data.kp_names is None):
        raise BodyModelError(f"{src}: keys 'kp_regressor' and 'kp_names' must be given together")
    if data.kp_regressor is not None:
        _check_shape(data, "kp_regressor", (len(data.kp_names), num_v))
    if (data.part_labels is None) != (data.part_names is None):
        raise BodyModelError(f"{src}: keys 'part_labels' and 'part_names' must be given together")
    if data.part_labels is not None:
        _check_shape(data, "part_labels", (num_v,))
        if data.part_labels.min() < 0 or data.part_labels.max() >= len(data.part_names):
            raise BodyModelError(
                f"{src}: key 'part_labels' holds label {data.part_labels.max()} outside "
                f"[0, {len(data.part_names)}) (one per name in 'part_names')"
            )
    if data.surface_coords is not None:
        _check_shape(data, "surface_coords", (num_v, 3))
        low, high = float(data.surface_coords.min()), float(data.surface_coords.max())
        if low < 0.0 or high > 1.0:
            raise BodyModelError(
                f"{src}: key 'surface_coords' must lie in [0, 1], found [{low:.3g}, {high:.3g}]"
            )
