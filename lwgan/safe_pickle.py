"""A restricted unpickler for body-model pickles, official SMPL files included.

The official SMPL ``.pkl`` files are Python-2 pickles whose arrays are chumpy ``Ch`` objects and whose
``J_regressor`` is a scipy sparse matrix; chumpy does not install on current Python/numpy. This
unpickler needs neither: it resolves only the globals such a file uses (numpy array reconstruction,
stand-ins that capture the state of ``chumpy.ch.Ch`` and scipy ``csc_matrix``/``csr_matrix``, a few
builtins) and refuses every other global with an error, since unpickling an arbitrary global can run
arbitrary code. Stand-ins come back as dense numpy arrays.
"""

from __future__ import annotations

import codecs
import copyreg
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from lwgan.errors import UserError


class UnsafePickleError(UserError, ValueError):
    """The pickle is unreadable or names a global that is not allowed."""


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the pickled state; its value is the ``x`` array."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyArray:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if not isinstance(state, dict) or "x" not in state:
            raise UnsafePickleError("a chumpy Ch object without an 'x' array")
        return np.asarray(_materialise(state["x"]))


class _SparseMatrix:
    """Stand-in for scipy's ``csc_matrix``/``csr_matrix``: keeps the pickled state, densifies it."""

    compressed_axis = 1

    def __new__(cls, *args: Any, **kwargs: Any) -> _SparseMatrix:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if not isinstance(state, dict):
            raise UnsafePickleError("a scipy sparse matrix without state")
        shape = state.get("_shape", state.get("shape"))
        try:
            data = np.asarray(state["data"])
            indices = np.asarray(state["indices"], dtype=np.int64)
            indptr = np.asarray(state["indptr"], dtype=np.int64)
            rows, cols = (int(n) for n in shape)
        except (KeyError, TypeError, ValueError) as error:
            raise UnsafePickleError(f"a scipy sparse matrix with incomplete state ({error})") from error
        dense = np.zeros((rows, cols), dtype=data.dtype)
        outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))  # one entry per stored value
        if self.compressed_axis == 1:  # CSC: indptr runs over columns, indices are rows
            np.add.at(dense, (indices, outer), data)
        else:  # CSR: indptr runs over rows, indices are columns
            np.add.at(dense, (outer, indices), data)
        return dense


class _CscMatrix(_SparseMatrix):
    compressed_axis = 1


class _CsrMatrix(_SparseMatrix):
    compressed_axis = 0


_STAND_INS = (_ChumpyArray, _CscMatrix, _CsrMatrix)


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` limited to the stand-in classes (protocol 0/1 pickles)."""
    if cls not in _STAND_INS or base is not object:
        raise UnsafePickleError(f"refusing to reconstruct {cls!r} from base {base!r}")
    return copyreg._reconstructor(cls, base, state)


def _numpy_globals() -> dict[str, Any]:
    # numpy moved numpy.core to numpy._core; the functions its pickles name are reached through the
    # reduce tuples numpy itself produces, so no private module is imported here.
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    scalar = np.float64(0.0).__reduce__()[0]
    frombuffer = np.arange(2).__reduce_ex__(5)[0]
    found: dict[str, Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[f"{module}._reconstruct"] = reconstruct
        found[f"{module}.scalar"] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        found[f"{module}._frombuffer"] = frombuffer
    found["numpy.ndarray"] = np.ndarray
    found["numpy.dtype"] = np.dtype
    return found


_ALLOWED_GLOBALS: dict[str, Any] = {
    **_numpy_globals(),
    "chumpy.ch.Ch": _ChumpyArray,
    "scipy.sparse.csc.csc_matrix": _CscMatrix,
    "scipy.sparse._csc.csc_matrix": _CscMatrix,
    "scipy.sparse.csr.csr_matrix": _CsrMatrix,
    "scipy.sparse._csr.csr_matrix": _CsrMatrix,
    "copy_reg._reconstructor": _safe_reconstructor,
    "copyreg._reconstructor": _safe_reconstructor,
    "__builtin__.set": set,
    "builtins.set": set,
    "__builtin__.frozenset": frozenset,
    "builtins.frozenset": frozenset,
    "__builtin__.object": object,
    "builtins.object": object,
    "collections.OrderedDict": OrderedDict,
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1").
    "_codecs.encode": codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a body-model pickle needs (`_ALLOWED_GLOBALS`)."""

    def __init__(self, handle: io.BufferedIOBase, path: Path) -> None:
        super().__init__(handle, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[qualified]
        if module.startswith("chumpy"):
            hint = (
                " Only plain chumpy.ch.Ch arrays can be read without chumpy; convert the file to .npz "
                "with chumpy installed (np.array(value) of every key)."
            )
        else:
            hint = (
                " A body-model pickle may only hold numpy arrays, chumpy Ch arrays and scipy sparse matrices."
            )
        raise UnsafePickleError(f"{self._path}: refusing to unpickle {qualified}.{hint}")


def load_restricted_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only arrays; chumpy and scipy stand-ins become dense arrays.

    A top-level dict's values are converted; raises `UnsafePickleError` naming the file.
    """
    try:
        with open(path, "rb") as handle:
            loaded = _RestrictedUnpickler(handle, path).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # a corrupt pickle can raise almost anything
        raise UnsafePickleError(
            f"{path}: not a readable body-model pickle ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(loaded, dict):
        return loaded
    converted = {}
    for key, value in loaded.items():
        try:
            converted[key] = _materialise(value)
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: key {key!r}: {error}") from error
    return converted


def _materialise(value: Any) -> Any:
    """Turn stand-in objects into dense numpy arrays; leave everything else as it is."""
    if isinstance(value, _STAND_INS):
        return value.to_numpy()
    return value
