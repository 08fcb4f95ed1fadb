"""Decoding heads (registration only; the estimator lives in :mod:`brain_workbench_plugins.decoder.heads`)."""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl


@hookimpl
def register_heads(register: Any) -> None:
    register("decoder", "brain_workbench_plugins.decoder.heads:DecoderHead",
             citation="Scotti et al. (2023) MindEye, NeurIPS (contrastive retrieval submodule)",
             description="Brain → embedding: ridge (alpha per dimension by CV) or a contrastive MLP "
                         "(InfoNCE + MSE); score = Pearson r per dimension; retrieval top-k")
