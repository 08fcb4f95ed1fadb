"""Figures of sweep results: brain maps on the cortical surface, score-per-layer curves, reconstructions.

Signatures follow nilearn's plotting functions: data first, then ``title``, ``cmap``, ``vmax``,
``threshold``, ``output_file`` (saved and closed when given, returned otherwise).
"""

from brain_workbench.figures.adaptation import plot_adaptation_curve
from brain_workbench.figures.brainmap import plot_best_layer, plot_surface_scores
from brain_workbench.figures.layers import plot_layer_profiles
from brain_workbench.figures.reconstructions import plot_reconstructions, plot_retrieval

__all__ = ["plot_adaptation_curve", "plot_best_layer", "plot_layer_profiles", "plot_reconstructions", "plot_retrieval",
           "plot_surface_scores"]
