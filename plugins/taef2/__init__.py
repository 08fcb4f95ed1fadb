"""The ``taef2`` codec plugin: the Tiny AutoEncoder for FLUX.2 (weights shipped, MIT licence beside them).

Registration imports neither torch nor the network; ``codec.py`` loads them on first use.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl
from brain_workbench_plugins.taef2.codec import Taef2Codec

__all__ = ["Taef2Codec"]


@hookimpl
def register_codecs(register: Any) -> None:
    register(
        "taef2", Taef2Codec,
        description="TAEF2 tiny autoencoder (FLUX.2 latent space, weights shipped): RGB resized to image_size "
                    "(bilinear, antialiased) ↔ 32 × (S/8)² float32 latents, channel-major",
        citation="Ollin Boer Bohan, TAESD / TAEF2: tiny autoencoders for diffusion latents "
                 "(https://github.com/madebyollin/taesd, MIT licence)",
    )
