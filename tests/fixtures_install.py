"""Installing the test plugin projects under tests/fake_plugins into a folder, offline and fast (shared by the
root conftest's fixtures and tests that install a project of their own)."""

from __future__ import annotations

import shutil
from pathlib import Path

import tomllib

FAKE_PLUGINS = Path(__file__).parent / "fake_plugins"


def install_plugins(dest: Path, projects: tuple[str, ...]) -> Path:
    """Install test plugin projects into ``dest`` (a folder for sys.path / PYTHONPATH), offline and fast.

    Each package folder is copied next to a ``*.dist-info`` holding the METADATA and entry points
    its pyproject.toml declares, which is what importlib.metadata reads from a pip install
    (``test_fake_plugin_installs_with_pip`` checks that pip produces the same).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in projects:
        project = FAKE_PLUGINS / name
        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        for package in project.iterdir():
            if (package / "__init__.py").exists():
                shutil.copytree(package, dest / package.name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
        info = dest / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
        groups = meta.get("entry-points", {})
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()) + "\n" for group, table in groups.items()))
    return dest
