"""The ``clip`` encoder: every transformer block and the projected embedding of an open_clip tower.

Weights are random (a fixed seed, so features are reproducible), a local checkpoint file, or an
open_clip pretrained tag found in the local cache (nothing is downloaded). Importing this module
is cheap; torch and open_clip are imported when the encoder is first used.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from brain_workbench.sdk import EncoderBase, LayerInfo, Option, WorkbenchError, digest, hookimpl

CODE_VERSION = "1"
RANDOM_SEED = 0
TOWERS = ("image", "text")
TOKENS = ("cls", "mean")

class ClipEncoder(EncoderBase):
    """An open_clip tower as a workbench encoder: ``block0`` … ``blockN`` and ``embedding``."""

    name = "clip"

    def __init__(
        self,
        model: Annotated[str, Option(
            "open_clip architecture name (see open_clip.list_models()), or 'local-dir:/path'")] = "ViT-B-32",
        pretrained: Annotated[str | None, Option(
            "None for random weights (seed 0), a local checkpoint file, or an open_clip tag already in "
            "the local cache (e.g. 'laion2b_s34b_b79k')")] = None,
        tower: Annotated[Literal["image", "text"], Option(
            "image tower (modality image) or text tower (modality text)")] = "image",
        token: Annotated[Literal["cls", "mean"], Option(
            "intermediate blocks: the class/end-of-text token, or the mean over tokens (patch tokens for "
            "images, real tokens for text)")] = "cls",
        device: Annotated[str, Option("cpu, cuda, mps or auto")] = "auto",
        precision: Annotated[Literal["fp32", "fp16", "bf16"], Option(
            "autocast precision of the forward pass (fp16/bf16 for GPUs)")] = "fp32",
    ) -> None:
        from brain_workbench.sdk.torch import PRECISIONS, check_option

        self.model_name = str(model)
        check_model_name(self.model_name)
        self.pretrained = None if pretrained in (None, "", "none", "None", "random") else str(pretrained)
        self.tower = check_option("clip", "tower", tower, TOWERS)
        self.token = check_option("clip", "token", token, TOKENS)
        self.precision = check_option("clip", "precision", precision, PRECISIONS)
        self.device_option = device
        self.modality = "image" if self.tower == "image" else "text"

    @property
    def random_weights(self) -> bool:
        """True when no checkpoint is loaded (``pretrained=None``): features of a seeded random network."""
        return self.pretrained is None and not self.model_name.startswith(("local-dir:", "hf-hub:"))

    def __repr__(self) -> str:
        return f"ClipEncoder(model={self.model_name!r}, pretrained={self.pretrained!r}, tower={self.tower!r})"

    # ---- loading -------------------------------------------------------------------------
    def _resolve_pretrained(self) -> tuple[str | None, dict[str, Any]]:
        """Checkpoint path and preprocessing overrides for the ``pretrained`` option, from local disk only."""
        if self.pretrained is None or self.model_name.startswith(("local-dir:", "hf-hub:")):
            return None, {}
        path = Path(os.path.expanduser(self.pretrained))
        if path.is_file():
            return str(path), {}
        import open_clip

        cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained)
        if not cfg:
            raise WorkbenchError(
                f"clip: pretrained={self.pretrained!r} is neither a checkpoint file nor an open_clip tag of "
                f"{self.model_name}; pass a local path or one of {open_clip.list_pretrained_tags_by_model(self.model_name)}"
            )
        found = _cached_checkpoint(cfg)
        if found is None:
            raise WorkbenchError(
                f"clip: weights for {self.model_name}/{self.pretrained} are not in the local cache and this "
                "encoder never downloads; download them once (open_clip.create_model('"
                f"{self.model_name}', pretrained='{self.pretrained}')) or pass a checkpoint path"
            )
        overrides = {"force_quick_gelu": bool(cfg.get("quick_gelu", False))}
        for key, arg in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"),
                         ("resize_mode", "image_resize_mode")):
            if key in cfg:
                overrides[arg] = cfg[key]
        return found, overrides

    def load_model(self) -> None:
        import open_clip
        import torch

        from brain_workbench.sdk.torch import resolve_device, seeded, weights_digest

        self.device = resolve_device(self.device_option)
        checkpoint, overrides = self._resolve_pretrained()
        try:
            with seeded(RANDOM_SEED), _quiet_random_init(checkpoint is None):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=checkpoint, device="cpu", pretrained_text=False, **overrides)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"clip: cannot build {self.model_name} (pretrained={self.pretrained!r}): {exc}") from exc
        model.eval()
        self.preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        if self.tower == "image":
            self.module = model.visual
            self.preprocess = preprocess
            self.blocks, self.kind = _image_blocks(self.module, self.model_name)
        else:
            if hasattr(model, "visual"):
                model.visual = torch.nn.Identity()
            self.module = model
            self.tokenizer = open_clip.get_tokenizer(self.model_name)
            self.blocks, self.batch_first, self.pool_type = _text_blocks(model, self.model_name)
            self.kind = "text"
        self.weights_digest = weights_digest(self.module)
        self.module.to(self.device)

    # ---- protocol ------------------------------------------------------------------------
    def list_layers(self) -> list[LayerInfo]:
        """Every block of the chosen tower (depth i/n) and the projected embedding (depth 1).

        The depth comes from the architecture's config without building the model when open_clip has one.
        """
        n = _config_depth(self.model_name, self.tower)
        if n is None:
            self.ensure_loaded()
            n = len(self.blocks)
        return [LayerInfo(f"block{i}", i / n) for i in range(n)] + [LayerInfo("embedding", 1.0)]

    def compute_fingerprint(self) -> str:
        """Weights digest, preprocessing, tower, token pooling, precision and code version."""
        preprocessing: Any = self.preprocess_cfg if self.tower == "image" else {
            "tokenizer": type(self.tokenizer).__name__,
            "context_length": getattr(self.tokenizer, "context_length", None),
            "pool_type": self.pool_type,
        }
        return digest("clip", CODE_VERSION, self.model_name, self.tower, self.token,
                      self.precision, preprocessing, self.weights_digest, length=32)

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, Any]:
        """Features of ``layers`` for a batch of PIL images (image tower) or strings (text tower), one pass."""
        import torch

        from brain_workbench.sdk.torch import autocast, capture, to_numpy

        self.ensure_loaded()
        self.check_layers(layers)
        want_blocks = {name: self.blocks[int(name[5:])] for name in layers if name != "embedding"}
        need_output = "embedding" in layers
        with torch.inference_mode(), autocast(self.device, self.precision):
            if self.tower == "image":
                from brain_workbench.sdk.torch import stack_images

                x = stack_images(batch, self.preprocess).to(self.device)
                with capture(outputs=want_blocks, stop=not need_output) as acts:
                    embedding = self.module(x)
                pooled = {name: self._pool_image(acts[name]) for name in want_blocks}
            else:
                tokens = self.tokenizer(list(batch)).to(self.device)
                with capture(outputs=want_blocks, stop=not need_output) as acts:
                    embedding = self.module.encode_text(tokens)
                pooled = {name: self._pool_text(acts[name], tokens) for name in want_blocks}
        out = {name: to_numpy(value) for name, value in pooled.items()}
        if need_output:
            if isinstance(embedding, (tuple, list)):
                embedding = embedding[0]
            out["embedding"] = to_numpy(embedding)
        return {name: out[name] for name in layers}

    def differentiable(self, layer: str) -> Any:
        """Float images (B, 3, H, W) in [0, 1] → the image tower's ``layer`` features with gradients: the tensor
        form of ``encode``'s resize, crop, normalisation and token pooling."""
        from brain_workbench.sdk.torch import TappedFeatures, tensor_transform

        if self.tower != "image":
            raise WorkbenchError("clip: the text tower has no differentiable image path; use tower='image'")
        self.ensure_loaded()
        self.check_layers([layer])
        if layer == "embedding":
            return TappedFeatures(self.module, tensor_transform(self.preprocess), self.module, _first,
                                  device=self.device, precision=self.precision)
        return TappedFeatures(self.module, tensor_transform(self.preprocess), self.blocks[int(layer[5:])],
                              self._pool_image, device=self.device, precision=self.precision)

    # ---- pooling -------------------------------------------------------------------------
    def _pool_image(self, x: Any) -> Any:
        from brain_workbench.sdk.torch import pool_spatial

        if self.kind == "resnet":
            return pool_spatial(x, "mean")
        if not getattr(self.module.transformer, "batch_first", True):
            x = x.transpose(0, 1)
        return x[:, 0] if self.token == "cls" else x[:, 1:].mean(dim=1)

    def _pool_text(self, x: Any, tokens: Any) -> Any:
        import torch

        from brain_workbench.sdk.torch import gather_tokens, masked_mean

        if not self.batch_first:
            x = x.transpose(0, 1)
        index = _text_pool_index(tokens, self.pool_type, getattr(self.module, "text_eos_id", None))
        if self.token == "cls":
            return gather_tokens(x, index)
        positions = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
        return masked_mean(x, positions <= index[:, None])


