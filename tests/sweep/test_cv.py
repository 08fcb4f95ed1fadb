"""Cross-validation schemes of sweeps, each checked against a direct scikit-learn loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, LeaveOneGroupOut

import brain_workbench as wb
from brain_workbench.numerics.scoring import pearson_per_unit
from brain_workbench.store.paths import result_path
from brain_workbench.sweep import Sweep, results_table, tidy_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.sweep.tables import load_cell_scores
from brain_workbench.types import WorkbenchError
from fixtures_encoders import ColourEncoder

ALPHA = 10.0


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


def config(tmp_path: Path, cv: dict | None, **changes) -> dict:
    data = {"name": "cv", "store": str(tmp_path / "store.zarr"), "subjects": ["1"],
            "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 40, "n_test": 12, "n_sessions": 4}},
            "encoders": [{"name": "colour-test", "batch_size": 64}],
            "heads": [{"name": "ridge", "options": {"alphas": [ALPHA]}}], "permutations": 0}
    if cv is not None:
        data["cv"] = cv
    data.update(changes)
    return data


def averaged(responses: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame(responses.astype(np.float64)).groupby(ids, sort=True).mean()
    return frame.to_numpy(), frame.index.to_numpy().astype(str)


def reference_folds(sweep: Sweep, splits) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold: per-unit r, test stimulus ids and predictions of scikit-learn's Ridge on z-scored features."""
    rec = sweep.dataset.recording("1")
    stimuli = sweep.dataset.stimuli("image")
    out = []
    for train, test in splits:
        Y_tr, id_tr = averaged(rec.responses[train], rec.trial_stimulus_ids[train])
        Y_te, id_te = averaged(rec.responses[test], rec.trial_stimulus_ids[test])
        X_tr = ColourEncoder().encode(stimuli.get(id_tr), ["colour"])["colour"].astype(np.float64)
        X_te = ColourEncoder().encode(stimuli.get(id_te), ["colour"])["colour"].astype(np.float64)
        mean, sd = X_tr.mean(0), X_tr.std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        pred = Ridge(alpha=ALPHA).fit((X_tr - mean) / sd, Y_tr).predict((X_te - mean) / sd)
        out.append((pearson_per_unit(Y_te, pred), id_te, pred))
    return out


def fold_scores(sweep: Sweep) -> tuple[list[dict], dict]:
    """The fold cells (in fold order) and the fold-averaged cell of the sweep's only layer × head."""
    store = sweep.store
    plan = sweep.plan()
    folds = sorted((c for c in plan.cells if c.fold not in ("", "mean")), key=lambda c: int(c.fold))
    mean = next(c for c in plan.cells if c.fold == "mean")
    read = lambda c: store.open(result_path("cv", c.key))  # noqa: E731
    return [read(c) for c in folds], read(mean)


def test_kfold_matches_a_scikit_learn_loop(tmp_path):
    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "kfold", "k": 4, "seed": 3, "keep_predictions": True})))
    summary = sweep.run()
    assert summary["cells"] == 4 + 1
    rec = sweep.dataset.recording("1")
    stimuli = np.unique(rec.trial_stimulus_ids)
    splits = [(np.isin(rec.trial_stimulus_ids, stimuli[tr]), np.isin(rec.trial_stimulus_ids, stimuli[te]))
              for tr, te in KFold(4, shuffle=True, random_state=3).split(stimuli)]
    expected = reference_folds(sweep, splits)
    folds, mean = fold_scores(sweep)
    for reader, (r, ids, pred) in zip(folds, expected):
        order = np.argsort(reader["test_ids"])
        assert list(reader["test_ids"][order]) == list(ids)
        np.testing.assert_allclose(reader["score"], r, atol=1e-6)
        np.testing.assert_allclose(reader["prediction"][order], pred, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean["score"], np.mean([r for r, _, _ in expected], axis=0), atol=1e-6)
    assert sorted(mean["test_ids"]) == sorted(stimuli)  # out-of-fold: every stimulus once
    table = results_table(sweep.store, "cv")
    assert set(table["fold"]) == {"mean"} and (table["n_folds"] == 4).all()
    assert set(results_table(sweep.store, "cv", folds=True)["fold"]) == {"0", "1", "2", "3", "mean"}
    (_, arrays), = load_cell_scores(sweep.store, "cv")
    np.testing.assert_array_equal(arrays["score"], mean["score"])


