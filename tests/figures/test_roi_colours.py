"""One colour per ROI across every figure kind: layer lines, label maps and ROI subsets all take
an ROI's colour from its place in the dataset's ROI order (issue 23, item 1)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from brain_workbench.figures.brainmap import plot_roi_labels, plot_surface_scores
from brain_workbench.figures.colours import roi_colours
from brain_workbench.figures.layers import plot_layer_profiles
from brain_workbench.figures.sweep import FigureKit, recording_roi_order
from brain_workbench.store.recordings import save_recording
from brain_workbench.types import Recording, Units

N = 10242
ORDER = ["V1", "V2", "VOT", "semantic"]


@pytest.fixture(scope="module")
def units() -> Units:
    from nilearn import datasets

    y = datasets.load_fsaverage("fsaverage5")["inflated"].parts["left"].coordinates[:, 1]
    masks = {"V1": y < -80, "V2": (y > -80) & (y < -60), "VOT": (y > -50) & (y < -30), "semantic": y > 0}
    return Units("fsaverage5", N, rois=masks, hemisphere=np.repeat("left", N), vertex=np.arange(N))


def table(rois: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"encoder": "e", "subject": "1", "roi": roi, "depth": d, "layer": f"l{d}", "mean_r": d + i}
                         for i, roi in enumerate(["all", *rois]) for d in (0.0, 1.0)])


def line_colours(fig) -> dict[str, tuple]:
    return {line.get_label(): matplotlib.colors.to_rgba(line.get_color()) for line in fig.axes[0].get_lines()
            if not line.get_label().startswith("_")}


def legend_colours(legend) -> dict[str, tuple]:
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles
    return {t.get_text(): matplotlib.colors.to_rgba(h.get_facecolor() if hasattr(h, "get_facecolor") and not
                                                    hasattr(h, "get_xdata") else h.get_color())
            for t, h in zip(legend.get_texts(), handles)}


def test_every_figure_kind_draws_each_roi_in_one_colour(units) -> None:
    expected = roi_colours(ORDER, ORDER)
    assert len(set(expected.values())) == len(ORDER)
    labels = legend_colours(plot_roi_labels(units, views=["lateral"], hemispheres=["left"]).legends[0])
    subset_labels = legend_colours(plot_roi_labels(units, ["VOT", "semantic"], views=["lateral"],
                                                   hemispheres=["left"]).legends[0])
    # Outlines over a score map are the one exception: their colours are picked away from the map's colour map,
    # so an outline can never be read as a score (tests/figures/test_rois.py); they stay distinct per ROI.
    outlines = legend_colours(plot_surface_scores(np.linspace(0, 1, N), units, views=["lateral"], hemispheres=["left"],
                                                  outlines=["semantic", "VOT"]).legends[0])
    assert len(set(outlines.values())) == 2
    lines = line_colours(plot_layer_profiles(table(ORDER), "mean_r"))
    subset = line_colours(plot_layer_profiles(table(ORDER), "mean_r", rois=["V1", "VOT", "semantic"]))
    ordered_subset = line_colours(plot_layer_profiles(table(["VOT", "semantic"]), "mean_r", roi_order=ORDER))
    for drawn in (labels, subset_labels, lines, subset, ordered_subset):
        assert drawn and all(np.allclose(colour, expected[roi]) for roi, colour in drawn.items()), drawn
    assert set(subset) == {"V1", "VOT", "semantic"} and set(outlines) == {"VOT", "semantic"}


def test_figure_kit_colours_lines_by_the_recordings_roi_order(tmp_store, tmp_path, units) -> None:
    """A sweep that kept only VOT and semantic still draws them in the dataset's colours (read from attributes)."""
    rng = np.random.default_rng(0)
    ids = np.array([f"img-{i}" for i in range(4)])
    rec = Recording(dataset="toy", subject="1", responses=rng.standard_normal((4, N)).astype(np.float32),
                    trial_stimulus_ids=ids, units=units, splits={"test": ids[:2]})
    save_recording(tmp_store, "responses/toy/1-abc", rec)
    cells = [("k1", {"kind": "encoding", "response_path": "responses/toy/1-abc"})]
    assert recording_roi_order(tmp_store, cells) == ORDER
    kit = FigureKit(tmp_store, "s", tmp_path, cells, {}, interactive=False)
    drawn = line_colours(kit.plot_layer_profiles(table(["VOT", "semantic"]), "mean_r"))
    assert drawn == {roi: pytest.approx(roi_colours(ORDER, ORDER)[roi]) for roi in ("VOT", "semantic")}
