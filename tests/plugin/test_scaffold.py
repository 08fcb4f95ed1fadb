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
    assert "29 passed" in run.stdout


def test_bad_names_and_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="unknown kind"):
        scaffold_plugin("x", "model", tmp_path)
    with pytest.raises(WorkbenchError, match="lower-case"):
        scaffold_plugin("My Plugin", "encoder", tmp_path)
    scaffold_plugin("again", "metric", tmp_path)
    with pytest.raises(WorkbenchError, match="already exists"):
        scaffold_plugin("again", "metric", tmp_path)


def test_scaffold_class_names_read_naturally(tmp_path: Path) -> None:
    module = scaffold_plugin("my-encoder", "encoder", tmp_path) / "brain_workbench_my_encoder" / "__init__.py"
    text = module.read_text()
    assert "class MyEncoder(EncoderBase):" in text and "register(MyEncoder.name, MyEncoder," in text
    assert "class ColourHistEncoder(EncoderBase):" in (
        scaffold_plugin("colour-hist", "encoder", tmp_path) / "brain_workbench_colour_hist" / "__init__.py").read_text()
    assert "class MyHead(BaseEstimator):" in (
        scaffold_plugin("my-head", "head", tmp_path) / "brain_workbench_my_head" / "__init__.py").read_text()


WRONG = '''from brain_workbench.sdk import EncoderBase, pearson_per_unit
from brain_workbench.sdk.numerics import ridge_cv

from brain_workbench_colour_hist import ColourHistEncoder


class WrongOverride(EncoderBase):
    def compute_fingerprint(self) -> int:
        return 1


ColourHistEncoder().no_such_attribute
ColourHistEncoder(bins="eight")
reveal_type(ridge_cv)
reveal_type(pearson_per_unit)
'''


@pytest.mark.slow
def test_scaffolds_type_check_against_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mypy, with the project on its path, passes every scaffold and reports what is wrong in a plugin's code."""
    from mypy import api

    roots = [scaffold_plugin(f"my-{kind}", kind, tmp_path) for kind in KINDS]
    roots.append(scaffold_plugin("colour-hist", "encoder", tmp_path))
    (roots[-1] / "brain_workbench_colour_hist" / "wrong.py").write_text(WRONG)
    monkeypatch.setenv("MYPYPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.chdir(tmp_path)
    packages = [str(next(root.glob("brain_workbench_*"))) for root in roots]
    out, err, _ = api.run(["--config-file", str(roots[0] / "pyproject.toml"), "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / ".mypy_cache"), "--no-error-summary", *packages])
    lines = [line for line in out.splitlines() if line.strip()]
    assert not err and all("wrong.py" in line for line in lines), out + err
    errors = "\n".join(line for line in lines if ": error:" in line)
    assert 'Return type "int" of "compute_fingerprint" incompatible with return type "str" in supertype' in errors
    assert '"ColourHistEncoder" has no attribute "no_such_attribute"' in errors
    assert 'Argument "bins" to "ColourHistEncoder" has incompatible type "str"; expected "int"' in errors
    revealed = [line for line in lines if "Revealed type" in line]
    assert len(revealed) == 2 and all('Revealed type is "def (' in line for line in revealed), revealed
    assert len(errors.splitlines()) == 3, errors
