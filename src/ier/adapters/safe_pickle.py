"""A restricted unpickler for the dataset releases that ship pickled arrays (DSOL log-mel pickles).

It accepts a pickle of one plain numeric numpy array and refuses everything else *before* anything
runs: only the handful of numpy/codecs globals an ndarray pickle names can be looked up.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

MAX_PICKLE_BYTES = 64 * 1024 * 1024  # a (201, 64) float32 log-mel is ~52 kB; anything huge is wrong

# The globals that ``pickle.dumps(ndarray)`` references, for numpy 1.x and 2.x and protocols 2-5.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol 2 stores the raw bytes as a latin-1 string
    }
)


class UnsafePickleError(ValueError):
    """The pickle names something other than a numeric numpy array, or is malformed."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refused global {module}.{name} (only numpy arrays are allowed)"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError("refused persistent id (only numpy arrays are allowed)")


def loads_array(data: bytes) -> np.ndarray:
    """Unpickle ``data`` that must hold exactly one numeric numpy array.

    Args:
        data: The pickle bytes.

    Returns:
        The array (bool, integer or floating dtype; never object).

    Raises:
        UnsafePickleError: The pickle references any other global, holds another type, an object
            array, or is malformed/truncated. Nothing in the pickle is executed in that case.
    """
    try:
        value = _ArrayOnlyUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # any failure of a malformed pickle is a refusal
        raise UnsafePickleError(f"malformed pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, np.ndarray) or type(value) is not np.ndarray:
        raise UnsafePickleError(f"expected a numpy array, found {type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise UnsafePickleError(f"expected a numeric array, found dtype {value.dtype}")
    return value


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a pickle file that must hold one numeric numpy array (see :func:`loads_array`).

    Raises:
        UnsafePickleError: Refused or malformed content, or a file over ``MAX_PICKLE_BYTES``.
        OSError: The file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise UnsafePickleError(f"pickle is {size} bytes, over the {MAX_PICKLE_BYTES}-byte limit")
    return loads_array(path.read_bytes())
