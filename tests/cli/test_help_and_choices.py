"""--help shows defaults, completion is offered, and unknown values are refused listing the known ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.types import LayerInfo, WorkbenchError, digest

runner = CliRunner()


class Colour:
    name, modality = "colour-choices", "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("colour-choices", 1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    wb.register("colour-choices", Colour, kind="encoder", replace=True)
    root = tmp_path_factory.mktemp("choices")
    config = root / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "choices", "store": str(root / "s.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "colour-choices", "layers": [1.0]}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "metrics": [{"name": "rsa"}], "permutations": 5}))
    result = runner.invoke(app, ["sweep", "run", str(config)])
    assert result.exit_code == 0, result.output
    return config, str(root / "s.zarr")


def test_help_shows_the_store_default_and_completion_is_offered() -> None:
    out = runner.invoke(app, ["sweep", "run", "--help"], terminal_width=200).output
    assert "$WORKBENCH_STORE" in out and "stores/default.zarr" in out and "[default: inline]" in out
    assert "inline|local|dask" in out
    assert "--install-completion" in runner.invoke(app, ["--help"], terminal_width=200).output


def test_unknown_executor_is_refused_even_with_nothing_pending(finished) -> None:
    config, _ = finished
    result = runner.invoke(app, ["sweep", "run", str(config), "--executor", "foo"])
    output = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "'foo' is not one of 'inline', 'local', 'dask'" in output


def test_unknown_metric_roi_and_encoder_list_the_known_ones(finished, tmp_path: Path) -> None:
    _, store = finished
    out = str(tmp_path / "x.png")
    cases = {("figure", "layers", "choices", "--metric", "svcca"): "has no metric 'svcca' cells; it has: rsa",
             ("figure", "layers", "choices", "--roi", "V9"): "has no ROI 'V9' cells; it has: V1, V2",
             ("figure", "brainmap", "choices", "--encoder", "nope"): "its encoders are 'colour-choices'"}
    for args, message in cases.items():
        result = runner.invoke(app, [*args, "--store", store, "--out", out])
        assert isinstance(result.exception, WorkbenchError) and message in str(result.exception), (args, result.output)
    assert not Path(out).exists()
    result = runner.invoke(app, ["figure", "layers", "choices", "--metric", "rsa", "--roi", "V1", "--store", store, "--out", out])
    assert result.exit_code == 0, result.output


def test_shell_completion_completes_commands_and_choices(tmp_path: Path) -> None:
    """The installed script answers bash's completion protocol: sub-commands and an option's choices."""
    import os
    import shutil
    import subprocess
    import sys

    script = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_WORKBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        out = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert complete("workbench figure b", 2) == ["brainmap"]
    assert "rois" in complete("workbench figure ", 2)
    assert complete("workbench sweep run c.yaml --executor ", 5) == ["inline", "local", "dask"]
    assert list(tmp_path.iterdir()) == [], "completing creates nothing"


def test_help_shows_defaults_of_figure_options() -> None:
    out = " ".join(runner.invoke(app, ["figure", "brainmap", "--help"], terminal_width=200).output.replace("│", " ").split())
    assert "[default: inferno]" in out and "[default: score]" in out and "--outline" in out and "--outlines" in out
