"""New-subject adaptation as a sweep: the ``shared:`` section, its cells, table rows and figure.

``configs/demo-shared.yaml`` plants the advantage (``shared_topography`` = 0.3): the shared decoder,
fitted on subjects 1–3 and adapted to subject 4, must beat a per-subject ridge decoder with one
session and meet it with all ten; a rerun computes nothing; numbers equal the plugin API's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.figures.sweep import write_figures
from brain_workbench.store import load_recording
from brain_workbench.store.features import load_features
from brain_workbench.sweep import Sweep, load_config, tidy_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.analyses import sections

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("adapt") / "s.zarr"
    cfg = load_config(CONFIGS / "demo-shared.yaml", [f"store={store}"])
    summary = Sweep(cfg).run()
    return cfg, summary, tidy_table(Sweep(cfg).store, cfg.name)


def score(table, model: str, k: int, name: str) -> float:
    rows = table[(table["analysis"] == model) & (table["k_sessions"] == k) & (table["score"] == name)]
    assert len(rows) == 1, rows
    return float(rows["value"].iloc[0])


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_each_model_and_k_is_a_cell_with_tidy_rows(ran):
    cfg, summary, table = ran
    assert summary["cells"] == summary["computed"] == 2 * 3
    rows = table[table["kind"] == "adaptation"]
    assert set(rows["k_sessions"]) == {1, 3, 10} and set(rows["subject"]) == {"4"}
    assert set(rows["model_kind"]) == {"shared", "per-subject"}
    assert {"top1", "two_way", "mean_r", "chance_top1", "chance_two_way"} <= set(rows["score"])
    n_stim = rows.drop_duplicates("cell").set_index(["analysis", "k_sessions"])["n_stimuli"]
    assert n_stim[("shared decoder", 1)] < n_stim[("shared decoder", 3)] < n_stim[("shared decoder", 10)]
    assert (rows.loc[rows["score"] == "chance_two_way", "value"] == 0.5).all()


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_shared_decoder_wins_with_one_session_and_meets_ridge_with_all(ran):
    _, _, table = ran
    small = score(table, "shared decoder", 1, "two_way") - score(table, "per-subject ridge", 1, "two_way")
    large = score(table, "shared decoder", 10, "two_way") - score(table, "per-subject ridge", 10, "two_way")
    assert small > 0.08, table
    assert abs(large) < small / 4, table
    r_small = score(table, "shared decoder", 1, "mean_r") - score(table, "per-subject ridge", 1, "mean_r")
    r_large = score(table, "shared decoder", 10, "mean_r") - score(table, "per-subject ridge", 10, "mean_r")
    assert r_small > 0.01 and abs(r_large) < r_small, table
    ridge = [score(table, "per-subject ridge", k, "two_way") for k in (1, 3, 10)]
    assert ridge[0] < ridge[1] < ridge[2], "the per-subject decoder must improve with more sessions"


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_rerun_computes_nothing_and_an_added_k_only_its_cells(ran, tmp_path):
    cfg, _, table = ran
    again = Sweep(cfg).run()
    assert again["computed"] == 0 and again["skipped"] == 6
    more = config_from_dict({**cfg.model_dump(), "shared": {**cfg.section("shared"), "sessions": [1, 2, 3, None]}})
    assert Sweep(more).run()["computed"] == 2
    grown = tidy_table(Sweep(more).store, cfg.name)
    for model in ("shared decoder", "per-subject ridge"):
        assert score(grown, model, 3, "two_way") == score(table, model, 3, "two_way")
    Sweep(cfg).run()  # leave the module's sweep as it was


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_sweep_numbers_equal_the_plugin_api(ran):
    cfg, _, table = ran
    sweep = Sweep(cfg)
    plan = sweep.plan()
    cell = next(c for c in plan.cells if c.kind == "adaptation")
    recordings = {s: load_recording(sweep.store, p).select_units(
        load_recording(sweep.store, p).units.rois["semantic"]) for s, p in plan.response_paths.items()}
    ids = sorted({i for r in recordings.values() for i in r.trial_stimulus_ids.tolist()})
    targets = load_features(sweep.store, cell.feature_path, ids)
    from brain_workbench_plugins.shared_models import adaptation_curve

    curve = adaptation_curve(recordings, ids, targets, "4", [{"name": "decoder", "label": "per-subject ridge",
                                                              "options": {"method": "ridge"}}], sessions=(1, None))
    for k, value in curve[curve["metric"] == "two_way"][["k_sessions", "value"]].itertuples(index=False):
        assert score(table, "per-subject ridge", k, "two_way") == pytest.approx(value, abs=1e-6)


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_figure_from_the_table_by_cli_and_in_the_standard_set(ran, tmp_path):
    cfg, _, _ = ran
    out = tmp_path / "adaptation.png"
    result = CliRunner().invoke(app, ["figure", "adaptation", cfg.name, "--out", str(out), "--store", cfg.store])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    bad = CliRunner().invoke(app, ["figure", "adaptation", cfg.name, "--out", str(out), "--store", cfg.store,
                                   "--subject", "9"])
    assert bad.exit_code != 0 and "no adaptation cells for subject '9'" in str(bad.exception)
    shown = CliRunner().invoke(app, ["results", "show", cfg.name, "--store", cfg.store, "--wide"])
    assert shown.exit_code == 0 and "new-subject adaptation" in shown.output and "shared decoder" in shown.output
    paths = write_figures(Sweep(cfg).store, cfg.name, tmp_path / "figs")
    assert "adaptation.png" in [p.name for p in paths]


def base(**shared) -> dict:
    spec = {"target": {"encoder": "hf-lm", "layer": 1.0}, "new_subjects": ["2"],
            "models": [{"name": "shared-decoder"}, {"name": "decoder"}], **shared}
    return {"name": "x", "dataset": {"name": "demo"}, "encoders": [{"name": "hf-lm", "layers": [1.0]}],
            "heads": [], "shared": spec}


@pytest.mark.parametrize("shared, message", [
    ({"sessions": [0, 1]}, "at least 1"),
    ({"sessions": []}, "at least one k"),
    ({"sessions": [1, 1]}, "listed once"),
    ({"train_subjects": ["2"]}, "overlap"),
    ({"target": {"encoder": "clip", "layer": 1.0}}, "not one of the sweep's encoders"),
    ({"align": {"split": "test", "fraction": 1.0}}, "shared.align.fraction"),
    ({"models": []}, "shared.models"),
    ({"device": "gpu"}, "shared.device"),
    ({"models": [{"name": "decoder"}, {"name": "decoder"}]}, "distinct labels"),
])
def test_bad_shared_sections_are_refused_in_one_sentence(shared, message):
    with pytest.raises(WorkbenchError, match=message):
        Sweep(config_from_dict(base(**shared))).validate()


def test_bad_models_subjects_and_devices_are_refused_before_any_work(tmp_path):
    store = str(tmp_path / "s.zarr")
    cfg = config_from_dict({**base(models=[{"name": "shared-encoder"}]), "store": store})
    with pytest.raises(WorkbenchError, match="shared model 'shared-encoder' .* encode head, but shared.direction is decode"):
        Sweep(cfg).validate()
    cfg = config_from_dict({**base(new_subjects=["7"]), "store": store})
    with pytest.raises(WorkbenchError, match="shared.new_subjects names '7'"):
        Sweep(cfg).plan()
    cfg = config_from_dict({**base(device="cuda"), "store": store})
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(WorkbenchError, match="CUDA is not available"):
            Sweep(cfg).run()
        assert not (tmp_path / "s.zarr" / "responses").exists(), "nothing is cached before the refusal"


def test_shared_device_reaches_models_with_a_device_option(tmp_path):
    cfg = config_from_dict({**base(device="cuda:1", models=[{"name": "shared-decoder"},
                                                            {"name": "aligned-decoder", "label": "aligned"},
                                                            {"name": "decoder", "options": {"device": "cpu"}}]),
                            "store": str(tmp_path / "s.zarr")})
    from brain_workbench_plugins.analyses.adaptation import model_options

    options = [model_options(wb.get_registry(), m, sections.shared(cfg).device) for m in sections.shared(cfg).models]
    assert options[0]["device"] == "cuda:1" and "device" not in options[1] and options[2]["device"] == "cpu"
    assert wb.head("shared-decoder", **options[0]).device == "cuda:1"


@pytest.mark.slow  # runs configs/demo-shared.yaml end to end (the `ran` fixture)
def test_encode_direction_scores_every_unit(ran):
    cfg, _, _ = ran
    shared = {**cfg.section("shared"), "direction": "encode", "sessions": [1, None],
              "models": [{"name": "shared-encoder", "label": "shared encoder",
                          "options": {"latent_dim": 8, "epochs": 3, "embedding_prior": "mean"}},
                         {"name": "ridge", "label": "per-subject ridge", "options": {"cv": 3}}]}
    enc = config_from_dict({**cfg.model_dump(), "name": "demo-shared-encode", "shared": shared})
    assert Sweep(enc).run()["computed"] == 4
    table = tidy_table(Sweep(enc).store, enc.name)
    assert {"mean_r", "median_r"} <= set(table["score"]) and "top1" not in set(table["score"])
    from brain_workbench.sweep import load_cell_scores

    cells = list(load_cell_scores(Sweep(enc).store, enc.name, kinds=("adaptation",)))
    n_units = int(table["n_units"].iloc[0])
    assert len(cells) == 4 and all(arrays["score"].shape == (n_units,) for _, arrays in cells)
    assert score(table, "shared encoder", 1, "mean_r") > 0
