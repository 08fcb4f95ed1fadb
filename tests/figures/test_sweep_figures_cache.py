"""A rerun of the standard figures redraws only those whose inputs (cell keys) changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
import brain_workbench.figures.sweep as figures
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import SweepConfig
from brain_workbench.types import LayerInfo, digest


class Colour:
    name, modality = "colour-fig", "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 0.0), LayerInfo("thumb", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in batch]
        out = {"colour": np.stack([a.mean((0, 1)) for a in arrays]), "thumb": np.stack([a.ravel() for a in arrays])}
        return {layer: out[layer] for layer in layers}

    def fingerprint(self) -> str:
        return digest("colour-fig", 1)


def test_cached_figures_are_not_redrawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wb.register("colour-fig", Colour, kind="encoder", replace=True)
    data = {"name": "figs", "store": str(tmp_path / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
            "encoders": [{"name": "colour-fig", "layers": [0.0, 1.0]}],
            "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5}
    sweep = Sweep(SweepConfig(**data))
    sweep.run()
    drawn: list[str] = []
    for name in ("plot_layer_profiles", "draw_brainmap", "draw_rois", "write_surface_view"):
        real = getattr(figures, name)
        monkeypatch.setattr(figures, name, lambda *a, _real=real, **k: drawn.append(Path(k.get("output_file") or a[2]).name)
                            or _real(*a, **k))
    out = tmp_path / "figs"
    first = figures.write_figures(sweep.store, "figs", out)
    assert sorted(drawn) == sorted(p.name for p in first) and {"brainmap_colour-fig.png", "rois.png"} <= set(drawn)
    drawn.clear()
    assert figures.write_figures(sweep.store, "figs", out) == first and drawn == []

    said: list[str] = []
    figures.write_figures(sweep.store, "figs", out, say=said.append)
    assert said == [f"figures of figs: all {len(first)} unchanged in {out}"], "a cached run says so in one line"
    (out / "layers.png").unlink()
    said.clear()
    figures.write_figures(sweep.store, "figs", out, say=said.append)
    assert drawn == ["layers.png"]
    assert len(said) == len(first) and any(line.startswith("figure layers.png drawn (") for line in said)
    assert "figure rois.png unchanged" in said, "a line per figure, drawn or not"
    drawn.clear()
    with_metric = Sweep(SweepConfig(**{**data, "metrics": [{"name": "rsa"}]}))
    with_metric.run()
    paths = figures.write_figures(with_metric.store, "figs", out)
    assert drawn == ["layers_rsa.png"] and {p.name for p in paths} == {p.name for p in first} | {"layers_rsa.png"}
    drawn.clear()
    interactive = figures.write_figures(with_metric.store, "figs", out, interactive=True)
    assert drawn == ["surface_colour-fig.html"] and (out / "surface_colour-fig.html").stat().st_size > 100_000
    drawn.clear()
    assert figures.write_figures(with_metric.store, "figs", out, interactive=True) == interactive and drawn == []
