"""The standard figures of a finished sweep, drawn from the store (what `workbench figure` and the report call)."""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.analysis.timecourse import timecourse_score, timecourse_table
from brain_workbench.figures.brainmap import plot_best_layer, plot_roi_labels, plot_surface_scores, surface_arrays
from brain_workbench.figures.layers import plot_layer_profiles, plot_retrieval_scores, retrieval_columns
from brain_workbench.figures.reconstructions import draw_sweep_generations, draw_sweep_reconstructions
from brain_workbench.figures.roi_files import load_roi_files
from brain_workbench.figures.timecourse import plot_decoding_timecourse
from brain_workbench.numerics.scoring import critical_r
from brain_workbench.store import Store, load_recording
from brain_workbench.store.paths import manifest_path, result_path
from brain_workbench.sweep import load_cell_scores, results_table
from brain_workbench.sweep.tables import RANDOM_WEIGHTS_LABEL, shown_encoder
from brain_workbench.types import NotASurfaceError, WorkbenchError, digest


def _cells_for_map(store_obj: Store, sweep: str, subject: str | None, encoder: str | None):
    if encoder is not None:
        labels = encoder_labels(store_obj, sweep)
        encoder = resolve_encoder_label(encoder, labels, sweep)
    cells = list(load_cell_scores(store_obj, sweep, subject=subject, encoder=encoder))
    if not cells:
        raise WorkbenchError(f"no cells of sweep {sweep!r} match subject={subject} encoder={encoder}")
    return cells


def encoder_labels(store_obj: Store, sweep: str) -> list[str]:
    """Encoder labels of the sweep's latest run, in config order, read from cell attributes only (no arrays)."""
    return list(dict.fromkeys(cell["encoder"] for _, cell in _sweep_cells(store_obj, sweep)))


def resolve_encoder_label(encoder: str, labels: list[str], sweep: str) -> str:
    """The sweep's label for ``encoder``: exact, or (stores written before labels were kept as given) the config
    label a " (random weights)" suffix was added to."""
    if encoder in labels:
        return encoder
    marked = [label for label in labels
              if label.endswith(RANDOM_WEIGHTS_LABEL) and label[:-len(RANDOM_WEIGHTS_LABEL)] == encoder]
    if marked:
        return marked[0]
    raise WorkbenchError(f"sweep {sweep!r} has no encoder {encoder!r}; its encoders are {', '.join(map(repr, labels))}")


