"""Conformance checks every plugin of a kind must pass, in the spirit of scikit-learn's estimator checks.

Each rule is its own named check, so a plugin's test-suite reports exactly which rule broke::

    from brain_workbench.plugin.testing import parametrize_with_checks

    @parametrize_with_checks([MyEncoder(), MyDataset()],
                             expected_failed_checks={"check_encoder_batch_invariance": "why it fails"})
    def test_conformance(plugin, check):
        check(plugin)

``check_dataset``, ``check_encoder``, ``check_head``, ``check_metric``, ``check_codec``,
``check_image_metric`` and ``check_generator`` run every check of a kind at once. Each check raises
``AssertionError`` with a message naming the broken rule; declared expected failures become xfails.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeGuard

import numpy as np

from brain_workbench.plugin.options import option_schema
from brain_workbench.types import (
    DIRECTIONS,
    HEMISPHERES,
    METRIC_KINDS,
    MODALITIES,
    SURFACE_MESHES,
    BrainRDMs,
    Codec,
    Dataset,
    Encoder,
    Generator,
    Head,
    ImageMetric,
    LayerInfo,
    Metric,
    Recording,
    StimulusSet,
    WorkbenchError,
    digest,
)

INVARIANCES = ("permutation", "isotropic_scaling", "orthogonal", "translation", "invertible_linear")
Check = Callable[[Any], None]


class _RDMDataset(Dataset, Protocol):
    """A dataset that sets ``provides = "rdms"`` (the optional part of the Dataset protocol)."""

    def rdms(self, subject: str) -> list[BrainRDMs]: ...


def _provides_rdms(dataset: Dataset) -> TypeGuard[_RDMDataset]:
    return getattr(dataset, "provides", "responses") == "rdms"


def sample_stimuli(modality: str, n: int = 4, seed: int = 0) -> list:
    """Small, varied stimuli of a modality for checks that need real input."""
    rng = np.random.default_rng(seed)
    if modality == "text":
        words = ["a red square", "two blue circles", "a striped cat on a mat", "an empty room",
                 "a green triangle above a wave", "dark noise", "a bright yellow star", "the ocean at night"]
        return [words[i % len(words)] + (f" number {i}" if i >= len(words) else "") for i in range(n)]
    from PIL import Image

    return [Image.fromarray(rng.integers(0, 255, size=(64 + 8 * i, 80, 3), dtype=np.uint8)) for i in range(n)]


# ---- datasets -------------------------------------------------------------------------------
def _first_recording(dataset: Dataset) -> Recording:
    subject = dataset.subjects()[0]
    rec = dataset.recording(subject)
    assert isinstance(rec, Recording), "recording() must return a Recording"
    assert rec.subject == subject, f"recording({subject!r}) returned subject {rec.subject!r}"
    return rec


def check_dataset_protocol(dataset: Any) -> None:
    assert isinstance(dataset, Dataset), f"{dataset!r} lacks parts of the Dataset protocol"
    assert dataset.modalities and set(dataset.modalities) <= set(MODALITIES), \
        f"modalities {dataset.modalities!r} must be a non-empty subset of {MODALITIES}"


def check_dataset_subjects(dataset: Dataset) -> None:
    subjects = dataset.subjects()
    assert subjects and all(isinstance(s, str) for s in subjects), "subjects() must list strings"
    assert len(set(subjects)) == len(subjects), "subjects() must not repeat a subject"


def check_dataset_fingerprint(dataset: Dataset) -> None:
    fp = dataset.fingerprint()
    assert isinstance(fp, str) and fp and fp == dataset.fingerprint(), "fingerprint() must be a stable string"


def check_dataset_stimuli(dataset: Dataset) -> None:
    for modality in dataset.modalities:
        stim = dataset.stimuli(modality)
        assert isinstance(stim, StimulusSet) and stim.modality == modality, f"stimuli({modality!r}) is wrong"
        assert len(stim) > 0, f"stimuli({modality!r}) is empty"
        loaded = stim.get(stim.ids[:2])
        assert len(loaded) == min(2, len(stim)), "StimulusSet.get must return one item per id"
        kind = str if modality == "text" else object
        assert all(isinstance(x, kind) for x in loaded), f"{modality} stimuli must load as {kind.__name__}"


def check_dataset_stimuli_identity(dataset: Dataset) -> None:
    for modality in dataset.modalities:
        stim = dataset.stimuli(modality)
        assert not stim.digest_given or stim.digest != digest(modality, list(stim.ids)), (
            f"stimuli({modality!r}) gives a content_digest that hashes only the modality and the ids: another "
            "dataset with the same ids would share its cached features; cover the content (the dataset's name and "
            "fingerprint, or a hash of the files), or give no content_digest and let the workbench key it")


def check_dataset_modalities_share_ids(dataset: Dataset) -> None:
    ids = {m: dataset.stimuli(m).ids for m in dataset.modalities}
    first = next(iter(ids.values()))
    for modality, other in ids.items():
        assert other == first, (f"stimulus ids of {modality} differ from those of {next(iter(ids))}: every modality "
                                "must offer the same ids in the same order")


def check_dataset_categories(dataset: Dataset) -> None:
    """Stimulus categories, where a dataset gives them, label every id with a non-empty string, the same in
    every modality (an image and its caption are one stimulus of one category)."""
    sets = [dataset.stimuli(m) for m in dataset.modalities]
    labelled = [s for s in sets if s.categories is not None]
    for stim in labelled:
        assert len(stim.categories or ()) == len(stim.ids), "categories must give one label per stimulus id"
        assert all(isinstance(c, str) and c for c in stim.categories or ()), "categories must be non-empty strings"
    if labelled:
        assert len(labelled) == len(sets), "categories must be given for every modality or none"
        assert all(s.categories == labelled[0].categories for s in labelled), \
            "every modality must give its stimuli the same categories"


def check_dataset_trials_known(dataset: Dataset) -> None:
    rec = _first_recording(dataset)
    known = set(dataset.stimuli(dataset.modalities[0]).ids)
    unknown = set(rec.trial_stimulus_ids.tolist()) - known
    assert not unknown, f"trials refer to unknown stimuli, e.g. {sorted(unknown)[:3]}"


def check_dataset_test_split(dataset: Dataset) -> None:
    rec = _first_recording(dataset)
    assert "test" in rec.splits, f"the recording needs a 'test' split (it has {sorted(rec.splits) or 'none'})"
    test = set(rec.splits["test"].tolist())
    seen = set(rec.trial_stimulus_ids.tolist())
    assert test, "the 'test' split is empty"
    assert seen - test, "the 'test' split holds every stimulus: nothing is left to train on"


def check_dataset_responses_finite(dataset: Dataset) -> None:
    rec = _first_recording(dataset)
    bad = rec.non_finite_units()
    assert not bad.size, f"responses of {bad.size} unit(s) are NaN or infinite (first: {bad[:5].tolist()})"


def check_dataset_units(dataset: Dataset) -> None:
    units = _first_recording(dataset).units
    if units.space in SURFACE_MESHES:
        assert units.hemisphere is not None and units.vertex is not None, \
            f"surface units ({units.space}) need hemisphere and vertex"
        assert set(units.hemisphere.tolist()) <= set(HEMISPHERES), f"hemispheres must be {HEMISPHERES}"
        vertex = np.asarray(units.vertex)
        assert vertex.min() >= 0 and vertex.max() < SURFACE_MESHES[units.space].vertices, \
            f"vertex indices must lie within the {units.space} mesh"
    for name, mask in units.rois.items():
        assert mask.any(), f"ROI {name!r} holds no unit"


DATASET_CHECKS: tuple[Check, ...] = (
    check_dataset_protocol, check_dataset_subjects, check_dataset_fingerprint, check_dataset_stimuli,
    check_dataset_stimuli_identity, check_dataset_modalities_share_ids, check_dataset_trials_known,
    check_dataset_test_split, check_dataset_responses_finite, check_dataset_units, check_dataset_categories,
)


def check_dataset_rdms(dataset: _RDMDataset) -> None:
    """A dataset that provides RDMs returns, for its first subject, a non-empty list of ``BrainRDMs`` of
    that subject, of known stimuli, with one RDM per ROI and session."""
    subject = dataset.subjects()[0]
    rdms = dataset.rdms(subject)
    assert isinstance(rdms, list) and rdms, f"rdms({subject!r}) must return a non-empty list of BrainRDMs"
    assert all(isinstance(r, BrainRDMs) for r in rdms), f"rdms({subject!r}) must hold BrainRDMs only"
    assert all(r.subject == subject for r in rdms), f"rdms({subject!r}) returned RDMs of another subject"
    labels = [(r.roi, r.session) for r in rdms]
    assert len(set(labels)) == len(labels), "two RDMs share ROI and session; each must have its own"
    known = set(dataset.stimuli(dataset.modalities[0]).ids)
    unknown = {s for r in rdms for s in r.stimulus_ids.tolist()} - known
    assert not unknown, f"RDMs refer to unknown stimuli, e.g. {sorted(unknown)[:3]}"


RDM_DATASET_CHECKS: tuple[Check, ...] = (
    check_dataset_protocol, check_dataset_subjects, check_dataset_fingerprint, check_dataset_stimuli,
    check_dataset_stimuli_identity, check_dataset_modalities_share_ids, check_dataset_rdms, check_dataset_categories,
)


# ---- encoders -------------------------------------------------------------------------------
def _picked_layers(encoder: Encoder) -> list[str]:
    names = [layer.name for layer in encoder.layers()]
    return sorted({names[0], names[len(names) // 2], names[-1]}, key=names.index)


def check_encoder_protocol(encoder: Any) -> None:
    assert isinstance(encoder, Encoder), f"{encoder!r} lacks parts of the Encoder protocol"
    assert encoder.modality in MODALITIES, f"modality {encoder.modality!r} is not one of {MODALITIES}"


def check_encoder_layers(encoder: Encoder) -> None:
    layers = encoder.layers()
    assert layers and all(isinstance(layer, LayerInfo) for layer in layers), "layers() must list LayerInfo"
    names = [layer.name for layer in layers]
    assert len(set(names)) == len(names), "layer names must be unique"
    depths = [layer.depth for layer in layers]
    assert all(0.0 <= d <= 1.0 for d in depths), f"relative depths must lie in 0–1, got {depths}"
    assert depths == sorted(depths), "layers() must be ordered from input to output"


def check_encoder_fingerprint(encoder: Encoder) -> None:
    fp = encoder.fingerprint()
    assert isinstance(fp, str) and fp and fp == encoder.fingerprint(), "fingerprint() must be a stable string"


def check_encoder_output(encoder: Encoder, stimuli: Sequence[Any] | None = None) -> None:
    batch = list(stimuli) if stimuli is not None else sample_stimuli(encoder.modality, 3)
    out = encoder.encode(batch, _picked_layers(encoder))
    for layer in _picked_layers(encoder):
        assert layer in out, f"encode() did not return layer {layer!r}"
        arr = np.asarray(out[layer])
        assert arr.ndim == 2 and arr.shape[0] == len(batch), f"layer {layer}: shape {arr.shape} is not (n, d)"
        assert np.isfinite(arr).all(), f"layer {layer}: non-finite features"


def check_encoder_deterministic(encoder: Encoder, stimuli: Sequence[Any] | None = None, atol: float = 1e-4,
                                rtol: float = 1e-3) -> None:
    batch = list(stimuli) if stimuli is not None else sample_stimuli(encoder.modality, 3)
    first, second = encoder.encode(batch, _picked_layers(encoder)), encoder.encode(batch, _picked_layers(encoder))
    for layer in first:
        np.testing.assert_allclose(first[layer], second[layer], atol=atol, rtol=rtol,
                                   err_msg=f"layer {layer}: encode is not deterministic")


def check_encoder_batch_invariance(encoder: Encoder, stimuli: Sequence[Any] | None = None, atol: float = 1e-4,
                                   rtol: float = 1e-3) -> None:
    batch = list(stimuli) if stimuli is not None else sample_stimuli(encoder.modality, 3)
    pick = _picked_layers(encoder)
    whole = encoder.encode(batch, pick)
    singles = [encoder.encode([item], pick) for item in batch]
    for layer in pick:
        np.testing.assert_allclose(whole[layer], np.concatenate([s[layer] for s in singles]), atol=atol, rtol=rtol,
                                   err_msg=f"layer {layer}: features depend on batch size")


ENCODER_CHECKS: tuple[Check, ...] = (
    check_encoder_protocol, check_encoder_layers, check_encoder_fingerprint, check_encoder_output,
    check_encoder_deterministic, check_encoder_batch_invariance,
)


# ---- heads ----------------------------------------------------------------------------------
def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((120, 8)).astype(np.float32)
    Y = X @ rng.standard_normal((8, 6)).astype(np.float32) + 0.1 * rng.standard_normal((120, 6)).astype(np.float32)
    return X, Y


def _fitted(head: Head) -> Head:
    from sklearn.base import clone

    X, Y = _planted()
    fitted = clone(head).fit(X[:90], Y[:90])
    assert fitted is not None, "fit() must return the fitted head (self), not None"
    return fitted


def check_head_protocol(head: Any) -> None:
    assert isinstance(head, Head), f"{head!r} lacks parts of the Head protocol"
    assert head.direction in DIRECTIONS, f"direction {head.direction!r} is not one of {DIRECTIONS}"


def check_head_clonable(head: Head) -> None:
    from sklearn.base import clone

    try:
        twin = clone(head)
    except Exception as exc:
        raise AssertionError(f"the head cannot be cloned like a scikit-learn estimator: {exc}") from None
    get_params = getattr(head, "get_params", None)  # outside the Head protocol, but clone() relies on it
    same_class = type(twin) is type(head)
    assert same_class and callable(get_params) and twin.get_params() == get_params(), \
        "the head must be clonable like a scikit-learn estimator (get_params/set_params from __init__)"


def check_head_fit_returns_self(head: Head) -> None:
    from sklearn.base import clone

    X, Y = _planted()
    fresh = clone(head)
    assert fresh.fit(X[:90], Y[:90]) is fresh, "fit() must return self"


def check_head_predict_shape(head: Head) -> None:
    X, _ = _planted()
    pred = np.asarray(_fitted(head).predict(X[90:]))
    assert pred.shape == (30, 6), f"predict returned {pred.shape}, expected (30, 6)"


def check_head_score_per_unit(head: Head) -> None:
    X, Y = _planted()
    fitted = _fitted(head)
    per_unit = np.asarray(fitted.score_per_unit(X[90:], Y[90:]))
    assert per_unit.shape == (6,), f"score_per_unit must return one value per unit, got shape {per_unit.shape}"
    assert np.all(per_unit > 0.8), f"score_per_unit on planted linear data is too low: {per_unit}"
    score = fitted.score(X[90:], Y[90:])
    assert np.ndim(score) == 0 and isinstance(float(score), float), \
        f"score must return one number (scikit-learn's model selection needs it), got {np.shape(score)}"
    assert np.isclose(float(score), float(np.mean(per_unit))), \
        f"score must be the mean of score_per_unit ({float(np.mean(per_unit)):.4f}), got {float(score):.4f}"


def check_head_score_uses_input(head: Head) -> None:
    X, Y = _planted()
    fitted = _fitted(head)
    true = np.asarray(fitted.score_per_unit(X[90:], Y[90:]), dtype=float)
    shuffled = np.asarray(fitted.score_per_unit(X[90:], Y[90:][np.random.default_rng(1).permutation(30)]),
                          dtype=float)
    assert np.nanmean(shuffled) < np.nanmean(true) - 0.3, \
        "score() must compare predictions with the Y it is given (shuffled Y scored as well as the true Y)"


def check_head_refuses_nan(head: Head) -> None:
    from sklearn.base import clone

    X, Y = _planted()
    bad = X[:90].copy()
    bad[0, 0] = np.nan
    try:
        clone(head).fit(bad, Y[:90])
    except (ValueError, WorkbenchError):
        return
    raise AssertionError("fit must refuse NaN input with a ValueError or WorkbenchError")


HEAD_CHECKS: tuple[Check, ...] = (
    check_head_protocol, check_head_clonable, check_head_fit_returns_self, check_head_predict_shape,
    check_head_score_per_unit, check_head_score_uses_input, check_head_refuses_nan,
)


# ---- metrics --------------------------------------------------------------------------------
def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 12))
    Y = X @ rng.standard_normal((12, 10)) + 0.5 * rng.standard_normal((40, 10))
    return X, Y, rng


def _labelled(metric: Any) -> Any:
    """The metric with four categories of ten stimuli bound, when it declares ``needs_categories``."""
    if getattr(metric, "needs_categories", False):
        metric.bind(categories=[f"category-{i % 4}" for i in range(40)])
    return metric


def check_metric_scope(metric: Any) -> None:
    """A metric is a comparison of two representations or, with ``scope = "property"``, a property of one whose
    ``measure(X)`` gives named finite numbers (``compare`` then says how far two representations' values are)."""
    scope = getattr(metric, "scope", "comparison")
    assert scope in ("comparison", "property"), f"scope {scope!r} is not 'comparison' or 'property'"
    if scope == "property":
        assert metric.kind == "distance", "a property metric compares two representations' values as a distance"
        X, _, _ = _pair()
        values = _labelled(metric).measure(X)
        assert isinstance(values, dict) and values, "measure(X) must return a dict of named values"
        assert all(np.isfinite(float(v)) for v in values.values()), "measure(X) values must be finite"
        assert getattr(metric, "primary", None) in values, "a property metric names its primary value (primary)"


def check_metric_protocol(metric: Any) -> None:
    assert isinstance(metric, Metric), f"{metric!r} lacks parts of the Metric protocol"
    assert metric.kind in METRIC_KINDS, f"kind {metric.kind!r} is not one of {METRIC_KINDS}"
    unknown = set(metric.invariances) - set(INVARIANCES)
    assert not unknown, f"unknown invariances {unknown}; known: {INVARIANCES}"


def check_metric_deterministic(metric: Metric) -> None:
    metric = _labelled(metric)
    X, Y, _ = _pair()
    base = float(metric.compare(X, Y))
    assert np.isfinite(base), "compare must return a finite float"
    assert base == float(metric.compare(X, Y)), "compare must be deterministic"


def check_metric_invariances(metric: Metric) -> None:
    metric = _labelled(metric)
    X, Y, rng = _pair()
    base = float(metric.compare(X, Y))
    transforms = {
        "permutation": lambda A: A[:, rng.permutation(A.shape[1])],
        "isotropic_scaling": lambda A: 3.7 * A,
        "orthogonal": lambda A: A @ np.linalg.qr(rng.standard_normal((A.shape[1], A.shape[1])))[0],
        "translation": lambda A: A + rng.standard_normal(A.shape[1]),
        "invertible_linear": lambda A: A @ (np.eye(A.shape[1]) + 0.3 * rng.standard_normal((A.shape[1], A.shape[1]))),
    }
    for name in metric.invariances:
        moved = float(metric.compare(X, transforms[name](Y)))
        assert np.isclose(base, moved, rtol=1e-5, atol=1e-6), f"metric claims {name} invariance: {base} vs {moved}"


def check_metric_direction(metric: Metric) -> None:
    metric = _labelled(metric)
    X, _, rng = _pair()
    self_score = float(metric.compare(X, X))
    other = float(metric.compare(X, rng.standard_normal(X.shape)))
    if metric.kind == "similarity":
        assert self_score > other, "a representation must be more similar to itself than to noise"
    else:
        assert self_score < other, "a representation must be closer to itself than to noise"


METRIC_CHECKS: tuple[Check, ...] = (
    check_metric_protocol, check_metric_deterministic, check_metric_invariances, check_metric_direction,
    check_metric_scope,
)


def sample_images(n: int = 4, size: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth, varied uint8 RGB images (n, size, size, 3): colour gradients with a bright disc each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, (3, 3))
        img = 0.5 + 0.35 * np.tanh(a * xx[..., None] + b * yy[..., None] + c)
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.25)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.uniform(0, 1, 3)
        out[i] = np.clip(np.rint(img * 255), 0, 255)
    return out


