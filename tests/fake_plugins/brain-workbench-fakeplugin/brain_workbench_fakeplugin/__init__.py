"""A minimal but real third-party workbench plugin: one dataset, encoder, head and metric.

Everything is synthetic and deterministic, so it runs offline in milliseconds and passes the
conformance checks of ``brain_workbench.plugin.testing``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from sklearn.base import BaseEstimator

from brain_workbench.sdk import LayerInfo, Option, Recording, StimulusSet, Units, WorkbenchError, digest, hookimpl

VERSION = "0.3.1"
SENTENCES = tuple(f"sentence number {i} about {topic}" for i, topic in
                  enumerate(["cats", "boats", "rain", "music", "stones", "bread",
                             "wind", "glass", "roads", "moss", "bells", "ink"]))


class FakeDataset:
    """Two subjects reading twelve sentences twice; responses are a noisy linear map of them."""

    name = "fake-data"
    modalities = ("text",)

    def __init__(self, n_units: Annotated[int, Option("units per subject")] = 8,
                 seed: Annotated[int, Option("random seed")] = 0,
                 local_path: Annotated[str | None, Option("folder with sentences.txt")] = None) -> None:
        if n_units < 2:
            raise WorkbenchError(f"fake-data needs n_units >= 2, got {n_units}")
        self.n_units, self.seed, self.local_path = int(n_units), int(seed), local_path
        self.ids = tuple(f"fake{i:02d}" for i in range(len(SENTENCES)))
        self._text = dict(zip(self.ids, SENTENCES))

    def subjects(self) -> list[str]:
        return ["s1", "s2"]

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        if modality not in (None, "text"):
            raise WorkbenchError(f"fake-data has no {modality!r} stimuli; it has text")
        return StimulusSet(self.ids, "text", lambda ids: [self._text[i] for i in ids])

    def recording(self, subject: str) -> Recording:
        if subject not in self.subjects():
            raise WorkbenchError(f"fake-data has no subject {subject!r}; choose from {self.subjects()}")
        rng = np.random.default_rng([self.seed, self.subjects().index(subject)])
        signal = rng.standard_normal((len(self.ids), self.n_units))
        trials = np.concatenate([np.arange(len(self.ids))] * 2)
        responses = signal[trials] + 0.3 * rng.standard_normal((len(trials), self.n_units))
        half = self.n_units // 2
        units = Units(space="fsaverage5", n=self.n_units, vertex=np.arange(self.n_units),
                      hemisphere=np.array(["left"] * half + ["right"] * (self.n_units - half)),
                      rois={"early": np.arange(self.n_units) < half, "late": np.arange(self.n_units) >= half})
        return Recording(
            dataset=self.name, subject=subject, responses=responses.astype(np.float32),
            trial_stimulus_ids=np.asarray(self.ids)[trials], units=units,
            splits={"train": np.asarray(self.ids[:9]), "test": np.asarray(self.ids[9:])},
            noise_ceiling=np.full(self.n_units, 0.8, dtype=np.float32),
        )

    def fetch(self, dest: str | Path, accept_terms: bool = False, **options: Any) -> Path:
        dest = Path(self.local_path or dest)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
        return dest

    def fingerprint(self) -> str:
        return digest(self.name, VERSION, self.n_units, self.seed)


class FakeEncoder:
    """Hash-seeded token vectors pushed through fixed random tanh layers."""

    name = "fake-encoder"
    modality = "text"

    def __init__(self, width: Annotated[int, Option("feature width")] = 16,
                 n_layers: Annotated[int, Option("number of layers")] = 3) -> None:
        if n_layers < 2:
            raise WorkbenchError(f"fake-encoder needs n_layers >= 2, got {n_layers}")
        self.width, self.n_layers = int(width), int(n_layers)
        rng = np.random.default_rng(1234)
        self._weights = [rng.standard_normal((self.width, self.width)) / np.sqrt(self.width)
                         for _ in range(self.n_layers)]

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(f"layer{i}", i / (self.n_layers - 1)) for i in range(self.n_layers)]

    def _embed(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.width)

    def encode(self, batch: list, layers: Sequence[str]) -> dict[str, np.ndarray]:
        names = [layer.name for layer in self.layers()]
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise WorkbenchError(f"fake-encoder has no layer {unknown[0]!r}; it has {', '.join(names)}")
        hidden = np.stack([self._embed(str(item)) for item in batch])
        out: dict[str, np.ndarray] = {}
        for name, weight in zip(names, self._weights):
            hidden = np.tanh(hidden @ weight)
            if name in layers:
                out[name] = hidden.astype(np.float32)
        return out

    def fingerprint(self) -> str:
        return digest(self.name, VERSION, self.width, self.n_layers)


class FakeRidge(BaseEstimator):
    """Ridge regression with one alpha; ``score`` is R² per output unit."""

    direction = "encode"

    def __init__(self, alpha: Annotated[float, Option("ridge penalty")] = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, Y: np.ndarray) -> FakeRidge:
        X, Y = _finite(X, "X"), _finite(Y, "Y")
        self.x_mean_, self.y_mean_ = X.mean(0), Y.mean(0)
        Xc, Yc = X - self.x_mean_, Y - self.y_mean_
        self.coef_ = np.linalg.solve(Xc.T @ Xc + self.alpha * np.eye(X.shape[1]), Xc.T @ Yc)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (_finite(X, "X") - self.x_mean_) @ self.coef_ + self.y_mean_

    def score_per_unit(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        Y = _finite(Y, "Y")
        residual = ((Y - self.predict(X)) ** 2).sum(0)
        total = ((Y - Y.mean(0)) ** 2).sum(0)
        return 1.0 - residual / np.where(total > 0, total, np.inf)

    def score(self, X: np.ndarray, Y: np.ndarray) -> float:
        return float(np.mean(self.score_per_unit(X, Y)))


class FakeCKA:
    """Linear centred kernel alignment."""

    kind = "similarity"
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")
    cross_validated = False

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _finite(X, "X"), _finite(Y, "Y")
        X, Y = X - X.mean(0), Y - Y.mean(0)
        cross = np.linalg.norm(Y.T @ X) ** 2
        return float(cross / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def _finite(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a finite 2-D array")
    return a


@hookimpl
def register_datasets(register) -> None:
    register("fake-data", FakeDataset, description="Synthetic sentences read by two subjects.",
             modalities=("text",), citation="none")


@hookimpl
def register_encoders(register) -> None:
    register("fake-encoder", FakeEncoder, description="Hash-seeded random tanh network.",
             modalities=("text",))


@hookimpl
def register_heads(register) -> None:
    register("fake-ridge", FakeRidge, description="Single-alpha ridge, R² per unit.")


@hookimpl
def register_metrics(register) -> None:
    register("fake-cka", FakeCKA, description="Linear CKA.")


@hookimpl
def register_commands(app) -> None:
    @app.command("fake-hello")
    def fake_hello(name: str = "world") -> None:
        """Say hello from the fake plugin."""
        print(f"hello {name} from brain-workbench-fakeplugin")
