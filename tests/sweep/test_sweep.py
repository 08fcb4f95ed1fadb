"""The sweep engine on a tiny demo: planning, idempotent reruns, resumption, executors, tables, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.sweep import Reporter, Sweep, load_cell_scores, load_config, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.sweep.tables import table_path, tidy_table
from brain_workbench.types import LayerInfo, WorkbenchError, digest

CALLS = {"encode": 0, "fit": 0, "fail_after": None}


class PixelEncoder:
    """A fast deterministic image encoder for pipeline tests: colour statistics and a downsampled image."""

    name = "pixel-test"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 0.0), LayerInfo("thumbnail", 1.0)]

    def encode(self, batch, layers):
        CALLS["encode"] += 1
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        out = {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays]),
               "thumbnail": np.stack([a.ravel() for a in arrays])}
        return {layer: out[layer] for layer in layers}

    def fingerprint(self) -> str:
        return digest("pixel-test", 1)


class CountingRidge:
    """Wraps the built-in ridge head, counting fits and failing on demand (to interrupt a sweep)."""

    direction = "encode"

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = alpha

    def get_params(self, deep=True):
        return {"alpha": self.alpha}

    def fit(self, X, Y):
        if CALLS["fail_after"] is not None and CALLS["fit"] >= CALLS["fail_after"]:
            raise RuntimeError("simulated crash")
        CALLS["fit"] += 1
        self.coef_ = np.linalg.solve(X.T @ X + self.alpha * np.eye(X.shape[1]), X.T @ (Y - Y.mean(0)))
        self.intercept_ = Y.mean(0) - X.mean(0) @ self.coef_
        return self

    def predict(self, X):
        return X @ self.coef_ + self.intercept_

    def score_per_unit(self, X, Y):
        from brain_workbench.numerics.scoring import pearson_per_unit

        return pearson_per_unit(Y, self.predict(X))

    def score(self, X, Y):
        return float(self.score_per_unit(X, Y).mean())


@pytest.fixture(autouse=True)
def _test_plugins():
    wb.register("pixel-test", PixelEncoder, kind="encoder", replace=True)
    wb.register("counting-ridge", CountingRidge, kind="head", replace=True)
    CALLS.update(encode=0, fit=0, fail_after=None)
    yield


def tiny_config(tmp_path: Path, **changes) -> dict:
    data = {
        "name": "tiny",
        "store": str(tmp_path / "store.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 40, "n_test": 12}},
        "encoders": [{"name": "pixel-test", "layers": [0.0, 1.0], "batch_size": 16}],
        "heads": [{"name": "counting-ridge", "options": {"alpha": 10.0}}],
        "permutations": 20,
    }
    data.update(changes)
    return data


def test_plan_has_one_cell_per_subject_encoder_layer_head(tmp_path):
    sweep = Sweep(config_from_dict(tiny_config(tmp_path)))
    plan = sweep.plan()
    assert len(plan.cells) == 2 * 2 * 1
    assert {(c.subject, c.layer) for c in plan.cells} == {(s, layer) for s in ("1", "2") for layer in ("colour", "thumbnail")}
    assert len({c.key for c in plan.cells}) == len(plan.cells)


def test_second_run_recomputes_nothing(tmp_path):
    cfg = config_from_dict(tiny_config(tmp_path))
    first = Sweep(cfg).run()
    assert first["computed"] == 4 and first["skipped"] == 0
    encodes, fits = CALLS["encode"], CALLS["fit"]
    second = Sweep(cfg).run()
    assert second["computed"] == 0 and second["skipped"] == 4
    assert CALLS["encode"] == encodes and CALLS["fit"] == fits


def test_changed_head_option_recomputes_only_cells_not_features(tmp_path):
    Sweep(config_from_dict(tiny_config(tmp_path))).run()
    encodes = CALLS["encode"]
    changed = tiny_config(tmp_path, heads=[{"name": "counting-ridge", "options": {"alpha": 100.0}}])
    summary = Sweep(config_from_dict(changed)).run()
    assert summary["computed"] == 4
    assert CALLS["encode"] == encodes


def test_interrupted_sweep_resumes_with_the_missing_cells(tmp_path):
    cfg = config_from_dict(tiny_config(tmp_path))
    CALLS["fail_after"] = 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        Sweep(cfg).run()
    sweep = Sweep(cfg)
    assert sweep.status()["cells_done"] == 2
    assert sweep.store.verify() == []
    CALLS["fail_after"] = None
    CALLS["fit"] = 0
    summary = sweep.run()
    assert summary["computed"] == 2 and CALLS["fit"] == 2


def test_scores_match_a_direct_computation(tmp_path):
    cfg = config_from_dict(tiny_config(tmp_path, average_repetitions=True))
    sweep = Sweep(cfg)
    sweep.run()
    rec = sweep.dataset.recording("1").average_repetitions()
    stimuli = sweep.dataset.stimuli("image")
    test = set(rec.splits["test"])
    is_test = np.array([s in test for s in rec.trial_stimulus_ids])
    feats = PixelEncoder().encode(stimuli.get(rec.trial_stimulus_ids), ["colour"])["colour"]
    mean, sd = feats[~is_test].mean(0), feats[~is_test].std(0)
    X = (feats - mean) / np.where(sd > 1e-8, sd, 1)
    head = CountingRidge(alpha=10.0).fit(X[~is_test], rec.responses[~is_test])
    expected = head.score_per_unit(X[is_test], rec.responses[is_test])
    (cell, arrays), = [c for c in load_cell_scores(sweep.store, "tiny", subject="1", layer="colour")]
    np.testing.assert_allclose(arrays["score"], expected, atol=2e-4)
    nc = rec.noise_ceiling
    ok = nc > 1e-3
    np.testing.assert_allclose(arrays["score_normalized"][ok], expected[ok] / np.sqrt(nc[ok]), rtol=1e-3, atol=1e-4)


def test_results_table_and_parquet_export(tmp_path):
    cfg = config_from_dict(tiny_config(tmp_path))
    sweep = Sweep(cfg)
    summary = sweep.run()
    frame = results_table(sweep.store, "tiny")
    rois = ["all", *sweep.dataset.recording("1").units.rois]
    assert set(frame["roi"]) == set(rois)
    assert len(frame) == 4 * len(rois)
    assert {"mean_r", "mean_r_normalized", "p_permutation", "q_fdr", "null_mean_r_95", "depth"} <= set(frame.columns)
    assert frame.loc[frame["roi"] != "all", "q_fdr"].between(0, 1).all()
    parquet = pd.read_parquet(summary["table"])
    assert summary["table"] == table_path(sweep.store, "tiny")
    pd.testing.assert_frame_equal(parquet, tidy_table(sweep.store, "tiny"))
    meta = json.loads(pq.read_schema(summary["table"]).metadata[b"workbench"])
    assert meta["config"]["name"] == "tiny" and "numpy" in meta["versions"] and "code_revision" in meta


def test_local_executor_matches_inline(tmp_path):
    a = tiny_config(tmp_path / "a", heads=[{"name": "ridge", "options": {"cv": 3}}])
    b = tiny_config(tmp_path / "b", heads=[{"name": "ridge", "options": {"cv": 3}}])
    Sweep(config_from_dict(a)).run(executor="inline")
    Sweep(config_from_dict(b)).run(executor="local", workers=2)
    ta = results_table(Sweep(config_from_dict(a)).store, "tiny").sort_values(["subject", "layer", "roi"])
    tb = results_table(Sweep(config_from_dict(b)).store, "tiny").sort_values(["subject", "layer", "roi"])
    np.testing.assert_allclose(ta["mean_r"].to_numpy(), tb["mean_r"].to_numpy(), atol=1e-6)


def test_config_errors_are_one_clear_sentence(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tiny_config(tmp_path), "encodrs": []}))
    with pytest.raises(WorkbenchError, match="no installed analysis reads a section 'encodrs'"):
        Sweep(load_config(bad)).validate()
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("name: [unclosed")
    with pytest.raises(WorkbenchError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(WorkbenchError, match="no subject '9'"):
        Sweep(config_from_dict(tiny_config(tmp_path, subjects=["9"]))).plan()
    with pytest.raises(WorkbenchError, match="unknown encoder 'nope'.*known encoders"):
        Sweep(config_from_dict(tiny_config(tmp_path, encoders=[{"name": "nope"}]))).plan()
    with pytest.raises(WorkbenchError, match="invalid store key"):
        config_from_dict(tiny_config(tmp_path, name="../evil"))


def test_overrides_reach_nested_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    cfg = load_config(path, ["encoders.0.batch_size=4", "subjects=[2]", "dataset.options.n_train=30"])
    assert cfg.encoders[0].batch_size == 4 and cfg.subjects == ["2"] and cfg.dataset.options["n_train"] == 30
    with pytest.raises(WorkbenchError, match="key.path=value"):
        load_config(path, ["no-equals-sign"])


def test_cli_sweep_results_and_figures(tmp_path):
    from brain_workbench.cli import app


    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    store = str(tmp_path / "store.zarr")
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "run", str(config)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sweep", "status", str(config), "--json"])
    assert json.loads(result.output)["cells_done"] == 4
    result = runner.invoke(app, ["results", "show", "tiny", "--store", store, "--json"])
    rows = json.loads(result.output)
    assert rows and {"encoder", "layer", "roi", "mean_r"} <= set(rows[0])
    result = runner.invoke(app, ["results", "show", "tiny", "--store", store])
    assert result.exit_code == 0 and "V1" in result.output
    for args in (["figure", "layers", "tiny"], ["figure", "brainmap", "tiny", "--layer", "thumbnail"],
                 ["figure", "brainmap", "tiny", "--value", "best-layer"]):
        out = tmp_path / f"{args[1]}-{len(args)}.png"
        result = runner.invoke(app, [*args, "--store", store, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 10_000
    result = runner.invoke(app, ["figure", "brainmap", "tiny", "--store", store, "--layer", "nope", "--out", "x.png"])
    assert result.exit_code != 0 and isinstance(result.exception, WorkbenchError)
    report = tmp_path / "report"
    result = runner.invoke(app, ["report", "tiny", "--store", store, "--out", str(report)])
    assert result.exit_code == 0, result.output
    assert "V1" in (report / "index.html").read_text()


def test_reporter_receives_progress(tmp_path):
    seen = []

    class Recording(Reporter):
        def progress(self, label, total):
            seen.append((label, total))
            return lambda n: None

    Sweep(config_from_dict(tiny_config(tmp_path))).run(reporter=Recording())
    labels = [label for label, _ in seen]
    assert "features pixel-test" in labels and "fitting cells" in labels


class TinyEEG:
    """A time-resolved dataset: channel responses follow the stimulus colour only after t = 0.1 s."""

    name = "tiny-eeg"
    modalities = ("image",)

    def __init__(self) -> None:
        from brain_workbench_plugins.demo import DemoDataset

        self.images = DemoDataset(n_subjects=1, n_train=60, n_test=20)

    def subjects(self):
        return ["1"]

    def stimuli(self, modality=None):
        return self.images.stimuli("image")

    def fingerprint(self):
        return digest("tiny-eeg", 1)

    def fetch(self, dest, accept_terms=False, **options):
        return dest

    def recording(self, subject):
        from brain_workbench.types import Recording, Units

        ids = np.asarray(self.images.ids[:80])
        colour = PixelEncoder().encode(self.images.stimuli("image").get(ids), ["colour"])["colour"][:, :3]
        rng = np.random.default_rng(0)
        times = np.linspace(-0.1, 0.4, 6)
        signal = (colour - colour.mean(0)) @ rng.standard_normal((3, 4))
        resp = rng.standard_normal((80, 4, 6)) * 0.3
        resp[:, :, times > 0.1] += 3 * signal[:, :, None]
        units = Units("eeg-10-20", 4, rois={"occipital": np.array([True, True, False, False])},
                      names=np.array(["O1", "O2", "Fz", "Cz"]))
        return Recording("tiny-eeg", subject, resp.astype(np.float32), ids, units, times=times,
                         splits={"train": ids[20:], "test": ids[:20]})


def test_time_resolved_recordings_keep_the_time_axis(tmp_path):
    wb.register("tiny-eeg", TinyEEG, kind="dataset", replace=True)
    cfg = tiny_config(tmp_path, dataset={"name": "tiny-eeg"}, encoders=[{"name": "pixel-test", "layers": ["colour"]}])
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    (cell, arrays), = list(load_cell_scores(sweep.store, "tiny"))
    assert arrays["score"].shape == (4, 6)
    np.testing.assert_allclose(arrays["times"], np.linspace(-0.1, 0.4, 6))
    assert arrays["score"][:, 3:].mean() > 0.8 and abs(arrays["score"][:, :2].mean()) < 0.4
    frame = results_table(sweep.store, "tiny")
    occipital = frame[frame["roi"] == "occipital"].iloc[0]
    assert occipital["peak_time"] > 0.1


def test_unknown_executor_and_missing_dask_are_clear_errors(tmp_path, monkeypatch):
    import sys

    from brain_workbench.sweep.executors import get_executor

    with pytest.raises(WorkbenchError, match="unknown executor 'slurm'"):
        get_executor("slurm")
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(WorkbenchError, match=r"brain-workbench\[dask\]"):
        list(get_executor("dask")(str(tmp_path / "s.zarr"), [], lambda url, cell: None))


def test_dask_executor_matches_inline(tmp_path):
    pytest.importorskip("dask.distributed")
    a = tiny_config(tmp_path / "a", heads=[{"name": "ridge", "options": {"cv": 3}}])
    b = tiny_config(tmp_path / "b", heads=[{"name": "ridge", "options": {"cv": 3}}])
    Sweep(config_from_dict(a)).run(executor="inline")
    summary = Sweep(config_from_dict(b)).run(executor="dask")
    assert summary["computed"] == 4
    ta = results_table(Sweep(config_from_dict(a)).store, "tiny").sort_values(["subject", "layer", "roi"])
    tb = results_table(Sweep(config_from_dict(b)).store, "tiny").sort_values(["subject", "layer", "roi"])
    np.testing.assert_allclose(ta["mean_r"].to_numpy(), tb["mean_r"].to_numpy(), atol=1e-6)


def test_only_stimuli_the_subjects_saw_are_encoded(tmp_path):
    seen = []

    class Recorder(PixelEncoder):
        def encode(self, batch, layers):
            seen.extend(im.size for im in batch)
            return super().encode(batch, layers)

    wb.register("pixel-test", Recorder, kind="encoder", replace=True)
    cfg = config_from_dict(tiny_config(tmp_path, subjects=["1"]))
    sweep = Sweep(cfg)
    sweep.run()
    rec = sweep.dataset.recording("1")
    used = set(rec.trial_stimulus_ids)
    assert len(used) < len(sweep.dataset.stimuli("image"))
    assert len(seen) == len(used)
    assert set(sweep.stimuli_for(0).ids) == used


def test_metric_cells_compare_without_fitting(tmp_path):
    from brain_workbench.cli import app


    cfg = config_from_dict(tiny_config(tmp_path, metrics=[{"name": "cka"}, {"name": "rsa"}]))
    sweep = Sweep(cfg)
    summary = sweep.run()
    assert summary["cells"] == 4 + 2 * 4
    frame = results_table(sweep.store, "tiny")
    metric_rows = frame[frame["kind"] == "metric"]
    assert set(metric_rows["head"]) == {"cka", "rsa"} and metric_rows["value"].notna().all()
    rec = sweep.dataset.recording("1").average_repetitions()
    test = np.isin(rec.trial_stimulus_ids, rec.splits["test"])
    ids = rec.trial_stimulus_ids[test]
    X = PixelEncoder().encode(sweep.dataset.stimuli("image").get(ids), ["colour"])["colour"]
    v1 = rec.units.rois["V1"]
    expected = wb.metric("cka").compare(X.astype(np.float64), rec.responses[test][:, v1])
    row = metric_rows[(metric_rows["head"] == "cka") & (metric_rows["subject"] == "1") &
                      (metric_rows["layer"] == "colour") & (metric_rows["roi"] == "V1")]
    assert row["value"].iloc[0] == pytest.approx(expected, rel=1e-4)
    assert len(list(load_cell_scores(sweep.store, "tiny"))) == 4
    store = str(tmp_path / "store.zarr")
    runner = CliRunner()
    result = runner.invoke(app, ["results", "show", "tiny", "--store", store])
    assert result.exit_code == 0 and "cka" in result.output and "rsa" in result.output
    out = tmp_path / "cka.png"
    result = runner.invoke(app, ["figure", "layers", "tiny", "--store", store, "--metric", "cka", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    result = runner.invoke(app, ["report", "tiny", "--store", store, "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "layers_rsa.png" in (tmp_path / "report" / "index.html").read_text()
