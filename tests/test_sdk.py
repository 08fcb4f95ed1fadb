"""The plugin SDK: a light, typed top level and helper submodules by topic; old flat names still resolve."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import brain_workbench.sdk as sdk

SUBMODULES = ("torch", "data", "numerics")


def test_importing_the_sdk_imports_no_heavy_library() -> None:
    code = ("import sys, brain_workbench.sdk; heavy = {'torch', 'zarr', 'scipy', 'sklearn'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_top_level_names_are_real_and_submodules_export_what_they_list() -> None:
    assert all(name in vars(sdk) for name in sdk.__all__)
    for sub in SUBMODULES:
        module = importlib.import_module(f"brain_workbench.sdk.{sub}")
        assert all(hasattr(module, name) for name in module.__all__), sub
        assert not set(module.__all__) & set(sdk.__all__), sub


@pytest.mark.parametrize("name, sub", [("ridge_cv", "numerics"), ("open_store", "data"), ("resolve_device", "torch")])
def test_old_flat_names_warn_and_name_their_submodule(name: str, sub: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"brain_workbench.sdk.{name} moved to brain_workbench.sdk.{sub}.{name}"):
        value = getattr(sdk, name)
    assert value is getattr(importlib.import_module(f"brain_workbench.sdk.{sub}"), name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_helper'"):
        _ = sdk.no_such_helper  # type: ignore[attr-defined]
