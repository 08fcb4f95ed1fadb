"""Every built-in encoder gives the same features for a batch of 32 as for 32 batches of one.

Only the batch-invariance check runs here: each encoder's own tests run the full conformance suite
(``check_encoder``, batch invariance included) on the default sample of 3, so the output and determinism checks
need not run again on 32. Still 10-45 s per encoder on a CPU (33 forward passes), hence ``slow``.
"""

from __future__ import annotations

import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder_batch_invariance, sample_stimuli

ENCODERS = [
    ("clip", {"model": "ViT-S-32"}),
    ("clip", {"model": "ViT-S-32", "tower": "text"}),
    ("hf-lm", {}),
    ("efficientnet", {}),
    ("sae", {"base": "efficientnet", "layer": "pooled"}),
]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name,options", ENCODERS, ids=[f"{n}-{o.get('tower', 'default')}" for n, o in ENCODERS])
def test_batch_of_32_equals_batches_of_one(name, options):
    encoder = wb.encoder(name, **options)
    check_encoder_batch_invariance(encoder, stimuli=sample_stimuli(encoder.modality, 32))
