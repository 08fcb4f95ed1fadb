"""The conformance kit: every named check passes a good plugin and rejects a plugin broken for that rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from brain_workbench.plugin import testing
from brain_workbench.sdk import LayerInfo, Recording, StimulusSet, Units, WorkbenchError
from brain_workbench.types import digest


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

    def score_per_unit(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        P, Y = self.predict(X), np.asarray(Y)
        P, Y = P - P.mean(0), Y - Y.mean(0)
        return (P * Y).sum(0) / np.sqrt((P * P).sum(0) * (Y * Y).sum(0))

    def score(self, X: np.ndarray, Y: np.ndarray) -> float:
        return float(np.mean(self.score_per_unit(X, Y)))


class GoodMetric:
    kind = "similarity"
    invariances = ("isotropic_scaling", "orthogonal", "translation")
    cross_validated = False

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = X - X.mean(0), Y - Y.mean(0)
        return float(np.linalg.norm(X.T @ Y) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


class PropertyWithoutMeasure(GoodMetric):
    kind = "distance"
    scope = "property"
    primary = "dimension"

    def measure(self, X: np.ndarray) -> dict:
        return {"other": float(np.nan)}


class GoodCodec:
    name = "good-codec"
    image_size = 8

    @property
    def latent_dim(self) -> int:
        return self.image_size * self.image_size * 3

    def encode(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise WorkbenchError("images must be uint8 (n, H, W, 3)")
        rows = np.linspace(0, images.shape[1] - 1, self.image_size).astype(int)
        cols = np.linspace(0, images.shape[2] - 1, self.image_size).astype(int)
        return (images[:, rows][:, :, cols] / 255.0).reshape(len(images), -1).astype(np.float32)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        if latents.shape[1] != self.latent_dim:
            raise WorkbenchError("latents of the wrong width")
        side = self.image_size
        return np.clip(np.rint(latents * 255), 0, 255).astype(np.uint8).reshape(len(latents), side, side, 3)

    def fingerprint(self) -> str:
        return "good-codec-v1"


class GoodImageMetric:
    name = "good-image-metric"
    kind = "similarity"

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        if len(reconstructions) != len(targets):
            raise WorkbenchError("unequal numbers of reconstructions and targets")
        codec = GoodCodec()
        return -np.mean((codec.encode(reconstructions) - codec.encode(targets)) ** 2, axis=1)


class MissingFilesGenerator:
    """A generator without its local pipeline folder: every use is refused with a sentence naming it."""

    name = "good-generator"
    embedding_space = "ViT-L-14"

    def _refuse(self) -> WorkbenchError:
        return WorkbenchError(f"{self.name}: no pipeline folder; download it once and pass path=DIR")

    @property
    def embedding_dim(self) -> int:
        raise self._refuse()

    def generate(self, image_embeds: np.ndarray, init_images: np.ndarray | None = None,
                 text_embeds: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        raise self._refuse()

    def fingerprint(self) -> str:
        raise self._refuse()


class WorkingGenerator(MissingFilesGenerator):
    name = "working-generator"
    embedding_dim = 8  # type: ignore[assignment]

    def generate(self, image_embeds: np.ndarray, init_images: np.ndarray | None = None,
                 text_embeds: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        return np.zeros((len(image_embeds), 8, 8, 3), np.uint8)

    def fingerprint(self) -> str:
        return "working-generator-v1"


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


class CategoriesInOneModalityOnly(GoodDataset):
    def stimuli(self, modality: str | None = None) -> StimulusSet:
        stim = super().stimuli(modality)
        categories = tuple("a" for _ in stim.ids) if stim.modality == "image" else None
        return StimulusSet(stim.ids, stim.modality, stim.loader, categories=categories)


class IdsOnlyDigest(GoodDataset):
    def stimuli(self, modality: str | None = None) -> StimulusSet:
        stim = super().stimuli(modality)
        return StimulusSet(stim.ids, stim.modality, stim.loader, digest(stim.modality, list(stim.ids)))


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


class PerUnitScore(GoodHead):
    def score(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:  # type: ignore[override]
        return self.score_per_unit(X, Y)


class ScoreIgnoresInput(GoodHead):
    def score_per_unit(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
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


class NoImageSizeCodec(GoodCodec):
    image_size = 0


class NoLatentsCodec(GoodCodec):
    latent_dim = 0  # type: ignore[assignment]


class UnstableCodecFingerprint(GoodCodec):
    def fingerprint(self) -> str:
        return str(np.random.default_rng().random())


class Float64Codec(GoodCodec):
    def encode(self, images: np.ndarray) -> np.ndarray:
        return super().encode(images).astype(np.float64)


class NoisyCodec(GoodCodec):
    def encode(self, images: np.ndarray) -> np.ndarray:
        z = super().encode(images)
        return z + np.random.default_rng().normal(0, 0.1, z.shape).astype(np.float32)


class BatchDependentCodec(GoodCodec):
    def encode(self, images: np.ndarray) -> np.ndarray:
        z = super().encode(images)
        return z - z.mean(axis=0)


class FloatDecodeCodec(GoodCodec):
    def decode(self, latents: np.ndarray) -> np.ndarray:
        return super().decode(latents).astype(np.float32)


class AcceptsFloatImagesCodec(GoodCodec):
    def encode(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        images = images if images.ndim == 4 else images[None]
        return super().encode(np.clip(images, 0, 255).astype(np.uint8))


class AcceptsWrongLatentsCodec(GoodCodec):
    def decode(self, latents: np.ndarray) -> np.ndarray:
        return super().decode(np.resize(latents, (len(latents), self.latent_dim)))


class BadKindImageMetric(GoodImageMetric):
    kind = "closeness"


class MeanImageMetric(GoodImageMetric):
    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.asarray(super().score(reconstructions, targets).mean())


class SortedImageMetric(GoodImageMetric):
    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.sort(super().score(reconstructions, targets))


class BackwardsImageMetric(GoodImageMetric):
    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return -super().score(reconstructions, targets)


class TruncatingImageMetric(GoodImageMetric):
    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        n = min(len(reconstructions), len(targets))
        return super().score(reconstructions[:n], targets[:n])


class NoEmbeddingSpaceGenerator(MissingFilesGenerator):
    embedding_space = ""


class UndocumentedOptionsGenerator(MissingFilesGenerator):
    def __init__(self, steps: int = 10) -> None:
        self.steps = steps


class SilentFingerprintGenerator(MissingFilesGenerator):
    def fingerprint(self) -> str:
        raise WorkbenchError("missing")


class NoWidthGenerator(WorkingGenerator):
    embedding_dim = 0


class FloatImagesGenerator(WorkingGenerator):
    def generate(self, image_embeds: np.ndarray, init_images: np.ndarray | None = None,
                 text_embeds: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        return np.zeros((len(image_embeds), 8, 8, 3), np.float32)


BROKEN: dict[str, Any] = {
    "check_dataset_protocol": NoModalities, "check_dataset_subjects": NoSubjects,
    "check_dataset_fingerprint": UnstableFingerprint, "check_dataset_stimuli": TextLoadsImages,
    "check_dataset_stimuli_identity": IdsOnlyDigest,
    "check_dataset_modalities_share_ids": IdsDifferAcrossModalities, "check_dataset_trials_known": UnknownTrials,
    "check_dataset_test_split": NoTestSplit, "check_dataset_responses_finite": NanResponses,
    "check_dataset_units": SurfaceWithoutVertices,
    "check_encoder_protocol": BrokenEncoderModality, "check_encoder_layers": UnorderedLayers,
    "check_encoder_fingerprint": UnstableEncoderFingerprint, "check_encoder_output": ThreeDimensionalOutput,
    "check_encoder_deterministic": NoisyEncoder, "check_encoder_batch_invariance": BatchDependentEncoder,
    "check_head_protocol": NoDirectionHead, "check_head_clonable": UnclonableHead,
    "check_head_fit_returns_self": FitReturnsNone, "check_head_predict_shape": WrongPredictShape,
    "check_head_score_per_unit": PerUnitScore, "check_head_score_uses_input": ScoreIgnoresInput,
    "check_head_refuses_nan": AcceptsNan,
    "check_dataset_categories": CategoriesInOneModalityOnly, "check_metric_scope": PropertyWithoutMeasure,
    "check_metric_protocol": BadKindMetric, "check_metric_deterministic": NonDeterministicMetric,
    "check_metric_invariances": FalseInvarianceMetric, "check_metric_direction": BackwardsMetric,
    "check_codec_protocol": NoImageSizeCodec, "check_codec_latent_dim": NoLatentsCodec,
    "check_codec_fingerprint": UnstableCodecFingerprint, "check_codec_encode": Float64Codec,
    "check_codec_deterministic": NoisyCodec, "check_codec_batch_invariance": BatchDependentCodec,
    "check_codec_decode": FloatDecodeCodec, "check_codec_refuses_bad_images": AcceptsFloatImagesCodec,
    "check_codec_refuses_bad_latents": AcceptsWrongLatentsCodec,
    "check_image_metric_protocol": BadKindImageMetric, "check_image_metric_one_value_per_pair": MeanImageMetric,
    "check_image_metric_row_order": SortedImageMetric, "check_image_metric_identity": BackwardsImageMetric,
    "check_image_metric_refuses_unequal": TruncatingImageMetric,
    "check_generator_protocol": NoEmbeddingSpaceGenerator, "check_generator_options": UndocumentedOptionsGenerator,
    "check_generator_fingerprint": SilentFingerprintGenerator,
    "check_generator_embedding_dim": NoWidthGenerator, "check_generator_generate": FloatImagesGenerator,
}
ALL_CHECKS = [check for checks in testing.KIND_CHECKS.values() for check in checks]
GOOD = [GoodDataset(), GoodEncoder(), GoodHead(), GoodMetric(), GoodCodec(), GoodImageMetric(),
        MissingFilesGenerator(), WorkingGenerator()]


def test_every_check_has_a_broken_plugin() -> None:
    assert sorted(BROKEN) == sorted(c.__name__ for c in ALL_CHECKS)


@testing.parametrize_with_checks(GOOD)
def test_good_plugins_pass(plugin: Any, check: Any) -> None:
    check(plugin)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_broken_plugin_fails_its_check(check: Any) -> None:
    with pytest.raises(AssertionError):
        check(BROKEN[check.__name__]())


def test_every_kind_has_checks() -> None:
    from brain_workbench.plugin.registry import KINDS

    assert set(testing.KIND_CHECKS) <= set(KINDS)
    assert {testing.checks_for(plugin) for plugin in GOOD} == set(testing.KIND_CHECKS.values())


def _params(decorator: Any) -> dict[str, Any]:
    return {p.id: p for p in decorator.mark.args[1]}


def test_expected_failures_become_xfails_with_their_reason() -> None:
    decorator = testing.parametrize_with_checks(
        [GoodMetric(), BackwardsMetric()],
        expected_failed_checks=lambda m: {"check_metric_direction": "says backwards"} if isinstance(m, BackwardsMetric)
        else {})
    params = _params(decorator)
    assert len(params) == 2 * len(testing.METRIC_CHECKS), "ids are unique: the plugin label is the class name"
    marked = {i: p.marks[0] for i, p in params.items() if p.marks}
    assert list(marked) == ["BackwardsMetric-metric_direction"]
    assert marked["BackwardsMetric-metric_direction"].name == "xfail"
    assert marked["BackwardsMetric-metric_direction"].kwargs["reason"] == "says backwards"
    assert _params(testing.parametrize_with_checks([GoodCodec()], {"check_codec_decode": "why"}, ids=["c"]))[
        "c-codec_decode"].marks[0].kwargs["reason"] == "why"


def test_expected_failures_name_real_checks() -> None:
    with pytest.raises(WorkbenchError, match=r"expected_failed_checks of good-codec names 'check_metric_direction', "
                                             r"which is not one of its checks \(check_codec_batch_invariance, "):
        testing.parametrize_with_checks([GoodCodec()], {"check_metric_direction": "wrong kind"})


def test_fit_returning_none_is_named_in_the_message() -> None:
    with pytest.raises(AssertionError, match="fit\\(\\) must return"):
        testing.check_head_predict_shape(FitReturnsNone())


def test_lh_rh_labels_are_normalised_not_refused() -> None:
    assert list(GoodDataset().recording("1").units.hemisphere) == ["left", "left", "right", "right"]
    testing.check_dataset_units(GoodDataset())
