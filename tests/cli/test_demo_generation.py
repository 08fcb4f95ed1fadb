"""``configs/demo-generation.yaml`` as a user drives it: sweep run, cached rerun, results show, figures and the
report, on a tiny Kandinsky pipeline folder built here and an encoder with random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.types import LayerInfo, digest

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo-generation.yaml"
runner = CliRunner()


class RandomThumb32:
    """A 32-wide embedding (the tiny pipelines' width) that declares random weights, as clip with
    ``pretrained: null`` does."""

    name, modality, random_weights = "thumb32-random", "image", True

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("embedding", 1.0)]

    def encode(self, batch, layers):
        rows = [np.r_[np.asarray(im.convert("L").resize((4, 4)), np.float32).ravel(),
                      np.asarray(im.convert("L").resize((4, 4)).resize((2, 2)), np.float32).ravel().repeat(4)] / 255
                for im in batch]
        return {"embedding": np.stack(rows)}

    def fingerprint(self) -> str:
        return digest("thumb32-random", 1)


def overrides(tmp_path: Path, folder: Path) -> list[str]:
    """The shipped config pointed at the tiny pipeline, a 32-wide random-weights encoder and a small dataset."""
    sets = [f"store={tmp_path / 'gen.zarr'}",
            "dataset.options={n_subjects: 1, n_train: 48, n_test: 10, noise: 0.5}",
            "encoders.0={name: thumb32-random, layers: [embedding], label: clip-bigG}",
            "heads.0.options={alphas: [10.0, 1000.0], cv: 3}",
            "reconstruction.codec.options.image_size=16", "reconstruction.seen_size=32",
            "reconstruction.metrics=[{name: pixcorr, options: {size: 32}}]",
            f"generation.generator.options.path={folder}", "generation.generator.options.embedding_space=tiny/test",
            "generation.generator.options.steps=2", "generation.generator.options.size=32",
            "generation.generator.options.device=cpu",
            "generation.generator.options.batch_size=5",
            "generation.metrics=[{name: pixcorr, options: {size: 32}}, {name: ssim, options: {size: 32}}]",
            "reconstruction.protocol=mindeye2"]
    return [a for s in sets for a in ("--set", s)]


def test_the_generation_config_runs_from_the_cli(tmp_path: Path) -> None:
    import diffusion_fixtures as F

    wb.register("thumb32-random", RandomThumb32, kind="encoder", replace=True)
    folder = F.save(F.kandinsky_pipeline(), tmp_path / "kandinsky")
    args = overrides(tmp_path, folder)
    store = str(tmp_path / "gen.zarr")
    result = runner.invoke(app, ["sweep", "run", str(CONFIG), *args])
    assert result.exit_code == 0, result.output
    assert "StopIteration" not in result.output
    assert "generating images (1): 10/10 (100 %)" in result.output, "progress per image, not a frozen cell count"
    assert "denoising steps (1): 2/2 (100 %)" in result.output, "and per denoising step (2 batches × 1 step)"
    again = runner.invoke(app, ["sweep", "run", str(CONFIG), *args])
    assert again.exit_code == 0 and "done: 0 cell(s) computed" in again.output, again.output
    shown = runner.invoke(app, ["results", "show", "demo-generation", "--store", store])
    assert shown.exit_code == 0, shown.output
    assert "generation" in shown.output and "kandinsky-2.2" in shown.output, shown.output
    assert "pixcorr" in shown.output and "ssim" in shown.output, shown.output
    assert "demo-generation: generation" in shown.output, "the generation scores are tabled, not only in --json"
    assert "protocol mindeye2" in shown.output, "the evaluation protocol is named"
    from brain_workbench.sweep import Sweep, load_config, results_table

    frame = results_table(Sweep(load_config(CONFIG, args[1::2])).store, "demo-generation")
    decode = frame[frame["kind"] == "decoding"]
    assert set(decode["encoder"]) == {"clip-bigG"} and decode["random_weights"].all(), "label as written, flag apart"
    assert np.isfinite(frame[frame["kind"] == "generation"]["pixcorr"]).all()
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "demo-generation", "--store", store, "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "<img src='generations.png'" in page and "kandinsky-2.2" in page
    assert (out / "generations.png").stat().st_size > 0
