"""Shared fixtures: offline environment, a temporary store, a fresh registry and installed fake plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
# The whole session (module- and session-scoped fixtures included, which run before any function-scoped
# fixture) writes its sweep index and default store under a temporary folder, never the user's.
_SESSION_STATE = tempfile.mkdtemp(prefix="workbench-tests-")
os.environ["WORKBENCH_SWEEP_INDEX"] = os.path.join(_SESSION_STATE, "sweeps.json")
os.environ["WORKBENCH_STORE"] = os.path.join(_SESSION_STATE, "default.zarr")
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["MPLBACKEND"] = "Agg"

import brain_workbench  # noqa: E402
from brain_workbench.plugin.registry import DISABLE_ENV, Registry, get_registry  # noqa: E402
from brain_workbench.store import Store  # noqa: E402
from fixtures_install import FAKE_PLUGINS, install_plugins  # noqa: E402,F401

COMMON_PLUGINS = ("brain-workbench-fakeplugin", "brain-workbench-brokenplugin", "brain-workbench-badhook")


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run without --store write to a temporary store and sweep index, never to the working tree or home."""
    monkeypatch.setenv("WORKBENCH_STORE", str(tmp_path_factory.mktemp("default-store") / "default.zarr"))
    monkeypatch.setenv("WORKBENCH_SWEEP_INDEX", str(tmp_path_factory.mktemp("sweep-index") / "sweeps.json"))


@pytest.fixture
def tmp_store(tmp_path: Path) -> Store:
    """An empty local store under the test's temporary folder."""
    return Store(tmp_path / "s.zarr")


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Forget loaded plugins before and after the test, so each test sees its own environment."""
    brain_workbench.reset_registry()
    yield
    brain_workbench.reset_registry()


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the fake, the broken-import and the failing-hook plugins, installed."""
    return install_plugins(tmp_path_factory.mktemp("plugins") / "site", COMMON_PLUGINS)


@pytest.fixture(scope="session")
def dup_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a plugin whose encoder name clashes with the fake plugin's."""
    return install_plugins(tmp_path_factory.mktemp("dup-plugins") / "site", ("brain-workbench-dupplugin",))


@pytest.fixture
def with_plugins(plugin_site: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> Registry:
    """The registry as an installation with the test plugins sees it (built-ins disabled for speed)."""
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv(DISABLE_ENV, "brain-workbench")
    return get_registry()


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed ``workbench`` console script in a subprocess, finding plugins in ``paths``."""
    script = Path(sys.executable).with_name("workbench")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "brain_workbench.cli"]

    def run(*args: str, paths: tuple[Path, ...] = (), env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        full = dict(os.environ)
        full["PYTHONPATH"] = os.pathsep.join([*map(str, paths), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        full.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
        return subprocess.run([*base, *args], env=full, capture_output=True, text=True, timeout=timeout)

    return run
