"""Every built-in encoder gives the same features for a batch of 32 as for 32 batches of one."""

from __future__ import annotations

import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder, sample_stimuli

ENCODERS = [
    ("clip", {"model": "ViT-S-32"}),
    ("clip", {"model": "ViT-S-32", "tower": "text"}),
    ("hf-lm", {}),
    ("efficientnet", {}),
    ("sae", {"base": "efficientnet", "layer": "pooled"}),
]


@pytest.mark.parametrize("name,options", ENCODERS, ids=[f"{n}-{o.get('tower', 'default')}" for n, o in ENCODERS])
def test_batch_of_32_equals_batches_of_one(name, options):
    encoder = wb.encoder(name, **options)
    check_encoder(encoder, stimuli=sample_stimuli(encoder.modality, 32))
