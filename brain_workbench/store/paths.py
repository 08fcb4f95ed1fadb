"""Store paths of features and results.

Cached recordings are keyed by :func:`brain_workbench.store.recording_key` and images by
:func:`brain_workbench.store.images.images_path`, beside the code that writes them.
"""

from __future__ import annotations

from brain_workbench.store import safe_name

MANIFEST = "manifest"


def features_prefix(encoder_key: str) -> str:
    """All layers of one encoder on one stimulus set."""
    return f"features/{encoder_key}"


def feature_path(encoder_key: str, layer: str) -> str:
    """Features of one layer of one encoder on one stimulus set."""
    return f"{features_prefix(encoder_key)}/{safe_name(layer)}"


def result_path(sweep: str, cell_key: str) -> str:
    """Scores (and fitted parameters) of one cell."""
    return f"results/{sweep}/{cell_key}"


def manifest_path(sweep: str) -> str:
    """Cell keys and config of a sweep's latest run."""
    return f"results/{sweep}/{MANIFEST}"


def results_prefix(sweep: str | None = None) -> str:
    return "results" if sweep is None else f"results/{sweep}"