def test_leave_one_session_out_matches_a_scikit_learn_loop(tmp_path):
    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "group", "group": "session", "keep_predictions": True})))
    sweep.run()
    rec = sweep.dataset.recording("1")
    labels = rec.trial_groups["session"]
    splits = [(np.isin(np.arange(len(labels)), tr), np.isin(np.arange(len(labels)), te))
              for tr, te in LeaveOneGroupOut().split(labels, groups=labels)]
    expected = reference_folds(sweep, splits)
    folds, mean = fold_scores(sweep)
    assert len(folds) == len(np.unique(labels)) == 4
    for reader, (r, ids, _) in zip(folds, expected):
        assert sorted(reader["test_ids"]) == list(ids)
        np.testing.assert_allclose(reader["score"], r, atol=1e-6)
    np.testing.assert_allclose(mean["score"], np.mean([r for r, _, _ in expected], axis=0), atol=1e-6)


def test_rerun_skips_finished_folds_and_a_lost_fold_is_recomputed(tmp_path):
    cfg = config_from_dict(config(tmp_path, {"scheme": "kfold", "k": 3}))
    Sweep(cfg).run()
    sweep = Sweep(cfg)
    again = sweep.run()
    assert again["computed"] == 0 and again["skipped"] == 4
    folds = [c for c in sweep.plan().cells if c.fold == "1"]
    mean = [c for c in sweep.plan().cells if c.fold == "mean"]
    before = sweep.store.open(result_path("cv", mean[0].key))["score"]
    sweep.store.delete(result_path("cv", folds[0].key))
    sweep.store.delete(result_path("cv", mean[0].key))
    third = sweep.run()
    assert third["computed"] == 2
    np.testing.assert_array_equal(sweep.store.open(result_path("cv", mean[0].key))["score"], before)


def test_inner_groups_choose_alphas_like_a_grouped_scikit_learn_search(tmp_path):
    alphas = [0.1, 10.0, 1000.0]
    cv = {"scheme": "split", "inner_group": "session"}
    sweep = Sweep(config_from_dict(config(tmp_path, cv, heads=[{"name": "ridge", "options": {"alphas": alphas}}])))
    sweep.run()
    rec = sweep.dataset.recording("1")
    is_test = np.isin(rec.trial_stimulus_ids, rec.splits["test"])
    Y_tr, id_tr = averaged(rec.responses[~is_test], rec.trial_stimulus_ids[~is_test])
    first = pd.Series(rec.trial_groups["session"][~is_test]).groupby(rec.trial_stimulus_ids[~is_test]).first()
    groups = first.loc[id_tr].to_numpy()
    X = ColourEncoder().encode(sweep.dataset.stimuli("image").get(id_tr), ["colour"])["colour"].astype(np.float64)
    X = (X - X.mean(0)) / np.where(X.std(0) > 1e-8, X.std(0), 1.0)
    mse = np.zeros((len(alphas), Y_tr.shape[1]))
    for tr, te in LeaveOneGroupOut().split(X, groups=groups):
        for a, alpha in enumerate(alphas):
            pred = Ridge(alpha=alpha).fit(X[tr], Y_tr[tr]).predict(X[te])
            mse[a] += ((pred - Y_tr[te]) ** 2).mean(0)
    expected = np.asarray(alphas)[mse.argmin(0)]
    (_, arrays), = load_cell_scores(sweep.store, "cv")
    np.testing.assert_allclose(arrays["alpha"], expected, rtol=1e-6)
    assert len(set(expected)) > 1  # the choice is per unit, not one alpha for all


def test_an_unknown_grouping_is_one_sentence(tmp_path):
    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "group", "group": "run"})))
    with pytest.raises(WorkbenchError, match="cv.group 'run' is not a trial grouping.*session"):
        sweep.run()


