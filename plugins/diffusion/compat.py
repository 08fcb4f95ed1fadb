"""Compatibility shims for Versatile Diffusion in the installed diffusers, each narrow and switched on only when needed.

1. ``DualTransformer2DModel.forward()`` takes no ``encoder_attention_mask``, yet the UNet's
   cross-attention blocks (``CrossAttnDownBlock2D`` and friends) always pass that keyword, so every
   dual-guided denoising step raises ``TypeError`` (open upstream: huggingface/diffusers#13651, fix
   proposed in #13711). :func:`patch_dual_transformers` switches the dual transformers of one loaded
   UNet to a subclass whose ``forward`` accepts the keyword and hands each wrapped
   ``Transformer2DModel`` its own slice of the mask (the text tokens' columns to the text transformer,
   the image tokens' columns to the image transformer). Nothing in site-packages is changed, no other
   model is touched, and the shim is skipped when diffusers' own ``forward`` accepts the keyword.
2. ``model_index.json`` of a Versatile Diffusion release names ``text_unet`` as a
   ``UNetFlatConditionModel`` that diffusers no longer exports from any module ``from_pretrained``
   resolves (it lives under ``diffusers.pipelines.deprecated``), so ``from_pretrained`` of the folder
   fails even when the component is passed in. :func:`load_versatile` loads every component from its
   subfolder with that component's own ``from_pretrained`` (local files only) and builds
   ``VersatileDiffusionDualGuidedPipeline`` from them, which then merges the image and text UNets.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

from brain_workbench_plugins.diffusion.base import dtype_kwarg


def dual_transformer_needs_shim() -> bool:
    """True while diffusers' ``DualTransformer2DModel.forward`` lacks the ``encoder_attention_mask`` keyword."""
    from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

    return "encoder_attention_mask" not in inspect.signature(DualTransformer2DModel.forward).parameters


@functools.cache
def masked_dual_transformer_class() -> type:
    """``DualTransformer2DModel`` with a ``forward`` that accepts and routes ``encoder_attention_mask``."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput
    from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

    class MaskedDualTransformer2DModel(DualTransformer2DModel):
        """Same weights and mixing as the parent; the masks reach the wrapped transformers (workbench shim)."""

        def forward(self, hidden_states: Any, encoder_hidden_states: Any, timestep: Any = None,
                    attention_mask: Any = None, cross_attention_kwargs: Any = None,
                    encoder_attention_mask: Any = None, return_dict: bool = True) -> Any:
            input_states = hidden_states
            encoded_states = []
            start = 0
            for i in range(2):
                stop = start + self.condition_lengths[i]
                mask = None if encoder_attention_mask is None else encoder_attention_mask[..., start:stop]
                encoded = self.transformers[self.transformer_index_for_condition[i]](
                    input_states, encoder_hidden_states=encoder_hidden_states[:, start:stop], timestep=timestep,
                    attention_mask=attention_mask, encoder_attention_mask=mask,
                    cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]
                encoded_states.append(encoded - input_states)
                start = stop
            output = encoded_states[0] * self.mix_ratio + encoded_states[1] * (1 - self.mix_ratio) + input_states
            return Transformer2DModelOutput(sample=output) if return_dict else (output,)

    return MaskedDualTransformer2DModel


def patch_dual_transformers(unet: Any) -> int:
    """Switch every ``DualTransformer2DModel`` inside ``unet`` to the mask-aware subclass; returns how many.

    Returns 0 (and changes nothing) when the installed diffusers no longer needs the shim.
    """
    from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

    if not dual_transformer_needs_shim():
        return 0
    shim = masked_dual_transformer_class()
    count = 0
    for module in unet.modules():
        if isinstance(module, DualTransformer2DModel) and type(module) is not shim:
            module.__class__ = shim
            count += 1
    return count


def _component_class(library: str, name: str) -> Any:
    import diffusers
    import transformers

    if name == "UNetFlatConditionModel":
        from diffusers.pipelines.deprecated.versatile_diffusion.modeling_text_unet import UNetFlatConditionModel

        return UNetFlatConditionModel
    module = {"diffusers": diffusers, "transformers": transformers}.get(library)
    cls = getattr(module, name, None) if module is not None else None
    if cls is None:
        raise ValueError(f"model_index.json names component class {library}.{name}, which is not installed")
    return cls


def load_versatile(root: Path, dtype: Any, variant: str | None = None) -> Any:
    """``VersatileDiffusionDualGuidedPipeline`` from a local folder (universal or dual-guided layout), local files only."""
    from diffusers import VersatileDiffusionDualGuidedPipeline

    index = json.loads((root / "model_index.json").read_text())
    wanted = inspect.signature(VersatileDiffusionDualGuidedPipeline.__init__).parameters
    components: dict[str, Any] = {}
    for name in wanted:
        if name == "self":
            continue
        spec = index.get(name)
        if not isinstance(spec, list) or spec[0] is None or not (root / name).is_dir():
            components[name] = None
            continue
        cls = _component_class(*spec)
        kwargs: dict[str, Any] = {"subfolder": name, "local_files_only": True}
        if hasattr(cls, "dtype"):  # a torch model (diffusers ModelMixin or transformers PreTrainedModel)
            if variant:
                kwargs["variant"] = variant
            kwargs.update(dtype_kwarg("transformers" if spec[0] == "transformers" else "diffusers", dtype))
            components[name] = cls.from_pretrained(str(root), **kwargs)
        else:
            components[name] = cls.from_pretrained(str(root), **kwargs)
    missing = [k for k, v in components.items() if v is None and k != "text_unet"]
    if missing:
        raise ValueError(f"the folder lacks the component(s) {', '.join(missing)}")
    return VersatileDiffusionDualGuidedPipeline(**components)
