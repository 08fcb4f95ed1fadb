"""The ``concepts`` analysis through a tiny sweep: an SAE encoder's latents against simulated fMRI, per-unit best
latents equal a direct numpy computation, labels come from the demo's captions, bad sections are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses.concepts import words

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402

SAE = {"name": "sae", "options": {"base": "colour-test", "d_sae": 12, "k": 3}, "layers": ["latents"], "label": "sae"}


def config(tmp: Path, **concepts) -> dict:
    return {"name": "cc", "store": str(tmp / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": "colour-test"}, SAE], "heads": [{"name": "ridge"}], "metrics": [],
            "permutations": 0,
            "concepts": {"encoder": "sae", "top_k": 4, "embedding": {"encoder": "colour-test", "layer": "colour"},
                         "min_r": 0.0, **concepts}}


@pytest.fixture(autouse=True)
def _colour_encoder():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(config(tmp_path_factory.mktemp("concepts"))))
    with pytest.warns(UserWarning, match="untrained TopK SAE"):
        sweep.run()
    return sweep


def test_concept_cell_matches_numpy_and_labels_come_from_captions(finished):
    table = results_table(finished.store, "cc")
    rows = table[table["kind"] == "concepts"]
    assert set(rows["roi"]) >= {"all", "V1", "semantic"}
    cell = next(c for c in finished.plan().cells if c.analysis == "concepts")
    store = Store(finished.config.store, mode="r")
    out = store.open(cell.result_path("cc"))
    data = prepared_recording(finished.config.store, cell.task.encoding.prep)
    ids = [str(s) for s in (*data["train_ids"], *data["test_ids"])]
    Y = np.concatenate([data["Y_train"], data["Y_test"]])
    Z = load_features(store, cell.task.encoding.feature_path, ids)
    alive = Z.std(0) > 0
    zs = lambda m: (m - m.mean(0)) / m.std(0)  # noqa: E731
    r = zs(Z[:, alive].astype(np.float64)).T @ zs(Y.astype(np.float64)) / len(ids)
    np.testing.assert_array_equal(out["best_latent"], np.flatnonzero(alive)[r.argmax(0)])
    np.testing.assert_allclose(out["best_r"], r.max(0), atol=1e-5)
    np.testing.assert_array_equal(out["dead"], ~(Z > 0).any(0))
    assert out["top_ids"].shape == (Z.shape[1], 4)
    latent = int(np.flatnonzero(alive)[0])
    np.testing.assert_allclose(out["top_acts"][latent], np.sort(Z[:, latent])[::-1][:4], rtol=1e-6)
    captions = wb.dataset("demo", n_subjects=1, n_train=40, n_test=12).captions(list(out["top_ids"][latent]))
    assert set(str(out["labels"][latent]).split()) <= set(w for c in captions for w in words.content_words(c))
    assert out["assigned_latent"].max() < Z.shape[1] and (out["assigned_latent"] >= 0).sum() == min(Z.shape[1], Y.shape[1])
    two_active = (out["top_acts"] > 0).sum(1) >= 2
    assert np.isfinite(out["monosemanticity"][two_active]).all() and np.isnan(out["monosemanticity"][~two_active]).all()
    assert out["chosen_r"].shape == (len(out["chosen"]), Y.shape[1])


def test_concepts_refuses_bad_sections_before_work(tmp_path):
    for concepts, message in (({"encoder": "colour-test"}, "not an `sae` encoder"),
                              ({"layer": "reconstruction"}, "no 'reconstruction' layer among its listed layers"),
                              ({"embedding": {"encoder": "clip", "layer": 1.0}}, "does not run"),
                              ({"head": "lasso"}, "plans no encoding cell"),
                              ({"encoder": None, "sae": {"encoder": "colour-test", "layer": "colour", "checkpoint": "x"}},
                               "not an independent embedding"),
                              ({"sae": {"encoder": "colour-test", "layer": "colour", "checkpoint": "x"}},
                               "either encoder .* or sae")):
        sweep = Sweep(config_from_dict(config(tmp_path, **concepts)))
        with pytest.raises(wb.WorkbenchError, match=message):
            sweep.run()
    bad = tmp_path / "captions.csv"
    bad.write_text("stimulus_id,caption\nimg-1,a cat\n")
    with pytest.raises(wb.WorkbenchError, match="none is an image of this dataset"):
        Sweep(config_from_dict(config(tmp_path, captions=str(bad)))).run()
    assert not (tmp_path / "s.zarr" / "features").exists(), "refused before extracting features"


def test_concepts_show_lists_latents_and_one_latents_top_stimuli(finished):
    import typer
    from typer.testing import CliRunner

    from brain_workbench_plugins.analyses import register_commands

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register_commands(app)
    runner = CliRunner()
    shown = runner.invoke(app, ["concepts", "show", "cc", "--store", finished.config.store, "--top", "3"])
    assert shown.exit_code == 0 and "best for units" in shown.output and "monosemanticity" in shown.output, shown.output
    one = runner.invoke(app, ["concepts", "show", "cc", "--store", finished.config.store, "--latent", "0"])
    assert one.exit_code == 0 and "demo-" in one.output and "activation" in one.output, one.output
    bad = runner.invoke(app, ["concepts", "show", "cc", "--store", finished.config.store, "--latent", "99"])
    assert bad.exit_code != 0 and "not among the SAE's 12 latents" in str(bad.exception), bad.output


def test_an_sae_over_a_cached_layer_is_trained_in_the_store_without_re_encoding(tmp_path):
    calls = []

    class CountingColour(ColourEncoder):
        def encode(self, batch, layers):
            calls.append(len(batch))
            return super().encode(batch, layers)

    wb.register("colour-test", CountingColour, kind="encoder", replace=True)
    cfg = config(tmp_path)
    cfg["encoders"] = [{"name": "colour-test"}]
    cfg["concepts"] = {"sae": {"encoder": "colour-test", "layer": "colour", "checkpoint": "cached",
                               "train": {"k": 2, "d_sae": 12, "steps": 40, "batch_size": 32}},
                       "embedding": None, "top_k": 3, "min_r": 0.0}
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    assert sum(calls) == 52, "the base encoder ran once over the stimuli; the SAE read its cached features"
    store = Store(cfg["store"], mode="r")
    assert [e.path for e in store.iter_entries("sae/cached") if e.complete], "the SAE was trained into the store"
    rows = results_table(sweep.store, "cc")
    rows = rows[rows["kind"] == "concepts"]
    assert set(rows["encoder"]) == {"sae(colour-test/colour)"} and rows["mean_best_r"].notna().all()
    cell = next(c for c in sweep.plan().cells if c.analysis == "concepts")
    out = store.open(cell.result_path("cc"))
    assert out["top_ids"].shape == (12, 3) and np.isnan(out["monosemanticity"]).all()
    again = Sweep(config_from_dict(cfg))
    again.run()
    assert sum(calls) == 52, "a rerun reuses the cached features and latents"
