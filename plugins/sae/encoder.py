"""The ``sae`` encoder: SAE latents (and reconstructions) of one layer of any other registered encoder.

The base encoder is built through the registry by name (``brain_workbench.encoder(base, **base_options)``),
never by importing its plugin. Weights come from an SAELens folder (``path``), a checkpoint that
``workbench sae train`` wrote into a store (``checkpoint``), or, with neither, an untrained TopK SAE
with a fixed seed (a baseline, like random CLIP weights).

Latents are stored dense (float32, n × d_sae). Feature entries are dense matrices by contract and
the heads read them as such; zarr's default zstd codec compresses the zeros, so a TopK matrix with
32 of 4096 latents active takes about 1.5% of its dense size on disk, the size of a sparse
(index, value) encoding.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

from brain_workbench.sdk import EncoderBase, LayerInfo, Option, WorkbenchError, build_encoder, digest, resolve_layers

CODE_VERSION = "1"
OUTPUTS = ("latents", "reconstruction")

class SAEEncoder(EncoderBase):
    """A sparse autoencoder over one layer of a base encoder: layers ``latents`` and ``reconstruction``."""

    name = "sae"

    def __init__(
        self,
        base: Annotated[str, Option("registered encoder whose layer the SAE reads")] = "clip",
        base_options: Annotated[dict[str, Any] | str | None, Option(
            "options of the base encoder (a dict or JSON text)")] = None,
        layer: Annotated[str | float | None, Option(
            "base layer name or relative depth 0–1; default: the layer recorded with the SAE, else the "
            "last")] = None,
        path: Annotated[str | None, Option("SAELens folder (cfg.json + sae_weights.safetensors)")] = None,
        checkpoint: Annotated[str | None, Option(
            "store key of a trained SAE (sae/<name>, from `workbench sae train`)")] = None,
        store: Annotated[str | None, Option("store holding `checkpoint` (default: $WORKBENCH_STORE)")] = None,
        d_sae: Annotated[int | None, Option("latents of the untrained baseline SAE (default 8 × d_in)")] = None,
        k: Annotated[int, Option("active latents of the untrained baseline SAE")] = 32,
        seed: Annotated[int, Option("seed of the untrained baseline SAE")] = 0,
        device: Annotated[str, Option("where the SAE runs: cpu, cuda, mps or auto")] = "auto",
        train: Annotated[dict[str, Any] | str | None, Option(
            "training options (as `workbench sae train`: kind, d_sae, k, steps, ...) with which `fit_features` "
            "trains the `checkpoint` run on cached base features when the store holds none yet")] = None,
    ) -> None:
        if path and checkpoint:
            raise WorkbenchError("sae: give either path= (an SAELens folder) or checkpoint= (a store key), not both")
        if isinstance(base_options, str):
            try:
                base_options = json.loads(base_options) if base_options.strip() else {}
            except json.JSONDecodeError as exc:
                raise WorkbenchError(f"sae: base_options must be a dict or JSON object text: {exc}") from None
        if not isinstance(base_options or {}, dict):
            raise WorkbenchError(f"sae: base_options must be a dict, got {type(base_options).__name__}")
        if base == "sae":
            raise WorkbenchError("sae: the base encoder cannot itself be 'sae'")
        if isinstance(train, str):
            try:
                train = json.loads(train) if train.strip() else None
            except json.JSONDecodeError as exc:
                raise WorkbenchError(f"sae: train must be a dict or JSON object text: {exc}") from None
        if train is not None and not checkpoint:
            raise WorkbenchError("sae: train= needs checkpoint=<run name> to store the trained SAE under")
        self.train_options = dict(train) if train else None
        self.base_name = str(base)
        self.base_options = dict(base_options or {})
        self.base = build_encoder(self.base_name, **self.base_options)
        self.modality = self.base.modality
        self.layer_option = layer
        self.path, self.checkpoint, self.store_url = path, checkpoint, store
        self.random = {"d_sae": d_sae, "k": int(k), "seed": int(seed)}
        self.device_option = device
        self._sae: Any = None
        self._base_layer: str | None = None

    def __repr__(self) -> str:
        source = self.path or self.checkpoint or f"random(seed={self.random['seed']})"
        return f"SAEEncoder(base={self.base_name!r}, layer={self.layer_option!r}, sae={source!r})"

    # ---- loading -------------------------------------------------------------------------
    def _resolve_layer(self, recorded: str | None) -> str:
        available = self.base.layers()
        wanted = self.layer_option
        if wanted is None:
            names = {layer.name for layer in available}
            wanted = recorded if recorded in names else 1.0
        return resolve_layers(available, [wanted])[0]

    def load_model(self) -> None:
        from brain_workbench.sdk.torch import resolve_device
        from brain_workbench_plugins.sae.model import load_saelens

        info: dict[str, Any] = {}
        sae, recorded = None, None
        if self.path:
            sae = load_saelens(self.path)
            recorded = (sae.cfg.metadata.get("workbench") or {}).get("layer") or sae.cfg.metadata.get("hook_name")
        elif self.checkpoint:
            from brain_workbench.sdk.data import Store, open_store
            from brain_workbench_plugins.sae.train import load_checkpoint

            sae, info = load_checkpoint(Store(self.store_url) if self.store_url else open_store(), self.checkpoint)
            recorded = info.get("layer")
        self._base_layer = self._resolve_layer(recorded)
        if info.get("fingerprint") and info["fingerprint"] != self.base.fingerprint():
            warnings.warn(f"sae: checkpoint {info.get('checkpoint')} was trained on features of another encoder "
                          f"fingerprint than {self.base_name} with these options", stacklevel=2)
        self.device = resolve_device(self.device_option)
        self._sae = None if sae is None else sae.to(self.device)

    def _ensure_sae(self, d_in: int) -> Any:
        """The loaded SAE, or the untrained baseline built for inputs of width ``d_in`` on first use."""
        if self._sae is None:
            from brain_workbench_plugins.sae.model import random_sae

            r = self.random
            warnings.warn("sae: no path or checkpoint given, so the latents come from an untrained TopK SAE baseline "
                          f"(seed {r['seed']}, k {r['k']}); pass path=<SAELens folder> or checkpoint=sae/<name> for a "
                          "trained one", stacklevel=2)
            self._sae = random_sae(d_in, int(r["d_sae"] or 8 * d_in), r["k"], r["seed"]).to(self.device)
        return self._sae

    @property
    def base_layer(self) -> str:
        """The base encoder layer the SAE reads."""
        self.ensure_loaded()
        assert self._base_layer is not None
        return self._base_layer

    def fit_features(self, features_path: str) -> None:
        """Use the ``checkpoint`` run of the store, training it first (with ``train`` options) on the cached
        base-layer features at ``features_path`` when the store holds none; then :meth:`transform` reads it."""
        from brain_workbench.sdk.data import Store, open_store
        from brain_workbench.sdk.torch import resolve_device
        from brain_workbench_plugins.sae.train import TrainConfig, checkpoints, load_checkpoint, train_sae

        if not self.checkpoint:
            raise WorkbenchError("sae: fit_features needs checkpoint=<run name>")
        store = Store(self.store_url) if self.store_url else open_store()
        name = self.checkpoint.strip("/").removeprefix("sae/")
        if not checkpoints(store, name):
            if self.train_options is None:
                raise WorkbenchError(f"sae: store {store.url} holds no checkpoint {self.checkpoint!r} and no train "
                                     "options were given to train one")
            train_sae(store, features_path, TrainConfig(**self.train_options), name=name)
        sae, info = load_checkpoint(store, name)
        if self.train_options is not None and info.get("config") != TrainConfig(**self.train_options).identity():
            raise WorkbenchError(f"sae: checkpoint {self.checkpoint!r} was trained with other options than train=; "
                                 "give another checkpoint name")
        self.device = resolve_device(self.device_option)
        self._sae = sae.to(self.device)

    def transform(self, x: Any) -> Any:
        """SAE latents (float32 numpy, n × d_sae) of raw base-layer features ``x`` (n × d_in)."""
        import torch

        from brain_workbench.sdk.torch import to_numpy

        if self._sae is None:
            raise WorkbenchError("sae: no SAE loaded; call fit_features or give path=/checkpoint=")
        with torch.inference_mode():
            latents, _ = self._sae(torch.as_tensor(x, dtype=torch.float32, device=self.device))
        return to_numpy(latents)

    def decoder(self, d_in: int) -> Any:
        """The SAE's decoder rows (d_sae × d_in, float32 numpy) acting on raw base-layer features; ``d_in`` sizes the
        untrained baseline and is checked against a loaded SAE."""
        from brain_workbench.sdk.torch import to_numpy

        self.ensure_loaded()
        sae = self._ensure_sae(int(d_in))
        if sae.cfg.d_in != int(d_in):
            raise WorkbenchError(f"sae: the SAE reads {sae.cfg.d_in} features, not {d_in}")
        return to_numpy(sae.W_dec.detach())

    # ---- protocol ------------------------------------------------------------------------
    def list_layers(self) -> list[LayerInfo]:
        """``latents`` (depth 1) and ``reconstruction`` (the SAE's estimate of the base layer, depth 1)."""
        return [LayerInfo(name, 1.0) for name in OUTPUTS]

    def compute_fingerprint(self) -> str:
        """Base encoder fingerprint and layer, SAE weights digest and config, and code version."""
        from brain_workbench.sdk.torch import weights_digest

        weights: Any = {"untrained": self.random} if not (self.path or self.checkpoint) \
            else [self._sae.cfg.summary(), weights_digest(self._sae)]
        return digest("sae", CODE_VERSION, self.base_name, self.base.fingerprint(), self._base_layer, weights,
                      length=32)

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, Any]:
        """Run the base encoder on its layer, then the SAE; return latents and/or the reconstruction."""
        import torch

        from brain_workbench.sdk.torch import to_numpy

        self.check_layers(layers)
        self.ensure_loaded()
        x = self.base.encode(list(batch), [self.base_layer])[self.base_layer]
        sae = self._ensure_sae(int(x.shape[1]))
        if x.shape[1] != sae.cfg.d_in:
            raise WorkbenchError(f"sae: base layer {self.base_name}/{self.base_layer} has {x.shape[1]} features but "
                                 f"the SAE expects d_in={sae.cfg.d_in}; pick the layer it was trained on")
        with torch.inference_mode():
            latents, reconstruction = sae(torch.as_tensor(x, dtype=torch.float32, device=self.device))
        out = {"latents": latents, "reconstruction": reconstruction}
        return {layer: to_numpy(out[layer]) for layer in layers}

    def differentiable(self, layer: str) -> Any:
        """Float images (B, 3, H, W) in [0, 1] → SAE ``latents`` or ``reconstruction`` with gradients, through the
        base encoder's differentiable path (refused with a sentence when the base has none)."""
        from torch import nn

        from brain_workbench.sdk import differentiable_path

        self.check_layers([layer])
        self.ensure_loaded()
        base = differentiable_path(self.base, self.base_layer)
        encoder = self

        class SAEFeatures(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.base = base

            def forward(self, images: Any) -> Any:
                x = self.base(images)
                sae = encoder._ensure_sae(int(x.shape[1])).requires_grad_(False)
                if x.shape[1] != sae.cfg.d_in:
                    raise WorkbenchError(f"sae: base layer {encoder.base_name}/{encoder.base_layer} has {x.shape[1]} "
                                         f"features but the SAE expects d_in={sae.cfg.d_in}")
                latents, reconstruction = sae(x.to(encoder.device))
                return latents if layer == "latents" else reconstruction

        return SAEFeatures()
