"""The conformance kit: every named check passes a good plugin and rejects a plugin broken for that rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from brain_workbench.plugin import testing
from brain_workbench.sdk import LayerInfo, Recording, StimulusSet, Units


# ---- good reference plugins -----------------------------------------------------------------
class GoodDataset:
    name = "good-data"
    modalities = ("image", "text")

    def __init__(self) -> None:
        self.ids = tuple(f"s{i:02d}" for i in range(12))

    def subjects(self) -> list[str]:
        return ["1", "2"]

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        modality = modality or "image"
        if modality == "text":
            return StimulusSet(self.ids, "text", lambda ids: [f"caption {i}" for i in ids])
        from PIL import Image

        return StimulusSet(self.ids, "image", lambda ids: [Image.new("RGB", (8, 8)) for _ in ids])

    def units(self) -> Units:
        return Units("fsaverage5", 4, rois={"V1": [1, 1, 0, 0]}, hemisphere=["lh", "lh", "rh", "rh"],
                     vertex=[0, 1, 0, 1])

    def responses(self) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)

    def splits(self) -> dict[str, list[str]]:
        return {"train": list(self.ids[:9]), "test": list(self.ids[9:])}

    def recording(self, subject: str) -> Recording:
        return Recording("good-data", subject, self.responses(), list(self.ids) * 2, self.units(), self.splits())

    def fetch(self, dest: Any, accept_terms: bool = False, **options: Any) -> Any:
        return dest

    def fingerprint(self) -> str:
        return "good-data-v1"


class GoodEncoder:
    name = "good-encoder"
    modality = "text"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("a", 0.0), LayerInfo("b", 0.5), LayerInfo("c", 1.0)]

    def _row(self, item: str, layer: str) -> np.ndarray:
        rng = np.random.default_rng(sum(map(ord, item + layer)))
        return rng.standard_normal(5)

    def encode(self, batch: list, layers: Any) -> dict[str, np.ndarray]:
        return {layer: np.stack([self._row(str(x), layer) for x in batch]) for layer in layers}

    def fingerprint(self) -> str:
        return "good-encoder-v1"


class GoodHead(BaseEstimator):
    direction = "encode"

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, Y: np.ndarray) -> GoodHead:
        X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
        if not (np.isfinite(X).all() and np.isfinite(Y).all()):
            raise ValueError("NaN in input")
        self.coef_ = np.linalg.solve(X.T @ X + self.alpha * np.eye(X.shape[1]), X.T @ Y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) @ self.coef_

    def score(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        P, Y = self.predict(X), np.asarray(Y)
        P, Y = P - P.mean(0), Y - Y.mean(0)
        return (P * Y).sum(0) / np.sqrt((P * P).sum(0) * (Y * Y).sum(0))


class GoodMetric:
    kind = "similarity"
    invariances = ("isotropic_scaling", "orthogonal", "translation")
    cross_validated = False

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = X - X.mean(0), Y - Y.mean(0)
        return float(np.linalg.norm(X.T @ Y) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


# ---- one broken plugin per rule -------------------------------------------------------------
class NoModalities(GoodDataset):
    modalities = ()


class NoSubjects(GoodDataset):
    def subjects(self) -> list[str]:
        return []


class UnstableFingerprint(GoodDataset):
    count = 0

    def fingerprint(self) -> str:
        UnstableFingerprint.count += 1
        return f"fp{UnstableFingerprint.count}"


class TextLoadsImages(GoodDataset):
    def stimuli(self, modality: str | None = None) -> StimulusSet:
        stim = super().stimuli("image")
        return StimulusSet(stim.ids, modality or "image", stim.loader)


class IdsDifferAcrossModalities(GoodDataset):
    def stimuli(self, modality: str | None = None) -> StimulusSet:
        stim = super().stimuli(modality)
        ids = stim.ids[::-1] if modality == "text" else stim.ids
        return StimulusSet(ids, stim.modality, stim.loader)


class UnknownTrials(GoodDataset):
    def recording(self, subject: str) -> Recording:
        ids = ["x99"] + list(self.ids) * 2
        return Recording("good-data", subject, np.zeros((25, 4), np.float32), ids, self.units(),
                         {"test": ["s11"]})


class NoTestSplit(GoodDataset):
    def splits(self) -> dict[str, list[str]]:
        return {"train": list(self.ids)}


class NanResponses(GoodDataset):
    def responses(self) -> np.ndarray:
        r = super().responses()
        r[3, 2] = np.nan
        return r


class SurfaceWithoutVertices(GoodDataset):
    def units(self) -> Units:
        return Units("fsaverage5", 4, rois={"V1": [1, 1, 0, 0]})


class BrokenEncoderModality(GoodEncoder):
    modality = "audio"


class UnorderedLayers(GoodEncoder):
    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("a", 1.0), LayerInfo("b", 0.5), LayerInfo("c", 0.0)]


class UnstableEncoderFingerprint(GoodEncoder):
    def fingerprint(self) -> str:
        return str(np.random.default_rng().random())


class ThreeDimensionalOutput(GoodEncoder):
    def encode(self, batch: list, layers: Any) -> dict[str, np.ndarray]:
        return {k: v[:, :, None] for k, v in super().encode(batch, layers).items()}


class NoisyEncoder(GoodEncoder):
    def encode(self, batch: list, layers: Any) -> dict[str, np.ndarray]:
        rng = np.random.default_rng()
        return {k: v + rng.standard_normal(v.shape) for k, v in super().encode(batch, layers).items()}


class BatchDependentEncoder(GoodEncoder):
    def encode(self, batch: list, layers: Any) -> dict[str, np.ndarray]:
        return {k: v - v.mean(0) for k, v in super().encode(batch, layers).items()}


class NoDirectionHead(GoodHead):
    direction = "sideways"


class UnclonableHead(GoodHead):
    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha * 2


class FitReturnsNone(GoodHead):
    def fit(self, X: np.ndarray, Y: np.ndarray) -> None:  # type: ignore[override]
        super().fit(X, Y)


class WrongPredictShape(GoodHead):
    def predict(self, X: np.ndarray) -> np.ndarray:
        return super().predict(X)[:, :1]


class SingleFloatScore(GoodHead):
    def score(self, X: np.ndarray, Y: np.ndarray) -> float:  # type: ignore[override]
        return float(np.mean(super().score(X, Y)))


class ScoreIgnoresInput(GoodHead):
    def score(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.full(np.shape(Y)[1], 0.99)


class AcceptsNan(GoodHead):
    def fit(self, X: np.ndarray, Y: np.ndarray) -> AcceptsNan:
        return super().fit(np.nan_to_num(X), Y)


class BadKindMetric(GoodMetric):
    kind = "closeness"


class NonDeterministicMetric(GoodMetric):
    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        return super().compare(X, Y) + float(np.random.default_rng().random()) * 1e-3


class FalseInvarianceMetric(GoodMetric):
    invariances = ("invertible_linear",)


class BackwardsMetric(GoodMetric):
    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        return -super().compare(X, Y)


BROKEN: dict[str, Any] = {
    "check_dataset_protocol": NoModalities, "check_dataset_subjects": NoSubjects,
    "check_dataset_fingerprint": UnstableFingerprint, "check_dataset_stimuli": TextLoadsImages,
    "check_dataset_modalities_share_ids": IdsDifferAcrossModalities, "check_dataset_trials_known": UnknownTrials,
    "check_dataset_test_split": NoTestSplit, "check_dataset_responses_finite": NanResponses,
    "check_dataset_units": SurfaceWithoutVertices,
    "check_encoder_protocol": BrokenEncoderModality, "check_encoder_layers": UnorderedLayers,
    "check_encoder_fingerprint": UnstableEncoderFingerprint, "check_encoder_output": ThreeDimensionalOutput,
    "check_encoder_deterministic": NoisyEncoder, "check_encoder_batch_invariance": BatchDependentEncoder,
    "check_head_protocol": NoDirectionHead, "check_head_clonable": UnclonableHead,
    "check_head_fit_returns_self": FitReturnsNone, "check_head_predict_shape": WrongPredictShape,
    "check_head_score_per_unit": SingleFloatScore, "check_head_score_uses_input": ScoreIgnoresInput,
    "check_head_refuses_nan": AcceptsNan,
    "check_metric_protocol": BadKindMetric, "check_metric_deterministic": NonDeterministicMetric,
    "check_metric_invariances": FalseInvarianceMetric, "check_metric_direction": BackwardsMetric,
}
ALL_CHECKS = [*testing.DATASET_CHECKS, *testing.ENCODER_CHECKS, *testing.HEAD_CHECKS, *testing.METRIC_CHECKS]


def test_every_check_has_a_broken_plugin() -> None:
    assert sorted(BROKEN) == sorted(c.__name__ for c in ALL_CHECKS)


@testing.parametrize_with_checks([GoodDataset(), GoodEncoder(), GoodHead(), GoodMetric()])
def test_good_plugins_pass(plugin: Any, check: Any) -> None:
    check(plugin)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_broken_plugin_fails_its_check(check: Any) -> None:
    with pytest.raises(AssertionError):
        check(BROKEN[check.__name__]())


def test_fit_returning_none_is_named_in_the_message() -> None:
    with pytest.raises(AssertionError, match="fit\\(\\) must return"):
        testing.check_head_predict_shape(FitReturnsNone())


def test_lh_rh_labels_are_normalised_not_refused() -> None:
    assert list(GoodDataset().recording("1").units.hemisphere) == ["left", "left", "right", "right"]
    testing.check_dataset_units(GoodDataset())
