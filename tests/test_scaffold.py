"""`workbench plugin new`: the generated package installs with pip, registers, and passes its own test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_workbench.plugin.scaffold import scaffold_plugin
from brain_workbench.types import WorkbenchError

KINDS = ["dataset", "encoder", "head", "metric"]


def pip_install_target(source: Path, target: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def test_generated_plugins_install_register_and_pass_their_tests(tmp_path: Path) -> None:
    from brain_workbench.cli import app


    target = tmp_path / "site"
    for kind in KINDS:
        result = CliRunner().invoke(app, ["plugin", "new", f"my-{kind}", "--kind", kind, "--dest", str(tmp_path)])
        assert result.exit_code == 0, result.output
        pip_install_target(tmp_path / f"brain-workbench-my-{kind}", target)
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listing = subprocess.run([sys.executable, "-m", "brain_workbench.cli", "plugins", "list", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    for kind in KINDS:
        info = plugins[f"my-{kind}"]
        assert info["status"] == "ok" and info["source"] == f"brain-workbench-my-{kind}", info
        assert info["provides"] == {kind: [f"my-{kind}"]}
    tests = [str(tmp_path / f"brain-workbench-my-{kind}" / "tests") for kind in KINDS]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "26 passed" in run.stdout


def test_bad_names_and_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="unknown kind"):
        scaffold_plugin("x", "model", tmp_path)
    with pytest.raises(WorkbenchError, match="lower-case"):
        scaffold_plugin("My Plugin", "encoder", tmp_path)
    scaffold_plugin("again", "metric", tmp_path)
    with pytest.raises(WorkbenchError, match="already exists"):
        scaffold_plugin("again", "metric", tmp_path)
