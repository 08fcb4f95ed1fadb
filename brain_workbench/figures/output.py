"""Where a figure is drawn and where it goes, as nilearn's plotting functions do it.

Figures are drawn on the user's matplotlib backend (Agg only when that backend cannot start here),
into a new figure, a given ``figure`` or given ``axes``; a finished figure is saved and closed when a
file is given, else returned.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.types import WorkbenchError


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the current backend; Agg only when that backend cannot start here (nilearn's rule)."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    try:
        plt.switch_backend(backend)
    except ImportError:
        warnings.warn(f"matplotlib backend {backend!r} cannot start here (no display?); drawing with Agg instead",
                      stacklevel=3)
        plt.switch_backend("agg")
    return plt


def new_figure(figure: Any, figsize: tuple[float, float]) -> Any:
    """The figure to draw in: ``figure`` itself, the pyplot figure of that number or name, or a new one."""
    plt = pyplot()
    if figure is None or isinstance(figure, (int, str)):
        return plt.figure(figure, figsize=figsize)
    return figure


def given_axes(axes: Any, n: int, what: str) -> list[Any]:
    """``axes`` (one Axes or a sequence) as a list of ``n`` Axes, or one sentence saying how many are needed."""
    from matplotlib.axes import Axes

    listed = [axes] if isinstance(axes, Axes) else list(np.ravel(np.asarray(axes, dtype=object)))
    if len(listed) != n or not all(isinstance(ax, Axes) for ax in listed):
        raise WorkbenchError(f"this figure draws {n} {what}, so axes= needs {n} matplotlib Axes, got {len(listed)}")
    return listed


def region(axes: Any) -> tuple[Any, tuple[float, float, float, float]]:
    """The figure of one given Axes and its area (left, bottom, width, height, in figure fractions), the Axes removed.

    Multi-panel layouts (image grids) are laid out inside that area, as nilearn does with ``axes``.
    """
    from matplotlib.axes import Axes

    if not isinstance(axes, Axes):
        raise WorkbenchError("axes= must be one matplotlib Axes; the figure's panels are laid out inside it")
    fig, box = axes.figure, axes.get_position()
    axes.remove()
    return fig, (box.x0, box.y0, box.width, box.height)


def panel_titles(panels: Sequence[Any], titles: Sequence[str], title: str, **kwargs: Any) -> None:
    """Title each given Axes; the figure's ``title`` heads the first one (a user's figure keeps its own suptitle)."""
    for i, (ax, text) in enumerate(zip(panels, titles)):
        ax.set_title("\n".join(t for t in (title if i == 0 else "", text) if t), **kwargs)


def save_or_return(fig: Any, output_file: str | Path | None, close: bool = True) -> Any:
    """Save ``fig`` to ``output_file`` (creating its folder) and close it unless it is the caller's, or return it."""
    if output_file is None:
        return fig
    Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_file, dpi=110, facecolor="white")
    if close:
        pyplot().close(fig)
    return Path(output_file)
