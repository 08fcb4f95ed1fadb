"""Per-latent summaries of SAE activations over stimuli: top stimuli, dead and dense latents, and the
monosemanticity score (activation-weighted mean pairwise similarity of a latent's top images in an
independent embedding; Pach et al. 2025, "Sparse Autoencoders Learn Monosemantic Features in VLMs")."""

from __future__ import annotations

import numpy as np

from brain_workbench_plugins.analyses.concepts.projection import unit_rows


def top_stimuli(latents: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per latent, the rows (stimuli) of its ``k`` highest activations and those activations (latents × k)."""
    acts = np.asarray(latents).T
    k = min(int(k), acts.shape[1])
    top = np.argpartition(-acts, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(acts, top, 1), axis=1, kind="stable")
    index = np.take_along_axis(top, order, 1)
    return index, np.take_along_axis(acts, index, 1)


def firing_rates(latents: np.ndarray) -> np.ndarray:
    """Fraction of stimuli on which each latent is active (> 0)."""
    return (np.asarray(latents) > 0).mean(axis=0)


def dead_and_dense(latents: np.ndarray, dense_above: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: latents active on no stimulus, and latents active on more than ``dense_above`` of them."""
    rate = firing_rates(latents)
    return rate == 0, rate > dense_above


def monosemanticity(activations: np.ndarray, embeddings: np.ndarray) -> float:
    """Σ_{i<j} a_i a_j cos(e_i, e_j) / Σ_{i<j} a_i a_j over a latent's images (activations ``a`` ≥ 0, their
    embeddings ``e`` in an independent model); NaN when fewer than two images are active."""
    a = np.clip(np.asarray(activations, dtype=np.float64), 0.0, None)
    e = unit_rows(embeddings)
    sims = e @ e.T
    weights = np.outer(a, a)
    iu = np.triu_indices(len(a), k=1)
    total = weights[iu].sum()
    return float((weights[iu] * sims[iu]).sum() / total) if total > 0 else float("nan")


def monosemanticity_scores(top_index: np.ndarray, top_acts: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """The monosemanticity of every latent from its top stimuli (rows of ``embeddings``) and activations."""
    return np.asarray([monosemanticity(acts, embeddings[index]) for index, acts in zip(top_index, top_acts)])
