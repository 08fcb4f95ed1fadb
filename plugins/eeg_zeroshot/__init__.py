"""Simulated THINGS-EEG2 driven by the real CLIP ViT-L/14 embeddings shipped in ``assets/`` (NICE-EEG, MIT),
and the ``nice-clip`` encoder returning those embeddings as decoding targets."""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl

CITATION = ("Song, Y. et al. Decoding Natural Images from EEG for Object Recognition. ICLR 2024 (NICE-EEG; "
            "CLIP ViT-L/14 features of the THINGS-EEG2 test images, MIT)")


@hookimpl
def register_datasets(register: Any) -> None:
    from brain_workbench_plugins.eeg_zeroshot.simulate import ThingsEEG2SimDataset

    register("things-eeg2-sim", ThingsEEG2SimDataset, modalities=("image",), citation=CITATION,
             description="Simulated THINGS-EEG2 (17x100 or 63x250) driven by real CLIP ViT-L/14 embeddings of "
                         "the 200 test concepts (offline stand-in for the zero-shot protocol)")


@hookimpl
def register_encoders(register: Any) -> None:
    from brain_workbench_plugins.eeg_zeroshot.encoder import NiceClipEncoder

    register("nice-clip", NiceClipEncoder, modalities=("image",), citation=CITATION,
             description="CLIP ViT-L/14 embeddings (own image or concept centre) of things-eeg2-sim stimuli")


@hookimpl
def register_heads(register: Any) -> None:
    register("eeg-tsconv", "brain_workbench_plugins.eeg_zeroshot.head:TSConvHead", citation=CITATION,
             description="EEG → image embedding: NICE's TSConv encoder, symmetric InfoNCE with learned temperature, "
                         "early stopping on held-out training concepts")
    register("eeg-atms", "brain_workbench_plugins.eeg_zeroshot.head:ATMSHead",
             citation="Li, D. et al. Visual Decoding and Reconstruction via EEG Embeddings with Guided Diffusion. "
                      "NeurIPS 2024 (ATM-S)",
             description="EEG → image embedding: ATM-S (channel attention + TSConv), InfoNCE (+ optional MSE), "
                         "early stopping on held-out training concepts")
