"""Image arrays: validation, resizing, and the store entries ``images/<key>/`` that hold reconstructions.

Images travel as ``uint8 (n, H, W, 3)`` RGB arrays. An image entry holds them in row blocks beside
their stimulus ids, written like feature entries: a block is marked done only after its chunks are
on disk, so an interrupted write resumes at the first missing block and never recomputes the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from brain_workbench.store import ArraySpec, Store, suggest_block_rows
from brain_workbench.store.paths import images_path
from brain_workbench.types import WorkbenchError, as_str_array

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
Progress = Callable[[int], None]
ImageSource = np.ndarray | Callable[[Sequence[str]], np.ndarray]


def rgb_image(image: Any, name: str | None = None) -> Any:
    """A PIL image as 8-bit RGB, whatever its mode: 16- and 32-bit integer images scaled to 8 bits (not clipped
    to white), float images in [0, 1] or [0, 255] scaled, palette, alpha, CMYK and grey converted (transparent
    parts composited on white), its pixels loaded. An image that cannot be read as colours is refused, naming
    ``name``."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        image.load()  # pixels read now, so the image outlives the file it was opened from
        return image
    what = f"image {name!r}" if name is not None else "an image"
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise WorkbenchError(f"{what} (mode {mode}) holds NaN or infinite values; save it as an 8-bit image")
        low, high = float(values.min()), float(values.max())
        if mode == "F" and low >= 0 and high <= 1:
            scale = 255.0
        elif low >= 0 and high <= 255 and not mode.startswith("I;16"):
            scale = 1.0
        elif low >= 0 and high <= 65535:
            scale = 255.0 / 65535.0
        else:
            raise WorkbenchError(f"{what} has mode {mode} with values {low:g}–{high:g}, outside 0–65535; save it as "
                                 "an 8-bit or 16-bit image")
        grey = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise WorkbenchError(f"{what} has mode {mode}, which cannot be converted to RGB ({exc}); save it as an "
                             "8-bit RGB image") from None


