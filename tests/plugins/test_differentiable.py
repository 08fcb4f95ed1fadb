"""Differentiable encoder paths: float images in [0, 1] through the tensor form of ``encode``'s preprocessing
equal ``encode`` on the same pixels, carry gradients to the image, and encoders without one are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import brain_workbench as wb
from brain_workbench.sdk import differentiable_path
from brain_workbench.types import WorkbenchError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pictures(size: int, n: int = 2, seed: int = 0) -> tuple[list, torch.Tensor]:
    """Smooth random RGB pictures as PIL images and as the float tensor of the same pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 8, 8, 3)).astype(np.uint8)
    images = [Image.fromarray(c).resize((size, size), Image.Resampling.BILINEAR) for c in coarse]
    tensor = torch.stack([torch.from_numpy(np.asarray(im)).permute(2, 0, 1) for im in images]).float() / 255
    return images, tensor


def assert_path_equals_encode(encoder, layer: str, size: int) -> None:
    images, tensor = pictures(size)
    expected = encoder.encode(images, [layer])[layer]
    module = differentiable_path(encoder, layer)
    tensor.requires_grad_(True)
    got = module(tensor)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    got.sum().backward()
    assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0


@pytest.fixture(scope="module")
def efficientnet():
    return wb.encoder("efficientnet", device="cpu")


@pytest.mark.parametrize("layer", ["stem", "logits"])
def test_efficientnet_path_equals_encode(efficientnet, layer: str) -> None:
    assert_path_equals_encode(efficientnet, layer, 256)


def test_clip_image_tower_path_equals_encode() -> None:
    clip = wb.encoder("clip", model="ViT-S-32", device="cpu")
    for layer in ("block2", "embedding"):
        assert_path_equals_encode(clip, layer, 224)


def test_sae_over_an_image_encoder_path_equals_encode() -> None:
    sae = wb.encoder("sae", base="efficientnet", base_options={"device": "cpu"}, layer="stage3", d_sae=64, k=8,
                     device="cpu")
    assert_path_equals_encode(sae, "reconstruction", 256)
    assert_path_equals_encode(sae, "latents", 256)


def test_resized_inputs_stay_close_to_encode(efficientnet) -> None:
    images, tensor = pictures(300)
    expected = efficientnet.encode(images, ["pooled"])["pooled"]
    got = differentiable_path(efficientnet, "pooled")(tensor).detach().numpy()
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99


def test_encoders_without_a_path_are_refused_in_one_sentence(efficientnet) -> None:
    class Plain:
        name, modality = "plain", "image"

    with pytest.raises(WorkbenchError, match="has no differentiable path"):
        differentiable_path(Plain(), "x")
    with pytest.raises(WorkbenchError, match="text tower has no differentiable"):
        wb.encoder("clip", model="ViT-S-32", tower="text").differentiable("block0")
    with pytest.raises(WorkbenchError, match="has no layer"):
        differentiable_path(efficientnet, "stage9")
    with pytest.raises(WorkbenchError, match=r"\(B, 3, H, W\)"):
        differentiable_path(efficientnet, "stem")(torch.zeros(2, 64, 64))
