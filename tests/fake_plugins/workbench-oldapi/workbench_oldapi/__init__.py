"""A third-party plugin as a lab wrote it for the previous release, not edited since: the old import name
``workbench``, the old entry-point group, ``register(options=..., modality=...)``, ``load_cell_scores`` from
``workbench.sweep.runner`` and the ``Store.load_recording(path)`` method."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from workbench.sdk import LayerInfo, Recording, StimulusSet, Units, WorkbenchError, digest, hookimpl
from workbench.store import Store
from workbench.sweep.runner import load_cell_scores

WORDS = ("cat", "boat", "rain", "music", "stone", "bread", "wind", "glass", "road", "moss", "bell", "ink",
         "lamp", "tree", "snow", "salt")


class WordsDataset:
    """One subject reading sixteen words three times; responses are a noisy linear map of hashed word vectors."""

    name = "oldapi-words"
    modalities = ("text",)

    def __init__(self, n_units: int = 12, seed: int = 0) -> None:
        self.n_units, self.seed = int(n_units), int(seed)
        self.ids = tuple(f"w{i:02d}" for i in range(len(WORDS)))

    def subjects(self) -> list[str]:
        return ["s1"]

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        if modality not in (None, "text"):
            raise WorkbenchError(f"oldapi-words has no {modality!r} stimuli")
        text = dict(zip(self.ids, WORDS))
        return StimulusSet(self.ids, "text", lambda ids: [text[i] for i in ids])

    def recording(self, subject: str) -> Recording:
        rng = np.random.default_rng(self.seed)
        signal = np.stack([_vector(w, 4) for w in WORDS]) @ rng.standard_normal((4, self.n_units))
        trials = np.concatenate([np.arange(len(self.ids))] * 3)
        responses = signal[trials] + 0.5 * rng.standard_normal((len(trials), self.n_units))
        half = self.n_units // 2
        units = Units(space="fsaverage5", n=self.n_units, vertex=np.arange(self.n_units),
                      hemisphere=np.array(["left"] * half + ["right"] * (self.n_units - half)),
                      rois={"early": np.arange(self.n_units) < half, "late": np.arange(self.n_units) >= half})
        return Recording(dataset=self.name, subject=subject, responses=responses.astype(np.float32),
                         trial_stimulus_ids=np.asarray(self.ids)[trials], units=units,
                         splits={"train": np.asarray(self.ids[:10]), "test": np.asarray(self.ids[10:])})

    def fetch(self, dest: Any, accept_terms: bool = False, **options: Any) -> Any:
        raise WorkbenchError("oldapi-words is generated; nothing to fetch")

    def fingerprint(self) -> str:
        return digest(self.name, self.n_units, self.seed)


class HashEncoder:
    """Hashed word vectors through two fixed tanh layers."""

    name = "oldapi-hash"
    modality = "text"

    def __init__(self, **options: Any) -> None:
        self.width = int(options.get("width", 8))
        rng = np.random.default_rng(7)
        self._weights = [rng.standard_normal((self.width, self.width)) / np.sqrt(self.width) for _ in range(2)]

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("h0", 0.0), LayerInfo("h1", 1.0)]

    def encode(self, batch: list, layers: Sequence[str]) -> dict[str, np.ndarray]:
        hidden = np.stack([_vector(str(w), self.width) for w in batch])
        out = {}
        for name, weight in zip(("h0", "h1"), self._weights):
            hidden = np.tanh(hidden @ weight)
            if name in layers:
                out[name] = hidden.astype(np.float32)
        return out

    def fingerprint(self) -> str:
        return digest(self.name, self.width)


def _vector(word: str, width: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(width)


def best_layer(store: Store, sweep: str) -> dict[str, Any]:
    """The lab's own summary: the best layer by mean per-unit score, and the recording it was scored on."""
    cells = list(load_cell_scores(store, sweep))
    cell, arrays = max(cells, key=lambda c: float(np.nanmean(np.asarray(c[1]["score"]))))
    rec = store.load_recording(cell["response_path"])
    return {"layer": cell["layer"], "encoder": cell["encoder"], "n_units": rec.units.n}


@hookimpl
def register_datasets(register) -> None:
    register("oldapi-words", WordsDataset, description="Hashed words read by one subject.", modality="text",
             options={"n_units": {"type": "int", "default": 12}, "seed": {"type": "int", "default": 0}})


@hookimpl
def register_encoders(register) -> None:
    register("oldapi-hash", HashEncoder, description="Hashed words through tanh layers.", modality="text",
             options={"width": {"type": "int", "default": 8}})
