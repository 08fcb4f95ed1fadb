"""The config of the tiny sweep the readout-objective, preferred and synthesis tests share (its session fixture,
``pixel_sweep``, is in tests/plugins/conftest.py): the demo dataset (one subject), the pixel receptive-field
encoder (a known gradient), a ridge head, and both analysis sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = ["V1", "VOT", {"roi": "VOT", "minus": "V1"}]


def pixel_config(tmp: Path, name: str = "px", rois: list[str] | None = None, encoder: str = "pixel-test",
                 layers: tuple[str, ...] = ("pixels", "energy"), preferred: dict | bool = True,
                 synthesis: dict | bool = True) -> dict[str, Any]:
    """The shared sweep's config; tests vary a section (a dict of changed fields) or drop it (False)."""
    layer = layers[0]
    config = {"name": name, "store": str(tmp / "s.zarr"), "rois": rois,
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": encoder, "layers": list(layers)}], "heads": [{"name": "ridge"}], "metrics": [],
            "permutations": 0, "cv": {"scheme": "split"},
            "preferred": {"encoder": encoder, "layer": layer, "targets": TARGETS, "top": 3, "thumb": 32,
                          **(preferred if isinstance(preferred, dict) else {})},
            "synthesis": {"encoder": encoder, "layer": layer, "targets": ["V1", "VOT"], "n_images": 2, "steps": 10,
                          "size": 16, "natural": 2, "device": "cpu", **(synthesis if isinstance(synthesis, dict) else {})}}
    return {k: v for k, v in config.items() if not (k == "preferred" and preferred is False
                                                    or k == "synthesis" and synthesis is False)}
