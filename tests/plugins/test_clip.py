"""The clip encoder on random weights: conformance, agreement with open_clip, options, caching.

The tests use the narrower ViT-S-32 to stay fast (benchmarks/extract.py runs the default ViT-B-32).
Each comparison with open_clip goes through open_clip's own ``forward_intermediates`` on the same
weights, an independent code path from the encoder's forward hooks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder, sample_stimuli
from brain_workbench.store.features import extract_features, load_features
from brain_workbench.types import StimulusSet, WorkbenchError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MODEL = "ViT-S-32"
TEXTS = ["a red square", "two blue circles on a long striped table", "dark"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def image_encoder():
    return wb.encoder("clip", model=MODEL)


@pytest.fixture(scope="module")
def text_encoder():
    return wb.encoder("clip", model=MODEL, tower="text", token="mean")


def test_registration_imports_no_torch() -> None:
    code = ("import sys, brain_workbench_plugins.clip as m; import brain_workbench.plugin.registry; "
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_card_and_cheap_layers() -> None:
    entry = wb.get_registry().get("encoder", "clip")
    assert entry.options()["model"].default == "ViT-B-32"
    enc = wb.encoder("clip")
    names = [layer.name for layer in enc.layers()]
    assert names == [f"block{i}" for i in range(12)] + ["embedding"]
    assert not enc._loaded, "listing layers must not build the model"


def test_conformance(image_encoder, text_encoder) -> None:
    check_encoder(image_encoder)
    assert text_encoder.modality == "text"
    check_encoder(text_encoder)


def test_image_features_match_open_clip(image_encoder) -> None:
    import torch

    images = sample_stimuli("image", 3)
    x = torch.stack([image_encoder.preprocess(im.convert("RGB")) for im in images])
    with torch.no_grad():
        ref = image_encoder.module.forward_intermediates(x, output_fmt="NLC", output_extra_tokens=True)
    out = image_encoder.encode(images, ["block0", "block7", "embedding"])
    np.testing.assert_allclose(out["embedding"], ref["image_features"].numpy(), atol=1e-5)
    for i in (0, 7):
        np.testing.assert_allclose(out[f"block{i}"], ref["image_intermediates_prefix"][i][:, 0].numpy(), atol=1e-5)

    mean = wb.encoder("clip", model=MODEL, token="mean")
    np.testing.assert_allclose(mean.encode(images, ["block7"])["block7"],
                               ref["image_intermediates"][7].mean(1).numpy(), atol=1e-5)
    assert mean.fingerprint() != image_encoder.fingerprint()
    assert mean.weights_digest == image_encoder.weights_digest, "random weights must be the same in every build"
    np.testing.assert_array_equal(mean.encode(images, ["embedding"])["embedding"], out["embedding"])


def test_text_features_match_open_clip(text_encoder) -> None:
    import open_clip
    import torch

    tokens = open_clip.get_tokenizer(MODEL)(TEXTS)
    with torch.no_grad():
        ref = text_encoder.module.forward_intermediates(text=tokens, text_output_fmt="NLC", normalize=False)
    out = text_encoder.encode(TEXTS, ["block3", "embedding"])
    np.testing.assert_allclose(out["embedding"], ref["text_features"].numpy(), atol=1e-5)
    eot = tokens.argmax(-1)
    hidden = ref["text_intermediates"][3]
    manual = np.stack([hidden[i, : eot[i] + 1].mean(0).numpy() for i in range(len(TEXTS))])
    np.testing.assert_allclose(out["block3"], manual, atol=1e-5)

    cls = wb.encoder("clip", model=MODEL, tower="text", token="cls")
    np.testing.assert_allclose(cls.encode(TEXTS, ["block3"])["block3"], hidden[torch.arange(len(TEXTS)), eot].numpy(),
                               atol=1e-5)
    assert cls.fingerprint() != text_encoder.fingerprint()


def test_local_checkpoint(tmp_path: Path, image_encoder) -> None:
    import open_clip
    import torch

    from brain_workbench.numerics.nn import seeded

    with seeded(123):
        model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    enc = wb.encoder("clip", model=MODEL, pretrained=str(path))
    assert enc.fingerprint() != image_encoder.fingerprint()
    images = sample_stimuli("image", 2)
    with torch.no_grad():
        ref = model.eval().encode_image(torch.stack([preprocess(im.convert("RGB")) for im in images]))
    np.testing.assert_allclose(enc.encode(images, ["embedding"])["embedding"], ref.numpy(), atol=1e-5)


def test_uncached_pretrained_tag_is_refused_without_download() -> None:
    enc = wb.encoder("clip", pretrained="openai")
    with pytest.raises(WorkbenchError, match="local cache"):
        enc.fingerprint()


@pytest.mark.parametrize("options, match", [
    ({"tower": "audio"}, "tower"),
    ({"token": "max"}, "token"),
    ({"precision": "fp8"}, "precision"),
    ({"colour": "red"}, "no option"),
])
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(WorkbenchError, match=match):
        wb.encoder("clip", **options)


def test_unknown_layer(image_encoder) -> None:
    with pytest.raises(WorkbenchError, match="no layer"):
        image_encoder.encode(sample_stimuli("image", 1), ["block99"])


def test_extract_into_store(tmp_store, image_encoder) -> None:
    images = {f"img{i}": im for i, im in enumerate(sample_stimuli("image", 5))}
    stim = StimulusSet(tuple(images), "image", lambda ids: [images[i] for i in ids])
    paths = extract_features(tmp_store, image_encoder, stim, layers=[0.5, "embedding"], batch_size=2)
    assert set(paths) == {"block6", "embedding"}
    data = load_features(tmp_store, paths["embedding"])
    assert data.shape == (5, 384)
    np.testing.assert_allclose(data[:2], image_encoder.encode([images["img0"], images["img1"]], ["embedding"])["embedding"],
                               atol=1e-5)


def test_unknown_model_is_refused_at_construction_with_the_closest_name():
    """``wb.encoder("clip", model="ViT-B-99")`` fails at once, not after a recording is built (issue 23, item 5)."""
    with pytest.raises(WorkbenchError, match=r"unknown open_clip model 'ViT-B-99' \(did you mean 'ViT-B-32'\?\)"):
        wb.encoder("clip", model="ViT-B-99")
    assert wb.encoder("clip", model="ViT-B-32").model_name == "ViT-B-32"
