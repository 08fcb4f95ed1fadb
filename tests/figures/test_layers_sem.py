"""Layer profiles: mean over subjects with a band of ± SEM across subjects (scipy.stats.sem)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import sem

from brain_workbench.figures.layers import depth_profile, plot_layer_profiles


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"encoder": "e", "subject": s, "roi": roi, "depth": d, "layer": f"l{d}", "mean_r": rng.normal(d, 0.1)}
            for s in ("1", "2", "3") for roi in ("V1", "LO") for d in (0.0, 0.5, 1.0)]
    return pd.DataFrame(rows)


def test_sem_band_matches_scipy() -> None:
    table = _table()
    prof = depth_profile(table[table["roi"] == "V1"], "mean_r")
    for _, row in prof.iterrows():
        values = table[(table["roi"] == "V1") & (table["depth"] == row["depth"])]["mean_r"].to_numpy()
        assert np.isclose(row["mean_r"], values.mean()) and np.isclose(row["sem"], sem(values))
        assert row["n_subjects"] == 3
    fig = plot_layer_profiles(table, "mean_r")
    band = next(c for c in fig.axes[0].collections if c.get_gid() == "sem-V1")
    ys = band.get_paths()[0].vertices[:, 1]
    expected = np.r_[prof["mean_r"] - prof["sem"], prof["mean_r"] + prof["sem"]]
    assert all(np.isclose(ys, e).any() for e in expected)


def test_one_subject_has_no_band() -> None:
    table = _table()
    fig = plot_layer_profiles(table[table["subject"] == "1"], "mean_r")
    assert not [c for c in fig.axes[0].collections if str(c.get_gid()).startswith("sem-")]
