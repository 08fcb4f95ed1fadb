"""Stable unCLIP (SD 2.1 unCLIP): noise-augmented CLIP ViT-H/14 image embeddings (1024) → images.

``StableUnCLIPImg2ImgPipeline`` is given the decoded embeddings as ``image_embeds`` and noises them by
``noise_level`` before they condition the UNet. Its "img2img" is image variation: the UNet starts from
noise, never from VAE latents of an image, so this backend takes no init images. Two pitfalls of the
pipeline are handled here: it reads the dtype of its ``image_encoder`` even when ``image_embeds`` are
given (a folder without one is refused at load), and with B embeddings it needs ``prompt=[""] * B``
(with the default single prompt the batch sizes disagree inside the UNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError
from brain_workbench_plugins.diffusion.base import COMMON_OPTIONS, DiffusionGenerator, merge_options

OPTIONS = merge_options(
    COMMON_OPTIONS,
    {"noise_level": {"type": "int", "default": 0,
                     "help": "noise added to the image embedding (0 … image_noising_scheduler timesteps − 1)"}},
    embedding_space="ViT-H-14/laion2b_s32b_b79k", guidance_scale=10.0, steps=20,
)


class UnClipGenerator(DiffusionGenerator):
    """``stable-unclip``: Stable unCLIP image variation from decoded image embeddings (and optional text tokens)."""

    name = "stable-unclip"
    OPTIONS = OPTIONS
    release = "stabilityai/stable-diffusion-2-1-unclip"
    pipeline_classes = ("StableUnCLIPImg2ImgPipeline",)
    required_components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "image_normalizer",
                           "image_noising_scheduler", "image_encoder", "feature_extractor")
    supports_init = False
    supports_text = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["noise_level"] < 0:
            raise WorkbenchError(f"{self.name}: noise_level must be non-negative, got {self.options['noise_level']}")

    @property
    def root(self) -> Any:
        root = super().root
        if not (root / "image_encoder").is_dir():
            raise WorkbenchError(
                f"{self.name}: {root} has no image_encoder folder; StableUnCLIPImg2ImgPipeline reads the image "
                "encoder's dtype even when image embeddings are given, so copy image_encoder/ and "
                f"feature_extractor/ of {self.release} into it")
        return root

    def _config_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        width = int(self.read_config("image_normalizer")["embedding_dim"])
        projection = self.read_config("unet").get("projection_class_embeddings_input_dim")
        if projection != 2 * width:
            raise WorkbenchError(f"{self.name}: the UNet's class embedding takes {projection} values, not twice the "
                                 f"image normalizer's width {width}; the folder {self.root} is not a Stable unCLIP pipeline")
        steps = int(self.read_config("image_noising_scheduler", "scheduler_config.json").get("num_train_timesteps", 1000))
        if self.options["noise_level"] >= steps:
            raise WorkbenchError(f"{self.name}: noise_level must be below {steps}, got {self.options['noise_level']}")
        text = self.read_config("text_encoder")
        return (width,), (int(text["max_position_embeddings"]), int(text["hidden_size"]))

    def native_size(self) -> int:
        unet, vae = self.read_config("unet"), self.read_config("vae")
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)

    def _load_pipeline(self, dtype: Any) -> Any:
        from diffusers import StableUnCLIPImg2ImgPipeline

        return StableUnCLIPImg2ImgPipeline.from_pretrained(str(self.root), **self.load_kwargs(dtype))

    def _check_loaded(self, pipe: Any) -> None:
        got = pipe.image_encoder.config.projection_dim
        if got != self.embedding_shape[0]:
            raise WorkbenchError(f"{self.name}: the image encoder projects to width {got} but the pipeline's normalizer "
                                 f"expects {self.embedding_shape[0]}; the folder {self.root} is inconsistent")

    def _generate_batch(self, embeds: np.ndarray, inits: list[Any] | None, texts: np.ndarray | None,
                        seeds: Sequence[int]) -> Any:
        b = len(seeds)
        text = {"prompt": [""] * b} if texts is None else {"prompt_embeds": self.tensor(texts)}
        return self.pipe(image_embeds=self.tensor(embeds), noise_level=self.options["noise_level"],
                         height=self.size, width=self.size, num_inference_steps=self.options["steps"],
                         guidance_scale=self.options["guidance_scale"], generator=self.generators(seeds),
                         output_type="np", **text, **self.legacy_step_callback()).images

    def _embed_images(self, images: np.ndarray) -> np.ndarray:
        import torch

        pipe = self.load()
        with torch.inference_mode():
            pixels = pipe.feature_extractor(images=list(images), return_tensors="pt").pixel_values
            pixels = pixels.to(device=self.device, dtype=pipe.image_encoder.dtype)
            return pipe.image_encoder(pixels).image_embeds.float().cpu().numpy()
