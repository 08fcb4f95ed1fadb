"""Per-vertex maps on an inflated fsaverage surface, both hemispheres, lateral and medial views.

Data are drawn on their own mesh when nilearn has it locally (fsaverage5 ships with nilearn;
fsaverage6/7 are fetched once into its data folder), else on fsaverage5, whose vertices are the first
10,242 of every finer fsaverage mesh.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.figures.colours import roi_colours
from brain_workbench.figures.output import given_axes, new_figure, panel_titles, save_or_return
from brain_workbench.numerics.scoring import BELOW_THRESHOLD, reliable_best_layer
from brain_workbench.types import (
    SURFACE_MESHES,
    MeshUnavailableError,
    NotASurfaceError,
    Units,
    WorkbenchError,
    surface_mesh,
)

VIEWS = [("left", "lateral"), ("left", "medial"), ("right", "medial"), ("right", "lateral")]
VIEW_NAMES = ("lateral", "medial", "dorsal", "ventral", "anterior", "posterior")
HEMISPHERES = ("left", "right")
COARSEST = "fsaverage5"
MESH_FILES = ("infl_left", "infl_right", "sulc_left", "sulc_right")


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


def nilearn_data_dir() -> Path:
    """Where nilearn puts what it downloads: $NILEARN_SHARED_DATA, $NILEARN_DATA or ~/nilearn_data."""
    from nilearn.datasets import get_data_dirs

    return Path(get_data_dirs()[0])


def local_mesh_folder(name: str) -> Path | None:
    """The folder under nilearn's data directories holding mesh ``name``'s inflated surfaces and sulcal depth."""
    from nilearn.datasets import get_data_dirs

    folder = SURFACE_MESHES[name].folder
    for root in get_data_dirs():
        path = Path(root) / str(folder)
        if all((path / f"{part}.gii.gz").is_file() for part in MESH_FILES):
            return path
    return None


def mesh_available(name: str) -> bool:
    """Whether mesh ``name`` can be drawn offline: bundled with nilearn, or already in its data folder."""
    return SURFACE_MESHES[name].folder is None or local_mesh_folder(name) is not None


@lru_cache(maxsize=4)
def _load(name: str, folder: Path | None) -> tuple[Any, Any]:
    from nilearn import datasets
    from nilearn.surface import FileMesh, PolyMesh, SurfaceImage

    if folder is None:
        return datasets.load_fsaverage(name)["inflated"], datasets.load_fsaverage_data(name, data_type="sulcal")
    inflated = PolyMesh(left=FileMesh(folder / "infl_left.gii.gz"), right=FileMesh(folder / "infl_right.gii.gz"))
    return inflated, SurfaceImage(mesh=inflated, data={h: folder / f"sulc_{h}.gii.gz" for h in HEMISPHERES})


def load_mesh(name: str) -> tuple[Any, Any]:
    """Mesh ``name``'s inflated surfaces and sulcal depth, from disk only (nilearn is never asked to download)."""
    mesh = SURFACE_MESHES[name]
    folder = local_mesh_folder(mesh.name) if mesh.folder else None
    if mesh.folder and folder is None:
        raise MeshUnavailableError(f"the {mesh.name} mesh is not in nilearn's data folder; "
                                   f"{mesh.how_to_fetch(nilearn_data_dir())}, "
                                   f"or draw on {COARSEST} with mesh={COARSEST!r}")
    return _load(mesh.name, folder)


def drawing_mesh(space: str, mesh: str | None = None) -> str:
    """The mesh to draw ``space`` data on: ``mesh`` if given, else the data's own when local, else fsaverage5."""
    own = surface_mesh(space)
    if mesh is not None:
        chosen = surface_mesh(mesh)
        if chosen.vertices > own.vertices:
            raise WorkbenchError(f"{space} data cannot be drawn on the finer {chosen.name} mesh; choose {own.name} "
                                 f"or a coarser one")
        return chosen.name
    if mesh_available(own.name):
        return own.name
    warnings.warn(f"{space} data are drawn on {COARSEST} (their first {SURFACE_MESHES[COARSEST].vertices:,} "
                  f"vertices per hemisphere) because the {own.name} mesh is not local; "
                  f"{own.how_to_fetch(nilearn_data_dir())}",
                  stacklevel=3)
    return COARSEST


