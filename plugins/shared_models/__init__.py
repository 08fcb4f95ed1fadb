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

from workbench.sdk import hookimpl

_DEVICE = {"type": "str", "default": "cpu", "help": "torch device for the trained parts (cpu, cuda)"}
_STORE = {"type": "str", "default": None, "help": "store path or URL for training checkpoints (resumable)"}
_COMMON = {
    "epochs": {"type": "int", "default": None, "help": "joint training epochs after the closed-form start"},
    "lr": {"type": "float", "default": 1e-3, "help": "AdamW learning rate"},
    "weight_decay": {"type": "float", "default": None, "help": "AdamW weight decay"},
    "batch_size": {"type": "int", "default": None, "help": "rows per subject per step"},
    "alphas": {"type": "array", "default": "logspace(-2, 6, 20)", "help": "ridge alphas (one chosen per output by CV)"},
    "cv": {"type": "int | folds", "default": 5, "help": "folds for choosing ridge alphas"},
    "device": _DEVICE,
    "seed": {"type": "int", "default": 0, "help": "seed of initialisation, batches and dropout"},
    "n_threads": {"type": "int", "default": 1, "help": "torch CPU threads while training (fixed for reproducibility)"},
    "store": _STORE,
    "run_name": {"type": "str", "default": None, "help": "run name under shared-models/ (default: hash of data and options)"},
    "checkpoint_every": {"type": "int", "default": 10, "help": "epochs between checkpoints"},
    "keep": {"type": "int", "default": 2, "help": "checkpoints kept per run"},
}
DECODER_OPTIONS = {
    "latent_dim": {"type": "int", "default": 64, "help": "width of the shared latent space"},
    "hidden": {"type": "int", "default": 256, "help": "hidden width of the head's residual MLP (0: linear head)"},
    **_COMMON,
    "temperature": {"type": "float", "default": 0.05, "help": "InfoNCE temperature"},
    "mse_weight": {"type": "float", "default": 1.0, "help": "weight of the MSE term"},
    "dropout": {"type": "float", "default": 0.1, "help": "dropout in the head's MLP"},
    "train_maps": {"type": "bool", "default": True, "help": "train subject maps jointly with the head"},
    "map_prior": {"type": "str", "default": "none", "choices": ["none", "mean"],
                  "help": "adapt shrinks a new map towards zero or the training subjects' mean (common unit space)"},
    "adapt_epochs": {"type": "int", "default": 0, "help": "gradient epochs through the frozen head after the ridge"},
    "adapt_lr": {"type": "float", "default": 1e-3, "help": "learning rate of those epochs"},
}
DECODER_OPTIONS["epochs"] = {**_COMMON["epochs"], "default": 60}
DECODER_OPTIONS["weight_decay"] = {**_COMMON["weight_decay"], "default": 1e-4}
DECODER_OPTIONS["batch_size"] = {**_COMMON["batch_size"], "default": 128}
ENCODER_OPTIONS = {
    "latent_dim": {"type": "int", "default": 32, "help": "width k of the shared feature transform and unit embeddings"},
    "hidden": {"type": "int", "default": 0, "help": "hidden width of a residual MLP in the transform (0: linear)"},
    **_COMMON,
    "embedding_prior": {"type": "str", "default": "none", "choices": ["none", "mean"],
                        "help": "adapt shrinks new embeddings towards zero or the training subjects' mean"},
}
ENCODER_OPTIONS["epochs"] = {**_COMMON["epochs"], "default": 30}
ENCODER_OPTIONS["weight_decay"] = {**_COMMON["weight_decay"], "default": 0.0}
ENCODER_OPTIONS["batch_size"] = {**_COMMON["batch_size"], "default": 256}
ALIGNED_OPTIONS = {
    "method": {"type": "str", "default": "hyperalignment", "choices": ["hyperalignment", "procrustes"]},
    "reference": {"type": "str", "default": None, "help": "reference subject (default: the first)"},
    "n_components": {"type": "int", "default": None, "help": "principal components per subject before aligning"},
    "n_iter": {"type": "int", "default": 2, "help": "hyperalignment level-2 passes"},
    "head": {"type": "str", "default": "decoder", "help": "registered head fitted on the pooled aligned data"},
    "head_options": {"type": "dict", "default": None, "help": "options of that head"},
    "align_ids": {"type": "list[str]", "default": None, "help": "alignment stimuli (default: those all subjects saw)"},
}
_CARD = {"multi_subject": True}


def _shared_decoder(**options: Any) -> Any:
    from workbench_plugins.shared_models.decoder import SharedDecoder

    return SharedDecoder(**options)


def _shared_encoder(**options: Any) -> Any:
    from workbench_plugins.shared_models.encoder import SharedEncoder

    return SharedEncoder(**options)


def _aligned_decoder(**options: Any) -> Any:
    from workbench_plugins.shared_models.aligned import AlignedDecoder

    return AlignedDecoder(**options)


def adaptation_curve(*args: Any, **kwargs: Any) -> Any:
    """See :func:`workbench_plugins.shared_models.adaptation.adaptation_curve`."""
    from workbench_plugins.shared_models.adaptation import adaptation_curve as run

    return run(*args, **kwargs)


@hookimpl
def register_heads(register: Any) -> None:
    register("shared-decoder", _shared_decoder, direction="decode", options=DECODER_OPTIONS, **_CARD,
             description="Brain → embedding across subjects: per-subject linear maps into a shared latent "
                         "(reduced-rank ridge start), shared residual-MLP head trained with InfoNCE + MSE; "
                         "adapt() fits a new subject's map only",
             citation="Scotti et al. (2024) MindEye2: Shared-Subject Models Enable fMRI-To-Image With 1 Hour of Data, ICML")
    register("shared-encoder", _shared_encoder, direction="encode", options=ENCODER_OPTIONS, **_CARD,
             description="Features → every subject's units: shared feature transform f(x) and a learned "
                         "embedding per unit; adapt() fits a new subject's unit embeddings (ridge per unit)",
             citation="Beliy et al. (2024) The Wisdom of a Crowd of Brains: A Universal Brain Encoder, arXiv:2406.12179")
    register("aligned-decoder", _aligned_decoder, direction="decode", options=ALIGNED_OPTIONS, **_CARD,
             description="Procrustes or hyperalignment of each subject on shared stimuli, then one ordinary head "
                         "on the pooled aligned data; adapt() aligns a new subject",
             citation="Haxby et al. (2011) A common, high-dimensional model of the representational space in "
                      "human ventral temporal cortex, Neuron 72:404")
