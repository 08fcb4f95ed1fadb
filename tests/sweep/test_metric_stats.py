"""Statistics of metric cells (permutation null, bootstrap interval), tidy tables and SEM summaries."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.sweep import Sweep, results_table, summary_table, tidy_table
from brain_workbench.sweep.config import config_from_dict
from fixtures_encoders import ColourEncoder

SEED = 7


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


def config(tmp_path: Path, **changes) -> dict:
    data = {"name": "stats", "store": str(tmp_path / "store.zarr"), "seed": SEED,
            "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": "colour-test", "batch_size": 64}],
            "heads": [{"name": "ridge", "options": {"alphas": [10.0]}},
                      {"name": "ridge", "options": {"alphas": [1e4]}}],
            "metrics": [{"name": "cka"}, {"name": "procrustes"}], "permutations": 30, "bootstrap": 20}
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("stats")
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(config(tmp_path)))
    sweep.run()
    return sweep


def test_metric_p_values_equal_a_direct_permutation(finished):
    sweep = finished
    frame = results_table(sweep.store, "stats")
    rec = sweep.dataset.recording("1").average_repetitions()
    test = np.isin(rec.trial_stimulus_ids, rec.splits["test"])
    X = ColourEncoder().encode(sweep.dataset.stimuli("image").get(rec.trial_stimulus_ids[test]),
                               ["colour"])["colour"].astype(np.float64)
    names = ["all", *rec.units.rois]
    for metric_name, extreme in (("cka", np.greater_equal), ("procrustes", np.less_equal)):
        metric = wb.metric(metric_name)
        for i, roi in enumerate(names):
            Y = rec.responses[test][:, np.ones(rec.n_units, bool) if roi == "all" else rec.units.rois[roi]]
            Y = Y.astype(np.float32).astype(np.float64)
            observed = metric.compare(X, Y)
            rng = np.random.default_rng(SEED + i)
            null = np.array([metric.compare(X, Y[rng.permutation(len(Y))]) for _ in range(30)])
            row = frame[(frame["subject"] == "1") & (frame["head"] == metric_name) & (frame["roi"] == roi)].iloc[0]
            assert row["value"] == pytest.approx(observed, rel=1e-6)
            assert row["p_permutation"] == pytest.approx((1 + extreme(null, observed).sum()) / 31)
            rng = np.random.default_rng(SEED + i)
            boot = [metric.compare(X[idx], Y[idx]) for idx in (rng.integers(0, len(Y), len(Y)) for _ in range(20))]
            assert [row["ci_low"], row["ci_high"]] == pytest.approx(np.nanquantile(boot, [0.025, 0.975]), rel=1e-6)
    metric_rows = frame[(frame["kind"] == "metric") & (frame["roi"] != "all")]
    assert metric_rows["q_fdr"].between(0, 1).all()


def test_tidy_table_has_one_value_per_score_and_keeps_analyses_apart(finished):
    tidy = tidy_table(finished.store, "stats")
    assert {"subject", "encoder", "layer", "analysis", "roi", "score", "value", "fit_s", "peak_memory_mb"} <= set(tidy)
    assert tidy["value"].dtype == float
    assert {"mean_r", "p_permutation", "q_fdr", "ci_low", "cka_linear", "procrustes"} <= set(tidy["score"])
    key = ["subject", "encoder", "layer", "analysis", "fold", "roi", "score", "cell"]
    assert not tidy.duplicated(key).any()
    encoding = tidy[tidy["kind"] == "encoding"]
    assert (encoding["fit_s"] >= 0).all() and (encoding["peak_memory_mb"] >= 0).all()
    assert set(encoding["peak_memory_source"]) == {"rss"}
    # two ridge heads with different options are two cells per layer, never averaged together
    mean_r = tidy[(tidy["score"] == "mean_r") & (tidy["roi"] == "all") & (tidy["subject"] == "1")]
    assert sorted(mean_r["analysis"]) == ["ridge-1", "ridge-2"] and mean_r["value"].nunique() == 2


def test_summary_carries_the_sem_across_subjects(finished):
    tidy = tidy_table(finished.store, "stats")
    summary = summary_table(finished.store, "stats")
    row = summary[(summary["analysis"] == "cka") & (summary["roi"] == "V1") & (summary["score"] == "cka_linear")].iloc[0]
    values = tidy[(tidy["analysis"] == "cka") & (tidy["roi"] == "V1") & (tidy["score"] == "cka_linear")]["value"]
    assert row["n_subjects"] == 2
    assert row["mean"] == pytest.approx(values.mean())
    assert row["sem"] == pytest.approx(sps.sem(values.to_numpy()))


def test_results_show_prints_each_analysis_apart(finished):
    from brain_workbench.cli import app

    result = CliRunner().invoke(app, ["results", "show", "stats", "--store", finished.store.url])
    assert result.exit_code == 0, result.output
    assert "ridge-1 mean_r" in result.output and "ridge-2 mean_r" in result.output
    assert "cka" in result.output and "procrustes" in result.output


def test_report_tables_keep_two_heads_and_two_metrics_apart(finished, tmp_path):
    from brain_workbench.report import write_report

    page = write_report(finished.store, "stats", tmp_path).read_text()
    headings = re.findall(r"<h3 id='table-[^']*'>([^<]*)</h3>", page)
    for start in ("Encoding: ridge-1, mean Pearson r per ROI", "Encoding: ridge-2, mean Pearson r per ROI",
                  "Metric: cka, ", "Metric: procrustes, "):
        assert sum(h.startswith(start) for h in headings) == 1, (start, headings)
    frame = results_table(finished.store, "stats")
    ridge1 = frame[(frame.analysis == "ridge-1") & (frame.roi == "V1")]["mean_r"].mean()
    ridge2 = frame[(frame.analysis == "ridge-2") & (frame.roi == "V1")]["mean_r"].mean()
    before, after = page.split("<h3 id='table-encoding-ridge-2'>")[:2]
    assert f"{ridge1:.3f}" in before and f"{ridge2:.3f}" in after
