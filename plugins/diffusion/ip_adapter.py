"""SD 1.5 / SDXL with an IP-Adapter: decoded CLIP image embeddings → images, optionally img2img.

The pipeline folder is a Stable Diffusion or SDXL release; the IP-Adapter is one weight file of the
basic kind (``ip-adapter_sd15``: ViT-H/14, 1024; ``ip-adapter_sdxl``: ViT-bigG/14, 1280;
``ip-adapter_sdxl_vit-h``: ViT-H/14), loaded with ``load_ip_adapter(..., image_encoder_folder=None)``
since the embeddings are given. Under classifier-free guidance diffusers expects every
``ip_adapter_image_embeds`` tensor to carry the negative half first (it splits it with ``chunk(2)``
and, given only the positive rows, silently pairs the wrong rows); this backend always builds
``[zeros, embeds]``, the unconditional embedding of the original IP-Adapter. The text prompt is empty
unless text token embeddings are given (SD only). The safety checker is not loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError
from brain_workbench_plugins.diffusion.base import (
    COMMON_OPTIONS,
    DiffusionGenerator,
    dtype_kwarg,
    file_digest,
    folder_digest,
    merge_options,
)

OPTIONS = merge_options(
    COMMON_OPTIONS,
    {
        "ip_adapter": {"type": "str", "default": None,
                       "help": "IP-Adapter weight file (.safetensors or .bin), e.g. h94/IP-Adapter "
                               "models/ip-adapter_sd15.safetensors"},
        "ip_adapter_scale": {"type": "float", "default": 1.0, "help": "weight of the image tokens in cross-attention"},
        "image_encoder": {"type": "str", "default": None,
                          "help": "optional CLIPVisionModelWithProjection folder (e.g. h94/IP-Adapter models/"
                                  "image_encoder) used only to rank best_of candidates with rank_with=pipeline"},
        "strength": {"type": "float", "default": 0.75,
                     "help": "img2img: fraction of the steps run from the noised init image (1 = ignore it)"},
    },
    embedding_space="ViT-H-14/laion2b_s32b_b79k", guidance_scale=7.5, steps=50,
)

SD_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
SDXL_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")


class IPAdapterGenerator(DiffusionGenerator):
    """``ip-adapter``: Stable Diffusion 1.5 or SDXL img2img / text-to-image steered by an IP-Adapter."""

    name = "ip-adapter"
    OPTIONS = OPTIONS
    release = "a Stable Diffusion 1.5 or SDXL release (e.g. stable-diffusion-v1-5/stable-diffusion-v1-5)"
    pipeline_classes = SD_CLASSES + SDXL_CLASSES
    required_components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    supports_init = True
    supports_text = True
    PATH_OPTIONS = ("ip_adapter", "image_encoder")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not 0.0 < self.options["strength"] <= 1.0:
            raise WorkbenchError(f"{self.name}: strength must be in (0, 1], got {self.options['strength']}")

    @property
    def adapter_file(self) -> Path:
        value = self.options["ip_adapter"]
        if not value:
            raise WorkbenchError(f"{self.name}: no IP-Adapter weights; download the file once (e.g. `hf download "
                                 "h94/IP-Adapter models/ip-adapter_sd15.safetensors --local-dir DIR`) and pass "
                                 "ip_adapter=DIR/models/ip-adapter_sd15.safetensors")
        path = Path(value).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"{self.name}: IP-Adapter weight file {path} does not exist; put the .safetensors "
                                 "or .bin file of a basic IP-Adapter there (ip-adapter_sd15, ip-adapter_sdxl, …)")
        return path

    @property
    def is_xl(self) -> bool:
        return self.model_index().get("_class_name") in SDXL_CLASSES

    def _adapter_shapes(self) -> dict[str, tuple[int, ...]]:
        path = self.adapter_file
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise WorkbenchError(f"{self.name}: cannot read IP-Adapter weights {path}: {exc}") from None
        return {f"{group}.{k}": tuple(v.shape) for group, part in state.items() if isinstance(part, dict)
                for k, v in part.items()}

    def _config_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        shapes = self._adapter_shapes()
        proj = shapes.get("image_proj.proj.weight")
        if proj is None or "image_proj.norm.weight" not in shapes:
            kind = "Plus/FaceID (token) " if any(k.startswith("image_proj.") for k in shapes) else ""
            raise WorkbenchError(f"{self.name}: {self.adapter_file} is not a basic {kind}IP-Adapter with a pooled "
                                 "image projection (image_proj.proj / image_proj.norm); use ip-adapter_sd15, "
                                 "ip-adapter_sdxl or ip-adapter_sdxl_vit-h")
        cross = int(self.read_config("unet")["cross_attention_dim"])
        if proj[0] != 4 * cross:
            raise WorkbenchError(f"{self.name}: the IP-Adapter projects to {proj[0] // 4}-wide tokens but the UNet in "
                                 f"{self.root} cross-attends to width {cross}; pair the adapter with its base model")
        text = None
        if not self.is_xl:
            config = self.read_config("text_encoder")
            text = (int(config["max_position_embeddings"]), int(config["hidden_size"]))
        return (int(proj[1]),), text

    def native_size(self) -> int:
        unet, vae = self.read_config("unet"), self.read_config("vae")
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)

    def extra_digests(self) -> dict[str, str]:
        out = {"ip_adapter": file_digest(self.adapter_file, self.options["digest"])}
        if self.options["image_encoder"] and self.options["best_of"] > 1 and self.options["rank_with"] == "pipeline":
            out["image_encoder"] = folder_digest(Path(self.options["image_encoder"]).expanduser(), self.options["digest"])
        return out

    def _load_pipeline(self, dtype: Any) -> Any:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

        kwargs = self.load_kwargs(dtype)
        if "safety_checker" in self.model_index():
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        pipe = AutoPipelineForImage2Image.from_pretrained(str(self.root), **kwargs)
        adapter = self.adapter_file
        pipe.load_ip_adapter(str(adapter.parent), subfolder="", weight_name=adapter.name,
                             image_encoder_folder=None, local_files_only=True)
        pipe.set_ip_adapter_scale(self.options["ip_adapter_scale"])
        self.text2img = AutoPipelineForText2Image.from_pipe(pipe)
        self.text2img.set_progress_bar_config(disable=True)
        return pipe

    def _check_loaded(self, pipe: Any) -> None:
        layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
        got = layer.image_embeds.in_features
        if got != self.embedding_shape[0]:
            raise WorkbenchError(f"{self.name}: the loaded IP-Adapter takes width {got}, expected "
                                 f"{self.embedding_shape[0]}")

    def _ip_embeds(self, embeds: np.ndarray) -> list[Any]:
        """The one-adapter list diffusers wants: (b, 1, d), with zero rows first under guidance (when the
        pipeline's ``do_classifier_free_guidance`` holds: guidance > 1 and no guidance-embedding UNet)."""
        import torch

        x = self.tensor(embeds)[:, None, :]
        if self.options["guidance_scale"] > 1.0 and self.pipe.unet.config.get("time_cond_proj_dim") is None:
            x = torch.cat([torch.zeros_like(x), x])
        return [x]

    def _generate_batch(self, embeds: np.ndarray, inits: list[Any] | None, texts: np.ndarray | None,
                        seeds: Sequence[int]) -> Any:
        b = len(seeds)
        text = {"prompt": [""] * b} if texts is None else {"prompt_embeds": self.tensor(texts)}
        common = dict(ip_adapter_image_embeds=self._ip_embeds(embeds), num_inference_steps=self.options["steps"],
                      guidance_scale=self.options["guidance_scale"], generator=self.generators(seeds),
                      output_type="np", **text, **self.step_callback())
        if inits is None:
            return self.text2img(height=self.size, width=self.size, **common).images
        return self.pipe(image=inits, strength=self.options["strength"], **common).images

    def _embed_images(self, images: np.ndarray) -> np.ndarray:
        import torch

        if getattr(self, "_image_encoder", None) is None:
            folder = self.options["image_encoder"]
            if not folder:
                return super()._embed_images(images)
            path = Path(folder).expanduser()
            if not (path / "config.json").is_file():
                raise WorkbenchError(f"{self.name}: image_encoder folder {path} has no config.json; put the "
                                     "CLIPVisionModelWithProjection the adapter was trained with there")
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

            encoder = CLIPVisionModelWithProjection.from_pretrained(
                str(path), local_files_only=True, **dtype_kwarg("transformers", self.torch_dtype()))
            encoder = encoder.to(self.device).eval()
            size = encoder.config.image_size
            self._image_encoder = (CLIPImageProcessor(size=size, crop_size=size), encoder)
        processor, encoder = self._image_encoder
        with torch.inference_mode():
            pixels = processor(images=list(images), return_tensors="pt").pixel_values
            return encoder(pixels.to(self.device, encoder.dtype)).image_embeds.float().cpu().numpy()
