"""Per-vertex maps on the inflated fsaverage5 surface, both hemispheres, lateral and medial views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.figures.output import save_or_return
from brain_workbench.types import WorkbenchError

FSAVERAGE5_VERTICES = 10242
SURFACE_SPACES = {"fsaverage5": FSAVERAGE5_VERTICES, "fsaverage": 163842, "fsaverage6": 40962}
VIEWS = [("left", "lateral"), ("left", "medial"), ("right", "medial"), ("right", "lateral")]
VIEW_NAMES = ("lateral", "medial", "dorsal", "ventral", "anterior", "posterior")
HEMISPHERES = ("left", "right")


def panels(views: Sequence[str] | None, hemispheres: Sequence[str] | None) -> list[tuple[str, str]]:
    """(hemisphere, view) panels to draw: the four standard ones, or every chosen hemisphere × view."""
    if views is None and hemispheres is None:
        return list(VIEWS)
    views, hemispheres = list(views or ("lateral", "medial")), list(hemispheres or HEMISPHERES)
    for what, given, known in (("view", views, VIEW_NAMES), ("hemisphere", hemispheres, HEMISPHERES)):
        bad = [g for g in given if g not in known]
        if bad:
            raise WorkbenchError(f"unknown {what} {bad[0]!r}; choose from {', '.join(known)}")
    return [(h, v) for h in hemispheres for v in views]


def surface_arrays(values: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray, space: str) -> dict[str, np.ndarray]:
    """Scatter unit values onto full fsaverage5 hemispheres (NaN where there is no unit).

    fsaverage and fsaverage6 are icosahedral refinements whose first 10,242 vertices are the
    fsaverage5 vertices, so their maps are shown at fsaverage5 resolution by taking those vertices.
    """
    if space not in SURFACE_SPACES:
        raise WorkbenchError(f"brain maps need surface data (fsaverage, fsaverage6 or fsaverage5), not {space!r}")
    out = {}
    for hemi in ("left", "right"):
        full = np.full(FSAVERAGE5_VERTICES, np.nan)
        pick = (np.asarray(hemisphere).astype(str) == hemi) & (np.asarray(vertex) < FSAVERAGE5_VERTICES)
        full[np.asarray(vertex)[pick].astype(int)] = values[pick]
        out[hemi] = full
    return out


def roi_colours(names: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One distinct RGBA colour per ROI name, in the order given (the one palette outlines and label maps use)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    def rgba(i: int) -> tuple[float, float, float, float]:
        r, g, b, a = (float(c) for c in palette(i % palette.N))
        return r, g, b, a

    return {name: rgba(i) for i, name in enumerate(names)}


def _outline(ax: Any, mesh: Any, hemi: str, outlines: Mapping[str, Mapping[str, np.ndarray]],
             colours: Mapping[str, Any]) -> None:
    from nilearn import plotting

    for name, mask in outlines.items():
        roi = np.asarray(mask[hemi], dtype=float)
        if roi.any():
            plotting.plot_surf_contours(surf_mesh=mesh, roi_map=roi, levels=[1.0], labels=[name],
                                        colors=[colours[name]], axes=ax)


def _draw(hemis: dict[str, np.ndarray], title: str, cmap: str, vmin: float | None, vmax: float | None,
          colorbar_label: str, output_file: str | Path | None, symmetric: bool, threshold: float | None,
          views: Sequence[tuple[str, str]] = tuple(VIEWS), log: bool = False,
          outlines: Mapping[str, Mapping[str, np.ndarray]] | None = None):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors
    from nilearn import datasets, plotting

    mesh = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")
    if log:
        keep = {h: (v > 0) & (np.abs(v) >= (threshold or 0.0)) for h, v in hemis.items()}
        hemis = {h: np.where(keep[h], np.log10(np.where(v > 0, v, 1.0)), np.nan) for h, v in hemis.items()}
        vmin, vmax = (None if x is None else float(np.log10(x)) for x in (vmin, vmax))
        threshold = None
    finite = np.concatenate([h[np.isfinite(h)] for h in hemis.values()])
    if finite.size == 0:  # e.g. no unit passes the significance threshold: draw the bare surface, say so
        finite = np.array([0.0, 1.0])
        title = f"{title}\nno unit has a value to show" if title else "no unit has a value to show"
    if vmax is None:
        vmax = float(np.nanpercentile(np.abs(finite) if symmetric else finite, 99)) or 1.0
    if vmin is None:
        vmin = -vmax if symmetric else float(np.nanmin(finite))
    n = len(views)
    fig = plt.figure(figsize=(4 * n, 4.6))
    width = 0.9 / n
    axes = [fig.add_axes((0.01 + i * width, 0.06, width * 0.98, 0.78), projection="3d") for i in range(n)]
    for ax, (hemi, view) in zip(axes, views):
        data = hemis[hemi].copy()
        if threshold is not None:
            data[np.abs(data) < threshold] = np.nan
        # Missing values are drawn as background: shift real values to [1, 2] and threshold below 0.5.
        shown = 1.0 + np.clip((data - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0)
        shown = np.where(np.isfinite(shown), shown, 0.0)
        plotting.plot_surf(
            surf_mesh=mesh["inflated"].parts[hemi], surf_map=shown, bg_map=sulc.data.parts[hemi], hemi=hemi,
            view=view, cmap=cmap, vmin=1.0, vmax=2.0, threshold=0.5, bg_on_data=False, axes=ax, colorbar=False,
            avg_method="median",
            engine="matplotlib",
        )
        if outlines:
            _outline(ax, mesh["inflated"].parts[hemi], hemi, outlines, roi_colours(list(outlines)))
        ax.set_title(f"{hemi} hemisphere, {view}", fontsize=11, pad=0)
    if outlines:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=c, lw=3, label=n) for n, c in roi_colours(list(outlines)).items()]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, title="ROI outlines")
    cax = fig.add_axes((0.915, 0.16, 0.012, 0.6))
    norm = colors.LogNorm(10**vmin, 10**vmax) if log else colors.Normalize(vmin, vmax)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, label=colorbar_label)
    fig.suptitle(title, fontsize=14, y=0.97)
    return save_or_return(fig, output_file)


def plot_surface_scores(values: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray, space: str = "fsaverage5",
                        title: str = "", cmap: str = "inferno", vmax: float | None = None, threshold: float | None = None,
                        colorbar_label: str = "Pearson r (test split)", output_file: str | Path | None = None,
                        vmin: float | None = None, views: Sequence[str] | None = None,
                        hemispheres: Sequence[str] | None = None, log: bool = False,
                        outlines: Mapping[str, np.ndarray] | None = None) -> Any:
    """Draw one value per unit (e.g. a score) on the inflated surface with a colour bar.

    nilearn-style options: ``cmap``, ``vmin``/``vmax``, ``threshold`` (|value| below it is not drawn),
    ``views`` (lateral, medial, dorsal, ventral, anterior, posterior) × ``hemispheres``, and ``log``
    (log-scaled colours, e.g. for ridge alphas; values <= 0 are not drawn). ``outlines`` maps ROI names
    to boolean masks over the units; each ROI is outlined (nilearn ``plot_surf_contours``) in its own colour.
    """
    if log and (vmin is not None and vmin <= 0 or vmax is not None and vmax <= 0):
        raise WorkbenchError(f"a log colour scale needs positive vmin/vmax, got vmin={vmin}, vmax={vmax}")
    hemis = surface_arrays(np.asarray(values, dtype=np.float64), hemisphere, vertex, space)
    if vmin is None and not log:
        vmin = 0.0 if vmax is None or vmax > 0 else None
    masks = {name: surface_masks(mask, hemisphere, vertex, space) for name, mask in (outlines or {}).items()}
    return _draw(hemis, title, cmap, vmin, vmax, colorbar_label, output_file, symmetric=False, threshold=threshold,
                 views=panels(views, hemispheres), log=log, outlines=masks)


def surface_masks(mask: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray, space: str) -> dict[str, np.ndarray]:
    """A boolean mask over units as full fsaverage5 hemispheres (False where there is no unit)."""
    full = surface_arrays(np.asarray(mask, dtype=np.float64), hemisphere, vertex, space)
    return {h: np.nan_to_num(v, nan=0.0) > 0 for h, v in full.items()}


def label_map(rois: Mapping[str, np.ndarray]) -> np.ndarray:
    """One label per unit: 1 + the index of its first ROI in the order given, 0 for units in none."""
    names = list(rois)
    n = len(next(iter(rois.values()))) if rois else 0
    labels = np.zeros(n, dtype=int)
    for index in range(len(names) - 1, -1, -1):
        labels[np.asarray(rois[names[index]], dtype=bool)] = index + 1
    return labels


def plot_roi_labels(rois: Mapping[str, np.ndarray], hemisphere: np.ndarray, vertex: np.ndarray,
                    space: str = "fsaverage5", title: str = "", views: Sequence[str] | None = None,
                    hemispheres: Sequence[str] | None = None, output_file: str | Path | None = None) -> Any:
    """Draw a label map of ROIs (nilearn ``plot_surf_roi``) with a legend whose colours are the drawn ones.

    ``rois`` maps names to boolean masks over the units, in the order to label them; a unit in several
    ROIs takes the first. The colour map is a ``ListedColormap`` with one colour per ROI and the
    normalisation puts label k in the middle of colour k, so each label gets exactly its legend colour.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import datasets, plotting

    if not rois:
        raise WorkbenchError("there are no ROIs to draw")
    names = list(rois)
    colours = roi_colours(names)
    cmap = ListedColormap([colours[n] for n in names], name="workbench-rois")
    labels = surface_arrays(label_map(rois).astype(np.float64), hemisphere, vertex, space)
    mesh = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")
    chosen = panels(views, hemispheres)
    fig = plt.figure(figsize=(4 * len(chosen), 4.8))
    width = 0.98 / len(chosen)
    for i, (hemi, view) in enumerate(chosen):
        ax = fig.add_axes((0.01 + i * width, 0.16, width * 0.98, 0.7), projection="3d")
        roi_map = np.nan_to_num(labels[hemi], nan=0.0).astype(int)
        plotting.plot_surf_roi(surf_mesh=mesh["inflated"].parts[hemi], roi_map=roi_map, bg_map=sulc.data.parts[hemi],
                               hemi=hemi, view=view, cmap=cmap, vmin=0.5, vmax=len(names) + 0.5, threshold=0.5,
                               avg_method="median", bg_on_data=False, colorbar=False, axes=ax, engine="matplotlib")
        ax.set_title(f"{hemi} hemisphere, {view}", fontsize=11, pad=0)
    handles = [Patch(facecolor=colours[n], edgecolor="black", label=n) for n in names]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(names), 8), frameon=False, title="ROI")
    fig.suptitle(title or "ROIs", fontsize=14, y=0.97)
    return save_or_return(fig, output_file)


def plot_best_layer(scores: np.ndarray, depths: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray,
                    space: str = "fsaverage5", title: str = "", min_score: float = 0.1, cmap: str = "viridis",
                    output_file: str | Path | None = None, outlines: Mapping[str, np.ndarray] | None = None) -> Any:
    """Colour each vertex by the relative depth of its best layer (layers × units scores).

    Vertices whose best score stays below ``min_score`` are left uncoloured: no layer explains them.
    """
    scores = np.asarray(scores, dtype=np.float64)
    best = np.asarray(depths, dtype=np.float64)[np.argmax(scores, axis=0)]
    best[scores.max(axis=0) < min_score] = np.nan
    hemis = surface_arrays(best, hemisphere, vertex, space)
    masks = {name: surface_masks(mask, hemisphere, vertex, space) for name, mask in (outlines or {}).items()}
    return _draw(hemis, title, cmap, 0.0, 1.0, "relative depth of the best layer", output_file,
                 symmetric=False, threshold=None, outlines=masks)