def file_label(label: str) -> str:
    """A label as a file-name part: runs of anything but letters, digits, - and _ become one underscore."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")


def _units(store_obj: Store, response_path: str):
    rec = load_recording(store_obj, response_path)
    if rec.units.hemisphere is None or rec.units.vertex is None:
        raise NotASurfaceError(f"{rec.dataset} units are in space {rec.units.space!r} without surface vertices; "
                               "brain maps need surface data")
    return rec


def draw_brainmap(store_obj: Store, sweep: str, out: Path, encoder: str | None = None, layer: str | None = None,
                  subject: str | None = None, value: str = "score", roi: str | None = None,
                  outlines: Sequence[str] | None = None, roi_files: Sequence[str | Path] = (),
                  roi_names: str | None = None, **surface: Any) -> Path:
    """Draw one cell's per-vertex map, or the best layer per vertex with ``value='best-layer'``.

    ``surface`` passes nilearn-style options to :func:`plot_surface_scores` (cmap, vmin, vmax, threshold,
    views, hemispheres, log; views and hemispheres for the best-layer map); ridge alphas are log-scaled unless
    ``log=False``. ``outlines`` names ROIs to outline over the map (an empty list: every ROI of the dataset, or
    of ``roi_files`` when given: label arrays read by :func:`load_roi_files`, named by ``roi_names``).
    """
    cells = _cells_for_map(store_obj, sweep, subject, encoder)
    subject = subject or cells[0][0]["subject"]
    encoder = cells[0][0]["encoder"]
    cells = [c for c in cells if c[0]["subject"] == subject and c[0]["encoder"] == encoder]
    named = shown_encoder(encoder, bool(cells[0][0].get("random_weights")))
    rec = _units(store_obj, cells[0][0]["response_path"])
    extra = load_roi_files(roi_files, rec.units, roi_names) if roi_files else {}
    keep = np.ones(rec.units.n, dtype=bool)
    if roi:
        known = {**rec.units.rois, **extra}
        if roi not in known:
            raise WorkbenchError(f"unknown ROI {roi!r}; known: {', '.join(known)}")
        keep = known[roi]
    drawn_outlines = None if outlines is None else pick_rois(rec, outlines, extra)
    critical = critical_r(int(cells[0][0].get("n_test") or 0))
    if value == "best-layer":
        cells.sort(key=lambda c: c[0]["depth"])
        scores = np.stack([np.where(keep, c[1]["score"], np.nan) for c in cells])
        halves = None
        if all("score_half_a" in c[1] and "score_half_b" in c[1] for c in cells):
            halves = (np.stack([c[1]["score_half_a"] for c in cells]), np.stack([c[1]["score_half_b"] for c in cells]))
        return plot_best_layer(np.nan_to_num(scores, nan=-1), [c[0]["depth"] for c in cells], rec.units,
                               min_score=critical, outlines=drawn_outlines, views=surface.get("views"),
                               hemispheres=surface.get("hemispheres"), layer_names=[c[0]["layer"] for c in cells],
                               halves=halves, title=f"{named}: best layer per vertex (r > {critical:.2f}, "
                               f"uncorrected p < 0.001), subject {subject} ({sweep})", output_file=out)
    if layer is None:
        chosen = max(cells, key=lambda c: float(np.nanmean(c[1]["score"][keep])))
    else:
        matching = [c for c in cells if c[0]["layer"] == layer]
        if not matching:
            raise WorkbenchError(f"encoder {encoder!r} has no layer {layer!r} in sweep {sweep!r}; layers: "
                                 f"{', '.join(c[0]['layer'] for c in cells)}")
        chosen = matching[0]
    if value not in chosen[1]:
        raise WorkbenchError(f"cells have no per-unit {value!r}; choose from {', '.join(chosen[1])} or best-layer")
    threshold = critical if value in ("score", "score_normalized") else -np.inf
    given = surface.get("threshold") is not None and value in ("score", "score_normalized")
    if given:
        threshold = float(surface.pop("threshold"))
    data = np.where(keep & (chosen[1]["score"] >= threshold), chosen[1][value], np.nan)
    surface.setdefault("log", value == "alpha")
    label = {"score": "Pearson r (test split)", "score_normalized": "r / noise ceiling", "r2": "R² (test split)",
             "alpha": "ridge alpha"}.get(value, value)
    shown = map_threshold_note(threshold, given, value)
    if value == "score" and np.isfinite(threshold):
        surface.setdefault("grey_below", threshold)
    return plot_surface_scores(data, rec.units,
                               title=f"{named} · {chosen[0]['layer']} · subject {subject}{shown} ({sweep})",
                               colorbar_label=label, output_file=out, outlines=drawn_outlines,
                               **{"vmax": 1.0 if value == "score_normalized" else None, **surface})


def map_threshold_note(threshold: float, given: bool, value: str) -> str:
    """The title's note on which vertices a map shows: the r they beat, and whether that is the uncorrected
    p < 0.001 critical r; a normalised map says it is thresholded on r, not on r / ceiling."""
    if not np.isfinite(threshold) or (threshold <= 0 and not given):
        return ""
    what = "vertices with r" if value == "score_normalized" else "r"
    return f" ({what} ≥ {threshold:.2f})" if given else f" ({what} > {threshold:.2f}, uncorrected p < 0.001)"


def pick_rois(rec: Any, names: Sequence[str], extra: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The named ROI masks of a recording (or of ``extra``, ROIs read from files) in the order given; for no
    names all of ``extra`` when given, else all of the recording's, in their order."""
    known = {**rec.units.rois, **(extra or {})}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise WorkbenchError(f"unknown ROI {unknown[0]!r}; known: {', '.join(known)}")
    return {n: np.asarray(known[n], dtype=bool) for n in (names or extra or rec.units.rois)}


