"""Each encoder's best layer per ROI with its score, SEM across subjects, normalised score and q: the line
``results show`` prints and the report opens with (issue 23, items 4 and 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import sem

from brain_workbench.analysis.summaries import best_layer_table, best_layers


def rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out = []
    for enc, peak in (("zeta", 1.0), ("alpha", 0.0)):
        for d in (0.0, 0.5, 1.0):
            for roi in ("VOT", "V1", "all"):
                for s in ("1", "2", "3"):
                    r = 0.5 - abs(d - (peak if roi == "VOT" else 0.5)) / 4 + rng.normal(0, 0.01)
                    out.append({"encoder": enc, "layer": f"{enc}{d}", "depth": d, "roi": roi, "subject": s,
                                "mean_r": r, "mean_r_normalized": r * 2, "q_fdr": rng.uniform(0, 0.01)})
    return pd.DataFrame(out)


def test_best_layers_match_a_direct_groupby() -> None:
    frame = rows()
    best = best_layers(frame)
    assert list(zip(best["encoder"], best["roi"])) == [("zeta", "VOT"), ("zeta", "V1"), ("alpha", "VOT"),
                                                       ("alpha", "V1")], "config order, dataset ROI order, no all"
    for _, row in best.iterrows():
        part = frame[(frame.encoder == row.encoder) & (frame.roi == row.roi)]
        means = part.groupby("layer")["mean_r"].mean()
        assert row.layer == means.idxmax() and row.mean_r == pytest.approx(means.max())
        at = part[part.layer == row.layer]
        assert row["sem"] == pytest.approx(sem(at["mean_r"])) and row.q_fdr == pytest.approx(at["q_fdr"].max())
        assert row.mean_r_normalized == pytest.approx(at["mean_r_normalized"].mean())
    assert best.set_index(["encoder", "roi"]).loc[("zeta", "VOT"), "depth"] == 1.0
    assert best.set_index(["encoder", "roi"]).loc[("alpha", "VOT"), "depth"] == 0.0


def test_best_layer_table_formats_every_value() -> None:
    table = best_layer_table(rows(), "mean_r", "t")
    assert table.key_names == ("encoder", "ROI", "best layer", "depth")
    assert table.value_names == ("mean_r", "SEM", "mean_r_normalized", "q_fdr")
    assert table.keys[0] == ("zeta", "VOT", "zeta1.0", "1.00") and all(v for v in table.values[0])
    one = best_layer_table(rows()[lambda f: f.subject == "1"], "mean_r", "t")
    assert one.values[0][1] == "", "no SEM with one subject"