def test_metric_cells_of_a_cross_validated_sweep_use_every_stimulus(tmp_path):
    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "kfold", "k": 3}, metrics=[{"name": "cka"}])))
    sweep.run()
    rows = results_table(sweep.store, "cv")
    metric = rows[rows["kind"] == "metric"]
    rec = sweep.dataset.recording("1").average_repetitions()
    assert metric["n_units"].iloc[0] == rec.n_units
    X = ColourEncoder().encode(sweep.dataset.stimuli("image").get(rec.trial_stimulus_ids), ["colour"])["colour"]
    expected = wb.metric("cka").compare(X.astype(np.float64), rec.responses.astype(np.float64))
    assert metric.loc[metric["roi"] == "all", "value"].iloc[0] == pytest.approx(expected, rel=1e-5)
    tidy = tidy_table(sweep.store, "cv")
    assert {"mean_r", "cka_linear"} <= set(tidy["score"])


def test_kfold_pooled_out_of_fold_r_and_p_values_of_the_cv_mean(tmp_path):
    from scipy import stats as sps

    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "kfold", "k": 3, "seed": 1, "keep_predictions": True},
                                          permutations=9)))
    sweep.run()
    rec = sweep.dataset.recording("1")
    stimuli = np.unique(rec.trial_stimulus_ids)
    splits = [(np.isin(rec.trial_stimulus_ids, stimuli[tr]), np.isin(rec.trial_stimulus_ids, stimuli[te]))
              for tr, te in KFold(3, shuffle=True, random_state=1).split(stimuli)]
    expected = reference_folds(sweep, splits)
    Y = np.concatenate([averaged(rec.responses[te], rec.trial_stimulus_ids[te])[0] for _, te in splits])
    pred = np.concatenate([p for _, _, p in expected])
    pooled = np.array([sps.pearsonr(Y[:, j], pred[:, j]).statistic for j in range(Y.shape[1])])
    _, mean = fold_scores(sweep)
    np.testing.assert_allclose(mean["score_pooled"], pooled, atol=2e-5)
    table = results_table(sweep.store, "cv")
    for roi, row in table.set_index("roi").iterrows():
        units = np.ones(len(pooled), bool) if roi == "all" else rec.units.rois[roi]
        assert row["pooled_r"] == pytest.approx(pooled[units].mean(), abs=2e-5)
        if roi == "all":
            assert np.isnan(row["p_permutation"]) and np.isnan(row["p_pooled"])
            continue
        assert 1 / 10 <= row["p_permutation"] <= 1 and 1 / 10 <= row["p_pooled"] <= 1
        assert round(row["p_permutation"] * 10, 6) % 1 == 0  # (1 + count) / (permutations + 1)
    strong = table[table.roi != "all"].sort_values("mean_r").iloc[-1]
    assert strong["p_permutation"] == pytest.approx(1 / 10) and strong["p_pooled"] == pytest.approx(1 / 10)
    # the null transcribed: test rows shuffled within each fold (seed + the ROI's row index), fold mean of mean r
    folds, _ = fold_scores(sweep)
    Y_all, ids_all = averaged(rec.responses, rec.trial_stimulus_ids)
    row_of = {s: k for k, s in enumerate(ids_all)}
    Ys = [Y_all[[row_of[s] for s in f["test_ids"].astype(str)]] for f in folds]
    preds = [np.asarray(f["prediction"], dtype=np.float64) for f in folds]
    order = list(dict.fromkeys(table["roi"]))
    roi = order[2]
    units = rec.units.rois[roi]
    rng = np.random.default_rng(0 + order.index(roi))
    null = []
    for _ in range(9):
        shuffled = [p[rng.permutation(len(p))] for p in preds]
        null.append(np.mean([pearson_per_unit(Y[:, units], p[:, units]).mean() for Y, p in zip(Ys, shuffled)]))
    observed = np.mean([pearson_per_unit(Y[:, units], p[:, units]).mean() for Y, p in zip(Ys, preds)])
    row = table.set_index("roi").loc[roi]
    assert observed == pytest.approx(row["mean_r"], abs=1e-5)
    assert row["p_permutation"] == pytest.approx((1 + np.sum(np.array(null) >= observed)) / 10)
    assert "pooled_r" in set(tidy_table(sweep.store, "cv")["score"])