def draw_rois(store_obj: Store, sweep: str, out: Path, subject: str | None = None,
              rois: Sequence[str] | None = None, views: Sequence[str] | None = None,
              hemispheres: Sequence[str] | None = None, roi_files: Sequence[str | Path] = (),
              roi_names: str | None = None) -> Path:
    """Draw the ROIs of a sweep's subject (or those of ``roi_files``) as a label map with a legend
    (:func:`plot_roi_labels`)."""
    cells = _cells_for_map(store_obj, sweep, subject, None)
    subject = subject or cells[0][0]["subject"]
    mine = [c for c in cells if c[0]["subject"] == subject]
    if not mine:
        raise WorkbenchError(f"sweep {sweep!r} has no encoding cells of subject {subject!r}")
    rec = _units(store_obj, mine[0][0]["response_path"])
    extra = load_roi_files(roi_files, rec.units, roi_names) if roi_files else {}
    return plot_roi_labels(rec.units, pick_rois(rec, list(rois or []), extra),
                           title=f"{rec.dataset} ROIs, subject {subject}", views=views, hemispheres=hemispheres,
                           output_file=out)


def recording_roi_order(store_obj: Store, cells: Sequence[tuple[str, dict]]) -> list[str]:
    """The ROI names of the first cached recording the cells read, in the dataset's order (attributes only)."""
    for _, cell in cells:
        path = cell.get("response_path")
        meta = (store_obj.attrs(path) or {}).get("recording") if path else None
        if isinstance(meta, dict):
            return [str(name) for name in meta.get("rois", {}).values()]
    return []


def sweep_roi_order(store_obj: Store, sweep: str) -> list[str]:
    """The dataset's ROI order for a finished sweep's figures (see :func:`recording_roi_order`)."""
    return recording_roi_order(store_obj, _sweep_cells(store_obj, sweep))


FIGURES_VERSION = 2
FIGURE_INDEX = ".figures.json"


def _sweep_cells(store_obj: Store, sweep: str) -> list[tuple[str, dict]]:
    """(cell key, description) of every finished cell of the sweep's latest run; attributes only, no arrays."""
    if not store_obj.is_complete(manifest_path(sweep)):
        raise WorkbenchError(f"no finished sweep {sweep!r} in store {store_obj.url}")
    keys = store_obj.open(manifest_path(sweep))["cells"].astype(str)
    out = []
    for key in keys:
        path = result_path(sweep, key)
        if store_obj.is_complete(path):
            out.append((str(key), (store_obj.attrs(path) or {})["cell"]))
    return out


