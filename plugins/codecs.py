"""The ``pixels`` codec: a small RGB image flattened to floats in [0, 1], the trivial reconstruction target.

``encode`` resizes to ``image_size`` × ``image_size`` (bilinear with antialiasing, as the TAEF2
codec; non-square images are stretched) and flattens rows, columns, channels (``(S, S, 3)``
row-major) into float32 in [0, 1]. ``decode`` clips to [0, 1], rounds to the nearest of 256 levels
and reshapes back to uint8 ``(n, S, S, 3)``.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import Option, WorkbenchError, digest, hookimpl

CODE_VERSION = "1"

class PixelCodec:
    """Pixels as latents: the baseline a learned codec has to beat."""

    name = "pixels"

    def __init__(
        self,
        image_size: Annotated[int, Option("side of the square image; latents have 3·S² values")] = 32,
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
            raise WorkbenchError(f"pixels: image_size must be a positive int, got {image_size!r}")
        self.image_size = int(image_size)

    def __repr__(self) -> str:
        return f"PixelCodec(image_size={self.image_size})"

    @property
    def latent_dim(self) -> int:
        return 3 * self.image_size ** 2

    def fingerprint(self) -> str:
        return digest("pixels", CODE_VERSION, self.image_size, "bilinear-antialias", length=32)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(n, H, W, 3)`` → float32 ``(n, 3·S²)`` in [0, 1]."""
        from brain_workbench.sdk.data import resize_images

        small = resize_images(images, self.image_size, "bilinear", antialias=True)
        return np.clip(small, 0.0, 1.0).reshape(small.shape[0], -1).astype(np.float32, copy=False)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """float ``(n, 3·S²)`` → uint8 ``(n, S, S, 3)`` (values clipped to [0, 1] first)."""
        from brain_workbench.sdk.data import to_uint8

        z = np.asarray(latents)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.dtype.kind not in "fiu":
            raise WorkbenchError(f"pixels: latents must be a float array (n, {self.latent_dim}) for image_size="
                                 f"{self.image_size}, got {z.dtype} {z.shape}")
        if not np.isfinite(z).all():
            raise WorkbenchError("pixels: latents contain NaN or infinite values; check the decoder that predicted them")
        return to_uint8(z.reshape(-1, self.image_size, self.image_size, 3))


@hookimpl
def register_codecs(register: Any) -> None:
    register(
        "pixels", PixelCodec,
        description="a small RGB image (bilinear, antialiased resize to image_size) flattened to float32 in [0, 1]",
        citation="",
    )
