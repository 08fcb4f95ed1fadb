"""The shipped CLIP ViT-L/14 embeddings of THINGS-EEG2's 200 test images and concept centres, and the
training-concept embeddings the simulator draws near them (provenance: ``assets/README.md``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from brain_workbench.sdk import WorkbenchError

ASSETS = Path(__file__).parent / "assets"
TEST_IMAGES = "clip_feature_maps_test.npy"
CENTRES = "center_clip.npy"
N_TEST = 200
WIDTH = 768


@lru_cache(maxsize=1)
def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(test-image embeddings, concept centres), each 200 × 768 float32 in the release's test order."""
    try:
        images = np.load(ASSETS / TEST_IMAGES, allow_pickle=False)
        centres = np.load(ASSETS / CENTRES, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"cannot read the shipped CLIP embeddings in {ASSETS} ({exc}); reinstall "
                             "brain-workbench") from None
    images = images.reshape(images.shape[0], -1)
    if images.shape != (N_TEST, WIDTH) or centres.shape != (N_TEST, WIDTH):
        raise WorkbenchError(f"the shipped CLIP embeddings in {ASSETS} have shapes {images.shape} and "
                             f"{centres.shape}, not ({N_TEST}, {WIDTH}); reinstall brain-workbench")
    images.setflags(write=False)
    centres.setflags(write=False)
    return images, centres


def assets_digest() -> str:
    """SHA-256 of the two shipped arrays (recorded in provenance and encoder fingerprints)."""
    h = hashlib.sha256()
    for name in (TEST_IMAGES, CENTRES):
        h.update((ASSETS / name).read_bytes())
    return h.hexdigest()[:16]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass(frozen=True)
class ConceptEmbeddings:
    """Per stimulus row: its own image embedding, its concept's centre and its concept index."""

    image: np.ndarray
    centre: np.ndarray
    concept: np.ndarray
    anchor: np.ndarray
    image_spread: float


def simulate_embeddings(n_test: int, n_train_concepts: int, images_per_concept: int, concept_spread: float,
                        seed: int) -> ConceptEmbeddings:
    """Test rows: the first ``n_test`` real test images and centres. Training concept ``m``: a centre drawn
    near the centre of a random real test concept (isotropic Gaussian, SD ``concept_spread`` per dimension,
    rescaled to the anchor's norm); its images scatter around it with the real per-dimension SD of test
    images about their own (unit) centres, then are unit-normalised like CLIP image embeddings.
    Training rows come first (concept-major), then the test rows."""
    if not 2 <= n_test <= N_TEST:
        raise WorkbenchError(f"n_test must lie between 2 and the {N_TEST} THINGS-EEG2 test concepts, got {n_test}")
    images, centres = real_embeddings()
    images, centres = images.astype(np.float64), centres.astype(np.float64)
    spread = float((images - _unit(centres)).std())
    rng = np.random.default_rng([seed, 22])
    anchor = rng.integers(0, N_TEST, size=n_train_concepts)
    norms = np.linalg.norm(centres, axis=1)
    new_centres = _unit(_unit(centres[anchor]) + concept_spread * rng.standard_normal((n_train_concepts, WIDTH)))
    new_centres *= norms[anchor, None]
    concept = np.repeat(np.arange(n_train_concepts), images_per_concept)
    train_images = _unit(_unit(new_centres[concept]) + spread * rng.standard_normal((len(concept), WIDTH)))
    return ConceptEmbeddings(
        image=np.concatenate([train_images, images[:n_test]]).astype(np.float32),
        centre=np.concatenate([new_centres[concept], centres[:n_test]]).astype(np.float32),
        concept=np.concatenate([concept, n_train_concepts + np.arange(n_test)]),
        anchor=np.concatenate([anchor[concept], np.arange(n_test)]), image_spread=spread)