def _read_index(out_dir: Path) -> dict:
    try:
        data = json.loads((out_dir / FIGURE_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_surface_view(store_obj: Store, sweep: str, out: Path, encoder: str | None = None,
                       subject: str | None = None) -> Path:
    """An interactive 3-D view (nilearn ``view_surf``, both hemispheres) of the best layer's per-vertex r.

    The page is standalone: nilearn inlines its JavaScript (niivue, WebGL 2), so it opens offline.
    """
    from nilearn import datasets, plotting
    from nilearn.surface import SurfaceImage

    cells = _cells_for_map(store_obj, sweep, subject, encoder)
    subject, encoder = subject or cells[0][0]["subject"], cells[0][0]["encoder"]
    cells = [c for c in cells if c[0]["subject"] == subject and c[0]["encoder"] == encoder]
    rec = _units(store_obj, cells[0][0]["response_path"])
    best = max(cells, key=lambda c: float(np.nanmean(c[1]["score"])))
    critical = critical_r(int(best[0].get("n_test") or 0))
    hemis = surface_arrays(np.where(best[1]["score"] >= critical, best[1]["score"], 0.0), rec.units.hemisphere,
                           rec.units.vertex, rec.units.space)
    mesh = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")
    image = SurfaceImage(mesh=mesh["inflated"], data={h: np.nan_to_num(v, nan=0.0) for h, v in hemis.items()})
    background = SurfaceImage(mesh=mesh["inflated"], data=dict(sulc.data.parts))
    view = plotting.view_surf(surf_map=image, bg_map=background, hemi="both", cmap="inferno", symmetric_cmap=False,
                              threshold=1e-6, vmin=0.0, engine="niivue",
                              title=html.escape(f"{shown_encoder(encoder, bool(best[0].get('random_weights')))} · "
                                                f"{best[0]['layer']} · subject {subject}: "
                                                f"Pearson r > {critical:.2f}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(offline_page(view.get_standalone()))
    return out


def offline_page(page: str) -> str:
    """nilearn's standalone viewer page made to open offline without errors: its favicon link (the page's one
    network fetch) is dropped, and small inline scripts in ``<head>`` that look up page elements (which
    do not exist yet there, an error in nilearn 0.14's niivue template) run once the document is parsed."""
    page = re.sub(r"<link\s+rel=\"icon\"[^>]*>", "", page)
    head, sep, body = page.rpartition("</head>")

    def deferred(match: re.Match) -> str:
        code = match.group(1)
        if len(code) > 5000 or "getElementById" not in code:
            return match.group(0)
        return f"<script>document.addEventListener('DOMContentLoaded', () => {{{code}}});</script>"

    return re.sub(r"<script>(.*?)</script>", deferred, head, flags=re.S) + sep + body


class FigureKit:
    """What an analysis draws its standard figures with: the sweep's store and cells, cached drawing
    (``draw``), and the core's plot functions (layer profiles, brain maps, retrieval, reconstructions, ...)."""

    def __init__(self, store_obj: Store, sweep: str, out_dir: Path, cells: list[tuple[str, dict]], drawn: dict,
                 interactive: bool, say: Callable[[str], None] | None = None) -> None:
        self.store, self.sweep, self.out_dir, self.cells, self.interactive = store_obj, sweep, out_dir, cells, interactive
        self.say = say
        self._drawn = drawn
        self.done: dict[str, str] = {}
        self.captions: dict[str, str] = {}
        self.file_label, self.retrieval_columns = file_label, retrieval_columns
        self.plot_retrieval_scores = plot_retrieval_scores
        self.plot_decoding_timecourse, self.timecourse_score = plot_decoding_timecourse, timecourse_score
        self.timecourse_table = timecourse_table
        self._roi_order: list[str] | None = None

    def roi_order(self) -> list[str]:
        """The dataset's ROI order (read once from a cached recording's attributes): every ROI's colour follows it."""
        if self._roi_order is None:
            self._roi_order = recording_roi_order(self.store, self.cells)
        return self._roi_order

    def plot_layer_profiles(self, table: Any, value: str = "mean_r", **options: Any) -> Any:
        """:func:`plot_layer_profiles` with each ROI in its dataset-wide colour."""
        return plot_layer_profiles(table, value, **{"roi_order": self.roi_order(), **options})

    def keys_of(self, kind: str, head: str | None = None, encoder: str | None = None) -> list[str]:
        """Sorted keys of the sweep's cells of an analysis (optionally one head or encoder)."""
        return sorted(k for k, c in self.cells if c.get("kind", "encoding") == kind and head in (None, c.get("head"))
                      and encoder in (None, c.get("encoder")))

    def task(self, key: str) -> dict:
        return (self.store.attrs(result_path(self.sweep, key)) or {}).get("task", {})

    def draw(self, name: str, inputs: object, make: Callable[[Path], Any], caption: str = "") -> Path:
        """``make(path)`` unless the figure's file exists and its inputs (cell keys, options) are unchanged;
        ``caption`` says what the figure shows (the report prints it); ``say`` (if given) hears a line per figure."""
        path = self.out_dir / name
        self.captions[name] = caption
        key = digest(FIGURES_VERSION, self.sweep, name, inputs)
        if self._drawn.get(name) != key or not path.exists():
            started = time.perf_counter()
            make(path)
            if self.say:
                self.say(f"figure {name} drawn ({time.perf_counter() - started:.1f} s)")
        elif self.say:
            self.say(f"figure {name} unchanged")
        self.done[name] = key
        return path

    def draw_surface(self, name: str, inputs: object, make: Callable[[Path], Any], caption: str = "") -> list[Path]:
        """As :meth:`draw`, for a figure that needs surface data: none when the units have no surface vertices."""
        try:
            return [self.draw(name, inputs, make, caption)]
        except NotASurfaceError:
            return []

    def brainmap(self, path: Path, **options: Any) -> Path:
        return draw_brainmap(self.store, self.sweep, path, **options)

    def rois(self, path: Path, **options: Any) -> Path:
        return draw_rois(self.store, self.sweep, path, **options)

    def surface_view(self, path: Path, **options: Any) -> Path:
        return write_surface_view(self.store, self.sweep, path, **options)

    def adaptation(self, path: Path) -> Path:
        from brain_workbench.figures.adaptation import draw_sweep_adaptation

        return draw_sweep_adaptation(self.store, self.sweep, path)

    def retrieval(self, path: Path) -> Path:
        from brain_workbench.figures.reconstructions import draw_sweep_retrieval

        return draw_sweep_retrieval(self.store, self.sweep, path)

    def reconstructions(self, path: Path) -> Path:
        return draw_sweep_reconstructions(self.store, self.sweep, path)

    def generations(self, path: Path) -> Path:
        return draw_sweep_generations(self.store, self.sweep, path)

    def surface_values(self, path: Path, values: np.ndarray, response_path: str, **options: Any) -> Path:
        """One value per unit of a cached recording on its surface (:func:`plot_surface_scores` options)."""
        return plot_surface_scores(values, _units(self.store, response_path).units, output_file=path, **options)

    def surface_labels(self, path: Path, masks: dict[str, np.ndarray], response_path: str, **options: Any) -> Path:
        """Named unit masks of a cached recording as a label map with a legend (:func:`plot_roi_labels`)."""
        return plot_roi_labels(_units(self.store, response_path).units, masks, output_file=path, **options)


def figure_captions(out_dir: Path) -> dict[str, str]:
    """What each standard figure in ``out_dir`` shows, as the analysis that drew it says."""
    captions = _read_index(out_dir).get("captions")
    return captions if isinstance(captions, dict) else {}


def write_figures(store_obj: Store, sweep: str, out_dir: Path, interactive: bool = False,
                  say: Callable[[str], None] | None = None) -> list[Path]:
    """The standard figure set of a sweep: each analysis in the sweep draws its own (layer profiles, brain
    maps, the ROI label map and, ``interactive=True``, an interactive surface view, retrieval, ...).

    Each figure's inputs (the keys of the cells it shows, which hash everything that changes their
    numbers) are digested into ``.figures.json`` beside the PNGs; a figure whose digest and file are
    unchanged is not redrawn, so a cached rerun draws nothing.
    """
    from brain_workbench.sweep.tables import analyses_for

    out_dir.mkdir(parents=True, exist_ok=True)
    cells = _sweep_cells(store_obj, sweep)
    whole = digest(FIGURES_VERSION, sweep, sorted(key for key, _ in cells), interactive)
    index = _read_index(out_dir)
    drawn: dict = index.get("figures", {}) if isinstance(index.get("figures"), dict) else {}
    if index.get("inputs") == whole and drawn and "captions" in index and all((out_dir / n).exists() for n in drawn):
        if say:
            say(f"figures of {sweep}: all {len(drawn)} unchanged in {out_dir}")
        return [out_dir / name for name in drawn]
    kit = FigureKit(store_obj, sweep, out_dir, cells, drawn, interactive, say)
    table = results_table(store_obj, sweep)
    kinds = list(dict.fromkeys(table["kind"])) if "kind" in table.columns else []
    paths: list[Path] = []
    for kind, analysis in analyses_for(kinds).items():
        if analysis is not None:
            paths.extend(analysis.figures(table[table["kind"] == kind], kit))
    tmp = out_dir / (FIGURE_INDEX + ".tmp")
    tmp.write_text(json.dumps({"inputs": whole, "figures": {p.name: kit.done[p.name] for p in paths},
                               "captions": {p.name: kit.captions.get(p.name, "") for p in paths}}, indent=1))
    os.replace(tmp, out_dir / FIGURE_INDEX)
    return paths
