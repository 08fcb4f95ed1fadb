"""A planted dictionary is recovered through the project's SAE trainer: sparse codes through a known dictionary
drive simulated voxels; the latent that drives a voxel is its best latent, and two SAEs trained with different
seeds on the same data share more latents than two trained on different data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brain_workbench.store import Store
from brain_workbench.store.features import extract_features
from brain_workbench.store.paths import encoder_key, feature_path
from brain_workbench.types import LayerInfo, StimulusSet
from brain_workbench_plugins.analyses.concepts import correlation, matching
from brain_workbench_plugins.sae.train import TrainConfig, load_checkpoint, train_sae

D_IN, N_ATOMS, K, N = 24, 32, 2, 1024


def planted(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (codes @ atoms + offset), the sparse codes and the unit-norm atoms."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((N_ATOMS, D_IN))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((N, N_ATOMS))
    for i in range(N):
        codes[i, rng.choice(N_ATOMS, K, replace=False)] = rng.uniform(1.0, 3.0, K)
    return (codes @ atoms + 0.2).astype(np.float32), codes, atoms


class TableEncoder:
    """Stimulus ``s0042`` is row 42 of a planted data set (layer ``x``)."""

    modality = "text"

    def __init__(self, data: np.ndarray, name: str) -> None:
        self.data, self.name = data, name

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("x", 1.0)]

    def fingerprint(self) -> str:
        return self.name

    def encode(self, batch: list, layers: list[str]) -> dict[str, np.ndarray]:
        return {"x": self.data[[int(s[1:]) for s in batch]]}


STIMULI = StimulusSet(tuple(f"s{i:04d}" for i in range(N)), "text", lambda ids: list(ids))


def trained(store: Store, data: np.ndarray, tag: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Latents (stimuli × latents) and decoder rows of an SAE trained by ``train_sae`` on ``data``."""
    encoder = TableEncoder(data, tag)
    extract_features(store, encoder, STIMULI, layers=["x"], batch_size=512)
    path = feature_path(encoder_key(encoder, STIMULI), "x")
    cfg = TrainConfig(kind="topk", d_sae=N_ATOMS, k=K, steps=500, batch_size=256, lr=5e-3, seed=seed,
                      log_every=500, checkpoint_every=500, eval_fraction=0.0)
    result = train_sae(store, path, cfg, name=f"{tag}-{seed}")
    sae, _ = load_checkpoint(store, result.key)
    with torch.no_grad():
        z, _ = sae(torch.from_numpy(data))
    return z.numpy().astype(np.float64), sae.W_dec.detach().numpy().astype(np.float64)


@pytest.fixture(scope="module")
def saes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    store = Store(tmp_path_factory.mktemp("planted") / "s.zarr")
    same, _, _ = planted(0)
    other, _, _ = planted(1)
    return {"a": trained(store, same, "same", 0), "b": trained(store, same, "same", 1),
            "other": trained(store, other, "other", 0)}


def test_the_driving_latent_is_each_voxels_best_latent(saes) -> None:
    data, codes, atoms = planted(0)
    z, decoder = saes["a"]
    rng = np.random.default_rng(3)
    drivers = rng.integers(0, N_ATOMS, size=60)
    voxels = codes[:, drivers] * rng.uniform(0.5, 2.0, 60) + 0.3 * rng.standard_normal((N, 60))
    latent_of_atom = np.full(N_ATOMS, -1)
    rows, cols = correlation.hungarian(matching.decoder_similarity(atoms, decoder))
    recovered = (atoms[rows] * decoder[cols]).sum(1) / np.linalg.norm(decoder[cols], axis=1) > 0.9
    latent_of_atom[rows[recovered]] = cols[recovered]
    assert recovered.mean() > 0.8
    best, best_r = correlation.best_latents(z, voxels, chunk=7)
    judged = latent_of_atom[drivers] >= 0
    assert judged.sum() > 40
    assert (best[judged] == latent_of_atom[drivers][judged]).mean() > 0.95
    one_each = rng.permutation(N_ATOMS)
    voxels = codes[:, one_each] + 0.3 * rng.standard_normal((N, N_ATOMS))
    assigned = correlation.assigned_latents(np.concatenate([r for _, r in correlation.correlation_chunks(z, voxels)]))
    judged = latent_of_atom[one_each] >= 0
    assert (assigned[judged] == latent_of_atom[one_each][judged]).all()


def test_saes_on_the_same_planted_data_share_more_latents_than_on_other_data(saes) -> None:
    (za, da), (zb, db), (zo, do) = saes["a"], saes["b"], saes["other"]
    for sim_same, sim_other in ((matching.activation_similarity(za, zb), matching.activation_similarity(za, zo)),
                                (matching.decoder_similarity(da, db), matching.decoder_similarity(da, do))):
        for method in matching.METHODS:
            same = matching.compare(sim_same, method, threshold=0.7, decoders=(da, db), permutations=30)
            other = matching.compare(sim_other, method, threshold=0.7, decoders=(da, do), permutations=30)
            assert same.fraction > 0.7 and same.fraction > other.fraction + 0.4, (same.fraction, other.fraction)
            assert same.mean_similarity > other.mean_similarity
            assert same.svcca.value > other.svcca.value and same.svcca.p < 0.05
            assert same.rsa.value > 0.5 and same.rsa.p < 0.05
    perm = np.random.default_rng(0).permutation(N_ATOMS)
    identical = matching.compare(matching.activation_similarity(za, za[:, perm]), threshold=0.99)
    assert identical.fraction == 1.0
