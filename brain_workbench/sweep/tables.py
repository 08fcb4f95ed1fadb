"""Results tables of a sweep: one row per cell × ROI, exported as Parquet beside the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from brain_workbench.numerics.stats import fdr_bh
from brain_workbench.store import Store, disk_full_named, provenance
from brain_workbench.store.paths import manifest_path, result_path
from brain_workbench.types import WorkbenchError

RANDOM_WEIGHTS_LABEL = " (random weights)"


def encoder_status(cell: dict[str, Any]) -> tuple[str, bool]:
    """A cell's encoder label as the user wrote it and whether its weights were random (cells written before
    the ``random_weights`` attribute carry the status as a label suffix, taken off here)."""
    label = str(cell["encoder"])
    if "random_weights" in cell:
        return label, bool(cell["random_weights"])
    if label.endswith(RANDOM_WEIGHTS_LABEL):
        return label[:-len(RANDOM_WEIGHTS_LABEL)], True
    return label, False


def shown_encoder(label: str, random_weights: bool) -> str:
    """An encoder as figures and the report name it: its label, with the weights' status where random."""
    return label + RANDOM_WEIGHTS_LABEL if random_weights else label


def results_table(store: Store, sweep: str, folds: bool = False):
    """One row per cell × ROI of the sweep's latest run, as a pandas DataFrame.

    Cross-validated sweeps show their fold-averaged cells (``fold == "mean"``); ``folds=True`` adds
    one row per fold cell as well. ``analysis`` names the head or metric, apart from the encoder;
    ``encoder`` is the config's label as written, ``random_weights`` whether that encoder had no pretrained weights.

    ``q_fdr`` is the Benjamini–Hochberg adjusted permutation p-value over every subject × encoder ×
    layer × ROI row of the sweep (the whole-brain ``all`` rows of encoding cells are not part of the
    family). Each further ``p_<score>`` column gets a ``q_<score>`` over the rows that carry it.
    """
    import pandas as pd

    if not store.is_complete(manifest_path(sweep)):
        known = sorted({e.path.split("/")[1] for e in store.iter_entries("results")}) if store.meta("results") is None and \
            store.group("results") is not None else []
        hint = f"; sweeps in this store: {', '.join(known)}" if known else ""
        raise WorkbenchError(f"no finished sweep {sweep!r} in store {store.url}{hint}")
    manifest = store.open(manifest_path(sweep))
    keys = manifest["cells"].astype(str)
    keep_all = (manifest.attrs.get("config") or {}).get("all_units_row", True)
    rows = []
    for key in keys:
        path = result_path(sweep, key)
        if not store.is_complete(path):
            continue
        attrs = store.open(path).attrs
        cell = attrs["cell"]
        fold = cell.get("fold", "")
        if fold not in ("", "mean") and not folds:
            continue
        extra = {k: attrs[k] for k in ("fit_s", "peak_memory_mb", "peak_memory_source") if k in attrs}
        rois = attrs["rois"]
        if not keep_all and any(r["roi"] != "all" for r in rois):
            rois = [r for r in rois if r["roi"] != "all"]
        encoder, random_weights = encoder_status(cell)
        for roi in rois:
            rows.append({"sweep": sweep, "dataset": attrs["dataset"], "subject": cell["subject"],
                         "encoder": encoder, "random_weights": random_weights, "layer": cell["layer"],
                         "depth": cell["depth"],
                         "kind": cell.get("kind", "encoding"), "head": cell["head"],
                         "analysis": cell.get("analysis") or cell["head"],
                         "fold": fold, "cell": key, **extra, **roi})
    frame = pd.DataFrame(rows)
    if "p_permutation" in frame.columns:
        family = frame["roi"] != "all"
        frame["q_fdr"] = np.nan
        frame.loc[family, "q_fdr"] = fdr_bh(frame.loc[family, "p_permutation"].to_numpy(dtype=float))[1]
    for column in [c for c in frame.columns if c.startswith("p_") and c != "p_permutation"]:
        frame[f"q_{column[2:]}"] = fdr_bh(frame[column].to_numpy(dtype=float))[1]
    return frame


CORE_IDS = ("sweep", "dataset", "subject", "encoder", "layer", "depth", "kind", "analysis", "fold", "roi")
RUN_IDS = ("n_units", "fit_s", "peak_memory_mb", "peak_memory_source", "cell")


def analyses_for(kinds: Iterable[str], registry: Any = None) -> dict[str, Any]:
    """The analysis of each kind in the table (None for a kind whose plugin is not installed here)."""
    from brain_workbench.plugin.registry import get_registry

    registry = registry or get_registry()
    return {kind: registry.create("analysis", kind) if kind in registry.entries["analysis"] else None
            for kind in kinds}