# ---- codecs ---------------------------------------------------------------------------------
def _codec_images(images: np.ndarray | None) -> np.ndarray:
    return sample_images(3, 40) if images is None else images


def check_codec_protocol(codec: Any) -> None:
    assert isinstance(codec, Codec), f"{codec!r} lacks parts of the Codec protocol"
    assert isinstance(codec.name, str) and codec.name, "a codec needs a name"
    side = codec.image_size
    assert isinstance(side, (int, np.integer)) and side > 0, f"image_size must be a positive int, got {side!r}"


def check_codec_latent_dim(codec: Codec) -> None:
    dim = codec.latent_dim
    assert isinstance(dim, (int, np.integer)) and dim > 0, f"latent_dim must be a positive int, got {dim!r}"


def check_codec_fingerprint(codec: Codec) -> None:
    fp = codec.fingerprint()
    assert isinstance(fp, str) and fp and fp == codec.fingerprint(), "fingerprint() must be a stable string"


def check_codec_encode(codec: Codec, images: np.ndarray | None = None) -> None:
    images = _codec_images(images)
    z = codec.encode(images)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32, \
        f"encode must return float32, got {type(z).__name__} {getattr(z, 'dtype', '')}"
    assert z.shape == (len(images), codec.latent_dim), \
        f"encode returned {z.shape}, expected ({len(images)}, {codec.latent_dim})"
    assert np.isfinite(z).all(), "encode returned NaN or infinite latents"


