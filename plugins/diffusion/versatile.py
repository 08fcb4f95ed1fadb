"""Versatile Diffusion dual-guided: decoded CLIP ViT-L/14 image tokens (257 × 768) and text tokens (77 × 768) → images.

This is the Brain-Diffuser recipe (Ozcelik & VanRullen 2023; MindEye1 used the image-variation
half): fMRI is decoded into the normalised, projected token embeddings of CLIP's vision and text
towers, and Versatile Diffusion's dual-guided UNet mixes the two conditions (``mix``, diffusers'
``text_to_image_strength``) while denoising img2img from the low-level reconstruction (``strength``).
``VersatileDiffusionDualGuidedPipeline.__call__`` only takes images and prompts, so the denoising loop
here feeds the decoded tokens to the pipeline's own UNet, scheduler and VAE, with the unconditional
tokens computed by the pipeline's own encoders exactly as its ``__call__`` does (empty prompt, grey
image). Without text embeddings only the image condition is used (``mix`` is 0 for that call). See
:mod:`brain_workbench_plugins.diffusion.compat` for the two compatibility shims this backend needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError
from brain_workbench_plugins.diffusion.base import COMMON_OPTIONS, DiffusionGenerator, merge_options

VD_IMAGE_TOKENS = 257  # the dual-guided pipeline hard-codes this condition length

OPTIONS = merge_options(
    COMMON_OPTIONS,
    {
        "strength": {"type": "float", "default": 0.75,
                     "help": "img2img: fraction of the steps run from the noised init image (Brain-Diffuser 0.75)"},
        "mix": {"type": "float", "default": 0.4,
                "help": "weight of the text condition against the image condition (text_to_image_strength; "
                        "Brain-Diffuser 0.4); 0 when no text embeddings are given"},
    },
    embedding_space="ViT-L-14/openai", guidance_scale=7.5, steps=50,
)


class VersatileGenerator(DiffusionGenerator):
    """``versatile-diffusion``: dual-guided (image + text tokens) generation, img2img from an init image."""

    name = "versatile-diffusion"
    OPTIONS = OPTIONS
    release = "shi-labs/versatile-diffusion"
    pipeline_classes = ("VersatileDiffusionPipeline", "VersatileDiffusionDualGuidedPipeline")
    required_components = ("image_unet", "vae", "text_encoder", "image_encoder", "tokenizer",
                           "image_feature_extractor", "scheduler")
    supports_init = True
    supports_text = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not 0.0 < self.options["strength"] <= 1.0:
            raise WorkbenchError(f"{self.name}: strength must be in (0, 1], got {self.options['strength']}")
        if not 0.0 <= self.options["mix"] <= 1.0:
            raise WorkbenchError(f"{self.name}: mix must be in [0, 1], got {self.options['mix']}")
        self._uncond: dict[int, tuple[Any, Any]] = {}

    def _config_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        vision, text = self.read_config("image_encoder"), self.read_config("text_encoder")
        tokens = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2 + 1
        if tokens != VD_IMAGE_TOKENS:
            raise WorkbenchError(f"{self.name}: the image encoder in {self.root} yields {tokens} tokens but the "
                                 f"dual-guided pipeline assumes {VD_IMAGE_TOKENS}; use the Versatile Diffusion release")
        width = int(vision["projection_dim"])
        cross = int(self.read_config("image_unet")["cross_attention_dim"])
        if cross != width or int(text["projection_dim"]) != width:
            raise WorkbenchError(f"{self.name}: image tokens ({width}), text tokens ({text['projection_dim']}) and the "
                                 f"UNet's cross-attention ({cross}) disagree in {self.root}")
        return (VD_IMAGE_TOKENS, width), (int(text["max_position_embeddings"]), width)

    def native_size(self) -> int:
        unet, vae = self.read_config("image_unet"), self.read_config("vae")
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)

    def _load_pipeline(self, dtype: Any) -> Any:
        from brain_workbench_plugins.diffusion.compat import load_versatile, patch_dual_transformers

        pipe = load_versatile(self.root, dtype, self.options["variant"])
        pipe.remove_unused_weights()
        self.patched = patch_dual_transformers(pipe.image_unet)
        return pipe

    def _check_loaded(self, pipe: Any) -> None:
        from diffusers.models.transformers.dual_transformer_2d import DualTransformer2DModel

        if not any(isinstance(m, DualTransformer2DModel) for m in pipe.image_unet.modules()):
            raise WorkbenchError(f"{self.name}: the image UNet in {self.root} has no dual transformers and the folder "
                                 "has no text_unet to build them from; use the full Versatile Diffusion release")

    def _unconditional(self, b: int) -> tuple[Any, Any]:
        """Empty-prompt text tokens and grey-image tokens, computed by the pipeline's encoders as its __call__ does."""
        if b not in self._uncond:
            import torch

            with torch.inference_mode():
                text = self.pipe._encode_text_prompt([""] * b, self.device, 1, False)
                grey = [np.zeros((512, 512, 3)) + 0.5] * b
                image = self.pipe._encode_image_prompt(grey, self.device, 1, False)
            self._uncond[b] = (text, image)
        return self._uncond[b]

    def _generate_batch(self, embeds: np.ndarray, inits: list[Any] | None, texts: np.ndarray | None,
                        seeds: Sequence[int]) -> Any:
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe, b = self.pipe, len(seeds)
        steps, guidance = self.options["steps"], self.options["guidance_scale"]
        generators = self.generators(seeds)
        unet_dtype = pipe.image_unet.dtype
        with torch.inference_mode():
            uncond_text, uncond_image = self._unconditional(b)
            text = uncond_text if texts is None else self.tensor(texts).to(unet_dtype)
            cond = torch.cat([text, self.tensor(embeds).to(unet_dtype)], dim=1)
            context = torch.cat([torch.cat([uncond_text, uncond_image], dim=1), cond]) if guidance > 1.0 else cond
            pipe.set_transformer_params(self.options["mix"] if texts is not None else 0.0, ("text", "image"))

            pipe.scheduler.set_timesteps(steps, device=self.device)
            timesteps = pipe.scheduler.timesteps
            shape_args = (b, pipe.image_unet.config.in_channels, self.size, self.size, unet_dtype, self.device)
            if inits is None:
                latents = pipe.prepare_latents(*shape_args, generators)
            else:
                t_start = steps - min(int(steps * self.options["strength"]), steps)
                order = getattr(pipe.scheduler, "order", 1)
                timesteps = timesteps[t_start * order:]
                if hasattr(pipe.scheduler, "set_begin_index"):
                    pipe.scheduler.set_begin_index(t_start * order)
                pixels = pipe.image_processor.preprocess(inits, height=self.size, width=self.size)
                pixels = pixels.to(device=self.device, dtype=pipe.vae.dtype)
                start = torch.cat([pipe.vae.encode(pixels[i:i + 1]).latent_dist.sample(generators[i])
                                   for i in range(b)]) * pipe.vae.config.scaling_factor
                noise = randn_tensor(start.shape, generator=generators, device=self.device, dtype=unet_dtype)
                latents = pipe.scheduler.add_noise(start.to(unet_dtype), noise, timesteps[:1].repeat(b))
            extra = pipe.prepare_extra_step_kwargs(generators, 0.0)
            for t in timesteps:
                model_input = torch.cat([latents] * 2) if guidance > 1.0 else latents
                model_input = pipe.scheduler.scale_model_input(model_input, t)
                noise_pred = pipe.image_unet(model_input, t, encoder_hidden_states=context).sample
                if guidance > 1.0:
                    uncond, cond_pred = noise_pred.chunk(2)
                    noise_pred = uncond + guidance * (cond_pred - uncond)
                latents = pipe.scheduler.step(noise_pred, t, latents, **extra).prev_sample
                if self._on_step is not None:
                    self._on_step(1)
            image = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor, return_dict=False)[0]
            return pipe.image_processor.postprocess(image, output_type="np")

    def _embed_images(self, images: np.ndarray) -> np.ndarray:
        """Normalised, projected 257-token CLIP embeddings of images (the pipeline's own image encoder), flattened."""
        import torch
        from PIL import Image

        pipe = self.load()
        with torch.inference_mode():
            tokens = pipe._encode_image_prompt([Image.fromarray(a) for a in images], self.device, 1, False)
        return tokens.float().cpu().numpy().reshape(len(images), -1)
