"""The ``nice-clip`` encoder: the CLIP ViT-L/14 embeddings the ``things-eeg2-sim`` stimuli were generated from.

Layer ``image`` is the seen image's own embedding (what ATM scores against), layer ``centre`` its concept
centre (what NICE scores against). Real THINGS photographs carry no embedding: use the ``clip`` encoder
with ``model: ViT-L-14`` on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brain_workbench.sdk import EncoderBase, LayerInfo, WorkbenchError, digest
from brain_workbench_plugins.eeg_zeroshot.embeddings import WIDTH, assets_digest

CODE_VERSION = "1"
LAYERS = ("image", "centre")


class NiceClipEncoder(EncoderBase):
    """Shipped/simulated CLIP ViT-L/14 embeddings of things-eeg2-sim stimuli: layers ``image`` and ``centre``."""

    name = "nice-clip"
    modality = "image"

    def load_model(self) -> None:
        """Nothing to load: the embeddings travel with the simulated stimuli."""

    def list_layers(self) -> list[LayerInfo]:
        return [LayerInfo(name, 1.0) for name in LAYERS]

    def compute_fingerprint(self) -> str:
        return digest("nice-clip", CODE_VERSION, assets_digest())

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Each stimulus's embeddings, read from what the things-eeg2-sim image loader attached."""
        self.check_layers(layers)
        out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
        for item in batch:
            carried = getattr(item, "info", {}).get("nice_clip")
            if carried is None:
                raise WorkbenchError("nice-clip gives the embeddings of things-eeg2-sim stimuli only; this image "
                                     "carries none (for real THINGS images use the clip encoder with "
                                     "model: ViT-L-14)")
            for layer in layers:
                vector = np.asarray(carried[layer], dtype=np.float32)
                if vector.shape != (WIDTH,):
                    raise WorkbenchError(f"nice-clip: stimulus {carried.get('stimulus_id')!r} carries a {layer} "
                                         f"embedding of shape {vector.shape}, not ({WIDTH},) (CLIP ViT-L/14)")
                out[layer].append(vector)
        return {layer: np.stack(values) for layer, values in out.items()}
