"""Kandinsky 2.2 decoder: image embeddings (CLIP ViT-bigG/14, 1280) → images, text-free, with img2img.

The decoder UNet is conditioned on the image embedding alone (``image_embeds`` /
``negative_image_embeds``), so no prior and no text are needed. Without init images
``KandinskyV22Pipeline`` denoises from noise; with them ``KandinskyV22Img2ImgPipeline`` starts from
the MoVQ latents of the init images noised to ``strength``. Both share one set of loaded modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError
from brain_workbench_plugins.diffusion.base import COMMON_OPTIONS, DiffusionGenerator, file_digest, merge_options

OPTIONS = merge_options(
    COMMON_OPTIONS,
    {
        "strength": {"type": "float", "default": 0.75,
                     "help": "img2img: fraction of the steps run from the noised init image (1 = ignore it)"},
        "negative_embeds": {"type": "str", "default": "zeros",
                            "help": "unconditional image embedding for guidance: 'zeros', or a .npy file of one "
                                    "(1280,) row, e.g. the prior's zero-image embedding (KandinskyV22PriorPipeline."
                                    "get_zero_embed())"},
    },
    embedding_space="ViT-bigG-14/laion2b_s39b_b160k", guidance_scale=4.0, size=None, steps=50,
)


class KandinskyGenerator(DiffusionGenerator):
    """``kandinsky-2.2``: the Kandinsky 2.2 decoder (and its img2img variant) from a local folder."""

    name = "kandinsky-2.2"
    OPTIONS = OPTIONS
    release = "kandinsky-community/kandinsky-2-2-decoder"
    pipeline_classes = ("KandinskyV22Pipeline", "KandinskyV22Img2ImgPipeline")
    required_components = ("unet", "movq", "scheduler")
    supports_init = True
    supports_text = False
    PATH_OPTIONS = ("negative_embeds",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not 0.0 < self.options["strength"] <= 1.0:
            raise WorkbenchError(f"{self.name}: strength must be in (0, 1], got {self.options['strength']}")

    def _config_shapes(self) -> tuple[tuple[int, ...], None]:
        unet = self.read_config("unet")
        if unet.get("encoder_hid_dim_type") != "image_proj" or not unet.get("encoder_hid_dim"):
            raise WorkbenchError(f"{self.name}: the UNet in {self.root / 'unet'} is not conditioned on image "
                                 "embeddings (encoder_hid_dim_type 'image_proj'); use the Kandinsky 2.2 decoder")
        return (int(unet["encoder_hid_dim"]),), None

    def _scale(self) -> int:
        return 2 ** (len(self.read_config("movq")["block_out_channels"]) - 1)

    def native_size(self) -> int:
        return 512

    def _negative_path(self) -> Path | None:
        value = self.options["negative_embeds"]
        return None if value == "zeros" else Path(value).expanduser()

    def extra_digests(self) -> dict[str, str]:
        path = self._negative_path()
        if path is None:
            return {"negative_embeds": "zeros"}
        return {"negative_embeds": file_digest(path, "content") if path.is_file() else f"missing:{path}"}

    def _negative(self) -> np.ndarray:
        width = self.embedding_shape[0]
        path = self._negative_path()
        if path is None:
            return np.zeros((width,), np.float32)
        if not path.is_file():
            raise WorkbenchError(f"{self.name}: negative_embeds file {path} does not exist; save the unconditional "
                                 "embedding there with numpy.save, or use negative_embeds='zeros'")
        arr = np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
        if arr.shape != (width,):
            raise WorkbenchError(f"{self.name}: negative_embeds in {path} has {arr.size} values, the UNet takes {width}")
        return arr

    def _load_pipeline(self, dtype: Any) -> Any:
        from diffusers import KandinskyV22Img2ImgPipeline, KandinskyV22Pipeline

        scale = self._scale()
        if self.size % (scale * scale):
            raise WorkbenchError(f"{self.name}: size={self.size} must be a multiple of {scale * scale} "
                                 f"(the MoVQ scale {scale} squared) for this pipeline")
        self.negative = self._negative()
        img2img = KandinskyV22Img2ImgPipeline.from_pretrained(str(self.root), **self.load_kwargs(dtype))
        self.text2img = KandinskyV22Pipeline(**img2img.components)
        self.text2img.set_progress_bar_config(disable=True)
        return img2img

    def _check_loaded(self, pipe: Any) -> None:
        got = pipe.unet.encoder_hid_proj.image_embeds.in_features
        if got != self.embedding_shape[0]:
            raise WorkbenchError(f"{self.name}: the loaded UNet takes embeddings of width {got}, its config says "
                                 f"{self.embedding_shape[0]}; the folder {self.root} is inconsistent")

    def _generate_batch(self, embeds: np.ndarray, inits: list[Any] | None, texts: np.ndarray | None,
                        seeds: Sequence[int]) -> Any:
        b = len(seeds)
        common = dict(image_embeds=self.tensor(embeds), negative_image_embeds=self.tensor(np.tile(self.negative, (b, 1))),
                      height=self.size, width=self.size, num_inference_steps=self.options["steps"],
                      guidance_scale=self.options["guidance_scale"], generator=self.generators(seeds), output_type="np",
                      **self.step_callback())
        if inits is None:
            return self.text2img(**common).images
        return self.pipe(image=inits, strength=self.options["strength"], **common).images
