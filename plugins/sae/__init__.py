"""The ``sae`` plugin: SAE latents over any encoder layer, and ``workbench sae`` to train SAEs.

It wraps other encoders through the registry only. Importing it is cheap: torch loads when an SAE
is first built or trained.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl
from brain_workbench_plugins.sae.encoder import SAEEncoder

__all__ = ["SAEEncoder", "register_commands", "register_encoders"]


@hookimpl
def register_encoders(register: Any) -> None:
    register(
        "sae", SAEEncoder,
        description="sparse-autoencoder latents over a layer of any registered encoder (SAELens folders, "
                    "store checkpoints, or an untrained TopK baseline)",
        modalities=("image", "text"),
        citation="Gao et al. 2024, Scaling and evaluating sparse autoencoders; Bussmann et al. 2024, BatchTopK "
                 "Sparse Autoencoders; Bussmann et al. 2025, Learning Multi-Level Features with Matryoshka SAEs",
    )


@hookimpl
def register_commands(app: Any) -> None:
    from brain_workbench_plugins.sae.cli import sae_app

    app.add_typer(sae_app, name="sae")