def check_images(images: Any, name: str = "images") -> np.ndarray:
    """Return ``images`` as a uint8 ``(n, H, W, 3)`` array, or refuse it with one sentence saying how to fix it."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise WorkbenchError(f"{name} must be uint8 RGB images (n, H, W, 3), got dtype {a.dtype}; convert floats "
                             "in [0, 1] with (x * 255).round().astype(np.uint8)")
    if a.ndim == 3 and a.shape[-1] == 3:
        raise WorkbenchError(f"{name} has shape {a.shape}: one image, not a batch; pass images[None]")
    if a.ndim != 4 or a.shape[-1] != 3:
        raise WorkbenchError(f"{name} must have shape (n, H, W, 3) with 3 colour channels, got {a.shape}")
    if min(a.shape[:3]) == 0:
        raise WorkbenchError(f"{name} is empty (shape {a.shape})")
    return a


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    hw = [int(size)] * 2 if isinstance(size, (int, np.integer)) else [int(s) for s in np.atleast_1d(size)]
    if len(hw) != 2 or min(hw) < 1:
        raise WorkbenchError(f"an image size must be a positive int or (height, width), got {size!r}")
    return hw[0], hw[1]


def images_to_tensor(images: np.ndarray, size: int | Sequence[int] | None = None, interpolation: str = "bilinear",
                     antialias: bool = True, device: Any = "cpu") -> Any:
    """uint8 ``(n, H, W, 3)`` → float32 torch ``(n, 3, h, w)`` in [0, 1], resized to ``size`` (an int means square).

    Resizing is ``torch.nn.functional.interpolate`` (``align_corners=False``; with ``antialias`` a
    triangle/cubic filter widened by the scale when shrinking, as PIL and torchvision's tensor
    ``Resize`` do); bicubic values are not clamped. Non-square images are stretched, not cropped.
    """
    import torch
    import torch.nn.functional as F

    if interpolation not in INTERPOLATIONS:
        raise WorkbenchError(f"unknown interpolation {interpolation!r}; use one of {', '.join(INTERPOLATIONS)}")
    x = torch.from_numpy(np.ascontiguousarray(check_images(images))).to(device).permute(0, 3, 1, 2)
    x = x.to(torch.float32) / 255.0
    if size is None or tuple(x.shape[-2:]) == _size(size):
        return x
    kwargs: dict[str, Any] = {} if interpolation == "nearest" else {"align_corners": False, "antialias": antialias}
    return F.interpolate(x, size=_size(size), mode=interpolation, **kwargs)


def resize_images(images: np.ndarray, size: int | Sequence[int], interpolation: str = "bilinear",
                  antialias: bool = True) -> np.ndarray:
    """``images_to_tensor`` as numpy: float32 ``(n, h, w, 3)`` in [0, 1] (bicubic may overshoot slightly)."""
    return images_to_tensor(images, size, interpolation, antialias).permute(0, 2, 3, 1).numpy()


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] → uint8, clipped and rounded to the nearest level."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ---- store entries --------------------------------------------------------------------------




def _check_ids(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    array = as_str_array(np.asarray(ids))
    if array.ndim != 1 or array.size == 0:
        raise WorkbenchError("image entries need a non-empty 1-D list of stimulus ids")
    if len(set(array.tolist())) != array.size:
        raise WorkbenchError("stimulus ids of an image entry must be unique; average or drop repeated stimuli first")
    return array


def _resumable_layout(meta: Mapping[str, Any] | None, n: int) -> tuple[int, int, int] | None:
    """(height, width, block rows) of an incomplete image entry with ``n`` rows, or None."""
    if not meta or meta.get("complete"):
        return None
    try:
        shape, dtype, _ = meta["layout"]["images"]
        rows = int(meta["blocks"]["rows"])
    except (KeyError, TypeError, ValueError):
        return None
    if len(shape) != 4 or int(shape[0]) != n or dtype != "uint8":
        return None
    return int(shape[1]), int(shape[2]), rows


def write_images(store: Store, key: str, ids: Sequence[str] | np.ndarray, images: ImageSource, *,
                 block_rows: int | None = None, attrs: Mapping[str, Any] | None = None,
                 progress: Progress | None = None) -> str:
    """Write images for ``ids`` to ``images/<key>`` block by block and return the entry path.

    ``images`` is a uint8 ``(n, H, W, 3)`` array, or a callable ``make(block_ids) -> uint8 array``
    called only for blocks not yet on disk (so a rerun after an interruption computes only what is
    missing). A complete entry is left as it is.
    """
    path = images_path(key)
    if store.is_complete(path):
        return path
    ids = _check_ids(ids)
    n = len(ids)
    if callable(images):
        make = images
    else:
        array = check_images(images)
        if array.shape[0] != n:
            raise WorkbenchError(f"{array.shape[0]} images were given for {n} stimulus ids; pass one image per id")
        make = None
    size: list[tuple[int, int]] = []  # (height, width) once known; every made block must match it

    def produce(sl: slice) -> np.ndarray:
        if make is None:
            return array[sl]
        out = check_images(make(ids[sl].tolist()), name=f"images made for block rows {sl.start}..{sl.stop - 1}")
        if out.shape[0] != sl.stop - sl.start:
            raise WorkbenchError(f"the image source returned {out.shape[0]} images for {sl.stop - sl.start} ids "
                                 f"(rows {sl.start}..{sl.stop - 1}); return one image per id")
        if size and out.shape[1:3] != size[0]:
            raise WorkbenchError(f"images for rows {sl.start}..{sl.stop - 1} are {out.shape[1]}×{out.shape[2]} but "
                                 f"the entry holds {size[0][0]}×{size[0][1]}; make every image the same size")
        return out

    known = _resumable_layout(store.meta(path), n)
    first: tuple[slice, np.ndarray] | None = None
    if make is None:
        height, width = array.shape[1:3]
    elif known is not None:
        height, width = known[:2]
    else:
        sl = slice(0, min(n, block_rows or 1))
        first = (sl, produce(sl))
        height, width = first[1].shape[1:3]
    if known is not None and known[:2] == (height, width):
        block_rows = block_rows or known[2]
    size.append((int(height), int(width)))
    block_rows = int(block_rows or suggest_block_rows(height * width * 3, n))
    specs = {"images": ArraySpec((n, height, width, 3), "uint8"), "stimulus_ids": ArraySpec((n,), "str", blocked=False)}
    entry_attrs = {"n_images": n, "height": int(height), "width": int(width), **dict(attrs or {})}
    with store.writer(path, specs, kind="images", attrs=entry_attrs, block_rows=block_rows) as writer:
        if "stimulus_ids" not in writer.meta["checksums"]:
            writer.put("stimulus_ids", ids)
        elif not np.array_equal(as_str_array(np.asarray(writer.array("stimulus_ids")[...])), ids):
            raise WorkbenchError(f"the unfinished entry {path!r} was started for other stimulus ids; "
                                 "remove it with `workbench store gc` or use another key")
        pending = writer.pending_blocks()
        if progress is not None:
            progress(n - sum(writer.block_slice(b).stop - writer.block_slice(b).start for b in pending))
        for block in pending:
            sl = writer.block_slice(block)
            data = produce(sl) if first is None or block != 0 else _complete_first(first, sl, produce)
            writer.write_block(block, {"images": data})
            if progress is not None:
                progress(sl.stop - sl.start)
        writer.finish(config={"key": key, "n_images": n})
    return path


def _complete_first(first: tuple[slice, np.ndarray], sl: slice, produce: Callable[[slice], np.ndarray]) -> np.ndarray:
    """Block 0 from the images made while probing the size, plus the rest of the block."""
    done, images = first
    if done.stop >= sl.stop:
        return images[: sl.stop]
    return np.concatenate([images, produce(slice(done.stop, sl.stop))])


def stored_image_ids(store: Store, key: str) -> np.ndarray:
    """Stimulus ids of a complete image entry, in row order."""
    return store.open(images_path(key))["stimulus_ids"]


def read_images(store: Store, key: str, ids: Sequence[str] | None = None) -> np.ndarray:
    """Images of a complete entry: all rows, or the rows of ``ids`` in that order; every block read is checked
    against its checksum (``CorruptEntryError`` names the entry), as feature reads are."""
    path = images_path(key)
    entry = store.open(path)
    if ids is None:
        return np.asarray(entry["images"])
    position = {s: i for i, s in enumerate(entry["stimulus_ids"].tolist())}
    try:
        index = np.array([position[str(s)] for s in ids], dtype=np.int64)
    except KeyError as exc:
        raise WorkbenchError(f"stimulus {exc.args[0]!r} has no image in {path}") from None
    return entry.rows("images", index)


__all__ = ["check_images", "images_path", "images_to_tensor", "read_images", "resize_images", "stored_image_ids",
           "to_uint8", "write_images"]
