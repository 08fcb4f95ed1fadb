"""RDM datasets with sessions, session means and a group RDM: tables and layer figures never mix them, and
``results show --value`` tabulates the column asked for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError, digest
from brain_workbench_plugins.analyses.metric import MetricAnalysis
from fixtures_encoders import ColourEncoder

DEMO = {"n_subjects": 2, "n_train": 12, "n_test": 10, "as_rdms": True}


class GroupSessionRDMs:
    """Subjects 1 and 2 with RDMs of sessions a and b and their mean (no session), plus subject ``group``
    holding one group RDM: the layout labs publish."""

    name, modalities, provides = "group-session-rdms", ("image", "text"), "rdms"

    def __init__(self):
        self._demo = wb.dataset("demo", **DEMO)

    def subjects(self):
        return [*self._demo.subjects(), "group"]

    def stimuli(self, modality=None):
        return self._demo.stimuli(modality)

    def recording(self, subject):
        raise WorkbenchError("group-session-rdms provides RDMs only")

    def fetch(self, dest, accept_terms=False, **options):
        raise WorkbenchError("nothing to fetch")

    def fingerprint(self):
        return digest("group-session-rdms", self._demo.fingerprint())

    def rdms(self, subject):
        if subject == "group":
            own = [r for s in self._demo.subjects() for r in self._demo.rdms(s)[:2]]
            return [replace(own[0], dataset=self.name, subject="group",
                            rdm=np.mean([r.rdm for r in own if r.roi == own[0].roi], axis=0))]
        rng = np.random.default_rng(int(subject))
        out = []
        for r in self._demo.rdms(subject)[:2]:
            sessions = [replace(r, dataset=self.name, session=s, rdm=r.rdm + rng.uniform(0, 0.5, r.rdm.shape))
                        for s in ("a", "b")]
            out += [*sessions, replace(r, dataset=self.name, rdm=(sessions[0].rdm + sessions[1].rdm) / 2)]
        return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("mixes")
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    wb.register("group-session-rdms", GroupSessionRDMs, kind="dataset", replace=True)
    sweep = Sweep(config_from_dict({"name": "mixes", "store": str(tmp_path / "store.zarr"), "seed": 1,
                                    "dataset": {"name": "group-session-rdms"},
                                    "encoders": [{"name": "colour-test", "batch_size": 64}],
                                    "metrics": [{"name": "rsa"}], "permutations": 9, "bootstrap": 0}))
    sweep.run()
    return sweep


def _plotted(monkeypatch, finished, tmp_path, *extra):
    """Run ``figure layers --metric rsa`` and return (result, the rows handed to the plot)."""
    import brain_workbench.cli.figures as figures

    seen = {}

    def capture(frame, **kwargs):
        seen["frame"] = frame
        Path(kwargs["output_file"]).write_bytes(b"png")
        return kwargs["output_file"]

    monkeypatch.setattr(figures, "plot_layer_profiles", capture)
    result = CliRunner().invoke(app, ["figure", "layers", "mixes", "--store", finished.store.url, "--metric", "rsa",
                                      "--out", str(tmp_path / "l.png"), *extra])
    return result, seen.get("frame")


def test_figure_layers_refuses_to_average_sessions_their_mean_and_the_group(finished, tmp_path, monkeypatch):
    frame = results_table(finished.store, "mixes")
    assert set(frame["subject"]) == {"1", "2", "group"}
    assert set(frame["session"].fillna("none")) == {"a", "b", "none"}
    result, _ = _plotted(monkeypatch, finished, tmp_path)
    assert result.exit_code != 0 and "3 sessions (a, b, none)" in str(result.exception)
    assert "choose one with --session" in str(result.exception)
    result, rows = _plotted(monkeypatch, finished, tmp_path, "--session", "a")
    assert result.exit_code == 0, result.output
    assert set(rows["session"]) == {"a"} and set(rows["subject"]) == {"1", "2"}
    result, rows = _plotted(monkeypatch, finished, tmp_path, "--session", "none")
    assert result.exit_code == 0, result.output
    assert rows["session"].isna().all() and set(rows["subject"]) == {"1", "2"}
    assert "group RDM (subject 'group') is left out" in result.output
    result, rows = _plotted(monkeypatch, finished, tmp_path, "--session", "none", "--subject", "group")
    assert result.exit_code == 0, result.output
    assert set(rows["subject"]) == {"group"} and len(rows) == len(frame[frame.subject == "group"])
    result, _ = _plotted(monkeypatch, finished, tmp_path, "--session", "c")
    assert result.exit_code != 0 and "no session 'c'" in str(result.exception)
    result, _ = _plotted(monkeypatch, finished, tmp_path, "--session", "none", "--subject", "1", "--subject", "group")
    assert result.exit_code != 0 and "group RDM" in str(result.exception)


def test_figure_layers_draws_a_session(finished, tmp_path):
    out = tmp_path / "a.png"
    result = CliRunner().invoke(app, ["figure", "layers", "mixes", "--store", finished.store.url, "--metric", "rsa",
                                      "--session", "b", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000


def test_results_show_value_tabulates_that_column(finished):
    frame = results_table(finished.store, "mixes")
    rows = frame[frame["kind"] == "metric"]
    tables = MetricAnalysis().table(rows, "mixes", "p_permutation")
    assert tables and all("p_permutation" in t.title for t in tables)
    first = tables[0]
    part = rows[(rows.session == "a")] if "session a" in first.title else rows[rows.session.isna()]
    for key, values in zip(first.keys, first.values):
        for roi, text in zip(first.value_names, values):
            cell = part[(part.layer == key[1]) & (part.roi == roi)]
            if text:
                assert float(text) == pytest.approx(cell["p_permutation"].mean(), abs=5e-4)
                assert float(text) != pytest.approx(cell["value"].mean(), abs=5e-4)
    default = MetricAnalysis().table(rows, "mixes", "mean_r")
    assert all("p_permutation" not in t.title for t in default)
    result = CliRunner().invoke(app, ["results", "show", "mixes", "--store", finished.store.url, "--value",
                                      "p_permutation", "--wide"])
    assert result.exit_code == 0, result.output
    assert "rsa, session a, p_permutation" in result.output
    bad = CliRunner().invoke(app, ["results", "show", "mixes", "--store", finished.store.url, "--value", "nope"])
    assert bad.exit_code != 0 and "no column 'nope'" in str(bad.exception)


@pytest.mark.parametrize("cv", [{"scheme": "kfold", "k": 3}, {"scheme": "all"}])
def test_cv_on_an_rdm_dataset_is_refused_in_one_sentence(tmp_path, cv):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    data = {"name": "rdm-cv", "store": str(tmp_path / "s.zarr"), "dataset": {"name": "demo", "options": DEMO},
            "encoders": [{"name": "colour-test"}], "metrics": [{"name": "rsa"}], "cv": cv}
    with pytest.raises(WorkbenchError, match=r"provides brain RDMs, which are compared whole .* cv is not applied to "
                                             r"them; remove cv$"):
        Sweep(config_from_dict(data)).run()
    assert not (tmp_path / "s.zarr" / "rdm-cv").exists()


def test_rdm_noise_ceilings_are_columns_and_bands(finished, tmp_path):
    from brain_workbench.figures.layers import plot_layer_profiles
    from brain_workbench.numerics.ceilings import given_rdm_noise_ceilings

    frame = results_table(finished.store, "mixes")
    ds = GroupSessionRDMs()
    expected = given_rdm_noise_ceilings([r for s in ("1", "2") for r in ds.rdms(s)])
    for (roi, session), (lower, upper) in expected.items():
        rows = frame[(frame.roi == roi) & (frame.session.fillna("none") == (session or "none"))]
        assert len(rows) and rows["noise_ceiling_lower"].to_numpy() == pytest.approx(lower, abs=1e-12)
        assert rows["noise_ceiling_upper"].to_numpy() == pytest.approx(upper, abs=1e-12)
        assert {"1", "2"} <= set(rows["subject"])  # the group RDM's row (one ROI, no session) carries it too
    assert frame[frame.subject == "group"]["noise_ceiling_upper"].notna().all()
    assert lower < upper
    fig = plot_layer_profiles(frame[(frame.session == "a") & (frame.subject != "group")], "value")
    gids = {p.get_gid() for p in fig.axes[0].patches + fig.axes[0].lines if p.get_gid()}
    assert {f"ceiling-{roi}" for roi, _ in expected} <= gids
    import matplotlib.pyplot as plt

    plt.close(fig)
    tables = MetricAnalysis().table(frame[frame.kind == "metric"], "mixes", "noise_ceiling_upper")
    assert tables and "noise_ceiling_upper" in tables[0].title


def test_tables_and_figures_keep_the_group_rdm_apart(finished, tmp_path):
    from brain_workbench.figures.sweep import write_figures

    rows = results_table(finished.store, "mixes")
    tables = {t.title: t for t in MetricAnalysis().table(rows, "mixes", "value")}
    assert set(tables) == {"mixes: rsa, session a (mean over subjects, no fitting)",
                           "mixes: rsa, session b (mean over subjects, no fitting)",
                           "mixes: rsa (mean over subjects, no fitting)",
                           "mixes: rsa, group RDM (the group RDM, no fitting)"}
    mean = tables["mixes: rsa (mean over subjects, no fitting)"]
    subjects = rows[rows.session.isna() & (rows.subject != "group")]
    for key, values in zip(mean.keys, mean.values):
        for roi, text in zip(mean.value_names, values):
            expected = subjects[(subjects.layer == key[1]) & (subjects.roi == roi)]["value"].mean()
            assert float(text) == pytest.approx(expected, abs=5e-4)
    names = {p.name for p in write_figures(finished.store, "mixes", tmp_path)}
    assert {"layers_rsa_a.png", "layers_rsa_b.png", "layers_rsa.png", "layers_rsa_group.png"} <= names
