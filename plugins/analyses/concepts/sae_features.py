"""SAE latents of a cached base layer, without re-running the base encoder: a feature job whose "encoder" reads the
base layer's cached rows by stimulus id and passes them through an ``sae`` encoder (built through the registry),
which trains its checkpoint run on those cached features first when the store holds none (``train`` options)."""

from __future__ import annotations

from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    FeatureJob,
    LayerInfo,
    StimulusSet,
    Store,
    build,
    digest,
    encoder_key,
    feature_path,
    load_features,
)

LATENTS = "latents"


class CachedLayerSAE:
    """Encoder of stimulus ids: their cached base-layer rows through an SAE (trained on the same rows if needed)."""

    name = "sae"

    def __init__(self, store_url: str, base_path: str, modality: str, options: dict[str, Any]) -> None:
        self.store_url, self.base_path, self.modality, self.options = store_url, base_path, modality, dict(options)
        self._sae: Any = None

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(LATENTS, 1.0)]

    def fingerprint(self) -> str:
        """The recipe (base features and SAE options but the store's location), not the trained weights."""
        return digest("cached-layer-sae", 1, self.base_path, {k: v for k, v in self.options.items() if k != "store"})

    def encode(self, batch: list[Any], layers: list[str]) -> dict[str, np.ndarray]:
        if self._sae is None:
            self._sae = build("encoder", "sae", **{**self.options, "store": self.store_url})
            self._sae.fit_features(self.base_path)
        x = load_features(Store(self.store_url, mode="r"), self.base_path, [str(s) for s in batch])
        return {LATENTS: np.asarray(self._sae.transform(x), dtype=np.float32)}


def id_stimuli(store_url: str, base_path: str, modality: str) -> StimulusSet:
    """The base entry's stimuli as ids (the loader returns the ids themselves); the digest names the entry."""
    ids: tuple[str, ...] = ()
    if store_url:
        store = Store(store_url, mode="r")
        if store.is_complete(base_path):
            ids = tuple(str(s) for s in store.open(base_path)["stimulus_ids"])
    return StimulusSet(ids, modality, lambda chosen: list(chosen), digest("ids-of", base_path))


def latents_job(store_url: str, base_path: str, modality: str, options: dict[str, Any],
                label: str) -> tuple[FeatureJob, str]:
    """The feature job that writes the SAE latents of a cached base layer, and the latents' feature path."""
    encoder = CachedLayerSAE(store_url, base_path, modality, options)
    key = encoder_key(encoder, id_stimuli("", base_path, modality))
    job = FeatureJob(key, (LATENTS,), label, lambda: encoder, lambda: id_stimuli(store_url, base_path, modality), 256)
    return job, feature_path(key, LATENTS)
