"""Load pickled ``.npy`` files (numpy dicts, as some dataset releases ship) without running their code.

``np.load(path, allow_pickle=True)`` lets a downloaded file call any Python function while it loads
(``os.system`` included). These loaders unpickle through a restricted unpickler that admits only
numpy arrays, dtypes and scalars and builtin values and containers; any other reference is refused
with one sentence before anything it names is imported or called.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.types import WorkbenchError

_NUMPY = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "complex",
             "bool", "range", "slice"}
ALLOWED = _NUMPY | {("builtins", name) for name in _BUILTINS} | {("collections", "OrderedDict")}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`ALLOWED` names."""

    def __init__(self, file: Any, source: str, hint: str) -> None:
        super().__init__(file)
        self.source, self.hint = source, hint

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise WorkbenchError(
                f"{self.source} asks to run {module}.{name} while loading, which is not a numpy array, dtype or "
                f"builtin value; refusing to load it (the file may have been tampered with): {self.hint}")
        if module.startswith("numpy.core."):
            module = module.replace("numpy.core.", "numpy._core.", 1)  # numpy 2 moved it; avoid the shim
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid: Any) -> Any:
        raise WorkbenchError(f"{self.source} holds a persistent reference, which numpy files never do; "
                             f"refusing to load it: {self.hint}")


def load_npy(path: str | Path, hint: str = "delete it and download it again") -> Any:
    """The content of a ``.npy`` file: a plain array, or the object a pickled 0-d object array holds.

    Pickled content is loaded with the restricted unpickler; a truncated or corrupt file, or one that
    refers to anything but numpy and builtin types, raises a WorkbenchError naming the file and ending
    with ``hint`` (how to get a good copy).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            if not dtype.hasobject:
                fh.seek(0)
                return np.lib.format.read_array(fh, allow_pickle=False)
            value = _RestrictedUnpickler(io.BufferedReader(fh), str(path), hint).load()
    except WorkbenchError:
        raise
    except OSError as exc:
        raise WorkbenchError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    except Exception as exc:
        raise WorkbenchError(f"cannot read {path} ({type(exc).__name__}: {exc}); the file is truncated or "
                             f"corrupt: {hint}") from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == () and shape == ():
        return value.item()
    return value


def load_npy_dict(path: str | Path, hint: str = "delete it and download it again") -> dict:
    """A dict saved with ``np.save(path, {...})`` (a pickled 0-d object array), loaded safely."""
    value = load_npy(path, hint)
    if not isinstance(value, dict):
        raise WorkbenchError(f"{path} holds a {type(value).__name__}, not a dict of arrays; {hint}")
    return value


__all__ = ["ALLOWED", "load_npy", "load_npy_dict"]
