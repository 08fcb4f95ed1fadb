"""`encoders info clip` lists layers without building the model; `store ls` shows size, kind, label and options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


def test_clip_info_lists_layers_without_loading_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench_plugins.clip import ClipEncoder

    def refuse(self) -> None:
        raise AssertionError("info built the model")

    monkeypatch.setattr(ClipEncoder, "load_model", refuse)
    result = runner.invoke(app, ["encoders", "info", "clip", "-o", "model=ViT-B-32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [layer["name"] for layer in data["layers"]] == [f"block{i}" for i in range(12)] + ["embedding"]
    assert "fingerprint" not in data and data["weights"].startswith("random")
    result = runner.invoke(app, ["encoders", "info", "clip", "--fingerprint", "--json"])
    assert isinstance(result.exception, AssertionError), "--fingerprint loads the model"
