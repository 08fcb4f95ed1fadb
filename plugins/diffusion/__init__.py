"""The ``diffusion`` plugin: generators that turn brain-decoded embeddings into images with diffusers pipelines.

Every backend loads a pipeline from a local folder only (``from_pretrained(path, local_files_only=True)``)
and shares :class:`~brain_workbench_plugins.diffusion.base.DiffusionGenerator` for option checks, width
checks against the named embedding space, batching, per-row seeds, best-of-N selection and the
fingerprint. A third party adds a backend by subclassing it and registering the class under
``register_generators``, as below. Importing this package does not import torch or diffusers.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl
from brain_workbench_plugins.diffusion.base import DiffusionGenerator, options_signature
from brain_workbench_plugins.diffusion.ip_adapter import IPAdapterGenerator
from brain_workbench_plugins.diffusion.kandinsky import KandinskyGenerator
from brain_workbench_plugins.diffusion.unclip import UnClipGenerator
from brain_workbench_plugins.diffusion.versatile import VersatileGenerator

__all__ = ["DiffusionGenerator", "IPAdapterGenerator", "KandinskyGenerator", "UnClipGenerator", "VersatileGenerator",
           "register_generators"]

BACKENDS = {
    KandinskyGenerator: dict(
        description="Kandinsky 2.2 decoder: CLIP ViT-bigG/14 image embeddings (1280) → images, text-free; img2img "
                    "from init images (strength)",
        citation="Razzhigaev et al. 2023, Kandinsky: an Improved Text-to-Image Synthesis with Image Prior and Latent "
                 "Diffusion"),
    UnClipGenerator: dict(
        description="Stable unCLIP (SD 2.1 unCLIP): noise-augmented CLIP ViT-H/14 image embeddings (1024) → images; "
                    "optional text tokens; no init images",
        citation="Ramesh et al. 2022, Hierarchical Text-Conditional Image Generation with CLIP Latents; Stability AI "
                 "2023, stable-diffusion-2-1-unclip"),
    IPAdapterGenerator: dict(
        description="SD 1.5 / SDXL with a basic IP-Adapter: CLIP image embeddings (ViT-H/14 1024 or ViT-bigG/14 1280) "
                    "→ images; img2img from init images (strength); optional text tokens (SD 1.5)",
        citation="Ye et al. 2023, IP-Adapter: Text Compatible Image Prompt Adapter for Text-to-Image Diffusion Models"),
    VersatileGenerator: dict(
        description="Versatile Diffusion dual-guided: CLIP ViT-L/14 image tokens (257×768) + text tokens (77×768) → "
                    "images, img2img from init images (the Brain-Diffuser recipe)",
        citation="Xu et al. 2023, Versatile Diffusion; Ozcelik & VanRullen 2023, Natural scene reconstruction from "
                 "fMRI signals using generative latent diffusion (Brain-Diffuser)"),
}


@hookimpl
def register_generators(register: Any) -> None:
    for cls, card in BACKENDS.items():
        cls.__signature__ = options_signature(cls.OPTIONS)
        register(cls.name, cls, **card)
