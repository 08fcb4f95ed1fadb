"""Figures of preferred and synthesized images: one row per target, images as tiles captioned with their scores.
Drawn with matplotlib's object API (no pyplot state), from the cell's stored arrays and images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import Store, read_images, result_path


def _tile(ax: Any, image: np.ndarray, label: str, colour: str | None = None) -> None:
    ax.imshow(image, interpolation="lanczos" if image.shape[0] < 128 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(label, fontsize=7, labelpad=2)
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_color(colour)
            spine.set_linewidth(3)


def grid(rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, str, str | None]]]], title: str, path: Path,
         gap_after: int | None = None) -> Path:
    """Save a grid: each row a (name, [(image, label, frame colour)]) with its name on the left; an optional
    wider gap after column ``gap_after`` separates two groups (synthesized | natural)."""
    from matplotlib.figure import Figure

    n_cols = max(len(tiles) for _, tiles in rows)
    head = 0.35 * (title.count("\n") + 1)
    fig = Figure(figsize=(1.35 * n_cols + 1.2, 1.55 * len(rows) + 0.3 + head), dpi=110)
    spacing = np.ones(n_cols)
    if gap_after is not None and 0 < gap_after < n_cols:
        spacing[gap_after] = 1.25
    gs = fig.add_gridspec(len(rows), n_cols, width_ratios=spacing, left=0.09, right=0.99,
                          top=1 - (head + 0.1) / (1.55 * len(rows) + 0.3 + head), bottom=0.06,
                          wspace=0.08, hspace=0.45)
    for r, (name, tiles) in enumerate(rows):
        for c, (image, label, colour) in enumerate(tiles):
            ax = fig.add_subplot(gs[r, c])
            _tile(ax, image, label, colour)
            if c == 0:
                ax.set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


def _value(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.2f}"


def draw_preferred(store: Store, sweep: str, key: str, path: Path) -> Path:
    """The top images of each target of one preferred cell, with predicted (p) and measured (m) responses."""
    entry = store.open(result_path(sweep, key))
    targets = [str(t) for t in entry["targets"]]
    ids, pred, meas, split = (entry[f"top_{k}"] for k in ("ids", "predicted", "measured", "split"))
    image_ids = [f"{t}:{rank}:{ids[t, rank]}" for t in range(len(targets)) for rank in range(ids.shape[1])]
    images = read_images(store, key, image_ids).reshape(len(targets), ids.shape[1], *read_images(
        store, key, image_ids[:1]).shape[1:])
    rows = []
    for t, name in enumerate(targets):
        tiles = []
        for rank in range(ids.shape[1]):
            star = "*" if str(split[t, rank]) == "test" else ""
            tiles.append((images[t, rank], f"p {_value(pred[t, rank])}  m {_value(meas[t, rank])}{star}", None))
        rows.append((name, tiles))
    cell = entry.attrs.get("cell", {})
    return grid(rows, f"{sweep}: preferred images, subject {cell.get('subject', '')}, {cell.get('encoder', '')}/"
                      f"{cell.get('layer', '')}", path)


def draw_synthesis(store: Store, sweep: str, key: str, path: Path) -> Path:
    """Each target's synthesized images (and the unguided control's first) beside its top natural images, with
    the guiding (g) and judging (j) objectives' values."""
    entry = store.open(result_path(sweep, key))
    attrs = entry.attrs
    targets = [str(t) for t in entry["targets"]]
    index, guide, judge = entry["target_index"], entry["guide"], entry["judge"]
    names = set(entry.names()) if hasattr(entry, "names") else set()
    natural = entry["natural_ids"]
    rows = []
    n_synth = 0
    for t, name in enumerate(targets):
        mine = np.flatnonzero(index == t)
        n_synth = len(mine)
        ids = [f"{t}:s{i}" for i in range(len(mine))]
        tiles = [(im, f"g {_value(guide[m])} j {_value(judge[m])}", "#7b3294")
                 for im, m in zip(read_images(store, key, ids), mine)]
        if "control_guide" in names:
            control = read_images(store, key, [f"{t}:c0"])[0]
            tiles.append((control, f"ctrl g {_value(entry['control_guide'][mine[0]])} "
                                   f"j {_value(entry['control_judge'][mine[0]])}", "#999999"))
        n_synth = len(tiles)
        nat_ids = [f"{t}:n{r}:{natural[t, r]}" for r in range(natural.shape[1])]
        if nat_ids:
            for r, im in enumerate(read_images(store, key, nat_ids)):
                tiles.append((im, f"g {_value(entry['natural_guide'][t, r])} j {_value(entry['natural_judge'][t, r])}",
                              None))
        rows.append((name, tiles))
    cell = attrs.get("cell", {})
    title = (f"{sweep}: synthesized (purple; grey: unguided control) | top natural images, subject "
             f"{cell.get('subject', '')}\nguide: {attrs.get('guide', '')}\njudge: {attrs.get('judge', '')}")
    return grid(rows, title, path, gap_after=n_synth)