def id_columns(wide: Any, registry: Any = None) -> list[str]:
    """Identifier columns of a wide results table: the core's, then each analysis's own."""
    own = [c for a in analyses_for(dict.fromkeys(wide["kind"]), registry).values() if a is not None for c in a.id_columns]
    return [c for c in dict.fromkeys([*CORE_IDS, "random_weights", *own, *RUN_IDS]) if c in wide.columns]


def score_columns(wide: Any, registry: Any = None) -> list[str]:
    """Score columns of a wide results table, as each analysis declares them for its own rows.

    Rows of an analysis not installed here keep their numeric columns that are no identifier.
    """
    import pandas as pd

    ids = set(id_columns(wide, registry))
    scores: list[str] = []
    for kind, analysis in analyses_for(dict.fromkeys(wide["kind"]), registry).items():
        rows = wide[wide["kind"] == kind]
        if analysis is not None:
            scores.extend(analysis.scores(rows))
        else:
            scores.extend(c for c in rows.columns if c not in ids and rows[c].notna().any()
                          and pd.api.types.is_numeric_dtype(pd.to_numeric(rows[c], errors="coerce")))
    return [c for c in dict.fromkeys(scores) if c not in ids]


def tidy_table(store: Store, sweep: str, folds: bool = False):
    """The results in long form: one row per subject × model × layer × analysis × ROI × score.

    ``score`` names what ``value`` holds (``mean_r``, ``mean_r_normalized``, ``p_permutation``,
    ``q_fdr``, a metric's own score name such as ``rsa_spearman``, ``top1_brain_to_image``, …); which
    columns are identifiers and which are scores each analysis declares.
    """
    import pandas as pd

    wide = results_table(store, sweep, folds=folds)
    if wide.empty:
        return pd.DataFrame(columns=[*CORE_IDS, "score", "value"])
    if "value" in wide.columns:
        wide = wide.copy()
        names = wide["score_name"] if "score_name" in wide.columns else wide["analysis"]
        names = names.fillna(wide["analysis"])
        has = wide["value"].notna()
        for name in names[has].unique():
            rows = has & (names == name)
            wide.loc[rows, name] = wide.loc[rows, "value"]
        wide = wide.drop(columns="value")
    ids = id_columns(wide)
    scores = score_columns(wide)
    long = wide.melt(id_vars=ids, value_vars=scores, var_name="score", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float)
    return long.dropna(subset=["value"]).reset_index(drop=True)


def summary_table(store: Store, sweep: str):
    """The tidy table aggregated over subjects: mean, SEM (ddof 1) and the number of subjects per
    model × layer × analysis × ROI × score."""
    long = tidy_table(store, sweep)
    keys = [c for c in ("encoder", "layer", "depth", "kind", "analysis", "fold", "roi", "session", "k_sessions", "score")
            if c in long.columns]
    grouped = long.groupby(keys, sort=False, dropna=False)["value"]
    out = grouped.agg(mean="mean", sem="sem", n_subjects="count").reset_index()
    return out


def table_path(store: Store, sweep: str) -> str:
    base = store.url.rstrip("/")
    base = base[:-5] if base.endswith(".zarr") else base
    return f"{base}.tables/{sweep}.parquet"


def code_revision() -> str | None:
    """The git commit of the installed workbench source, when it runs from a checkout (else None)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def export_table(store: Store, sweep: str) -> str:
    """Write the tidy results table as Parquet next to the store (pandas / DuckDB friendly); the file's
    metadata hold the sweep config, package versions and code revision (``workbench`` key, JSON)."""
    import json
    import os

    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = tidy_table(store, sweep)
    manifest = store.open(manifest_path(sweep)).attrs
    info = {"config": manifest.get("config"), "versions": provenance()["versions"], "code_revision": code_revision()}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"workbench": json.dumps(info, default=str).encode()})
    path = table_path(store, sweep)
    fs, target = fsspec.core.url_to_fs(path)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    partial = f"{target}.{os.getpid()}.partial"  # then renamed, so a reader never sees half a table
    try:
        with disk_full_named(f"the results table {path}"):
            with fs.open(partial, "wb") as fh:
                pq.write_table(table, fh)
            fs.mv(partial, target)
    finally:
        if fs.exists(partial):
            fs.rm(partial)
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
        if cell.get("kind", "encoding") not in kinds or cell.get("fold", "") not in ("", "mean"):
            continue
        if (subject and cell["subject"] != subject) or (encoder and cell["encoder"] != encoder) or \
                (layer and cell["layer"] != layer):
            continue
        yield ({**cell, "n_test": reader.attrs.get("n_test"), "task": reader.attrs.get("task", {})},
               {name: reader[name] for name in reader.names()})
