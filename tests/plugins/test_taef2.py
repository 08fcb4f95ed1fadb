"""The taef2 and pixels codecs: strict loading of the shipped TAEF2 weights, round trips on real photos,
one-sentence refusals of bad weight files, and the trivial pixel codec."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.plugin.testing import check_codec, sample_images
from brain_workbench.store.images import resize_images, to_uint8
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.taef2 import model
from brain_workbench_plugins.taef2.codec import WEIGHTS_DIR

SIZE = 128  # tests run the network at 128 px (latents 32 × 16 × 16) to stay fast on a CPU


def codec(**options):
    return wb.get_registry().create("codec", "taef2", **options)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """scikit-image's astronaut, cat and coffee photographs, resized to SIZE × SIZE."""
    import skimage.data

    raw = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    return np.concatenate([to_uint8(resize_images(im[None], SIZE)) for im in raw])


@pytest.fixture(scope="module")
def taef2():
    return codec(image_size=SIZE, device="cpu")


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0 ** 2 / mse)


def test_registration_imports_no_torch() -> None:
    code = ("import sys, brain_workbench_plugins.taef2, brain_workbench_plugins.codecs; "
            "assert 'torch' not in sys.modules, 'registration imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_listed_with_options() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["plugins", "list", "--json"])
    provides = {p["name"]: p["provides"] for p in json.loads(listing.stdout)}
    assert provides["taef2"] == {"codec": ["taef2"]} and provides["codecs"] == {"codec": ["pixels"]}
    info = runner.invoke(app, ["codecs", "info", "taef2", "--json"])
    assert info.exit_code == 0, info.output
    options = json.loads(info.stdout)["options"]
    assert {"image_size", "device", "dtype", "encoder_weights", "decoder_weights"} <= set(options)
    assert options["image_size"]["default"] == 256
    assert "image_size" in runner.invoke(app, ["codecs", "info", "taef2"]).stdout


def test_default_latent_size_without_loading() -> None:
    c = codec()
    assert c.image_size == 256 and c.latent_shape == (32, 32, 32) and c.latent_dim == 32_768
    assert not c._nets, "asking for the latent size must not build the network"


def test_shipped_weights_and_licence() -> None:
    assert (WEIGHTS_DIR / "LICENSE").read_text().startswith("MIT License")
    for part, build in (("encoder", model.encoder), ("decoder", model.decoder)):
        state = torch.load(WEIGHTS_DIR / f"taef2_{part}.pth", weights_only=True)
        assert len(state) == 79 and all(v.dtype == torch.float16 for v in state.values())
        net = build()
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}
        net.load_state_dict(state, strict=True)
        assert sum(".pool." in k for k in state) == 12  # three blocks × (conv, norm weight, norm bias, conv)


def test_conformance(taef2) -> None:
    check_codec(codec(image_size=64, device="cpu"))


