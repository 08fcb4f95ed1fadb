"""The adaptation figure: one line per model, one panel per metric, saved or returned."""

from __future__ import annotations

import pandas as pd
import pytest

from brain_workbench.figures import plot_adaptation_curve
from brain_workbench.types import WorkbenchError


def table() -> pd.DataFrame:
    rows = []
    for model, kind, values in (("shared decoder", "shared", (0.4, 0.6, 0.8, 0.85)),
                                ("per-subject ridge", "per-subject", (0.15, 0.3, 0.65, 0.9))):
        for k, v in zip((1, 2, 5, 10), values):
            rows.append({"model": model, "kind": kind, "subject": "4", "k_sessions": k, "metric": "top1",
                         "value": v, "chance": 0.025})
            rows.append({"model": model, "kind": kind, "subject": "4", "k_sessions": k, "metric": "two_way",
                         "value": 0.5 + v / 2, "chance": 0.5})
    return pd.DataFrame(rows)


def test_figure_has_a_line_per_model_and_a_panel_per_metric(tmp_path):
    fig = plot_adaptation_curve(table())
    assert len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[:2] == ["shared decoder", "per-subject ridge"] and "chance" in labels
    assert fig.axes[0].get_lines()[0].get_linestyle() == "-" and fig.axes[0].get_lines()[1].get_linestyle() == "--"
    out = plot_adaptation_curve(table(), metrics=["top1"], output_file=tmp_path / "fig" / "adaptation.png")
    assert out.exists() and out.stat().st_size > 5000


def test_figure_refuses_tables_it_cannot_draw():
    with pytest.raises(WorkbenchError, match="empty"):
        plot_adaptation_curve(pd.DataFrame())
    with pytest.raises(WorkbenchError, match="no metric"):
        plot_adaptation_curve(table(), metrics=["r2"])
