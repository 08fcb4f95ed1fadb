"""Figures of sweep results: brain maps on the cortical surface, score-per-layer curves, reconstructions.

Signatures follow nilearn's plotting functions: data first (unit metadata as :class:`~brain_workbench.types.Units`),
then keyword options such as ``title``, ``cmap``, ``vmax``, ``threshold``; each draws into a new figure, a
given ``figure`` or given ``axes`` on the user's matplotlib backend, and returns the figure, or saves and
closes it when ``output_file`` is given.
"""

from brain_workbench.figures.adaptation import plot_adaptation_curve
from brain_workbench.figures.brainmap import plot_best_layer, plot_roi_labels, plot_surface_scores
from brain_workbench.figures.layers import plot_layer_profiles, plot_retrieval_scores
from brain_workbench.figures.reconstructions import plot_reconstructions, plot_retrieval

__all__ = ["plot_adaptation_curve", "plot_best_layer", "plot_layer_profiles", "plot_reconstructions", "plot_retrieval",
           "plot_retrieval_scores", "plot_roi_labels", "plot_surface_scores"]