def _first(x: Any) -> Any:
    """The embedding of a tower that returns a tuple (as ``encode`` takes it)."""
    return x[0] if isinstance(x, (tuple, list)) else x


def _cached_checkpoint(cfg: dict[str, Any]) -> str | None:
    """Where an open_clip pretrained config's weights lie in the local caches (HF hub or ~/.cache/clip)."""
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return str(cfg["file"])
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
            hf_hub_download = None
        if hf_hub_download is not None:
            repo, filename = os.path.split(hub)
            candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            if filename.endswith((".bin", ".pth", ".pt")):
                candidates.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
            for name in candidates:
                try:
                    return hf_hub_download(repo_id=repo, filename=name, local_files_only=True)
                except Exception:
                    continue
    url = cfg.get("url", "")
    if url:
        target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if target.is_file():
            return str(target)
    return None


def check_model_name(name: str) -> None:
    """Refuse an unknown open_clip architecture at construction (``ViT-B-99``), with the closest name.

    A name with a config file shipped in open_clip is found without importing it (no torch); only an
    unknown name imports open_clip, whose runtime-added configs count too.
    """
    import importlib.util

    if name.startswith(("local-dir:", "hf-hub:")):
        return
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        raise WorkbenchError("clip: open_clip is not installed; pip install open_clip_torch")
    if any((Path(folder) / "model_configs" / f"{name}.json").is_file()
           for folder in spec.submodule_search_locations or []):
        return
    import difflib

    import open_clip

    if open_clip.get_model_config(name):
        return
    close = difflib.get_close_matches(name, open_clip.list_models(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise WorkbenchError(f"clip: unknown open_clip model {name!r}{hint}; see open_clip.list_models()")


def _config_depth(model_name: str, tower: str) -> int | None:
    """Number of blocks of a tower from open_clip's config, without building the model (None if unknown)."""
    import open_clip

    if model_name.startswith(("local-dir:", "hf-hub:")):
        return None
    cfg = open_clip.get_model_config(model_name)
    if not cfg:
        raise WorkbenchError(f"clip: unknown open_clip model {model_name!r}; see open_clip.list_models()")
    sub = cfg.get("vision_cfg" if tower == "image" else "text_cfg", {})
    layers = sub.get("layers")
    if isinstance(layers, int) and "timm_model_name" not in sub and "hf_model_name" not in sub:
        return layers
    if isinstance(layers, (list, tuple)) and tower == "image":
        return 4
    return None


def _image_blocks(visual: Any, model_name: str) -> tuple[list[Any], str]:
    transformer = getattr(visual, "transformer", None)
    if transformer is not None and hasattr(transformer, "resblocks"):
        return list(transformer.resblocks), "vit"
    if all(hasattr(visual, f"layer{i}") for i in range(1, 5)):
        return [getattr(visual, f"layer{i}") for i in range(1, 5)], "resnet"
    raise WorkbenchError(f"clip: the image tower of {model_name} ({type(visual).__name__}) has no transformer "
                         "blocks or ResNet stages this encoder knows how to tap")


def _text_blocks(model: Any, model_name: str) -> tuple[list[Any], bool, str]:
    text = getattr(model, "text", model)
    transformer = getattr(text, "transformer", None)
    if transformer is None or not hasattr(transformer, "resblocks"):
        raise WorkbenchError(f"clip: the text tower of {model_name} is not an open_clip text transformer; "
                             "use the hf-lm encoder for Hugging Face text towers")
    pool_type = getattr(text, "text_pool_type", None) or getattr(text, "pool_type", "argmax")
    return list(transformer.resblocks), bool(getattr(transformer, "batch_first", True)), str(pool_type)


def _text_pool_index(tokens: Any, pool_type: str, eos_id: int | None) -> Any:
    """Position of the token the text tower pools (the end-of-text token for OpenAI CLIP)."""
    import torch

    if pool_type == "first":
        return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
    if pool_type == "last":
        return torch.full((tokens.shape[0],), tokens.shape[1] - 1, dtype=torch.long, device=tokens.device)
    if pool_type == "eos" and eos_id is not None:
        return (tokens == eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


@contextlib.contextmanager
def _quiet_random_init(random: bool):
    """Random weights are what the user asked for (pretrained=None): drop open_clip's warning about it."""
    if not random:
        yield
        return

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    flt = _Filter()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


@hookimpl
def register_encoders(register: Any) -> None:
    register(
        "clip", ClipEncoder,
        description="open_clip image or text tower: every transformer block and the projected embedding",
        modalities=("image", "text"),
        citation="Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision; "
                 "Cherti et al. 2023 (OpenCLIP)",
    )