def check_codec_deterministic(codec: Codec, images: np.ndarray | None = None, atol: float = 1e-4) -> None:
    images = _codec_images(images)
    np.testing.assert_allclose(codec.encode(images), codec.encode(images), atol=atol,
                               err_msg="encode must be deterministic")


def check_codec_batch_invariance(codec: Codec, images: np.ndarray | None = None, atol: float = 1e-4) -> None:
    images = _codec_images(images)
    np.testing.assert_allclose(codec.encode(images[1:2]), codec.encode(images)[1:2], atol=atol, rtol=1e-3,
                               err_msg="a latent must not depend on the other images of the batch")


def check_codec_decode(codec: Codec, images: np.ndarray | None = None) -> None:
    images = _codec_images(images)
    out = codec.decode(codec.encode(images))
    side = codec.image_size
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8, "decode must return uint8 images"
    assert out.shape == (len(images), side, side, 3), \
        f"decode returned {out.shape}, expected ({len(images)}, {side}, {side}, 3)"


def check_codec_refuses_bad_images(codec: Codec, images: np.ndarray | None = None) -> None:
    images = _codec_images(images)
    for bad in (images.astype(np.float32), images[0]):
        try:
            codec.encode(bad)
        except WorkbenchError:
            continue
        raise AssertionError(f"encode must refuse {bad.dtype} {bad.shape} input with a WorkbenchError")


