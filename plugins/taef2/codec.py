"""The TAEF2 codec: RGB images ↔ flat 32-channel latents at 1/8 of the image size.

``encode`` resizes uint8 images to ``image_size`` × ``image_size`` (bilinear with antialiasing,
``torch.nn.functional.interpolate(antialias=True, align_corners=False)`` on [0, 1] floats; a
non-square image is stretched, not cropped), runs the encoder, and flattens the latent
``(32, S/8, S/8)`` channel-major into one float32 row. ``decode`` reverses the flattening, runs the
decoder, clamps to [0, 1] and rounds to uint8. Torch is imported on first use, not at registration.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from brain_workbench.sdk import Option, WorkbenchError, digest

CODE_VERSION = "1"
WEIGHTS_DIR = Path(__file__).parent / "weights"
DTYPES = ("float32", "float16", "bfloat16")
LATENT_CHANNELS = 32
DOWNSCALE = 8
RESIZE = {"interpolation": "bilinear", "antialias": True, "align_corners": False, "non_square": "stretch"}

def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_strict(module: Any, path: Path, part: str) -> None:
    """Load a TAEF2 state dict into ``module`` strictly, refusing a missing, unreadable or mismatched file."""
    import torch

    fix = f"point {part}_weights= at a TAEF2 taef2_{part}.pth or reinstall brain-workbench"
    if not path.is_file():
        raise WorkbenchError(f"taef2: the {part} weights file {str(path)!r} does not exist; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WorkbenchError(f"taef2: cannot read {str(path)!r} as a torch state dict ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}); the file is truncated or not a checkpoint; {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WorkbenchError(f"taef2: {str(path)!r} is not a plain state dict of tensors; {fix}")
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    wrong = [k for k in want if k in state and tuple(state[k].shape) != want[k]]
    if missing or unexpected or wrong:
        if wrong:
            detail = f"tensor {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)} where TAEF2 needs {want[wrong[0]]}"
        elif missing:
            detail = f"it lacks {len(missing)} tensors, e.g. {missing[0]!r}"
        else:
            detail = f"it has {len(unexpected)} tensors TAEF2 does not, e.g. {unexpected[0]!r}"
        raise WorkbenchError(f"taef2: {str(path)!r} does not hold TAEF2 {part} weights: {detail}; {fix}")
    module.load_state_dict(state, strict=True)


class Taef2Codec:
    """TAEF2 as a workbench codec (reconstruction stage 1: brain → latents → image)."""

    name = "taef2"

    def __init__(
        self,
        image_size: Annotated[int, Option(
            "side of the square images the codec reads and writes (a multiple of 8); latents have 32 × "
            "(S/8)² values (32,768 at 256)")] = 256,
        device: Annotated[str, Option("cpu, cuda, mps or auto")] = "auto",
        dtype: Annotated[Literal["float32", "float16", "bfloat16"], Option(
            "dtype the network computes in (float16 needs a GPU); latents are always float32")] = "float32",
        batch_size: Annotated[int, Option("images per forward pass")] = 16,
        encoder_weights: Annotated[str | None, Option(
            "encoder state dict; default: the TAEF2 weights shipped with the package")] = None,
        decoder_weights: Annotated[str | None, Option(
            "decoder state dict; default: the TAEF2 weights shipped with the package")] = None,
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < DOWNSCALE \
                or image_size % DOWNSCALE:
            raise WorkbenchError(f"taef2: image_size must be a positive multiple of {DOWNSCALE}, got {image_size!r}")
        if dtype not in DTYPES:
            raise WorkbenchError(f"taef2: option dtype={dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
        if int(batch_size) < 1:
            raise WorkbenchError(f"taef2: batch_size must be at least 1, got {batch_size!r}")
        self.image_size = int(image_size)
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.device_option = device
        self.encoder_path = Path(encoder_weights or WEIGHTS_DIR / "taef2_encoder.pth").expanduser()
        self.decoder_path = Path(decoder_weights or WEIGHTS_DIR / "taef2_decoder.pth").expanduser()
        self._nets: dict[str, Any] = {}
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Taef2Codec(image_size={self.image_size}, dtype={self.dtype!r})"

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.image_size // DOWNSCALE
        return (LATENT_CHANNELS, side, side)

    @property
    def latent_dim(self) -> int:
        return int(np.prod(self.latent_shape))

    def _net(self, part: str) -> Any:
        """The encoder or decoder, built and strictly loaded on first use."""
        if part in self._nets:
            return self._nets[part]
        import torch

        from brain_workbench.sdk.torch import resolve_device
        from brain_workbench_plugins.taef2 import model

        self.device = resolve_device(self.device_option)
        if self.dtype == "float16" and self.device.type == "cpu":
            raise WorkbenchError("taef2: dtype='float16' needs a GPU; use 'float32' or 'bfloat16' on the CPU")
        net = model.encoder() if part == "encoder" else model.decoder()
        load_strict(net, self.encoder_path if part == "encoder" else self.decoder_path, part)
        self._nets[part] = net.eval().requires_grad_(False).to(self.device, getattr(torch, self.dtype))
        return self._nets[part]

    def decoder(self) -> Any:
        """The TAEF2 decoder as a frozen torch module, latents (n, 32, S/8, S/8) → RGB (n, 3, S, S), unclamped:
        what latent-ascent synthesis differentiates through."""
        return self._net("decoder")

    def fingerprint(self) -> str:
        """Digest of both weight files, image size, compute dtype, resize method and code version."""
        if self._fingerprint is None:
            for path, part in ((self.encoder_path, "encoder"), (self.decoder_path, "decoder")):
                if not path.is_file():
                    raise WorkbenchError(f"taef2: the {part} weights file {str(path)!r} does not exist; point "
                                         f"{part}_weights= at a TAEF2 taef2_{part}.pth or reinstall brain-workbench")
            self._fingerprint = digest("taef2", CODE_VERSION, self.image_size, self.dtype, RESIZE,
                                       _file_digest(self.encoder_path), _file_digest(self.decoder_path), length=32)
        return self._fingerprint

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(n, H, W, 3)`` → float32 ``(n, latent_dim)``."""
        import torch

        from brain_workbench.sdk.data import check_images, images_to_tensor

        images = check_images(images)
        net = self._net("encoder")
        out = np.empty((images.shape[0], self.latent_dim), dtype=np.float32)
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size]
            x = images_to_tensor(batch, self.image_size, RESIZE["interpolation"], RESIZE["antialias"], self.device)
            with torch.inference_mode():
                z = net(x.to(getattr(torch, self.dtype)))
            out[start:start + len(batch)] = z.float().reshape(len(batch), -1).cpu().numpy()
        return out

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """float ``(n, latent_dim)`` → uint8 ``(n, image_size, image_size, 3)``."""
        import torch

        z = np.asarray(latents)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.dtype.kind not in "fiu":
            raise WorkbenchError(f"taef2: latents must be a float array (n, {self.latent_dim}) for image_size="
                                 f"{self.image_size}, got {z.dtype} {z.shape}; decode with the image_size they were "
                                 "encoded at")
        if not np.isfinite(z).all():
            raise WorkbenchError("taef2: latents contain NaN or infinite values; check the decoder that predicted them")
        net = self._net("decoder")
        out = np.empty((z.shape[0], self.image_size, self.image_size, 3), dtype=np.uint8)
        for start in range(0, z.shape[0], self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(z[start:start + self.batch_size], dtype=np.float32))
            batch = batch.reshape(-1, *self.latent_shape).to(self.device, getattr(torch, self.dtype))
            with torch.inference_mode():
                y = net(batch).float().clamp(0, 1)
            out[start:start + len(batch)] = (y * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return out
