"""Figures draw the statistics the sweep computed: permutation-null bands, bootstrap CIs, fold SEMs, noise
ceilings, y labels naming the comparison, threshold wording and a greyed sub-threshold colour bar, and
chance ticks above the axis (issue 23, item 3). Each check reads the drawn artists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brain_workbench.figures.brainmap import plot_surface_scores
from brain_workbench.figures.layers import plot_layer_profiles, plot_retrieval_scores
from brain_workbench.figures.sweep import map_threshold_note
from brain_workbench.types import Units

DEPTHS = (0.0, 0.5, 1.0)


def metric_rows(kind: str = "similarity") -> pd.DataFrame:
    return pd.DataFrame([{"encoder": "e", "subject": "1", "roi": roi, "depth": d, "layer": f"l{d}", "head": "rsa",
                          "metric_kind": kind, "score_name": "rsa_spearman", "brain_distance": "correlation",
                          "value": 0.1 + d * (i + 1) / 4, "null_value_95": 0.05 + d / 100 + i / 100,
                          "ci_low": 0.05 + d * (i + 1) / 4, "ci_high": 0.2 + d * (i + 1) / 4}
                         for i, roi in enumerate(("V1", "VOT")) for d in DEPTHS])


def band(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1, f"no band {gid!r}: {[c.get_gid() for c in ax.collections]}"
    return found[0].get_paths()[0].vertices


def test_metric_profile_draws_null_band_ci_and_names_the_comparison() -> None:
    rows = metric_rows()
    fig = plot_layer_profiles(rows, "value", ceilings={"V1": (0.6, 0.8)})
    ax = fig.axes[0]
    null = rows.groupby("depth")["null_value_95"].mean()
    top = band(ax, "null")[:, 1]
    assert all(np.isclose(top, v).any() for v in null.to_numpy())
    ci = band(ax, "ci-V1")[:, 1]
    v1 = rows[rows["roi"] == "V1"]
    assert all(np.isclose(ci, v).any() for v in (*v1["ci_low"], *v1["ci_high"]))
    ceiling = [p for p in ax.patches if p.get_gid() == "ceiling-V1"]
    assert len(ceiling) == 1
    ys = ceiling[0].get_path().transformed(ceiling[0].get_patch_transform()).vertices[:, 1]
    assert np.isclose(ys.min(), 0.6) and np.isclose(ys.max(), 0.8)
    assert ax.get_ylabel() == "rsa_spearman (test stimuli)\nagainst brain RDMs of correlation distance"


def test_distance_metric_greys_what_is_not_below_the_null_and_marks_the_lowest_layer() -> None:
    rows = metric_rows("distance")
    fig = plot_layer_profiles(rows, "value")
    ax = fig.axes[0]
    ys = band(ax, "null")[:, 1]
    assert ys.max() >= rows["value"].max() and np.isclose(ys.min(), rows.groupby("depth")["null_value_95"].mean().min())
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(float(d.get_xdata()[0]) for d in dots) == [0.0, 0.0]


def test_kfold_profile_draws_sem_across_folds_and_says_folds() -> None:
    rows = pd.DataFrame([{"encoder": "e", "subject": "1", "roi": "V1", "depth": d, "layer": f"l{d}",
                          "mean_r": 0.2 + d / 10, "n_folds": 5, "sem_folds": 0.03, "null_mean_r_95": 0.02}
                         for d in DEPTHS])
    ax = plot_layer_profiles(rows, "mean_r").axes[0]
    ys = band(ax, "sem_folds-V1")[:, 1]
    assert np.isclose(ys.max(), 0.3 + 0.03) and np.isclose(ys.min(), 0.2 - 0.03)
    assert np.isclose(band(ax, "null")[:, 1].max(), 0.02)
    assert ax.get_ylabel() == "mean Pearson r (held-out folds, k = 5)"


def test_threshold_wording() -> None:
    assert map_threshold_note(0.26, False, "score") == " (r > 0.26, uncorrected p < 0.001)"
    assert map_threshold_note(0.26, False, "score_normalized") == " (vertices with r > 0.26, uncorrected p < 0.001)"
    assert map_threshold_note(0.3, True, "score") == " (r ≥ 0.30)"
    assert map_threshold_note(0.0, False, "score_normalized") == ""
    assert map_threshold_note(-np.inf, False, "alpha") == ""


@pytest.mark.parametrize("option", ["grey_below", "threshold"])
def test_colour_bar_greys_its_sub_threshold_part(option) -> None:
    n = 10242
    units = Units("fsaverage5", n, hemisphere=np.repeat("left", n), vertex=np.arange(n))
    fig = plot_surface_scores(np.linspace(0, 0.8, n), units, vmin=0.0, vmax=0.8, views=["lateral"],
                              hemispheres=["left"], **{option: 0.2})
    bar = fig.axes[-1]
    grey = [p for p in bar.patches if p.get_gid() == "below-threshold"]
    assert len(grey) == 1
    ys = grey[0].get_path().transformed(grey[0].get_patch_transform()).vertices[:, 1]
    assert np.isclose(ys.min(), 0.0) and np.isclose(ys.max(), 0.2)
    plain = plot_surface_scores(np.linspace(0, 0.8, n), units, views=["lateral"], hemispheres=["left"])
    assert not [p for p in plain.axes[-1].patches if p.get_gid() == "below-threshold"]


def test_decoding_chance_ticks_show_above_the_axis() -> None:
    rows = pd.DataFrame([{"encoder": "e", "layer": "l", "depth": 1.0, "roi": roi, "subject": s, "top1": 0.05,
                          "chance_top1": 1 / 120} for roi in ("V1", "VOT") for s in ("1", "2")])
    ax = plot_retrieval_scores(rows).axes[0]
    ticks = [line for line in ax.get_lines() if line.get_gid() == "chance-top1"]
    assert len(ticks) == 1 and np.allclose(ticks[0].get_ydata(), 1 / 120) and not ticks[0].get_clip_on()
    assert ax.get_ylim()[0] < 0
