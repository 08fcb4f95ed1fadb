"""Contrastive EEG heads (TSConv, ATM-S): InfoNCE against NumPy, determinism, concept-level early stopping,
resumable store checkpoints and one-sentence refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import brain_workbench as wb
from brain_workbench.numerics.decoding import symmetric_info_nce
from brain_workbench.store import Store
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.eeg_zeroshot.head import ATMSHead, TSConvHead, concept_of
from brain_workbench_plugins.eeg_zeroshot.models import EEGEncoder, info_nce

TINY = {"width": 4, "d_model": 8, "heads": 2, "temporal_kernel": 5, "pool": 5, "pool_stride": 2, "batch_size": 16,
        "lr": 3e-3, "epochs": 4, "dropout": 0.1, "patience": 50}


def planted(n_concepts: int = 10, per: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n_concepts * per, 8)).astype(np.float32)
    profile = np.exp(-0.5 * ((np.arange(20) - 10) / 2.0) ** 2)
    X = np.einsum("ck,nk,t->nct", rng.standard_normal((4, 8)), Y, profile)
    X = (X + 0.3 * rng.standard_normal(X.shape)).astype(np.float32)
    ids = [f"concept{c:02d}_{i:02d}" for c in range(n_concepts) for i in range(per)]
    return X, Y, ids


def test_info_nce_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    scale = torch.tensor(np.log(1 / 0.07))
    got = float(info_nce(torch.from_numpy(a), torch.from_numpy(b), scale))
    assert got == pytest.approx(symmetric_info_nce(a, b, float(scale)), abs=1e-6)


@pytest.mark.parametrize("arch", ["tsconv", "atms"])
def test_encoders_map_trials_to_embeddings_for_both_layouts(arch: str) -> None:
    for channels, times in ((17, 100), (63, 250)):
        model = EEGEncoder(arch, channels, times, 12, width=4, d_model=8, heads=2)
        assert model(torch.zeros(3, channels, times)).shape == (3, 12)


def test_registered_as_decode_heads() -> None:
    """(The kind's checks and scikit-learn's estimator checks run in test_common.py and test_sklearn_checks.py.)"""
    for name, cls in (("eeg-tsconv", TSConvHead), ("eeg-atms", ATMSHead)):
        head = wb.get_registry().create("head", name, **TINY)
        assert isinstance(head, cls) and head.direction == "decode" and head._arch() == cls.default_arch


def test_training_is_deterministic_and_learns_planted_structure() -> None:
    X, Y, ids = planted()
    first = TSConvHead(**TINY, seed=3).fit(X[:32], Y[:32], groups=ids[:32])
    second = TSConvHead(**TINY, seed=3).fit(X[:32], Y[:32], groups=ids[:32])
    np.testing.assert_array_equal(first.predict(X[32:]), second.predict(X[32:]))
    trained = ATMSHead(**{**TINY, "epochs": 12}, seed=0).fit(X[:32], Y[:32], groups=ids[:32])
    assert np.mean(trained.score(X[:32], Y[:32])) > 0.3


def test_validation_holds_out_whole_training_concepts_and_stops_early() -> None:
    X, Y, ids = planted(n_concepts=10, per=4)
    head = TSConvHead(**{**TINY, "epochs": 40, "patience": 3, "val_fraction": 0.2})
    train, val, n_val = head._split(len(X), ids)
    held = {concept_of(ids[i]) for i in val}
    assert n_val == 2 and len(held) == 2 and not held & {concept_of(ids[i]) for i in train} and len(val) == 8
    shuffled = Y[np.random.default_rng(1).permutation(len(Y))]  # nothing to learn: validation loss stalls
    head.fit(X, shuffled, groups=ids)
    assert head.stopped_epoch_ < 40 and head.stopped_epoch_ == head.best_epoch_ + 3
    assert head.n_val_concepts_ == 2 and [h["epoch"] for h in head.history_] == list(range(1, head.stopped_epoch_ + 1))


def test_checkpoints_in_the_store_resume_to_the_uninterrupted_result(tmp_path) -> None:
    X, Y, ids = planted()
    url = str(tmp_path / "store.zarr")
    options = {**TINY, "checkpoint": "run-a", "store": url, "checkpoint_every": 2}
    straight = TSConvHead(**{**TINY, "epochs": 6}).fit(X, Y, groups=ids)
    first = TSConvHead(**{**options, "epochs": 4}).fit(X, Y, groups=ids)
    assert first.resumed_from_ == 0 and first.checkpoint_key_.startswith("eeg-heads/run-a/")
    entries = [e.path for e in Store(url).iter_entries(first.checkpoint_key_) if e.kind == "eeg-head"]
    assert entries == [f"{first.checkpoint_key_}/epoch-00004"]
    resumed = TSConvHead(**{**options, "epochs": 6}).fit(X, Y, groups=ids)
    assert resumed.resumed_from_ == 4 and resumed.stopped_epoch_ == 6
    np.testing.assert_allclose(resumed.predict(X), straight.predict(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options, shape, width, message", [
    ({"embedding_dim": 768}, (4, 20), 8, "embeddings are 8 wide but this head expects embedding_dim=768"),
    ({"layout": "32x128"}, (4, 20), 8, "neither of the two supported"),
    ({"layout": "63x250"}, (17, 100), 8, "needs 63 channels but the EEG has 17: channels are missing"),
    ({"layout": "17x100"}, (17, 50), 8, "is 17 channels × 100 samples but the EEG is 17 × 50"),
])
def test_bad_inputs_are_one_sentence(options: dict, shape: tuple, width: int, message: str) -> None:
    X = np.zeros((8, *shape), np.float32)
    with pytest.raises(WorkbenchError, match=message):
        TSConvHead(**{**TINY, **options}).fit(X, np.zeros((8, width), np.float32))
