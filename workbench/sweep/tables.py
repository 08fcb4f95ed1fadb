"""Results tables of a sweep: one row per cell × ROI, exported as Parquet beside the store."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from workbench.stats import fdr_bh
from workbench.store import Store
from workbench.paths import manifest_path, result_path
from workbench.types import WorkbenchError


def results_table(store: Store, sweep: str):
    """One row per cell × ROI of the sweep's latest run, as a pandas DataFrame.

    ``q_fdr`` is the Benjamini–Hochberg adjusted permutation p-value over every subject × encoder ×
    layer × ROI row of the sweep (the whole-brain ``all`` rows of encoding cells are not part of the
    family). Decoding rows carry ``p_<score>`` per score; each gets ``q_<score>`` over the decoding rows.
    """
    import pandas as pd

    if not store.is_complete(manifest_path(sweep)):
        known = sorted({e.path.split("/")[1] for e in store.iter_entries("results")}) if store.meta("results") is None and \
            store._group("results") is not None else []
        hint = f"; sweeps in this store: {', '.join(known)}" if known else ""
        raise WorkbenchError(f"no finished sweep {sweep!r} in store {store.url}{hint}")
    keys = store.open(manifest_path(sweep))["cells"].astype(str)
    rows = []
    for key in keys:
        path = result_path(sweep, key)
        if not store.is_complete(path):
            continue
        attrs = store.open(path).attrs
        cell = attrs["cell"]
        for roi in attrs["rois"]:
            rows.append({"sweep": sweep, "dataset": attrs["dataset"], "subject": cell["subject"],
                         "encoder": cell["encoder"], "layer": cell["layer"], "depth": cell["depth"],
                         "kind": cell.get("kind", "encoding"), "head": cell["head"], "cell": key, **roi})
    frame = pd.DataFrame(rows)
    if "p_permutation" in frame.columns:
        family = frame["roi"] != "all"
        frame["q_fdr"] = np.nan
        frame.loc[family, "q_fdr"] = fdr_bh(frame.loc[family, "p_permutation"].to_numpy(dtype=float))[1]
    for column in [c for c in frame.columns if c.startswith("p_") and c != "p_permutation"]:
        frame[f"q_{column[2:]}"] = fdr_bh(frame[column].to_numpy(dtype=float))[1]
    return frame


def table_path(store: Store, sweep: str) -> str:
    base = store.url.rstrip("/")
    base = base[:-5] if base.endswith(".zarr") else base
    return f"{base}.tables/{sweep}.parquet"


def export_table(store: Store, sweep: str) -> str:
    """Write the results table as Parquet next to the store (pandas / DuckDB friendly)."""
    import fsspec

    frame = results_table(store, sweep)
    path = table_path(store, sweep)
    fs, target = fsspec.core.url_to_fs(path)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(target, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return path


def load_cell_scores(store: Store, sweep: str, subject: str | None = None, encoder: str | None = None,
                     layer: str | None = None, kinds: Iterable[str] = ("encoding",),
                     ) -> Iterable[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Per-unit (or per-dimension) arrays of the matching cells of a sweep, with their description and task."""
    kinds = tuple(kinds)
    keys = store.open(manifest_path(sweep))["cells"].astype(str)
    for key in keys:
        path = result_path(sweep, key)
        if not store.is_complete(path):
            continue
        reader = store.open(path)
        cell = reader.attrs["cell"]
        if cell.get("kind", "encoding") not in kinds:
            continue
        if (subject and cell["subject"] != subject) or (encoder and cell["encoder"] != encoder) or \
                (layer and cell["layer"] != layer):
            continue
        yield ({**cell, "n_test": reader.attrs.get("n_test"), "task": reader.attrs.get("task", {})},
               {name: reader[name] for name in reader.names()})