def test_kfold_figures_show_the_sem_across_folds_and_say_folds(tmp_path):
    """A k-fold encoding profile (one subject) draws ±1 SEM across folds and names the folds, not a test split;
    its fold-mean cells carry split-half scores for the best-layer map (issue 23, items 2 and 3)."""
    from brain_workbench.figures.sweep import write_figures

    sweep = Sweep(config_from_dict(config(tmp_path, {"scheme": "kfold", "k": 3})))
    sweep.run()
    write_figures(sweep.store, "cv", tmp_path / "figs")
    import json

    caption = json.loads((tmp_path / "figs" / ".figures.json").read_text())["captions"]["layers.png"]
    assert "over 3 folds" in caption and "SEM across folds" in caption and "test-split" not in caption
    from brain_workbench.figures.layers import plot_layer_profiles

    frame = results_table(sweep.store, "cv")
    ax = plot_layer_profiles(frame, "mean_r").axes[0]
    assert ax.get_ylabel() == "mean Pearson r (held-out folds, k = 3)"
    assert any(str(c.get_gid()).startswith("sem_folds-") for c in ax.collections)
    (_, arrays), = [c for c in load_cell_scores(sweep.store, "cv")][:1]
    assert {"score_half_a", "score_half_b"} <= set(arrays)


def test_leave_one_session_out_decoding_matches_a_scikit_learn_loop(tmp_path):
    """Decoding cells cross-validated by session (leave-one-run-out): one cell per held-out session and a
    fold-mean row, each equal to scikit-learn's Ridge decoding the z-scored features from the z-scored responses
    on LeaveOneGroupOut's splits (issue 26, item 6)."""
    heads = [{"name": "decoder", "options": {"alphas": [ALPHA]}}]
    cv = {"scheme": "group", "group": "session"}
    sweep = Sweep(config_from_dict(config(tmp_path, cv, heads=heads, decoding={"rois": ["all"], "n_way": [2]})))
    sweep.run()
    rec = sweep.dataset.recording("1")
    labels = rec.trial_groups["session"]
    stimuli = sweep.dataset.stimuli("image")
    expected = []
    for train, test in LeaveOneGroupOut().split(labels, groups=labels):
        B_tr, id_tr = averaged(rec.responses[train], rec.trial_stimulus_ids[train])
        B_te, id_te = averaged(rec.responses[test], rec.trial_stimulus_ids[test])
        F_tr = ColourEncoder().encode(stimuli.get(id_tr), ["colour"])["colour"].astype(np.float64)
        F_te = ColourEncoder().encode(stimuli.get(id_te), ["colour"])["colour"].astype(np.float64)

        def z(a, ref):
            sd = ref.std(0)
            return (a - ref.mean(0)) / np.where(sd > 1e-8, sd, 1.0)

        pred = Ridge(alpha=ALPHA).fit(z(B_tr, B_tr), z(F_tr, F_tr)).predict(z(B_te, B_tr))
        expected.append(float(pearson_per_unit(z(F_te, F_tr), pred).mean()))
    table = results_table(sweep.store, "cv", folds=True)
    decoded = table[table["kind"] == "decoding"]
    by_fold = decoded.set_index("fold")["mean_r"]
    assert len(expected) == 4 and sorted(decoded["fold"]) == ["0", "1", "2", "3", "mean"]
    np.testing.assert_allclose([by_fold[str(i)] for i in range(4)], expected, atol=1e-4)
    assert by_fold["mean"] == pytest.approx(np.mean(expected), abs=1e-4)
    mean_row = decoded.set_index("fold").loc["mean"]
    assert mean_row["n_folds"] == 4 and mean_row["sem_folds"] > 0
    folds_2way = [decoded.set_index("fold").loc[str(i), "top1_2way_brain_to_image"] for i in range(4)]
    assert mean_row["top1_2way_brain_to_image"] == pytest.approx(np.mean(folds_2way))
    assert mean_row["chance_top1_2way_brain_to_image"] == pytest.approx(0.5)


def test_cross_validated_decoding_refuses_kept_predictions(tmp_path):
    heads = [{"name": "decoder"}]
    cfg = config(tmp_path, {"scheme": "kfold", "k": 3}, heads=heads, decoding={"rois": ["all"], "keep_predictions": True})
    with pytest.raises(WorkbenchError, match="keep_predictions .* needs cv.scheme split"):
        Sweep(config_from_dict(cfg)).run()