def check_codec_refuses_bad_latents(codec: Codec) -> None:
    try:
        codec.decode(np.zeros((2, codec.latent_dim - 1), np.float32))
    except WorkbenchError:
        return
    raise AssertionError("decode must refuse latents of the wrong width with a WorkbenchError")


CODEC_CHECKS: tuple[Check, ...] = (
    check_codec_protocol, check_codec_latent_dim, check_codec_fingerprint, check_codec_encode,
    check_codec_deterministic, check_codec_batch_invariance, check_codec_decode, check_codec_refuses_bad_images,
    check_codec_refuses_bad_latents,
)


# ---- image metrics --------------------------------------------------------------------------
def _image_pairs(images: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Targets and noisy half-size reconstructions of them (a metric must take unequal sizes)."""
    targets = sample_images(4, 48) if images is None else images
    noise = np.random.default_rng(1).integers(-30, 31, targets.shape)
    noisy = np.clip(targets.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return noisy[:, ::2, ::2], targets


def check_image_metric_protocol(metric: Any) -> None:
    assert isinstance(metric, ImageMetric), f"{metric!r} lacks parts of the ImageMetric protocol"
    assert metric.kind in METRIC_KINDS, f"kind {metric.kind!r} is not one of {METRIC_KINDS}"


def check_image_metric_one_value_per_pair(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    recons, targets = _image_pairs(images)
    values = np.asarray(metric.score(recons, targets))
    assert values.shape == (len(targets),), f"score must return one value per image pair, got shape {values.shape}"
    assert np.isfinite(values).all(), f"score returned non-finite values {values}"


def check_image_metric_row_order(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    recons, targets = _image_pairs(images)
    values = np.asarray(metric.score(recons, targets))
    order = np.random.default_rng(2).permutation(len(targets))
    np.testing.assert_allclose(np.asarray(metric.score(recons[order], targets[order])), values[order], atol=1e-6,
                               err_msg="scores must follow the pairs when rows are reordered")


def check_image_metric_identity(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    _, targets = _image_pairs(images)
    same = np.asarray(metric.score(targets, targets)).mean()
    swapped = np.asarray(metric.score(np.roll(targets, 1, axis=0), targets)).mean()
    if metric.kind == "similarity":
        assert same > swapped, f"identical pairs must score higher than mismatched ones ({same} vs {swapped})"
    else:
        assert same < swapped, f"identical pairs must be closer than mismatched ones ({same} vs {swapped})"


def check_image_metric_refuses_unequal(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    _, targets = _image_pairs(images)
    try:
        metric.score(targets[:-1], targets)
    except WorkbenchError:
        return
    raise AssertionError("score must refuse unequal numbers of reconstructions and targets with a WorkbenchError")


IMAGE_METRIC_CHECKS: tuple[Check, ...] = (
    check_image_metric_protocol, check_image_metric_one_value_per_pair, check_image_metric_row_order,
    check_image_metric_identity, check_image_metric_refuses_unequal,
)


# ---- generators -----------------------------------------------------------------------------
# A generator runs a pipeline from local files that tests rarely have. Each check accepts either the
# working behaviour or, where the files are missing, a WorkbenchError that names the generator and says
# where its files go (``path``/folder), never a crash deep inside a library.
def _refusal(generator: Any, exc: WorkbenchError) -> None:
    message = str(exc)
    assert generator.name in message, f"the refusal must name the generator {generator.name!r}: {message}"
    assert any(word in message.lower() for word in ("path", "folder", "file")), \
        f"the refusal must say which local files are missing and where they go: {message}"


def check_generator_protocol(generator: Any) -> None:
    missing = [a for a in ("generate", "fingerprint") if not callable(getattr(generator, a, None))]
    assert not missing, f"{generator!r} lacks {', '.join(missing)} of the Generator protocol"
    assert isinstance(generator.name, str) and generator.name, "a generator needs a name"
    assert isinstance(generator.embedding_space, str) and generator.embedding_space, \
        "embedding_space must name the encoder whose embeddings the generator takes"
    assert hasattr(type(generator), "embedding_dim") or "embedding_dim" in vars(generator), \
        "a generator must declare embedding_dim"


def check_generator_options(generator: Generator) -> None:
    schema = option_schema(type(generator))
    assert schema is not None, ("a generator declares its options as keyword parameters of __init__ (or a "
                                "__signature__), not **kwargs, so they can be listed and validated")
    undocumented = sorted(name for name, option in schema.items() if not option.help)
    assert not undocumented, f"options without help text (Annotated[type, Option('help')]): {undocumented}"


def check_generator_fingerprint(generator: Generator) -> None:
    try:
        fp = generator.fingerprint()
    except WorkbenchError as exc:
        _refusal(generator, exc)
        return
    assert isinstance(fp, str) and fp and fp == generator.fingerprint(), "fingerprint() must be a stable string"


def check_generator_embedding_dim(generator: Generator) -> None:
    try:
        dim = generator.embedding_dim
    except WorkbenchError as exc:
        _refusal(generator, exc)
        return
    assert isinstance(dim, (int, np.integer)) and dim > 0, f"embedding_dim must be a positive int, got {dim!r}"


def check_generator_generate(generator: Generator) -> None:
    try:
        dim = generator.embedding_dim
    except WorkbenchError:
        dim = 8
    embeds = np.random.default_rng(0).standard_normal((2, dim)).astype(np.float32)
    try:
        images = generator.generate(embeds, seed=0)
    except WorkbenchError as exc:
        _refusal(generator, exc)
        return
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8, "generate must return uint8 images"
    assert images.ndim == 4 and images.shape[0] == 2 and images.shape[-1] == 3, \
        f"generate returned {images.shape}, expected (2, H, W, 3)"


GENERATOR_CHECKS: tuple[Check, ...] = (
    check_generator_protocol, check_generator_options, check_generator_fingerprint, check_generator_embedding_dim,
    check_generator_generate,
)
KIND_CHECKS: dict[str, tuple[Check, ...]] = {
    "dataset": DATASET_CHECKS, "encoder": ENCODER_CHECKS, "head": HEAD_CHECKS, "metric": METRIC_CHECKS,
    "codec": CODEC_CHECKS, "image-metric": IMAGE_METRIC_CHECKS, "generator": GENERATOR_CHECKS,
}
"""The named checks of each plugin kind (a dataset providing RDMs gets ``RDM_DATASET_CHECKS``)."""


# ---- running checks -------------------------------------------------------------------------
ExpectedFailures = Mapping[str, str] | Callable[[Any], Mapping[str, str]]
"""Check name → reason a plugin is known to fail it, or a function of the plugin giving that mapping."""


def checks_for(plugin: Any) -> tuple[Check, ...]:
    """The named checks that apply to ``plugin``, chosen by the protocol it claims to follow."""
    if hasattr(plugin, "recording") and hasattr(plugin, "subjects"):
        return RDM_DATASET_CHECKS if getattr(plugin, "provides", "responses") == "rdms" else DATASET_CHECKS
    if callable(getattr(plugin, "generate", None)):
        return GENERATOR_CHECKS
    if hasattr(plugin, "encode") and hasattr(plugin, "layers"):
        return ENCODER_CHECKS
    if hasattr(plugin, "encode") and hasattr(plugin, "decode"):
        return CODEC_CHECKS
    if hasattr(plugin, "fit") and hasattr(plugin, "predict"):
        return HEAD_CHECKS
    if hasattr(plugin, "compare"):
        return METRIC_CHECKS
    if hasattr(plugin, "score"):
        return IMAGE_METRIC_CHECKS
    raise TypeError(f"{plugin!r} is not a dataset, encoder, head, metric, codec, image metric or generator")


def _run(plugin: Any, checks: Sequence[Check], **inputs: Any) -> None:
    for check in checks:
        wanted = {k: v for k, v in inputs.items() if v is not None and k in inspect.signature(check).parameters}
        check(plugin, **wanted)


def check_dataset(dataset: Dataset, subjects: Sequence[str] | None = None) -> None:
    """Every dataset check (``subjects`` are also loaded and validated when given)."""
    if _provides_rdms(dataset):
        _run(dataset, RDM_DATASET_CHECKS)
        for s in subjects or ():
            assert all(r.subject == s for r in dataset.rdms(s)), f"rdms({s!r}) is wrong"
        return
    _run(dataset, DATASET_CHECKS)
    for s in subjects or ():
        rec = dataset.recording(s)
        assert isinstance(rec, Recording) and rec.subject == s, f"recording({s!r}) is wrong"
        bad = rec.non_finite_units()
        assert not bad.size, f"subject {s}: responses of {bad.size} unit(s) are NaN or infinite"


def check_encoder(encoder: Encoder, stimuli: Sequence[Any] | None = None) -> None:
    """Every encoder check (``stimuli`` replace the sample batch where a check encodes)."""
    _run(encoder, ENCODER_CHECKS, stimuli=stimuli)


def check_head(head: Head) -> None:
    """Every head check."""
    _run(head, HEAD_CHECKS)


def check_metric(metric: Metric) -> None:
    """Every metric check."""
    _run(metric, METRIC_CHECKS)


def check_codec(codec: Codec, images: np.ndarray | None = None, atol: float = 1e-4) -> None:
    """Every codec check: encode → float32 (n, latent_dim), deterministic, batch-invariant; decode → uint8."""
    _run(codec, CODEC_CHECKS, images=images, atol=atol)


def check_image_metric(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    """Every image-metric check: one finite value per pair, row-order equivariant, identity scores best."""
    _run(metric, IMAGE_METRIC_CHECKS, images=images)


def check_generator(generator: Generator) -> None:
    """Every generator check (without its local files, each must be refused with a sentence naming them)."""
    _run(generator, GENERATOR_CHECKS)


def _plugin_id(plugin: Any) -> str:
    return getattr(plugin, "name", None) or type(plugin).__name__


def iter_checks(plugins: Sequence[Any]) -> Iterator[tuple[Any, Check]]:
    """``(plugin, check)`` pairs for every plugin and every check of its kind."""
    for plugin in plugins:
        for check in checks_for(plugin):
            yield plugin, check


def expected_failures(plugin: Any, expected_failed_checks: ExpectedFailures | None) -> dict[str, str]:
    """The checks ``plugin`` is declared to fail, with reasons; a name that is not one of its checks is refused."""
    if expected_failed_checks is None:
        return {}
    declared = dict(expected_failed_checks(plugin) if callable(expected_failed_checks) else expected_failed_checks)
    known = {check.__name__ for check in checks_for(plugin)}
    unknown = sorted(set(declared) - known)
    if unknown:
        raise WorkbenchError(f"expected_failed_checks of {_plugin_id(plugin)} names {unknown[0]!r}, which is not one "
                             f"of its checks ({', '.join(sorted(known))})")
    return declared


def parametrize_with_checks(plugins: Sequence[Any], expected_failed_checks: ExpectedFailures | None = None,
                            ids: Sequence[str] | None = None) -> Any:
    """A pytest decorator with one test per plugin × check, ids ``<plugin>-<check>``.

    ``expected_failed_checks`` (check name → reason, or a function of the plugin returning that) marks
    those tests ``xfail`` with the reason, as scikit-learn's ``parametrize_with_checks`` does.
    """
    import pytest

    params = []
    labels = list(ids) if ids is not None else [_plugin_id(p) for p in plugins]
    for plugin, label in zip(plugins, labels, strict=True):
        expected = expected_failures(plugin, expected_failed_checks)
        for check in checks_for(plugin):
            reason = expected.get(check.__name__)
            marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
            params.append(pytest.param(plugin, check, marks=marks, id=f"{label}-{check.__name__.removeprefix('check_')}"))
    return pytest.mark.parametrize("plugin, check", params)