def test_round_trip_on_photos_beats_diffusers_non_strict_load(taef2, photos) -> None:
    latents = taef2.encode(photos)
    assert latents.shape == (3, 32 * 16 * 16) and latents.dtype == np.float32
    ours = psnr(taef2.decode(latents), photos)
    assert np.all(ours > 26.0), ours

    from diffusers import AutoencoderTiny

    ae = AutoencoderTiny(latent_channels=32).eval()
    enc = torch.load(WEIGHTS_DIR / "taef2_encoder.pth", weights_only=True)
    dec = torch.load(WEIGHTS_DIR / "taef2_decoder.pth", weights_only=True)
    mapped = {f"encoder.layers.{k}": v for k, v in enc.items()}
    mapped |= {f"decoder.layers.{int(k.split('.', 1)[0]) - 1}.{k.split('.', 1)[1]}": v for k, v in dec.items()}
    result = ae.load_state_dict(mapped, strict=False)
    assert not result.missing_keys and len(result.unexpected_keys) == 24  # only the pool branches are dropped
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        y = ae.decode(ae.encode(x * 2 - 1).latents).sample
    theirs = psnr(to_uint8(((y.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()), photos)
    assert np.all(ours > theirs + 8.0), (ours, theirs)


def test_four_groups_in_the_pool_norm_decode_best(photos) -> None:
    """The one choice the state dict's shapes leave open: GroupNorm's group count (4 beats 1 and 8)."""
    x = torch.from_numpy(photos[:1]).permute(0, 3, 1, 2).float() / 255
    enc = torch.load(WEIGHTS_DIR / "taef2_encoder.pth", weights_only=True)
    dec = torch.load(WEIGHTS_DIR / "taef2_decoder.pth", weights_only=True)
    errors = {}
    for groups in (1, 4, 8):
        nets = [model.encoder(), model.decoder()]
        for net, state in zip(nets, (enc, dec)):
            for m in net.modules():
                if isinstance(m, torch.nn.GroupNorm):
                    m.num_groups = groups
            net.load_state_dict(state, strict=True)
        with torch.no_grad():
            errors[groups] = float(((nets[1](nets[0](x)).clamp(0, 1) - x) ** 2).mean())
    assert errors[4] < 0.7 * min(errors[1], errors[8]), errors


def test_encode_resizes_with_antialiasing(taef2, photos) -> None:
    big = to_uint8(resize_images(photos, 2 * SIZE, "bicubic"))
    np.testing.assert_allclose(taef2.encode(big), taef2.encode(to_uint8(resize_images(big, SIZE))), atol=0.25)


def test_fingerprint_follows_options_and_weights(tmp_path: Path) -> None:
    base = codec(image_size=SIZE).fingerprint()
    assert base == codec(image_size=SIZE, device="cpu").fingerprint()
    assert base != codec(image_size=64).fingerprint()
    assert base != codec(image_size=SIZE, dtype="bfloat16").fingerprint()
    state = torch.load(WEIGHTS_DIR / "taef2_decoder.pth", weights_only=True)
    state["19.bias"] = state["19.bias"] + 1
    torch.save(state, tmp_path / "dec.pth")
    assert base != codec(image_size=SIZE, decoder_weights=str(tmp_path / "dec.pth")).fingerprint()


def _one_sentence(exc: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_bad_weight_files_are_refused(tmp_path: Path, photos) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WorkbenchError) as exc:
        codec(image_size=64, encoder_weights=str(missing)).encode(photos[:1])
    _one_sentence(exc, str(missing), "does not exist")

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((WEIGHTS_DIR / "taef2_encoder.pth").read_bytes()[:100_000])
    with pytest.raises(WorkbenchError) as exc:
        codec(image_size=64, encoder_weights=str(truncated)).encode(photos[:1])
    _one_sentence(exc, str(truncated), "truncated")

    state = torch.load(WEIGHTS_DIR / "taef2_decoder.pth", weights_only=True)
    state["1.weight"] = state["1.weight"][:, :16]
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(WorkbenchError) as exc:
        codec(image_size=64, decoder_weights=str(wrong)).decode(np.zeros((1, 2048), np.float32))
    _one_sentence(exc, str(wrong), "'1.weight'", "(64, 16, 3, 3)", "(64, 32, 3, 3)")

    del state["1.weight"]
    torch.save(state, wrong)
    with pytest.raises(WorkbenchError) as exc:
        codec(image_size=64, decoder_weights=str(wrong)).decode(np.zeros((1, 2048), np.float32))
    _one_sentence(exc, "lacks 1 tensors", "'1.weight'")

    shutil.copy(WEIGHTS_DIR / "taef2_encoder.pth", tmp_path / "enc.pth")  # the encoder's weights in the decoder's place
    with pytest.raises(WorkbenchError) as exc:
        codec(image_size=64, decoder_weights=str(tmp_path / "enc.pth")).decode(np.zeros((1, 2048), np.float32))
    _one_sentence(exc, "does not hold TAEF2 decoder weights")


def test_bad_options_and_inputs(taef2) -> None:
    for bad in ({"image_size": 100}, {"image_size": 0}, {"dtype": "float64"}, {"batch_size": 0}):
        with pytest.raises(WorkbenchError):
            codec(**bad)
    with pytest.raises(WorkbenchError, match="needs a GPU"):
        codec(image_size=64, device="cpu", dtype="float16").encode(sample_images(1, 64))
    with pytest.raises(WorkbenchError, match="NaN"):
        taef2.decode(np.full((1, taef2.latent_dim), np.nan, np.float32))
    with pytest.raises(WorkbenchError, match="uint8"):
        taef2.encode(np.zeros((1, 8, 8, 3), np.float32))


def test_pixel_codec() -> None:
    pixels = wb.get_registry().create("codec", "pixels")
    assert pixels.image_size == 32 and pixels.latent_dim == 3 * 32 * 32
    check_codec(pixels)
    images = sample_images(3, 32)
    z = pixels.encode(images)
    assert z.min() >= 0 and z.max() <= 1
    np.testing.assert_array_equal(z.reshape(images.shape), images / np.float32(255))
    np.testing.assert_array_equal(pixels.decode(z), images)  # exact at the codec's own size

    import torchvision.transforms.functional as TF

    big = sample_images(2, 96, seed=3)
    ref = TF.resize(torch.from_numpy(big).permute(0, 3, 1, 2).float() / 255, [32, 32],
                    interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    np.testing.assert_allclose(pixels.encode(big), ref.permute(0, 2, 3, 1).reshape(2, -1).numpy(), atol=1e-6)
    assert wb.get_registry().create("codec", "pixels", image_size=16).fingerprint() != pixels.fingerprint()
