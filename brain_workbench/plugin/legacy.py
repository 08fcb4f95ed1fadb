"""The previous release's names, for one release: ``import workbench`` (the old import package) and its module
paths resolve to their ``brain_workbench`` modules with a DeprecationWarning, unless another distribution
provides a real ``workbench`` (the name is taken on PyPI), which then always wins."""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from importlib import metadata
from types import ModuleType
from typing import Any

OLD = "workbench"
NEW = "brain_workbench"
REMOVED_IN = "the release after next"

MOVED: dict[str, str] = {
    "workbench.adaptation": "brain_workbench.analysis.adaptation",
    "workbench.fetch": "brain_workbench.downloads.fetch", "workbench.http": "brain_workbench.downloads.http",
    "workbench.safe_pickle": "brain_workbench.downloads.safe_pickle",
    "workbench.alignment": "brain_workbench.numerics.alignment", "workbench.decoding": "brain_workbench.numerics.decoding",
    "workbench.linalg": "brain_workbench.numerics.linalg", "workbench.nn": "brain_workbench.numerics.nn",
    "workbench.ridge_predict": "brain_workbench.numerics.ridge_predict",
    "workbench.scoring": "brain_workbench.numerics.scoring", "workbench.stats": "brain_workbench.numerics.stats",
    "workbench.bases": "brain_workbench.plugin.bases", "workbench.hooks": "brain_workbench.plugin.hooks",
    "workbench.options": "brain_workbench.plugin.options", "workbench.registry": "brain_workbench.plugin.registry",
    "workbench.scaffold": "brain_workbench.plugin.scaffold", "workbench.testing": "brain_workbench.plugin.testing",
    "workbench.features": "brain_workbench.store.features", "workbench.images": "brain_workbench.store.images",
    "workbench.paths": "brain_workbench.store.paths",
}
"""Modules of the previous release that moved besides the package rename (from ``git log -M`` of the rename)."""


def new_name(old: str) -> str:
    """The ``brain_workbench`` module an old ``workbench`` module name stands for."""
    return MOVED.get(old, NEW + old[len(OLD):])


@functools.cache
def other_workbench() -> str | None:
    """The distribution other than brain-workbench that provides a top-level ``workbench``, if one is installed."""
    others = [d for d in metadata.packages_distributions().get(OLD, []) if d.lower().replace("_", "-") != "brain-workbench"]
    return others[0] if others else None


class _Alias(importlib.abc.Loader):
    """Loads an old name as the already importable new module (the same object, its own spec kept)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"'{spec.name}' is the previous release's name of '{self.target}' and goes away in "
                      f"{REMOVED_IN}; import {self.target} instead (see CHANGELOG.md, Migration)",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # importlib set the alias's spec on the shared module object


class OldNameFinder(importlib.abc.MetaPathFinder):
    """Serves ``workbench`` only where sys.path holds no real one and no other distribution provides it, and
    ``workbench.*`` only below the alias (so a submodule is never loaded twice under two names)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == OLD:
            if other_workbench() is not None or importlib.machinery.PathFinder.find_spec(OLD, sys.path) is not None:
                return None
        elif not fullname.startswith(OLD + ".") or sys.modules.get(OLD) is not sys.modules.get(NEW):
            return None
        new = new_name(fullname)
        try:
            found = importlib.util.find_spec(new)
        except ModuleNotFoundError:
            return None
        if found is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new), is_package=found.submodule_search_locations
                                              is not None)


def install_old_name() -> None:
    """Put the finder of the old import name first in sys.meta_path, once (it declines every other name)."""
    if not any(isinstance(f, OldNameFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, OldNameFinder())
