"""Tiny deterministic encoders that sweep tests register, so a sweep runs in seconds."""

from __future__ import annotations

import numpy as np

from brain_workbench.types import LayerInfo, digest


class ColourEncoder:
    """Colour statistics of each image: a cheap deterministic 6-feature encoder."""

    name = "colour-test"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("colour-test", 1)
