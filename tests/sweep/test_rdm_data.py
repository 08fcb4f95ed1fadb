"""Datasets that provide brain RDMs instead of responses, and metric-only sweeps without a training split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import squareform

import brain_workbench as wb
from brain_workbench.numerics.ceilings import given_rdm_noise_ceilings, rdm_noise_ceiling
from brain_workbench.plugin.testing import RDM_DATASET_CHECKS, check_dataset, check_dataset_rdms, checks_for
from brain_workbench.sweep import Sweep, results_table, tidy_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import BrainRDMs, WorkbenchError, digest
from fixtures_encoders import ColourEncoder

SEED = 3
DEMO = {"n_subjects": 3, "n_train": 20, "n_test": 14, "as_rdms": True}


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


def config(tmp_path: Path, **changes) -> dict:
    data = {"name": "rdms", "store": str(tmp_path / "store.zarr"), "seed": SEED,
            "dataset": {"name": "demo", "options": DEMO},
            "encoders": [{"name": "colour-test", "batch_size": 64}],
            "metrics": [{"name": "rsa", "label": "rsa"}, {"name": "rsa", "options": {"comparison": "pearson"}, "label": "rsa-r"}],
            "permutations": 25, "bootstrap": 10}
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("rdms")
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(config(tmp_path)))
    sweep.run()
    return sweep


# ---- the value type ---------------------------------------------------------------------------------


def _square(n: int = 5, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, 4))
    return squareform(np.linalg.norm(X[:, None] - X[None], axis=2), checks=False).astype(float)


def test_brain_rdms_store_square_input_condensed():
    square = squareform(_square())
    r = BrainRDMs("d", 1, "V1", [f"s{i}" for i in range(5)], square)
    assert r.subject == "1" and r.rdm.shape == (10,) and not r.rdm.flags.writeable
    np.testing.assert_array_equal(r.rdm, squareform(square, checks=False))
    np.testing.assert_array_equal(r.square(), square)
    again = BrainRDMs("d", "1", "V1", r.stimulus_ids, r.rdm)
    np.testing.assert_array_equal(again.rdm, r.rdm)
    picked = r.select(["s3", "s0", "s1"])
    np.testing.assert_array_equal(picked.square(), square[np.ix_([3, 0, 1], [3, 0, 1])])


@pytest.mark.parametrize("change, message", [
    (lambda m, ids: (m + np.triu(np.ones_like(m), 1), ids), "symmetric"),
    (lambda m, ids: (m + np.eye(len(m)), ids), "zero diagonal"),
    (lambda m, ids: (np.where(np.eye(len(m), k=1, dtype=bool) | np.eye(len(m), k=-1, dtype=bool), np.nan, m), ids),
     "finite"),
    (lambda m, ids: (m, ["a", "a", "b", "c", "d"]), "repeat"),
    (lambda m, ids: (squareform(m)[:-1], ids), "condensed"),
    (lambda m, ids: (m[:3, :3], ids), "5 × 5"),
])
def test_brain_rdms_refuse_bad_input(change, message):
    m, ids = change(squareform(_square()), [f"s{i}" for i in range(5)])
    with pytest.raises(WorkbenchError, match=message):
        BrainRDMs("d", "1", "V1", ids, m)


def test_brain_rdms_refuse_unknown_distance_and_tiny_sets():
    with pytest.raises(WorkbenchError, match="distance"):
        BrainRDMs("d", "1", "V1", list("abcde"), _square(), distance="manhattan-ish")
    with pytest.raises(WorkbenchError, match="at least 3"):
        BrainRDMs("d", "1", "V1", ["a", "b"], [1.0])


# ---- rsa against given RDMs ---------------------------------------------------------------------------


def test_rsa_against_a_given_rdm_equals_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((12, 7)), rng.standard_normal((12, 30))
    given = BrainRDMs("d", "1", "V1", [f"s{i}" for i in range(12)], 1 - np.corrcoef(Y))
    rsa = wb.metric("rsa")
    model = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method="correlation")
    brain = rsatoolbox.rdm.RDMs(given.rdm[None])
    for comparison in ("spearman", "pearson", "kendall_tau_a", "cosine"):
        metric = wb.metric("rsa", comparison=comparison)
        expected = float(rsatoolbox.rdm.compare(model, brain, method={"pearson": "corr", "kendall_tau_a": "tau-a"}
                                                .get(comparison, comparison))[0, 0])
        assert metric.compare_to_rdm(X, given.rdm) == pytest.approx(expected, abs=1e-6)
        assert metric.compare_to_rdm(X, given.square()) == pytest.approx(expected, abs=1e-6)
    # given with given: a shuffled copy is put back in order first
    order = rng.permutation(12)
    shuffled = given.select([f"s{i}" for i in order])
    assert rsa.compare_given(given, shuffled) == pytest.approx(1.0)
    other = BrainRDMs("d", "2", "V1", given.stimulus_ids, 1 - np.corrcoef(rng.standard_normal((12, 30))))
    expected = sps.spearmanr(given.rdm, other.rdm).statistic
    assert rsa.compare_given(given, other.select([f"s{i}" for i in order])) == pytest.approx(expected, abs=1e-12)


def test_given_rdm_noise_ceilings_equal_the_stats_function_and_rsatoolbox():
    ds = wb.dataset("demo", **DEMO)
    rdms = [r for s in ds.subjects() for r in ds.rdms(s)]
    ceilings = given_rdm_noise_ceilings(rdms)
    rois = {r.roi for r in rdms}
    assert set(ceilings) == {(roi, None) for roi in rois}
    for roi in rois:
        stack = np.stack([r.rdm for r in rdms if r.roi == roi])
        assert ceilings[(roi, None)] == pytest.approx(rdm_noise_ceiling(stack), abs=1e-12)
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    roi = sorted(rois)[0]
    stack = np.stack([r.rdm for r in rdms if r.roi == roi])
    np.testing.assert_allclose(ceilings[(roi, None)], boot_noise_ceiling(rsatoolbox.rdm.RDMs(stack),
                                                                         method="spearman"), atol=1e-6)


def test_given_rdm_noise_ceilings_refuse_other_stimuli():
    a = BrainRDMs("d", "1", "V1", list("abcd"), _square(4))
    b = BrainRDMs("d", "2", "V1", list("abce"), _square(4, 1))
    with pytest.raises(WorkbenchError, match="other stimuli"):
        given_rdm_noise_ceilings([a, b])


# ---- conformance ----------------------------------------------------------------------------------------


def test_rdm_dataset_passes_its_conformance_checks():
    ds = wb.dataset("demo", **DEMO)
    assert checks_for(ds) == RDM_DATASET_CHECKS
    check_dataset(ds, subjects=["2"])


def test_check_dataset_rdms_fails_an_rdm_of_another_subject():
    ds = wb.dataset("demo", **DEMO)

    class Wrong:
        name, modalities, provides = ds.name, ds.modalities, "rdms"
        subjects, stimuli, recording, fetch, fingerprint = ds.subjects, ds.stimuli, ds.recording, ds.fetch, \
            ds.fingerprint

        def rdms(self, subject):
            return [replace(r, subject="99") for r in ds.rdms(subject)]

    with pytest.raises(AssertionError, match="another subject"):
        check_dataset_rdms(Wrong())


# ---- sweeps over given RDMs -------------------------------------------------------------------------------


def test_rdm_sweep_values_and_p_values_equal_a_direct_computation(finished):
    sweep = finished
    frame = results_table(sweep.store, "rdms")
    assert set(frame["kind"]) == {"metric"} and set(frame["analysis"]) == {"rsa", "rsa-r"}
    ds = sweep.dataset
    for subject in ("1", "3"):
        for i, given in enumerate(ds.rdms(subject)):
            X = ColourEncoder().encode(ds.stimuli("image").get(list(given.stimulus_ids)), ["colour"])["colour"]
            model = 1 - np.corrcoef(X.astype(np.float32).astype(np.float64))
            model = squareform(model, checks=False)
            observed = sps.spearmanr(model, given.rdm).statistic
            rng = np.random.default_rng(SEED + i)
            square = given.square()
            null = []
            for _ in range(25):
                p = rng.permutation(given.n_stimuli)
                null.append(sps.spearmanr(model, squareform(square[np.ix_(p, p)], checks=False)).statistic)
            row = frame[(frame.subject == subject) & (frame.analysis == "rsa") & (frame.roi == given.roi)].iloc[0]
            assert row["value"] == pytest.approx(observed, abs=1e-6)
            assert row["p_permutation"] == pytest.approx((1 + np.sum(np.array(null) >= observed)) / 26)
            assert row["ci_low"] <= row["ci_high"] and row["score_name"] == "rsa_spearman"
            pearson = frame[(frame.subject == subject) & (frame.analysis == "rsa-r") & (frame.roi == given.roi)]
            assert pearson.iloc[0]["value"] == pytest.approx(np.corrcoef(model, given.rdm)[0, 1], abs=1e-6)
    assert "q_fdr" in frame.columns
    long = tidy_table(sweep.store, "rdms")
    assert {"rsa_spearman", "rsa_pearson", "p_permutation"} <= set(long["score"])


def test_rdm_sweep_reruns_nothing(finished):
    summary = Sweep(finished.config, finished.store).run()
    assert summary["computed"] == 0 and summary["cells"] == 2 * 3


def test_rdm_sweep_refuses_heads_and_metrics_without_rdm_support(tmp_path):
    with pytest.raises(WorkbenchError, match="heads cannot be fitted"):
        Sweep(config_from_dict(config(tmp_path, heads=[{"name": "ridge"}]))).run()
    with pytest.raises(WorkbenchError, match="cannot compare a model with given brain RDMs"):
        Sweep(config_from_dict(config(tmp_path, metrics=[{"name": "cka"}]))).run()
    assert not (tmp_path / "store.zarr" / "rdms").exists()


def test_rdm_sweep_restricts_rois(tmp_path):
    ds = wb.dataset("demo", **DEMO)
    roi = ds.rdms("1")[0].roi
    sweep = Sweep(config_from_dict(config(tmp_path, subjects=["1"], rois=[roi], metrics=[{"name": "rsa"}],
                                          permutations=0, bootstrap=0)))
    sweep.run()
    assert set(results_table(sweep.store, "rdms")["roi"]) == {roi}
    with pytest.raises(WorkbenchError, match="no RDM of ROI 'nowhere'"):
        Sweep(config_from_dict(config(tmp_path, subjects=["1"], rois=["nowhere"], metrics=[{"name": "rsa"}]))).run()


# ---- metric-only sweeps on response datasets need no training split --------------------------------------


class AllTestDemo:
    """The demo with a test split holding every stimulus (no training stimuli at all)."""

    def __init__(self, split: str | None = "test"):
        self._demo = wb.dataset("demo", n_subjects=1, n_train=10, n_test=12)
        self.name, self.modalities, self.split = "all-test-demo", self._demo.modalities, split

    def subjects(self):
        return self._demo.subjects()

    def stimuli(self, modality=None):
        return self._demo.stimuli(modality)

    def fetch(self, dest, accept_terms=False, **options):
        raise WorkbenchError("nothing to fetch")

    def fingerprint(self):
        return digest("all-test-demo", self.split, self._demo.fingerprint())

    def recording(self, subject):
        rec = self._demo.recording(subject)
        splits = {} if self.split is None else {self.split: np.unique(rec.trial_stimulus_ids)}
        return replace(rec, dataset=self.name, splits=splits)


@pytest.mark.parametrize("split, cv", [("test", None), (None, {"scheme": "all"})])
def test_metric_only_sweep_needs_no_training_split(tmp_path, split, cv):
    wb.register("all-test-demo", lambda: AllTestDemo(split), kind="dataset", replace=True)
    data = config(tmp_path, dataset={"name": "all-test-demo"}, heads=[], metrics=[{"name": "cka"}], permutations=0,
                  bootstrap=0)
    if cv:
        data["cv"] = cv
    sweep = Sweep(config_from_dict(data))
    sweep.run()
    frame = results_table(sweep.store, "rdms")
    rec = sweep.dataset.recording("1").average_repetitions()
    X = ColourEncoder().encode(sweep.dataset.stimuli("image").get(list(rec.trial_stimulus_ids)), ["colour"])["colour"]
    expected = wb.metric("cka").compare(X.astype(np.float64), rec.responses.astype(np.float32).astype(np.float64))
    row = frame[frame.roi == "all"].iloc[0]
    assert row["value"] == pytest.approx(expected, rel=1e-6)
    assert frame["n_units"].notna().all()


def test_scheme_all_refuses_encoding_heads(tmp_path):
    wb.register("all-test-demo", lambda: AllTestDemo(None), kind="dataset", replace=True)
    data = config(tmp_path, dataset={"name": "all-test-demo"}, cv={"scheme": "all"}, metrics=[])
    with pytest.raises(WorkbenchError, match="trains on none"):
        Sweep(config_from_dict(data)).run()


def test_decoding_heads_refuse_a_cv_scheme_they_cannot_test_on(tmp_path):
    data = config(tmp_path, dataset={"name": "demo", "options": {"n_subjects": 1, "n_train": 20, "n_test": 10}},
                  heads=[{"name": "decoder"}], metrics=[], cv={"scheme": "all"})
    with pytest.raises(WorkbenchError, match="decoding cells use test_split"):
        Sweep(config_from_dict(data)).run()


def test_results_show_and_figures_keep_two_rsa_analyses_apart(finished, tmp_path):
    from typer.testing import CliRunner

    from brain_workbench.cli import app
    from brain_workbench.figures.sweep import write_figures

    result = CliRunner().invoke(app, ["results", "show", "rdms", "--store", finished.store.url, "--wide"])
    assert result.exit_code == 0, result.output
    assert "rdms: rsa (mean" in result.output and "rdms: rsa-r (mean" in result.output
    one = CliRunner().invoke(app, ["results", "show", "rdms", "--store", finished.store.url, "--subject", "2",
                                   "--analysis", "rsa-r", "--json"])
    assert one.exit_code == 0, one.output
    import json

    rows = json.loads(one.output)
    assert rows and {r["subject"] for r in rows} == {"2"} and {r["analysis"] for r in rows} == {"rsa-r"}
    bad = CliRunner().invoke(app, ["results", "show", "rdms", "--store", finished.store.url, "--subject", "9"])
    assert bad.exit_code != 0 and "no subject '9'" in str(bad.exception)
    names = {p.name for p in write_figures(finished.store, "rdms", tmp_path)}
    assert {"layers_rsa.png", "layers_rsa-r.png"} <= names


class SessionRDMs:
    """The demo's RDMs cut into two sessions per ROI (first and second half of the stimuli's pairs: the
    same RDM with noise), to check that sessions stay apart in tables."""

    name, modalities, provides = "session-rdms", ("image", "text"), "rdms"

    def __init__(self):
        self._demo = wb.dataset("demo", **DEMO)

    def subjects(self):
        return self._demo.subjects()

    def stimuli(self, modality=None):
        return self._demo.stimuli(modality)

    def recording(self, subject):
        raise WorkbenchError("session-rdms provides RDMs only")

    def fetch(self, dest, accept_terms=False, **options):
        raise WorkbenchError("nothing to fetch")

    def fingerprint(self):
        return digest("session-rdms", self._demo.fingerprint())

    def rdms(self, subject):
        rng = np.random.default_rng(int(subject))
        return [replace(r, dataset=self.name, session=s, rdm=r.rdm + rng.uniform(0, 0.2, r.rdm.shape))
                for r in self._demo.rdms(subject)[:2] for s in ("a", "b")]


def test_rdm_sessions_stay_apart_in_tidy_and_summary_tables(tmp_path):
    from brain_workbench.sweep import summary_table

    wb.register("session-rdms", SessionRDMs, kind="dataset", replace=True)
    sweep = Sweep(config_from_dict(config(tmp_path, dataset={"name": "session-rdms"}, metrics=[{"name": "rsa"}],
                                          permutations=0, bootstrap=0)))
    sweep.run()
    long = tidy_table(sweep.store, "rdms")
    assert set(long["session"]) == {"a", "b"}
    summary = summary_table(sweep.store, "rdms")
    summary = summary[summary["score"] == "rsa_spearman"]
    assert len(summary) == 2 * 2 and (summary["n_subjects"] == 3).all()
    roi = summary["roi"].iloc[0]
    direct = long[(long.roi == roi) & (long.session == "b") & (long.score == "rsa_spearman")]["value"].mean()
    assert summary[(summary.roi == roi) & (summary.session == "b")]["mean"].iloc[0] == pytest.approx(direct)


def test_figure_layers_draws_one_analysis_and_refuses_to_average_two(finished, tmp_path):
    from typer.testing import CliRunner

    from brain_workbench.cli import app

    base = ["figure", "layers", "rdms", "--store", finished.store.url]
    mixed = CliRunner().invoke(app, [*base, "--value", "value", "--out", str(tmp_path / "a.png")])
    assert mixed.exit_code != 0 and "choose one with --analysis" in str(mixed.exception)
    for extra in (["--analysis", "rsa-r", "--value", "value"], ["--metric", "rsa"]):
        result = CliRunner().invoke(app, [*base, *extra, "--out", str(tmp_path / "b.png")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "b.png").stat().st_size > 1000
        (tmp_path / "b.png").unlink()


def test_rdm_profiles_draw_each_rois_noise_ceiling_over_subjects(finished, tmp_path):
    """The metric figure of an RDM sweep draws each ROI's noise ceiling over subjects (the rows carry it, issue 26),
    names the brain RDM's distance, and its caption says so (issue 23, item 3)."""
    from brain_workbench.figures.sweep import write_figures

    paths = write_figures(finished.store, "rdms", tmp_path)
    assert {"layers_rsa.png", "layers_rsa-r.png"} <= {p.name for p in paths}
    captions = __import__("json").loads((tmp_path / ".figures.json").read_text())["captions"]
    assert "noise ceiling" in captions["layers_rsa.png"]
    frame = results_table(finished.store, "rdms")
    ds = finished.dataset
    expected = given_rdm_noise_ceilings([r for s in ds.subjects() for r in ds.rdms(s)])
    rows = frame[(frame["analysis"] == "rsa") & (frame["roi"] != "all")]
    ceilings = {roi: (part["noise_ceiling_lower"].mean(), part["noise_ceiling_upper"].mean())
                for roi, part in rows.groupby("roi")}
    assert ceilings == {roi: pytest.approx(bounds) for (roi, _), bounds in expected.items()}
    from brain_workbench.figures.layers import plot_layer_profiles

    fig = plot_layer_profiles(frame[frame["analysis"] == "rsa"], "value")
    assert {p.get_gid() for p in fig.axes[0].patches} >= {f"ceiling-{roi}" for roi in ceilings}
    assert "brain RDMs of correlation distance" in fig.axes[0].get_ylabel()
