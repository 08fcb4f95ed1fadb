"""``results show`` tables list encoders in config order (the rows' order), layers by depth (issue 23, item 11)."""

from __future__ import annotations

import pandas as pd
import pytest

from brain_workbench_plugins.analyses.common import pivot


def test_encoders_keep_config_order_and_layers_depth_order() -> None:
    rows = pd.DataFrame([{"encoder": enc, "layer": f"{enc}-{d}", "depth": d, "roi": roi, "subject": s,
                          "mean_r": d + len(enc) / 10 + (roi == "all") + int(s) / 100}
                         for enc in ("zeta", "alpha") for d in (1.0, 0.0, 0.5) for roi in ("V1", "all")
                         for s in ("1", "2")])
    table = pivot(rows, "mean_r", "t")
    assert [k[0] for k in table.keys] == ["zeta"] * 3 + ["alpha"] * 3
    assert [k[2] for k in table.keys] == ["0.00", "0.50", "1.00"] * 2
    assert table.value_names == ("V1", "all")
    expected = rows[(rows.encoder == "alpha") & (rows.depth == 0.5) & (rows.roi == "V1")]["mean_r"].mean()
    assert float(table.values[4][0]) == pytest.approx(expected, abs=5e-4)