def surface_arrays(values: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray, space: str,
                   mesh: str = COARSEST) -> dict[str, np.ndarray]:
    """Scatter unit values onto full hemispheres of ``mesh`` (NaN where there is no unit).

    fsaverage meshes are icosahedral refinements whose first vertices are the coarser meshes', so data
    on a fine mesh are shown on a coarser one by taking those vertices.
    """
    surface_mesh(space)
    n = SURFACE_MESHES[mesh].vertices
    out = {}
    for hemi in HEMISPHERES:
        full = np.full(n, np.nan)
        pick = (np.asarray(hemisphere).astype(str) == hemi) & (np.asarray(vertex) < n)
        full[np.asarray(vertex)[pick].astype(int)] = np.asarray(values)[pick]
        out[hemi] = full
    return out


def surface_masks(mask: np.ndarray, hemisphere: np.ndarray, vertex: np.ndarray, space: str,
                  mesh: str = COARSEST) -> dict[str, np.ndarray]:
    """A boolean mask over units as full hemispheres of ``mesh`` (False where there is no unit)."""
    full = surface_arrays(np.asarray(mask, dtype=np.float64), hemisphere, vertex, space, mesh)
    return {h: np.nan_to_num(v, nan=0.0) > 0 for h, v in full.items()}


def _surface_units(units: Units, n_values: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    surface_mesh(units.space)
    if units.hemisphere is None or units.vertex is None:
        raise NotASurfaceError(f"units in space {units.space!r} have no hemisphere and vertex per unit; brain maps "
                               "need both")
    if n_values is not None and n_values != units.n:
        raise WorkbenchError(f"{n_values} values for {units.n} units; pass one value per unit")
    return units.hemisphere, units.vertex


def _roi_masks(units: Units, rois: Mapping[str, np.ndarray] | Sequence[str] | None) -> dict[str, np.ndarray]:
    if rois is None:
        return {}
    if isinstance(rois, Mapping):
        masks = {str(name): np.asarray(mask, dtype=bool) for name, mask in rois.items()}
        wrong = [name for name, mask in masks.items() if mask.shape != (units.n,)]
        if wrong:
            raise WorkbenchError(f"ROI {wrong[0]!r} mask has shape {masks[wrong[0]].shape}; pass one value per unit "
                                 f"({units.n})")
        return masks
    unknown = [name for name in rois if name not in units.rois]
    if unknown:
        raise WorkbenchError(f"unknown ROI {unknown[0]!r}; the units have {', '.join(units.rois) or 'no ROIs'}")
    return {name: units.rois[name] for name in (rois or units.rois)}


def _dataset_order(units: Units, names: Sequence[str]) -> list[str] | None:
    """The dataset's ROI order when every name is one of its ROIs (colours then follow it); else None."""
    return list(units.rois) if set(names) <= set(units.rois) else None


OUTLINE_CANDIDATES = ("#00e5ff", "#ff00ff", "#39ff14", "#ffffff", "#1f3cff", "#000000", "#b266ff", "#00a86b",
                      "#ff1744", "#ffea00", "#8d6e63", "#607d8b")
"""Saturated colours outlines are chosen from: each map takes those farthest from its colour map's colours."""


def outline_colours(names: Sequence[str], cmap: str) -> dict[str, tuple[float, float, float, float]]:
    """One colour per ROI outline, picked greedily to stay far (in RGB) from every colour of ``cmap`` and from
    the outlines picked before, so no outline can be read as a score (e.g. orange over inferno)."""
    import matplotlib
    from matplotlib.colors import to_rgba

    taken = [np.asarray(c[:3]) for c in matplotlib.colormaps[cmap](np.linspace(0, 1, 32))]
    left = [np.asarray(to_rgba(c)) for c in OUTLINE_CANDIDATES]
    out = {}
    for name in names:
        if not left:
            left = [np.asarray(to_rgba(c)) for c in OUTLINE_CANDIDATES]
        distance = [min(float(np.linalg.norm(c[:3] - t)) for t in taken) for c in left]
        pick = left.pop(int(np.argmax(distance)))
        taken.append(pick[:3])
        out[name] = (float(pick[0]), float(pick[1]), float(pick[2]), 1.0)
    return out


def inner_ring(faces: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """The ROI less its border vertices (those sharing a face with a vertex outside it): a contour drawn around
    this lies inside the ROI, so neighbouring ROIs' outlines never cover each other. A ROI too thin to erode is
    returned whole."""
    inside = roi[faces]
    mixed = inside.any(axis=1) & ~inside.all(axis=1)
    border = np.zeros(len(roi), dtype=bool)
    border[faces[mixed][inside[mixed]]] = True
    eroded = roi & ~border
    return eroded if eroded.any() else roi


def _outline(ax: Any, part: Any, outlines: Mapping[str, np.ndarray], colours: Mapping[str, Any]) -> None:
    from nilearn import plotting

    faces = np.asarray(part.faces)
    for name, roi in outlines.items():
        if roi.any():
            plotting.plot_surf_contours(surf_mesh=part, roi_map=inner_ring(faces, roi).astype(float), levels=[1.0],
                                        labels=[name], colors=[colours[name]], axes=ax)


def _panel_axes(chosen: list[tuple[str, str]], figure: Any, axes: Any, bottom: float, height: float, right: float,
                inches: float) -> tuple[Any, list[Any]]:
    """A 3-D Axes per panel: laid out in a new or given figure, or the given ones (2-D ones turned 3-D in place)."""
    if axes is None:
        fig = new_figure(figure, (max(4 * len(chosen), 6.5), inches))  # a single panel still fits its title
        width = right / len(chosen)
        return fig, [fig.add_axes((0.01 + i * width, bottom, width * 0.98, height), projection="3d")
                     for i in range(len(chosen))]
    out = []
    for ax in given_axes(axes, len(chosen), "surface panels (hemisphere × view)"):
        if ax.name != "3d":
            spec, box, fig = ax.get_subplotspec(), ax.get_position(), ax.figure
            ax.remove()
            ax = fig.add_subplot(spec, projection="3d") if spec is not None else fig.add_axes(box, projection="3d")
        out.append(ax)
    return out[0].figure, out


def _legend(fig: Any, axes: list[Any], owned: bool, handles: list[Any], title: str) -> None:
    if owned:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, title=title)
    else:
        axes[-1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.05), ncol=min(len(handles), 4),
                        frameon=False, title=title)


