"""Conformance checks every plugin of a kind must pass, in the spirit of scikit-learn's check_estimator.

Call them from pytest in a plugin's own test-suite::

    from workbench.testing import check_encoder
    def test_my_encoder():
        check_encoder(MyEncoder())

Each check raises ``AssertionError`` with a message naming the broken rule.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from workbench.types import (
    Codec,
    Dataset,
    Encoder,
    Head,
    ImageMetric,
    LayerInfo,
    Metric,
    Recording,
    StimulusSet,
    WorkbenchError,
)

INVARIANCES = ("permutation", "isotropic_scaling", "orthogonal", "translation", "invertible_linear")


def sample_stimuli(modality: str, n: int = 4, seed: int = 0) -> list:
    """Small, varied stimuli of a modality for checks that need real input."""
    rng = np.random.default_rng(seed)
    if modality == "text":
        words = ["a red square", "two blue circles", "a striped cat on a mat", "an empty room",
                 "a green triangle above a wave", "dark noise", "a bright yellow star", "the ocean at night"]
        return [words[i % len(words)] + (f" number {i}" if i >= len(words) else "") for i in range(n)]
    from PIL import Image

    return [Image.fromarray(rng.integers(0, 255, size=(64 + 8 * i, 80, 3), dtype=np.uint8)) for i in range(n)]


def check_encoder(encoder: Encoder, stimuli: Sequence[Any] | None = None, atol: float = 1e-4, rtol: float = 1e-3) -> None:
    """Layers listed with depths, 2-D finite output per layer, determinism and batch-size invariance."""
    assert isinstance(encoder, Encoder), f"{encoder!r} lacks parts of the Encoder protocol"
    assert encoder.modality in ("image", "text"), f"modality {encoder.modality!r} is not image or text"
    layers = encoder.layers()
    assert layers and all(isinstance(layer, LayerInfo) for layer in layers), "layers() must list LayerInfo"
    names = [layer.name for layer in layers]
    assert len(set(names)) == len(names), "layer names must be unique"
    depths = [layer.depth for layer in layers]
    assert all(0.0 <= d <= 1.0 for d in depths), f"relative depths must lie in 0–1, got {depths}"
    assert depths == sorted(depths), "layers() must be ordered from input to output"
    fp = encoder.fingerprint()
    assert isinstance(fp, str) and fp and fp == encoder.fingerprint(), "fingerprint must be a stable string"
    batch = list(stimuli) if stimuli is not None else sample_stimuli(encoder.modality, 3)
    pick = sorted({names[0], names[len(names) // 2], names[-1]}, key=names.index)
    first = encoder.encode(batch, pick)
    second = encoder.encode(batch, pick)
    singles = [encoder.encode([item], pick) for item in batch]
    for layer in pick:
        out = np.asarray(first[layer])
        assert out.ndim == 2 and out.shape[0] == len(batch), f"layer {layer}: shape {out.shape} is not (n, d)"
        assert np.isfinite(out).all(), f"layer {layer}: non-finite features"
        np.testing.assert_allclose(out, second[layer], atol=atol, rtol=rtol,
                                   err_msg=f"layer {layer}: encode is not deterministic")
        stacked = np.concatenate([s[layer] for s in singles])
        np.testing.assert_allclose(out, stacked, atol=atol, rtol=rtol,
                                   err_msg=f"layer {layer}: features depend on batch size")


def check_dataset(dataset: Dataset, subjects: Sequence[str] | None = None) -> None:
    """Subjects, stimuli and recordings line up: ids, splits, units, noise ceilings, no NaN."""
    assert isinstance(dataset, Dataset), f"{dataset!r} lacks parts of the Dataset protocol"
    all_subjects = dataset.subjects()
    assert all_subjects and all(isinstance(s, str) for s in all_subjects), "subjects() must list strings"
    fp = dataset.fingerprint()
    assert isinstance(fp, str) and fp == dataset.fingerprint(), "fingerprint must be a stable string"
    stimulus_sets = {}
    for modality in dataset.modalities:
        stim = dataset.stimuli(modality)
        assert isinstance(stim, StimulusSet) and stim.modality == modality, f"stimuli({modality!r}) is wrong"
        assert len(stim) > 0
        loaded = stim.get(stim.ids[:2])
        assert len(loaded) == min(2, len(stim)), "StimulusSet.get must return one item per id"
        stimulus_sets[modality] = stim
    known = set(next(iter(stimulus_sets.values())).ids)
    for s in subjects or all_subjects[:1]:
        rec = dataset.recording(s)
        assert isinstance(rec, Recording), "recording() must return a Recording"
        assert rec.subject == s
        assert not np.isnan(rec.responses).any(), f"subject {s}: responses contain NaN"
        unknown = set(rec.trial_stimulus_ids) - known
        assert not unknown, f"subject {s}: trials refer to unknown stimuli, e.g. {sorted(unknown)[:3]}"
        for name, ids in rec.splits.items():
            assert set(ids) <= known, f"split {name!r} names unknown stimuli"
        if rec.noise_ceiling is not None:
            nc = np.asarray(rec.noise_ceiling)
            assert nc.shape[0] == rec.n_units, "noise ceiling needs one value per unit"
            assert np.nanmin(nc) >= 0 and np.nanmax(nc) <= 1 + 1e-6, "noise ceiling is a fraction of variance in 0–1"


def check_head(head: Head, seed: int = 0) -> None:
    """fit/predict/score on planted linear data; per-unit scores; clonable like a scikit-learn estimator."""
    from sklearn.base import clone

    assert isinstance(head, Head), f"{head!r} lacks parts of the Head protocol"
    assert head.direction in ("encode", "decode"), f"direction {head.direction!r} is not encode or decode"
    rng = np.random.default_rng(seed)
    n, p, t = 120, 8, 6
    X = rng.standard_normal((n, p)).astype(np.float32)
    W = rng.standard_normal((p, t)).astype(np.float32)
    Y = X @ W + 0.1 * rng.standard_normal((n, t)).astype(np.float32)
    fitted = clone(head).fit(X[:90], Y[:90])
    pred = np.asarray(fitted.predict(X[90:]))
    assert pred.shape == (30, t), f"predict returned {pred.shape}, expected (30, {t})"
    scores = np.asarray(fitted.score(X[90:], Y[90:]))
    assert scores.shape == (t,), f"score must return one value per unit, got shape {scores.shape}"
    assert np.all(scores > 0.8), f"score on planted linear data is too low: {scores}"
    bad = X[:90].copy()
    bad[0, 0] = np.nan
    try:
        clone(head).fit(bad, Y[:90])
    except (ValueError, WorkbenchError):
        pass
    else:
        raise AssertionError("fit must refuse NaN input with a ValueError or WorkbenchError")


def check_metric(metric: Metric, seed: int = 0) -> None:
    """A finite, deterministic float that honours every invariance the metric declares."""
    assert isinstance(metric, Metric), f"{metric!r} lacks parts of the Metric protocol"
    assert metric.kind in ("similarity", "distance"), f"kind {metric.kind!r} is not similarity or distance"
    unknown = set(metric.invariances) - set(INVARIANCES)
    assert not unknown, f"unknown invariances {unknown}; known: {INVARIANCES}"
    rng = np.random.default_rng(seed)
    n, p = 40, 12
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, 10)) + 0.5 * rng.standard_normal((n, 10))
    base = float(metric.compare(X, Y))
    assert np.isfinite(base), "compare must return a finite float"
    assert base == float(metric.compare(X, Y)), "compare must be deterministic"
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
    self_score = float(metric.compare(X, X))
    other = float(metric.compare(X, rng.standard_normal((n, p))))
    if metric.kind == "similarity":
        assert self_score > other, "a representation must be more similar to itself than to noise"
    else:
        assert self_score < other, "a representation must be closer to itself than to noise"


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


def check_codec(codec: Codec, images: np.ndarray | None = None, atol: float = 1e-4) -> None:
    """encode → float32 (n, latent_dim), deterministic and batch-invariant; decode → uint8 (n, S, S, 3)."""
    assert isinstance(codec, Codec), f"{codec!r} lacks parts of the Codec protocol"
    images = sample_images(3, 40) if images is None else images
    dim = codec.latent_dim
    assert isinstance(dim, (int, np.integer)) and dim > 0, f"latent_dim must be a positive int, got {dim!r}"
    fp = codec.fingerprint()
    assert isinstance(fp, str) and fp and fp == codec.fingerprint(), "fingerprint must be a stable string"
    z = codec.encode(images)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32, f"encode must return float32, got {type(z)} {getattr(z, 'dtype', '')}"
    assert z.shape == (len(images), dim), f"encode returned {z.shape}, expected ({len(images)}, {dim})"
    assert np.isfinite(z).all(), "encode returned NaN or infinite latents"
    np.testing.assert_allclose(codec.encode(images), z, atol=atol, err_msg="encode must be deterministic")
    np.testing.assert_allclose(codec.encode(images[1:2]), z[1:2], atol=atol, rtol=1e-3,
                               err_msg="a latent must not depend on the other images of the batch")
    out = codec.decode(z)
    side = codec.image_size
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8, "decode must return uint8 images"
    assert out.shape == (len(images), side, side, 3), f"decode returned {out.shape}, expected ({len(images)}, {side}, {side}, 3)"
    for bad in (images.astype(np.float32), images[0]):
        try:
            codec.encode(bad)
        except WorkbenchError:
            pass
        else:
            raise AssertionError(f"encode must refuse {bad.dtype} {bad.shape} input with a WorkbenchError")
    try:
        codec.decode(z[:, :-1])
    except WorkbenchError:
        pass
    else:
        raise AssertionError("decode must refuse latents of the wrong width with a WorkbenchError")


def check_image_metric(metric: ImageMetric, images: np.ndarray | None = None) -> None:
    """One finite value per pair, row-order equivariant, identical pairs better than mismatched ones."""
    assert isinstance(metric, ImageMetric), f"{metric!r} lacks parts of the ImageMetric protocol"
    assert metric.kind in ("similarity", "distance"), f"kind {metric.kind!r} is not similarity or distance"
    targets = sample_images(4, 48) if images is None else images
    n = len(targets)
    rng = np.random.default_rng(1)
    noisy = np.clip(targets.astype(np.int16) + rng.integers(-30, 31, targets.shape), 0, 255).astype(np.uint8)
    small = noisy[:, ::2, ::2]
    values = np.asarray(metric.score(small, targets))
    assert values.shape == (n,), f"score must return one value per image pair, got shape {values.shape}"
    assert np.isfinite(values).all(), f"score returned non-finite values {values}"
    order = rng.permutation(n)
    np.testing.assert_allclose(np.asarray(metric.score(small[order], targets[order])), values[order], atol=1e-6,
                               err_msg="scores must follow the pairs when rows are reordered")
    same = np.asarray(metric.score(targets, targets)).mean()
    swapped = np.asarray(metric.score(np.roll(targets, 1, axis=0), targets)).mean()
    if metric.kind == "similarity":
        assert same > swapped, f"identical pairs must score higher than mismatched ones ({same} vs {swapped})"
    else:
        assert same < swapped, f"identical pairs must be closer than mismatched ones ({same} vs {swapped})"
    try:
        metric.score(targets[:-1], targets)
    except WorkbenchError:
        pass
    else:
        raise AssertionError("score must refuse unequal numbers of reconstructions and targets with a WorkbenchError")
