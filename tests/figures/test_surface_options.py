"""Surface-map options: views × hemispheres (posterior, ventral ...), refused names, log scale for alphas."""

from __future__ import annotations

import numpy as np
import pytest

from brain_workbench.figures.brainmap import VIEWS, panels, plot_surface_scores
from brain_workbench.types import Units, WorkbenchError


def test_panels_follow_views_and_hemispheres() -> None:
    assert panels(None, None) == VIEWS
    assert panels(["posterior", "ventral"], ["left"]) == [("left", "posterior"), ("left", "ventral")]
    with pytest.raises(WorkbenchError, match="unknown view 'back'; choose from lateral, medial"):
        panels(["back"], None)
    with pytest.raises(WorkbenchError, match="unknown hemisphere 'lh'"):
        panels(None, ["lh"])


def test_log_scale_draws_positive_values_with_a_log_colour_bar() -> None:
    units = Units("fsaverage5", 50, hemisphere=np.repeat("left", 50), vertex=np.arange(50))
    fig = plot_surface_scores(np.logspace(-1, 4, 50), units, views=["lateral"], hemispheres=["left"], log=True)
    assert len(fig.axes) == 2 and fig.axes[-1].get_yscale() == "log"
    with pytest.raises(WorkbenchError, match="log colour scale needs positive"):
        plot_surface_scores(np.ones(50), units, log=True, vmin=0.0)
