"""Procrustes (equal to scipy's) and hyperalignment on planted rotations of one shared response space."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from brain_workbench.numerics.alignment import hyperalign, procrustes
from brain_workbench.types import WorkbenchError


def test_procrustes_equals_scipy_when_stimuli_outnumber_units():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 12))
    B = A @ ortho_group.rvs(12, random_state=1) + 0.3 * rng.standard_normal((50, 12))
    expected, _ = orthogonal_procrustes(A, B)
    ours = procrustes(A, B)
    np.testing.assert_allclose(ours.rotation, expected, atol=1e-10)
    np.testing.assert_allclose(ours.transform(A), A @ expected, atol=1e-10)
    np.testing.assert_allclose(ours.rotation.T @ ours.rotation, np.eye(12), atol=1e-10)


def test_procrustes_with_fewer_stimuli_than_units_maps_the_data_like_scipy():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((15, 40))
    B = A @ ortho_group.rvs(40, random_state=3)
    expected, _ = orthogonal_procrustes(A, B)
    ours = procrustes(A, B)
    assert ours.U.shape == (40, 15), "kept as thin factors, not a units × units matrix"
    np.testing.assert_allclose(ours.transform(A), A @ expected, atol=1e-8)
    np.testing.assert_allclose(ours.transform(A), B, atol=1e-8)


def test_procrustes_recovers_a_planted_rotation_on_new_stimuli_with_centring_and_scale():
    rng = np.random.default_rng(4)
    Q = ortho_group.rvs(8, random_state=5)
    A = rng.standard_normal((200, 8)) + 3.0
    B = 2.5 * (A - 3.0) @ Q - 1.0
    fitted = procrustes(A[:120], B[:120], center=True, scale=True)
    assert fitted.scale == pytest.approx(2.5, rel=1e-8)
    np.testing.assert_allclose(fitted.transform(A[120:]), B[120:], atol=1e-8)


def test_procrustes_between_different_widths_is_a_partial_isometry():
    rng = np.random.default_rng(6)
    Z = rng.standard_normal((80, 10))
    Q = np.linalg.qr(rng.standard_normal((25, 10)))[0]  # 25 units of the source hold a 10-d space
    fitted = procrustes(Z @ Q.T, Z)
    assert fitted.rotation.shape == (25, 10)
    np.testing.assert_allclose(fitted.transform(Z @ Q.T), Z, atol=1e-8)


def test_hyperalignment_brings_rotated_noisy_subjects_into_register():
    rng = np.random.default_rng(7)
    latent = rng.standard_normal((160, 20))
    subjects = [latent @ ortho_group.rvs(20, random_state=10 + j) + 0.3 * rng.standard_normal((160, 20))
                for j in range(4)]
    shared, held_out = slice(0, 100), slice(100, 160)
    result = hyperalign([s[shared] for s in subjects], n_iter=2)
    aligned = [result.transform(j, s[held_out]) for j, s in enumerate(subjects)]

    def mean_pairwise_r(blocks):
        rs = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for i, a in enumerate(blocks) for b in blocks[i + 1:]]
        return float(np.mean(rs))

    assert mean_pairwise_r([s[held_out] for s in subjects]) < 0.2
    assert mean_pairwise_r(aligned) > 0.85
    assert result.template.shape == (100, 20)
    assert result.history[-1] <= result.history[0] + 1e-9


def test_bad_alignment_input_is_refused_in_one_sentence():
    with pytest.raises(WorkbenchError, match="same shared stimuli"):
        procrustes(np.ones((5, 3)), np.ones((6, 3)))
    with pytest.raises(WorkbenchError, match="NaN"):
        procrustes(np.full((5, 3), np.nan), np.ones((5, 3)))
    with pytest.raises(WorkbenchError, match="at least 2 subjects"):
        hyperalign([np.ones((5, 3))])
