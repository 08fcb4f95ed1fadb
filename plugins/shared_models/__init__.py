"""The ``shared-models`` plugin: models fitted across subjects that adapt to a new subject cheaply.

Registered heads (each also works scikit-learn style on one subject, so the per-cell sweep can run
them): ``shared-decoder`` (per-subject linear maps into a shared latent, one shared contrastive head;
MindEye2), ``shared-encoder`` (shared feature transform, per-unit embeddings; the Universal Brain
Encoder), ``aligned-decoder`` (Procrustes or hyperalignment, then an ordinary head). Their
multi-subject API is ``fit({subject: (A, B[, stimulus_ids])})``, ``predict(subject, A)`` and
``adapt(subject, A, B, stimulus_ids=None)``; :func:`adaptation_curve` runs the new-subject experiment.
Importing this package is cheap: torch and scikit-learn load when a model is built.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl


def adaptation_curve(*args: Any, **kwargs: Any) -> Any:
    """See :func:`brain_workbench_plugins.shared_models.adaptation.adaptation_curve`."""
    from brain_workbench_plugins.shared_models.adaptation import adaptation_curve as run

    return run(*args, **kwargs)


@hookimpl
def register_heads(register: Any) -> None:
    register("shared-decoder", "brain_workbench_plugins.shared_models.decoder:SharedDecoder",
             description="Brain → embedding across subjects: per-subject linear maps into a shared latent "
                         "(reduced-rank ridge start), shared residual-MLP head trained with InfoNCE + MSE; "
                         "adapt() fits a new subject's map only",
             citation="Scotti et al. (2024) MindEye2: Shared-Subject Models Enable fMRI-To-Image With 1 Hour of Data, ICML")
    register("shared-encoder", "brain_workbench_plugins.shared_models.encoder:SharedEncoder",
             description="Features → every subject's units: shared feature transform f(x) and a learned "
                         "embedding per unit; adapt() fits a new subject's unit embeddings (ridge per unit)",
             citation="Beliy et al. (2024) The Wisdom of a Crowd of Brains: A Universal Brain Encoder, arXiv:2406.12179")
    register("aligned-decoder", "brain_workbench_plugins.shared_models.aligned:AlignedDecoder",
             description="Procrustes or hyperalignment of each subject on shared stimuli, then one ordinary head "
                         "on the pooled aligned data; adapt() aligns a new subject",
             citation="Haxby et al. (2011) A common, high-dimensional model of the representational space in "
                      "human ventral temporal cortex, Neuron 72:404")
