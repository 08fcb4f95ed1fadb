"""ROI label maps whose legend colours are exactly the drawn ones, and ROI outlines over a score map."""

from __future__ import annotations

import numpy as np
import pytest

from brain_workbench.figures.brainmap import label_map, plot_roi_labels, plot_surface_scores, roi_colours
from brain_workbench.types import Units, WorkbenchError

N = 10242


@pytest.fixture(scope="module")
def left():
    from nilearn import datasets

    part = datasets.load_fsaverage("fsaverage5")["inflated"].parts["left"]
    y = part.coordinates[:, 1]
    rois = {"front": y > 10, "middle": (y > -40) & (y < 0), "back": y < -60, "overlap": (y > -20) & (y < 20)}
    return part.faces, rois


def test_label_map_takes_the_first_roi_in_the_order_given() -> None:
    rois = {"a": np.array([1, 1, 0, 0], bool), "b": np.array([0, 1, 1, 0], bool)}
    assert label_map(rois).tolist() == [1, 1, 2, 0]


def test_each_legend_colour_is_the_colour_drawn_for_its_roi(left) -> None:
    faces, rois = left
    units = Units("fsaverage5", N, rois=rois, hemisphere=np.repeat("left", N), vertex=np.arange(N))
    fig = plot_roi_labels(units, views=["lateral"], hemispheres=["left"])
    drawn = fig.axes[0].collections[0]._facecolor3d  # the per-face colours nilearn set, in mesh face order
    legend = {t.get_text(): p.get_facecolor() for t, p in zip(fig.legends[0].get_texts(), fig.legends[0].get_patches())}
    assert list(legend) == list(rois)
    labels = label_map(rois)
    palette = list(roi_colours(list(rois)).values())
    for k, name in enumerate(rois, start=1):
        inside = (labels[faces] == k).all(axis=1)
        if name == "overlap":
            assert not inside.any() or np.allclose(drawn[inside], legend[name])
            continue
        assert inside.sum() > 100
        assert np.allclose(drawn[inside], legend[name]), name
    outside = (labels[faces] == 0).all(axis=1)
    for colour in palette:
        assert not np.isclose(drawn[outside], colour).all(axis=1).any(), "unlabelled vertices show the background"


def test_outlines_colour_each_roi_edge_over_a_score_map(left) -> None:
    from nilearn.plotting.surface._utils import get_faces_on_edge

    faces, rois = left
    chosen = {"back": rois["back"], "middle": rois["middle"]}
    units = Units("fsaverage5", N, rois=rois, hemisphere=np.repeat("left", N), vertex=np.arange(N))
    fig = plot_surface_scores(np.linspace(0, 1, N), units, views=["lateral"], hemispheres=["left"],
                              outlines=["back", "middle"])
    drawn = fig.axes[0].collections[0]._facecolor3d
    colours = roi_colours(list(chosen), list(rois))  # the dataset order, not the subset's
    for name, mask in chosen.items():
        edge = get_faces_on_edge(faces, np.where(mask)[0])
        assert edge.sum() > 10 and np.allclose(drawn[edge], colours[name]), name
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["back", "middle"]


def test_label_map_needs_rois() -> None:
    with pytest.raises(WorkbenchError, match="no ROIs"):
        plot_roi_labels(Units("fsaverage5", 3, hemisphere=np.repeat("left", 3), vertex=np.arange(3)))
