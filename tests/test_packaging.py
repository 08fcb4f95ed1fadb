"""The wheel holds every package of the source tree and ``py.typed``, so an installed SDK is typed and whole."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = {"brain_workbench": "brain_workbench", "plugins": "brain_workbench_plugins"}


def test_wheel_ships_every_package_and_py_typed(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    with zipfile.ZipFile(next(tmp_path.glob("*.whl"))) as wheel:
        names = set(wheel.namelist())
    assert "brain_workbench/py.typed" in names
    missing = []
    for folder, installed in PREFIXES.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            inside = init.relative_to(ROOT / folder).as_posix()
            if f"{installed}/{inside}" not in names:
                missing.append(f"{installed}/{inside}")
    assert not missing, f"packages missing from the wheel (add them to [tool.setuptools] packages): {missing}"
