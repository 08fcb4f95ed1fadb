"""Reconstruction figures: seen images beside their reconstructions, and brain-to-image retrieval.

``plot_reconstructions`` picks, per subject, the best, median and worst reconstructions by a
per-image score plus random ones, so a figure shows the spread rather than a hand-picked best case.
``plot_retrieval`` shows each brain pattern's top-k candidate images with the seen one outlined.
Both draw into a new figure, a given ``figure`` or the area of one given ``axes``; they save the figure
when ``output_file`` is given and return it otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.figures.output import new_figure, region, save_or_return
from brain_workbench.store.images import check_images
from brain_workbench.types import WorkbenchError

GROUPS = ("best", "median", "worst", "random")
TRUE_COLOUR = "#1a9850"


def _by_subject(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        if not value:
            raise WorkbenchError(f"{name} is empty; pass at least one subject")
        return {str(k): v for k, v in value.items()}
    return {"": value}


def pick_examples(scores: np.ndarray, per_group: int = 2, higher_is_better: bool = True,
                  seed: int = 0) -> dict[str, list[int]]:
    """Indices of the best, median, worst and random images by ``scores``, no image twice when n allows it."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise WorkbenchError("scores must be a non-empty 1-D array of finite values, one per image")
    order = np.argsort(-scores if higher_is_better else scores, kind="stable")
    n, k = len(order), min(per_group, len(order))
    mid = max(0, min(n - k, n // 2 - k // 2))
    picks = {"best": order[:k].tolist(), "median": order[mid:mid + k].tolist(), "worst": order[n - k:][::-1].tolist()}
    shown = {i for v in picks.values() for i in v}
    rest = np.array([i for i in range(n) if i not in shown] or range(n))
    rng = np.random.default_rng(seed)
    picks["random"] = rng.choice(rest, size=min(k, len(rest)), replace=False).tolist()
    return picks


def _tile(ax: Any, image: np.ndarray, colour: str | None = None) -> None:
    ax.imshow(image, interpolation="lanczos" if image.shape[0] < 128 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_color(colour)
            spine.set_linewidth(4)


def plot_reconstructions(targets: np.ndarray, reconstructions: np.ndarray | Mapping[str, np.ndarray],
                         scores: np.ndarray | Mapping[str, np.ndarray], *, score_name: str = "score",
                         higher_is_better: bool = True, per_group: int = 2, ids: Sequence[str] | None = None,
                         seed: int = 0, title: str = "", figure: Any = None, axes: Any = None,
                         output_file: str | Path | None = None) -> Any:
    """Grid of seen images above their reconstructions: best, median, worst and random by ``scores``.

    ``targets`` are the seen images (n, H, W, 3); ``reconstructions`` and ``scores`` are one array
    per subject (a mapping subject → array, rows aligned with ``targets``) or a single array. Each
    subject gets two rows (seen, reconstructed); each reconstruction is labelled with its score.
    """
    targets = check_images(targets, "targets")
    recons = {s: check_images(v, f"reconstructions of {s or 'the subject'}")
              for s, v in _by_subject(reconstructions, "reconstructions").items()}
    per_subject = _by_subject(scores, "scores")
    if set(per_subject) != set(recons):
        raise WorkbenchError(f"scores name subjects {sorted(per_subject)} but reconstructions {sorted(recons)}")
    n = len(targets)
    for s, rec in recons.items():
        if len(rec) != n or len(np.asarray(per_subject[s])) != n:
            raise WorkbenchError(f"subject {s or '(single)'}: {len(rec)} reconstructions and "
                                 f"{len(np.asarray(per_subject[s]))} scores for {n} seen images; align them")
    if ids is not None and len(ids) != n:
        raise WorkbenchError(f"{len(ids)} ids for {n} seen images")
    picks = {s: pick_examples(per_subject[s], per_group, higher_is_better, seed) for s in recons}
    columns = [(g, j) for g in GROUPS for j in range(max(len(p[g]) for p in picks.values()))]
    # fixed layout in inches, so labels never collide whatever the number of rows
    tile, gap, group_gap, left, right = 1.35, 0.06, 0.28, 1.15, 0.15
    id_h, score_h, block_gap, head_h = (0.2 if ids is not None else 0.05), 0.24, 0.22, 0.85
    xs, x = [], left
    for c, (group, _) in enumerate(columns):
        if c and group != columns[c - 1][0]:
            x += group_gap - gap
        xs.append(x)
        x += tile + gap
    width = x - gap + right
    block = id_h + tile + gap + tile + score_h
    height = head_h + len(recons) * block + (len(recons) - 1) * block_gap + 0.1
    if axes is None:
        fig, (rx, ry, rw, rh) = new_figure(figure, (width, height)), (0.0, 0.0, 1.0, 1.0)
    else:
        fig, (rx, ry, rw, rh) = region(axes)

    def at(x0: float, y_top: float) -> tuple[float, float]:
        return rx + rw * x0 / width, ry + rh * (1 - y_top / height)

    def axes_at(x0: float, y_top: float) -> Any:
        left, bottom = at(x0, y_top + tile)
        return fig.add_axes((left, bottom, rw * tile / width, rh * tile / height))

    arrow = "higher is better" if higher_is_better else "lower is better"
    for r, (subject, images) in enumerate(recons.items()):
        label = f"subject {subject}\n" if subject else ""
        values = np.asarray(per_subject[subject], dtype=np.float64)
        y0 = head_h + r * (block + block_gap) + id_h
        for c, (group, j) in enumerate(columns):
            seen_ax, recon_ax = axes_at(xs[c], y0), axes_at(xs[c], y0 + tile + gap)
            if j >= len(picks[subject][group]):
                seen_ax.axis("off")
                recon_ax.axis("off")
                continue
            i = picks[subject][group][j]
            _tile(seen_ax, targets[i])
            _tile(recon_ax, images[i])
            if ids is not None:
                seen_ax.set_title(str(ids[i]), fontsize=7, color="0.35", pad=2)
            recon_ax.set_xlabel(f"{values[i]:.3f}", fontsize=9, labelpad=2)
            if c == 0:
                seen_ax.set_ylabel(f"{label}seen", fontsize=10)
                recon_ax.set_ylabel(f"{label}reconstructed", fontsize=10)
    heading = title or f"reconstructions by {score_name} ({arrow}; value under each)"
    if axes is None:
        fig.suptitle(heading, fontsize=12, x=rx + rw / 2, y=at(0, 0.12)[1], va="top")
    else:
        fig.text(rx + rw / 2, at(0, 0.12)[1], heading, ha="center", va="top", fontsize=12)
    for group in GROUPS:
        cols = [c for c, (g, _) in enumerate(columns) if g == group]
        if cols:
            x, y = at((xs[cols[0]] + xs[cols[-1]] + tile) / 2, head_h - 0.22)
            fig.text(x, y, group, ha="center", va="center", fontsize=11, weight="bold")
    return save_or_return(fig, output_file, close=figure is None and axes is None)


def plot_retrieval(similarity: np.ndarray, candidates: np.ndarray, *, true_index: Sequence[int] | None = None,
                   queries: Sequence[int] | np.ndarray | None = None, k: int = 5,
                   query_labels: Sequence[str] | None = None,
                   title: str = "", figure: Any = None, axes: Any = None,
                   output_file: str | Path | None = None) -> Any:
    """Each brain pattern's top-``k`` candidate images by ``similarity``, the seen image outlined in green.

    ``similarity[i, j]`` scores brain pattern i against candidate image j (e.g. the correlation of
    the embedding decoded from pattern i with candidate j's embedding); ``true_index[i]`` is the
    candidate pattern i was recorded for (default: i). The first column shows that seen image.
    """
    S = np.asarray(similarity, dtype=np.float64)
    candidates = check_images(candidates, "candidates")
    if S.ndim != 2 or S.shape[1] != len(candidates) or not np.isfinite(S).all():
        raise WorkbenchError(f"similarity must be a finite (n_patterns, {len(candidates)}) array, got {S.shape}")
    truth = np.arange(S.shape[0]) if true_index is None else np.asarray(true_index, dtype=np.int64)
    if truth.shape != (S.shape[0],) or truth.min() < 0 or truth.max() >= len(candidates):
        raise WorkbenchError(f"true_index needs one candidate index in 0..{len(candidates) - 1} per brain pattern")
    rows = list(range(min(6, S.shape[0]))) if queries is None else [int(q) for q in queries]
    if not rows or min(rows) < 0 or max(rows) >= S.shape[0]:
        raise WorkbenchError(f"queries must be brain-pattern indices in 0..{S.shape[0] - 1}")
    k = int(min(k, len(candidates)))
    if axes is None:
        fig = new_figure(figure, (1.6 * (k + 1) + 1.4, 1.8 * len(rows) + 0.8))
        grid = fig.subplots(len(rows), k + 1, squeeze=False)
    else:
        fig, (left, bottom, width, height) = region(axes)
        grid = fig.add_gridspec(len(rows), k + 1, left=left + 0.12 * width, right=left + width, bottom=bottom,
                                top=bottom + 0.85 * height).subplots(squeeze=False)
    for r, q in enumerate(rows):
        order = np.argsort(-S[q], kind="stable")
        rank = int(np.flatnonzero(order == truth[q])[0]) + 1
        _tile(grid[r, 0], candidates[truth[q]], colour=TRUE_COLOUR)
        name = query_labels[q] if query_labels is not None else f"pattern {q}"
        grid[r, 0].set_ylabel(f"{name}\nseen image ranked\n{rank} of {len(candidates)}", fontsize=9)
        grid[r, 0].set_title("seen", fontsize=9, color=TRUE_COLOUR, weight="bold", pad=3)
        for c, j in enumerate(order[:k], start=1):
            hit = j == truth[q]
            _tile(grid[r, c], candidates[j], colour=TRUE_COLOUR if hit else None)
            grid[r, c].set_title(f"#{c}  {S[q, j]:.2f}", fontsize=9, color=TRUE_COLOUR if hit else "0.2",
                                 weight="bold" if hit else "normal", pad=3)
    heading = title or f"top-{k} retrieved images per brain pattern (similarity above each; seen image outlined)"
    if axes is None:
        fig.suptitle(heading, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()), h_pad=0.8, w_pad=0.4)
    else:
        fig.text(left + width / 2, bottom + height, heading, ha="center", va="top", fontsize=11)
    return save_or_return(fig, output_file, close=figure is None and axes is None)


__all__ = ["draw_sweep_generations", "draw_sweep_reconstructions", "draw_sweep_retrieval", "pick_examples",
           "plot_generations", "plot_reconstructions", "plot_retrieval"]


def draw_sweep_reconstructions(store: Any, sweep: str, out: str | Path, metric: str | None = None,
                               per_group: int = 2) -> Path:
    """The reconstruction grid of a finished sweep: each subject's best, median, worst and random test images.

    Examples are chosen by ``metric`` (a per-image score the cells stored; default: the first one).
    """
    from brain_workbench.store.images import read_images, stored_image_ids
    from brain_workbench.sweep import load_cell_scores

    cells = list(load_cell_scores(store, sweep, kinds=("reconstruction",)))
    if not cells:
        raise WorkbenchError(f"sweep {sweep!r} has no reconstruction cells; add a reconstruction section to its config")
    available = [name[6:] for name in cells[0][1] if name.startswith("image_")]
    metric = metric or available[0]
    if metric not in available:
        raise WorkbenchError(f"no per-image {metric!r} scores; the cells have {', '.join(available)}")
    cells = [c for c in cells if c[0]["task"]["roi"] == cells[0][0]["task"]["roi"]]
    first = cells[0][0]
    ids = [str(s) for s in stored_image_ids(store, first["key"])]
    seen = read_images(store, first["task"]["seen_key"], ids)
    recons, scores = {}, {}
    for cell, arrays in cells:
        own = [str(s) for s in stored_image_ids(store, cell["key"])]
        if set(own) != set(ids):  # subjects with other test images get their own figure
            continue
        order = np.array([own.index(s) for s in ids])
        recons[cell["subject"]] = read_images(store, cell["key"], ids)
        scores[cell["subject"]] = np.asarray(arrays[f"image_{metric}"])[order]
    codec = first["task"]["reconstruction"]["codec"]["name"]
    return plot_reconstructions(seen, recons, scores, score_name=metric, per_group=per_group, ids=ids,
                                title=f"{sweep}: test images (top) and {codec} reconstructions from "
                                      f"{first['task']['roi']} units, by {metric}",
                                output_file=out)


def draw_sweep_retrieval(store: Any, sweep: str, out: str | Path, subject: str | None = None, roi: str | None = None,
                         n_queries: int = 6, k: int = 5, seed: int = 0) -> Path:
    """Top-``k`` retrieved test images for a few brain patterns of one decode cell of a finished sweep.

    The similarity shown is the one the cell's retrieval scores were computed from (decoded vs true
    embeddings of the test images); queries are a seeded random draw of test stimuli, not a choice.
    """
    from brain_workbench.store.images import read_images
    from brain_workbench.sweep import load_cell_scores

    cells = [(c, a) for c, a in load_cell_scores(store, sweep, subject=subject, kinds=("decoding",))
             if "similarity" in a and c["task"].get("seen_key") and (roi is None or c["task"]["roi"] == roi)]
    if not cells:
        raise WorkbenchError(f"sweep {sweep!r} has no decode cell that kept its predictions"
                             + (f" for subject {subject!r}" if subject else "") + (f" and ROI {roi!r}" if roi else "")
                             + " on an image dataset; set decoding.keep_predictions: true and rerun")
    cell, arrays = cells[0]
    ids = [str(s) for s in np.asarray(arrays["test_ids"])]
    S = np.asarray(arrays["similarity"], dtype=np.float64)
    candidates = read_images(store, cell["task"]["seen_key"], ids)
    queries = np.sort(np.random.default_rng(seed).choice(len(ids), size=min(n_queries, len(ids)), replace=False))
    units = "all units" if cell["task"]["roi"] == "all" else f"{cell['task']['roi']} units"
    return plot_retrieval(S, candidates, queries=queries, k=k, query_labels=[f"test image {i}" for i in ids],
                          title=f"{sweep}: top-{k} of {len(ids)} test images retrieved from subject {cell['subject']}'s "
                                f"responses ({units}; decoded into {cell['encoder']} {cell['layer']}; seen image "
                                "outlined, similarity above each)",
                          output_file=out)


def plot_generations(seen: np.ndarray, generated: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray], *,
                     stage1: Mapping[str, np.ndarray] | None = None, score_name: str = "score", per_group: int = 1,
                     ids: Sequence[str] | None = None, seed: int = 0, title: str = "",
                     output_file: str | Path | None = None) -> Any:
    """Seen images, the stage-1 reconstructions the generator started from (when given) and the generated images.

    One block of rows per subject (seen / stage 1 / generated), columns the best, median, worst and random
    generations by ``scores`` (one array per subject, rows aligned with ``seen``), each scored under its image.
    """
    seen = check_images(seen, "seen images")
    gens = {s: check_images(v, f"generated images of {s}") for s, v in generated.items()}
    if not gens or set(scores) != set(gens) or (stage1 is not None and set(stage1) != set(gens)):
        raise WorkbenchError("generated images, scores (and stage-1 images) must name the same subjects")
    for s, images in gens.items():
        if len(images) != len(seen) or len(np.asarray(scores[s])) != len(seen):
            raise WorkbenchError(f"subject {s}: {len(images)} generated images and {len(np.asarray(scores[s]))} "
                                 f"scores for {len(seen)} seen images; align them")
    kinds = ["seen", *(["stage 1"] if stage1 is not None else []), "generated"]
    picks = {s: [(g, i) for g in GROUPS for i in pick_examples(scores[s], per_group, True, seed)[g]] for s in gens}
    n_cols = max(len(p) for p in picks.values())
    n_rows = len(kinds) * len(gens)
    fig = new_figure(None, (1.2 + 1.4 * n_cols, 0.9 + 1.55 * n_rows))
    grid = fig.subplots(n_rows, n_cols, squeeze=False)
    for b, (subject, images) in enumerate(gens.items()):
        values = np.asarray(scores[subject], dtype=np.float64)
        rows = {"seen": seen, "generated": images, **({} if stage1 is None else {"stage 1": stage1[subject]})}
        for r, kind in enumerate(kinds):
            for c in range(n_cols):
                ax = grid[b * len(kinds) + r, c]
                if c >= len(picks[subject]):
                    ax.axis("off")
                    continue
                group, i = picks[subject][c]
                _tile(ax, rows[kind][i])
                if kind == "seen":
                    ax.set_title(group if ids is None else f"{group} · {ids[i]}", fontsize=7, color="0.35", pad=2)
                if kind == "generated":
                    ax.set_xlabel(f"{values[i]:.3f}", fontsize=9, labelpad=2)
                if c == 0:
                    ax.set_ylabel(f"subject {subject}\n{kind}", fontsize=9)
    fig.suptitle(title or f"generated images by {score_name} (best, median, worst, random; value under each)",
                 fontsize=10)
    fig.tight_layout()
    return save_or_return(fig, output_file)


def draw_sweep_generations(store: Any, sweep: str, out: str | Path, metric: str | None = None) -> Path:
    """The generation grid of a finished sweep: seen, stage-1 and generated test images per subject."""
    from brain_workbench.store.images import read_images, stored_image_ids
    from brain_workbench.sweep import load_cell_scores

    cells = list(load_cell_scores(store, sweep, kinds=("generation",)))
    if not cells:
        raise WorkbenchError(f"sweep {sweep!r} has no generation cells; add a generation section to its config")
    available = [name[6:] for name in cells[0][1] if name.startswith("image_")]
    metric = metric or available[0]
    if metric not in available:
        raise WorkbenchError(f"no per-image {metric!r} scores; the cells have {', '.join(available)}")
    first = cells[0][0]
    ids = [str(s) for s in stored_image_ids(store, first["key"])]
    seen = read_images(store, first["task"]["seen_key"], ids)
    generated, scores, stage1 = {}, {}, {}
    for cell, arrays in cells:
        own = [str(s) for s in stored_image_ids(store, cell["key"])]
        if set(own) != set(ids):
            continue
        order = np.array([own.index(s) for s in ids])
        generated[cell["subject"]] = read_images(store, cell["key"], ids)
        scores[cell["subject"]] = np.asarray(arrays[f"image_{metric}"])[order]
        if cell["task"].get("reconstruction_key"):
            stage1[cell["subject"]] = read_images(store, cell["task"]["reconstruction_key"], ids)
    generator = first["task"]["generation"]["generator"]["name"]
    return plot_generations(seen, generated, scores, stage1=stage1 if len(stage1) == len(generated) else None,
                            score_name=metric, ids=ids, output_file=out,
                            title=f"{sweep}: seen test images, stage-1 reconstructions and\n{generator} generations "
                                  f"from {first['task']['roi']} units, by {metric}")