def _draw(hemis: dict[str, np.ndarray], mesh: str, title: str, cmap: str, vmin: float | None, vmax: float | None,
          colorbar_label: str, symmetric: bool, threshold: float | None, views: Sequence[tuple[str, str]],
          log: bool, outlines: Mapping[str, Mapping[str, np.ndarray]], figure: Any, axes: Any,
          roi_order: Sequence[str] | None = None, grey_below: float | None = None) -> Any:
    from matplotlib import cm, colors
    from nilearn import plotting

    inflated, sulc = load_mesh(mesh)
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
    fig, panel_axes = _panel_axes(list(views), figure, axes, bottom=0.06, height=0.78, right=0.9, inches=4.6)
    for ax, (hemi, view) in zip(panel_axes, views):
        data = hemis[hemi].copy()
        if threshold is not None:
            data[np.abs(data) < threshold] = np.nan
        # Missing values are drawn as background: shift real values to [1, 2] and threshold below 0.5.
        shown = 1.0 + np.clip((data - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0)
        shown = np.where(np.isfinite(shown), shown, 0.0)
        plotting.plot_surf(surf_mesh=inflated.parts[hemi], surf_map=shown, bg_map=sulc.data.parts[hemi], hemi=hemi,
                           view=view, cmap=cmap, vmin=1.0, vmax=2.0, threshold=0.5, bg_on_data=False, axes=ax,
                           colorbar=False, avg_method="median", engine="matplotlib")
        if outlines:
            _outline(ax, inflated.parts[hemi], {n: m[hemi] for n, m in outlines.items()},
                     outline_colours(list(outlines), cmap))
    if outlines:
        from matplotlib.lines import Line2D
        from matplotlib.patheffects import withStroke

        handles = [Line2D([], [], color=c, lw=3, label=n, path_effects=[withStroke(linewidth=5, foreground="0.35")])
                   for n, c in outline_colours(list(outlines), cmap).items()]
        _legend(fig, panel_axes, axes is None, handles, "ROI outlines")
    norm = colors.LogNorm(10**vmin, 10**vmax) if log else colors.Normalize(vmin, vmax)
    mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
    names = [f"{hemi} hemisphere, {view}" for hemi, view in views]
    if axes is None:
        bar = fig.colorbar(mappable, cax=fig.add_axes((0.915, 0.16, 0.012, 0.6)), label=colorbar_label)
        panel_titles(panel_axes, names, "", fontsize=11, pad=0)
        fig.suptitle(title, fontsize=14, y=0.97)
    else:
        bar = fig.colorbar(mappable, ax=panel_axes, shrink=0.6, label=colorbar_label)
        panel_titles(panel_axes, names, title, fontsize=11, pad=0)
    floor = grey_below if grey_below is not None else threshold
    if floor is not None and not log and floor > vmin:
        # nilearn's convention: the part of the colour bar no shown vertex can take is grey
        low = max(-floor, vmin) if symmetric else vmin
        bar.ax.axhspan(low, min(floor, vmax), color="0.75", zorder=3, gid="below-threshold")
    return fig


def plot_surface_scores(values: np.ndarray, units: Units, *, mesh: str | None = None, title: str = "",
                        cmap: str = "inferno", vmin: float | None = None, vmax: float | None = None,
                        threshold: float | None = None, colorbar_label: str = "Pearson r (test split)",
                        views: Sequence[str] | None = None, hemispheres: Sequence[str] | None = None,
                        log: bool = False, outlines: Mapping[str, np.ndarray] | Sequence[str] | None = None,
                        grey_below: float | None = None, figure: Any = None, axes: Any = None,
                        output_file: str | Path | None = None) -> Any:
    """Draw one value per unit (e.g. a score) on the inflated surface with a colour bar.

    ``threshold`` hides |value| below it and greys that part of the colour bar (as nilearn does);
    ``grey_below`` greys the colour bar below a threshold applied before (values already hidden);
    ``log`` scales colours logarithmically (values <= 0 hidden);
    ``outlines`` outlines ROIs (names of ``units.rois`` or masks over units) each in its own colour.
    """
    if log and (vmin is not None and vmin <= 0 or vmax is not None and vmax <= 0):
        raise WorkbenchError(f"a log colour scale needs positive vmin/vmax, got vmin={vmin}, vmax={vmax}")
    hemisphere, vertex = _surface_units(units, len(values))
    chosen = panels(views, hemispheres)
    drawn = drawing_mesh(units.space, mesh)
    hemis = surface_arrays(np.asarray(values, dtype=np.float64), hemisphere, vertex, units.space, drawn)
    if vmin is None and not log:
        vmin = 0.0 if vmax is None or vmax > 0 else None
    masks = {name: surface_masks(mask, hemisphere, vertex, units.space, drawn)
             for name, mask in _roi_masks(units, outlines).items()}
    fig = _draw(hemis, drawn, title, cmap, vmin, vmax, colorbar_label, symmetric=False, threshold=threshold,
                views=chosen, log=log, outlines=masks, figure=figure, axes=axes,
                roi_order=_dataset_order(units, list(masks)), grey_below=grey_below)
    return save_or_return(fig, output_file, close=figure is None and axes is None)


def label_map(rois: Mapping[str, np.ndarray]) -> np.ndarray:
    """One label per unit: 1 + the index of its first ROI in the order given, 0 for units in none."""
    names = list(rois)
    n = len(next(iter(rois.values()))) if rois else 0
    labels = np.zeros(n, dtype=int)
    for index in range(len(names) - 1, -1, -1):
        labels[np.asarray(rois[names[index]], dtype=bool)] = index + 1
    return labels


def plot_roi_labels(units: Units, rois: Mapping[str, np.ndarray] | Sequence[str] | None = None, *,
                    mesh: str | None = None, title: str = "", views: Sequence[str] | None = None,
                    hemispheres: Sequence[str] | None = None, figure: Any = None, axes: Any = None,
                    output_file: str | Path | None = None, legend: str = "ROI",
                    colours: Mapping[str, Any] | None = None,
                    outlines: Mapping[str, np.ndarray] | Sequence[str] | None = None) -> Any:
    """Draw ROIs as a label map (nilearn ``plot_surf_roi``) with a legend whose colours are the drawn ones.

    ``rois``: names of ``units.rois`` or masks over units (default: all of ``units.rois``), in labelling
    order; a unit in several ROIs takes the first. ``colours``: one colour per name (default: each ROI's
    colour in every figure, :func:`~brain_workbench.figures.colours.roi_colours`); ``outlines``: ROIs to outline.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting

    hemisphere, vertex = _surface_units(units)
    masks = _roi_masks(units, list(units.rois) if rois is None else rois)
    if not masks:
        raise WorkbenchError("there are no ROIs to draw")
    names = list(masks)
    colours = dict(colours) if colours is not None else roi_colours(names, _dataset_order(units, names))
    cmap = ListedColormap([colours[n] for n in names], name="workbench-rois")
    drawn = drawing_mesh(units.space, mesh)
    labels = surface_arrays(label_map(masks).astype(np.float64), hemisphere, vertex, units.space, drawn)
    edges = {name: surface_masks(mask, hemisphere, vertex, units.space, drawn)
             for name, mask in _roi_masks(units, outlines).items()} if outlines is not None else {}
    edge_colours = roi_colours(list(edges), _dataset_order(units, list(edges)))
    inflated, sulc = load_mesh(drawn)
    chosen = panels(views, hemispheres)
    fig, panel_axes = _panel_axes(chosen, figure, axes, bottom=0.16, height=0.7, right=0.98, inches=4.8)
    for ax, (hemi, view) in zip(panel_axes, chosen):
        roi_map = np.nan_to_num(labels[hemi], nan=0.0).astype(int)
        # vmin/vmax put label k in the middle of colour k, so each label gets exactly its legend colour
        plotting.plot_surf_roi(surf_mesh=inflated.parts[hemi], roi_map=roi_map, bg_map=sulc.data.parts[hemi],
                               hemi=hemi, view=view, cmap=cmap, vmin=0.5, vmax=len(names) + 0.5, threshold=0.5,
                               avg_method="median", bg_on_data=False, colorbar=False, axes=ax, engine="matplotlib")
        if edges:
            _outline(ax, inflated.parts[hemi], {n: m[hemi] for n, m in edges.items()}, edge_colours)
    handles: list[Any] = [Patch(facecolor=colours[n], edgecolor="black", label=n) for n in names]
    if edges:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color=c, lw=3, label=f"{n} outline") for n, c in edge_colours.items()]
    _legend(fig, panel_axes, axes is None, handles, legend)
    panel_names = [f"{hemi} hemisphere, {view}" for hemi, view in chosen]
    panel_titles(panel_axes, panel_names, "" if axes is None else title, fontsize=11, pad=0)
    if axes is None:
        fig.suptitle(title or "ROIs", fontsize=14, y=0.97)
    return save_or_return(fig, output_file, close=figure is None and axes is None)


def layer_colours(depths: Sequence[float], names: Sequence[str], cmap: str = "viridis") -> dict[str, Any]:
    """One colour per layer from ``cmap`` at its relative depth: a layer's colour never depends on which layers win."""
    import matplotlib

    palette = matplotlib.colormaps[cmap]
    return {name: tuple(float(c) for c in palette(float(d))) for name, d in zip(names, depths)}


def plot_best_layer(scores: np.ndarray, depths: Sequence[float], units: Units, *, mesh: str | None = None,
                    title: str = "", min_score: float = 0.1, cmap: str = "viridis",
                    layer_names: Sequence[str] | None = None, halves: tuple[np.ndarray, np.ndarray] | None = None,
                    views: Sequence[str] | None = None, hemispheres: Sequence[str] | None = None,
                    outlines: Mapping[str, np.ndarray] | Sequence[str] | None = None, figure: Any = None,
                    axes: Any = None, output_file: str | Path | None = None) -> Any:
    """Colour each vertex by its best layer (``scores``: layers × units), with a legend of layer names.

    Vertices whose best score stays below ``min_score`` are left uncoloured (no layer explains them), and so
    are those whose best layer does not beat the runner-up in both independent halves of the test stimuli
    (``halves``: the same scores on each half): a flat profile is not presented as a finding.
    """
    scores = np.asarray(scores, dtype=np.float64)
    hemisphere, vertex = _surface_units(units, scores.shape[-1])
    names = [str(n) for n in (layer_names or [f"depth {float(d):.2f}" for d in depths])]
    if len(names) != len(scores) or len(depths) != len(scores):
        raise WorkbenchError(f"{len(scores)} layers of scores but {len(names)} names and {len(depths)} depths")
    half_a, half_b = halves if halves is not None else (None, None)
    best = reliable_best_layer(scores, half_a, half_b, min_score=min_score)
    won = [i for i in range(len(names)) if (best == i).any()]
    masks = {names[i]: best == i for i in won}
    colours = layer_colours(depths, names, cmap)
    above = int((best != BELOW_THRESHOLD).sum())
    kept = int((best >= 0).sum())
    note = (f"coloured: {kept} of {above} vertices above threshold, best layer ahead of the runner-up in both "
            "test halves" if halves is not None else f"coloured: {kept} vertices above threshold")
    if not masks:
        masks = {"no reliable best layer": np.zeros(units.n, dtype=bool)}
        colours = {"no reliable best layer": (0.7, 0.7, 0.7, 1.0)}
    return plot_roi_labels(units, masks, mesh=mesh, title=title or "best layer per vertex", views=views,
                           hemispheres=hemispheres, figure=figure, axes=axes, output_file=output_file,
                           legend=f"best layer (shallow → deep)\n{note}", colours=colours, outlines=outlines)
