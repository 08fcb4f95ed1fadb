"""Image entries in the store (write by block, resume, read by ids) and the image helpers codecs and metrics share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from brain_workbench.plugin.testing import sample_images
from brain_workbench.store import Store
from brain_workbench.store.images import (
    check_images,
    images_path,
    read_images,
    resize_images,
    stored_image_ids,
    to_uint8,
    write_images,
)
from brain_workbench.types import WorkbenchError

IDS = [f"nsd-{i:05d}" for i in range(1, 12)]


@pytest.fixture
def images() -> np.ndarray:
    return sample_images(len(IDS), 24, seed=4)


def test_round_trip_by_ids(tmp_store: Store, images: np.ndarray) -> None:
    path = write_images(tmp_store, "recon-abc123", IDS, images, block_rows=4, attrs={"codec": "taef2"})
    assert path == "images/recon-abc123" and tmp_store.is_complete(path)
    meta = tmp_store.meta(path)
    assert meta["kind"] == "images" and meta["blocks"] == {"n": 3, "rows": 4, "done": [0, 1, 2]}
    np.testing.assert_array_equal(read_images(tmp_store, "recon-abc123"), images)
    assert stored_image_ids(tmp_store, "recon-abc123").tolist() == IDS
    picked = [IDS[7], IDS[0], IDS[10]]
    np.testing.assert_array_equal(read_images(tmp_store, "recon-abc123", picked), images[[7, 0, 10]])
    entry = tmp_store.open(path)
    assert entry.attrs["codec"] == "taef2" and entry.attrs["height"] == 24 and entry.array("images").dtype == np.uint8
    assert tmp_store.verify() == []
    with pytest.raises(WorkbenchError, match="has no image"):
        read_images(tmp_store, "recon-abc123", ["nsd-99999"])


def test_interrupted_write_resumes_only_missing_blocks(tmp_store: Store, images: np.ndarray) -> None:
    calls: list[list[str]] = []

    def make(ids: list[str]) -> np.ndarray:
        calls.append(ids)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job dies while making the second block
        return images[[IDS.index(i) for i in ids]]

    with pytest.raises(KeyboardInterrupt):
        write_images(tmp_store, "cell-1", IDS, make, block_rows=4)
    path = images_path("cell-1")
    meta = tmp_store.meta(path)
    assert not meta["complete"] and meta["blocks"]["done"] == [0] and meta["writer"] is None
    assert [p.status for p in tmp_store.verify()] == ["incomplete"]
    with pytest.raises(WorkbenchError, match="incomplete"):
        read_images(tmp_store, "cell-1")

    calls.clear()
    seen: list[int] = []
    write_images(tmp_store, "cell-1", IDS, lambda ids: (calls.append(ids), images[[IDS.index(i) for i in ids]])[1],
                 progress=seen.append)
    assert calls == [IDS[4:8], IDS[8:]], "only blocks 1 and 2 may be made again"
    assert sum(seen) == len(IDS) and seen[0] == 4
    np.testing.assert_array_equal(read_images(tmp_store, "cell-1"), images)
    calls.clear()
    write_images(tmp_store, "cell-1", IDS, lambda ids: calls.append(ids))
    assert calls == [], "a complete entry is left alone"


def test_callable_source_probes_size_once(tmp_store: Store, images: np.ndarray) -> None:
    calls: list[int] = []

    def make(ids: list[str]) -> np.ndarray:
        calls.append(len(ids))
        return images[[IDS.index(i) for i in ids]]

    write_images(tmp_store, "probe", IDS, make)
    assert sum(calls) == len(IDS), f"every image is made exactly once, got batches {calls}"
    np.testing.assert_array_equal(read_images(tmp_store, "probe"), images)


def test_bad_input_leaves_nothing_half_written(tmp_store: Store, images: np.ndarray) -> None:
    with pytest.raises(WorkbenchError, match="uint8"):
        write_images(tmp_store, "bad", IDS, images.astype(np.float32) / 255)
    with pytest.raises(WorkbenchError, match="one image per id"):
        write_images(tmp_store, "bad", IDS[:-1], images)
    with pytest.raises(WorkbenchError, match="unique"):
        write_images(tmp_store, "bad", IDS[:-1] + IDS[:1], images)
    assert tmp_store.meta("images/bad") is None

    def shrinking(ids: list[str]) -> np.ndarray:
        return sample_images(len(ids), 24 if ids[0] == IDS[0] else 16)

    with pytest.raises(WorkbenchError, match="same size"):
        write_images(tmp_store, "bad", IDS, shrinking, block_rows=4)
    assert tmp_store.meta("images/bad")["blocks"]["done"] == [0]
    with pytest.raises(WorkbenchError, match="other stimulus ids"):
        write_images(tmp_store, "bad", IDS[::-1], images, block_rows=4)


def test_check_images_messages() -> None:
    with pytest.raises(WorkbenchError, match=r"images\[None\]"):
        check_images(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(WorkbenchError, match="3 colour channels"):
        check_images(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(WorkbenchError, match="empty"):
        check_images(np.zeros((0, 8, 8, 3), np.uint8))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resize_matches_torchvision(mode: str) -> None:
    images = sample_images(2, 90, seed=1)[:, :, :70]  # non-square: stretched to the square size
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    ref = TF.resize(x, [32, 32], interpolation=TF.InterpolationMode(mode), antialias=True).permute(0, 2, 3, 1)
    np.testing.assert_allclose(resize_images(images, 32, mode), ref.numpy(), atol=1e-6)
    assert resize_images(images, (45, 35)).shape == (2, 45, 35, 3)
    np.testing.assert_array_equal(to_uint8(resize_images(images, (90, 70))), images)


# ---- every PIL mode becomes honest 8-bit RGB ------------------------------------------------------------------
def _gradient16() -> np.ndarray:
    return (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 … 65520


def test_a_16_bit_png_is_scaled_to_8_bits_not_white(tmp_path):
    from PIL import Image

    from brain_workbench.store.images import rgb_image

    path = tmp_path / "deep.png"
    Image.fromarray(_gradient16()).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I"), img.mode
        assert (np.asarray(img.convert("RGB")) == 255).mean() > 0.99, "PIL's own conversion saturates (the bug)"
        rgb = np.asarray(rgb_image(img, "deep"))
    expected = np.round(_gradient16() * (255 / 65535)).astype(np.uint8)
    assert rgb.shape == (64, 64, 3) and (rgb == expected[..., None]).all()


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "CMYK", "L", "1", "F", "PA-transparent"])
def test_every_mode_converts_to_the_colours_it_shows(mode):
    from PIL import Image

    from brain_workbench.store.images import rgb_image

    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")
    if mode == "F":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0, "F")
        expected = np.asarray(base.convert("L").convert("RGB"))
    elif mode in ("RGBA", "LA"):
        image = base.convert(mode)
        alpha = np.zeros((16, 16), np.uint8)
        alpha[:, 8:] = 255
        image.putalpha(Image.fromarray(alpha))
        shown = np.asarray(base.convert(mode[:-1]).convert("RGB"))
        expected = np.where(alpha[..., None] == 255, shown, 255)
    elif mode == "PA-transparent":
        image = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        image.info["transparency"] = int(np.asarray(image)[0, 0])
        shown = np.asarray(image.convert("RGB"))
        hidden = np.asarray(image) == image.info["transparency"]
        expected = np.where(hidden[..., None], 255, shown)
    else:
        image = base.convert(mode)
        expected = np.asarray(image.convert("RGB"))
    out = rgb_image(image)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), expected)


def test_an_unreadable_float_image_is_refused_naming_it():
    from PIL import Image

    from brain_workbench.store.images import rgb_image

    with pytest.raises(WorkbenchError, match="image 'img-007' has mode F with values"):
        rgb_image(Image.fromarray(np.full((4, 4), -3.0, np.float32), "F"), "img-007")


def test_features_of_a_16_bit_image_are_not_those_of_a_white_image():
    from PIL import Image

    from brain_workbench.numerics.nn import stack_images

    deep = Image.fromarray(_gradient16())
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    batch = stack_images([deep, white], lambda im: __import__("torch").from_numpy(np.asarray(im).copy()))
    assert not bool((batch[0] == batch[1]).all())
