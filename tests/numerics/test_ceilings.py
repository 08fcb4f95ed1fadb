"""brain_workbench.numerics.ceilings: ncsnr, NSD and split-half noise ceilings on simulated data with known
answers, and the RDM noise ceiling against rsatoolbox."""

from __future__ import annotations

import numpy as np
import pytest

from brain_workbench.numerics import ceilings
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.metrics import squareform


def simulate(n_stim=400, n_reps=3, units=5, seed=6):
    """Signal sd 1 per unit times a known gain; noise sd 1; returns trials, ids, true ncsnr."""
    rng = np.random.default_rng(seed)
    gain = np.linspace(0.3, 2.0, units)
    signal = rng.standard_normal((n_stim, units)) * gain
    ids = np.repeat(np.arange(n_stim), n_reps)
    trials = signal[ids] + rng.standard_normal((n_stim * n_reps, units))
    return trials, ids, gain


def test_ncsnr_and_nsd_noise_ceiling_recover_the_simulated_values():
    trials, ids, gain = simulate(n_stim=2000)
    snr = ceilings.ncsnr(trials, ids)
    np.testing.assert_allclose(snr, gain, rtol=0.08, atol=0.06)  # sampling error of 2000 stimuli
    nc = ceilings.noise_ceiling_nsd(trials, ids)
    np.testing.assert_allclose(nc, gain ** 2 / (gain ** 2 + 1 / 3), atol=0.03)
    assert np.all((nc >= 0) & (nc <= 1))
    sessions = np.repeat([0, 1], len(ids) // 2)
    shifted = trials + sessions[:, None] * 5.0  # a session offset is removed by per-session z-scoring
    np.testing.assert_allclose(ceilings.ncsnr(shifted, ids, sessions), snr, rtol=0.05)


def test_noise_ceiling_formula_and_mixture_of_repetition_counts():
    assert ceilings.ncsnr_to_noise_ceiling(np.array([1.0]), 3)[0] == pytest.approx(1 / (1 + 1 / 3))
    mix = ceilings.ncsnr_to_noise_ceiling(np.array([1.0]), [3, 3, 2, 1])
    assert mix[0] == pytest.approx(1 / (1 + np.mean([1 / 3, 1 / 3, 1 / 2, 1])))
    assert ceilings.ncsnr_to_noise_ceiling(np.array([np.inf]), 2)[0] == 1.0


def test_split_half_reliability_agrees_with_the_ncsnr_ceiling():
    trials, ids, gain = simulate(n_stim=1000, n_reps=4, seed=7)
    rel = ceilings.split_half_reliability(trials, ids, n_splits=10)
    np.testing.assert_allclose(rel, ceilings.noise_ceiling_nsd(trials, ids), atol=0.03)  # same sample
    np.testing.assert_allclose(rel, gain ** 2 / (gain ** 2 + 1 / 4), atol=0.1)  # truth, up to sampling error
    with pytest.raises(WorkbenchError, match="twice"):
        ceilings.split_half_reliability(trials[:3], ids[:3])


@pytest.mark.parametrize("method", ["cosine", "corr", "spearman"])
def test_rdm_noise_ceiling_matches_rsatoolbox(method):
    import rsatoolbox
    from rsatoolbox.inference import boot_noise_ceiling

    from brain_workbench.numerics.ceilings import rdm_noise_ceiling

    rng = np.random.default_rng(4)
    shared = rng.random(45)
    vectors = np.abs(shared + 0.6 * rng.standard_normal((5, 45)))
    expected = boot_noise_ceiling(rsatoolbox.rdm.RDMs(vectors), method=method)
    np.testing.assert_allclose(rdm_noise_ceiling(vectors, method), expected, rtol=1e-9)
    square = np.stack([squareform(v) for v in vectors])
    np.testing.assert_allclose(rdm_noise_ceiling(square, method), expected, rtol=1e-9)
    lower, upper = expected
    assert lower < upper


def test_rdm_noise_ceiling_refuses_one_subject():
    from brain_workbench.numerics.ceilings import rdm_noise_ceiling

    with pytest.raises(WorkbenchError, match="at least two subjects"):
        rdm_noise_ceiling(np.ones((1, 10)))
