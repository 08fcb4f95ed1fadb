"""RDM transforms of rsa (rank, geo-topological, geodesic) against rsatoolbox 0.3, and relative representations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

import brain_workbench as wb
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.metrics import (
    compare_rdms,
    geodesic,
    geotopological,
    rdm,
    relative_representation,
    transform_rdm,
)

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs  # noqa: E402
from rsatoolbox.rdm.transform import (  # noqa: E402
    geodesic_transform,
    geotopological_transform,
    rank_transform,
)


def _rdm(n: int = 24, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return scale * pdist(rng.standard_normal((n, 5)))


def _toolbox(v: np.ndarray) -> RDMs:
    return RDMs(np.atleast_2d(v).copy())


@pytest.mark.parametrize(("low", "up"), [(0.0, 1.0), (0.1, 0.9), (0.2, 0.5), (0.05, 0.3)])
def test_geotopological_equals_rsatoolbox_on_one_rdm(low: float, up: float) -> None:
    v = _rdm()
    expected = geotopological_transform(_toolbox(v), low, up).get_vectors()[0]
    np.testing.assert_allclose(geotopological(v, low, up), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(transform_rdm(v, "geotopological", low, up), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("low", "up"), [(0.1, 0.6), (0.2, 0.8), (0.0, 0.5)])
def test_geodesic_equals_rsatoolbox_on_one_rdm(low: float, up: float) -> None:
    v = _rdm(seed=1)
    expected = geodesic_transform(geotopological_transform(_toolbox(v), low, up)).get_vectors()[0]
    far = ~np.isfinite(expected)
    ours = geodesic(v, low, up)
    np.testing.assert_allclose(ours[~far], expected[~far], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours[far], np.full(far.sum(), expected[~far].max()), rtol=0, atol=1e-12)


def test_geodesic_sets_disconnected_pairs_to_the_largest_finite_distance() -> None:
    rng = np.random.default_rng(3)
    clusters = np.concatenate([rng.standard_normal((8, 2)), rng.standard_normal((8, 2)) + 30.0])
    v = pdist(clusters)
    expected = geodesic_transform(geotopological_transform(_toolbox(v), 0.05, 0.4)).get_vectors()[0]
    far = ~np.isfinite(expected)
    assert far.sum() == 64, "rsatoolbox leaves the 8 × 8 pairs across the clusters infinite"
    ours = geodesic(v, 0.05, 0.4)
    np.testing.assert_allclose(ours[~far], expected[~far], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours[far], np.full(64, expected[~far].max()), rtol=0, atol=1e-12)
    with pytest.raises(WorkbenchError, match="leaves no two stimuli connected"):
        geodesic(pdist(np.arange(4.0)[:, None] ** 3), 0.0, 1e-9)


def test_rank_equals_rsatoolbox() -> None:
    v = np.round(_rdm(seed=2), 1)
    np.testing.assert_array_equal(transform_rdm(v, "rank"), rank_transform(_toolbox(v)).get_vectors()[0])


def test_rank_first_is_the_authors_gt_transform() -> None:
    """Transcribed from doerlbh/TopologicalRSA utils_transform.gt_transform (gt_type 'lu')."""
    v = _rdm(seed=4) ** 3

    def gt_transform(data: np.ndarray, low: float, up: float) -> np.ndarray:
        r = rankdata(data)
        data = (r - r.min()) / (r.max() - r.min())
        gt_min, gt_max = np.quantile(data, low), np.quantile(data, up)
        gtx = data.copy()
        gtx[data < gt_min] = 0
        mid = (data >= gt_min) & (data <= gt_max)
        gtx[mid] = (data[mid] - gt_min) / (gt_max - gt_min)
        gtx[data > gt_max] = 1
        return gtx

    np.testing.assert_allclose(geotopological(v, 0.2, 0.8, rank_first=True), gt_transform(v, 0.2, 0.8), atol=1e-12)
    assert not np.allclose(geotopological(v, 0.2, 0.8), gt_transform(v, 0.2, 0.8)), "ranks change a skewed RDM"


def test_per_rdm_quantiles_differ_from_rsatoolbox_joint_quantiles() -> None:
    """rsatoolbox takes the quantiles over every RDM of the object at once: of two RDMs of different scale
    the small one then loses 40 % of its pairs to zero and the large one none; per-RDM quantiles (the
    paper's meaning, ours) zero 20 % of each."""
    rng = np.random.default_rng(5)
    small, large = rng.uniform(0, 1, 190), rng.uniform(10, 20, 190)
    joint = geotopological_transform(RDMs(np.stack([small, large])), 0.2, 0.9).get_vectors()
    assert abs(np.mean(joint[0] == 0) - 0.4) < 0.03 and np.mean(joint[1] == 0) == 0
    for v in (small, large):
        ours = geotopological(v, 0.2, 0.9)
        assert abs(np.mean(ours == 0) - 0.2) < 0.01
        np.testing.assert_allclose(ours, geotopological_transform(_toolbox(100 * v), 0.2, 0.9).get_vectors()[0],
                                   rtol=0, atol=1e-9)


def test_rsatoolbox_clips_rescaled_values_when_the_upper_quantile_is_below_one() -> None:
    """rsatoolbox 0.3.2 rescales the middle band in place, then sets every value above the upper quantile to 1, so
    rescaled values above u's value (possible only when it is < 1) become 1 too: its transform then depends on the
    RDM's scale. Ours is scale-free and equals rsatoolbox's on the same RDM scaled so that the quantile is ≥ 1."""
    v = np.random.default_rng(9).uniform(0, 1, 190)
    ours = geotopological(v, 0.2, 0.9)
    theirs = geotopological_transform(_toolbox(v), 0.2, 0.9).get_vectors()[0]
    hi = np.quantile(v, 0.9)
    clipped = (ours > hi) & (ours < 1)
    assert hi < 1 and clipped.sum() > 0
    np.testing.assert_array_equal(theirs[clipped], 1.0)
    np.testing.assert_allclose(theirs[~clipped], ours[~clipped], rtol=0, atol=1e-12)
    np.testing.assert_allclose(geotopological(7.5 * v, 0.2, 0.9), ours, rtol=0, atol=1e-12)


def test_rsa_compares_the_transformed_rdms() -> None:
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((20, 6)), rng.standard_normal((20, 9))
    metric = wb.metric("rsa", rdm="euclidean", rdm_transform="geodesic", low=0.1, up=0.7)
    a, b = rdm(X, "euclidean"), rdm(Y, "euclidean")
    expected = compare_rdms(geodesic(a, 0.1, 0.7), geodesic(b, 0.1, 0.7), "spearman")
    assert metric.compare(X, Y) == pytest.approx(expected, abs=1e-12)
    assert metric.compare_given(a, b) == pytest.approx(expected, abs=1e-12)
    assert metric.compare_pairwise(metric.pairwise_form(X), metric.pairwise_form(Y)) == pytest.approx(expected)
    assert metric.score_name == "rsa_spearman_geodesic" and wb.metric("rsa").score_name == "rsa_spearman"
    with pytest.raises(WorkbenchError, match="rdm_transform='topo' is not one of"):
        wb.metric("rsa", rdm_transform="topo")
    with pytest.raises(WorkbenchError, match="0 ≤ low < up ≤ 1"):
        wb.metric("rsa", rdm_transform="geodesic", low=0.5, up=0.5)


def test_relative_representations_ignore_rotation_and_isotropic_scaling() -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 16))
    Q = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    anchors = [3, 11, 20, 41]
    base = relative_representation(X, anchors)
    np.testing.assert_allclose(relative_representation(4.2 * X @ Q, anchors), base, rtol=0, atol=1e-10)
    assert base.shape == (50, 4) and np.allclose(base[3, 0], 1.0)
    metric = wb.metric("relative", metric="cka", anchors=8, seed=1)
    Y = rng.standard_normal((50, 16))
    assert metric.compare(X, 0.3 * Y @ Q) == pytest.approx(metric.compare(X, Y), abs=1e-10)
    assert metric.compare(X, X + 5.0) != pytest.approx(metric.compare(X, X)), "not translation invariant"


def test_relative_anchors_by_id() -> None:
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((12, 5)), rng.standard_normal((12, 7))
    ids = [f"s{i}" for i in range(12)]
    metric = wb.metric("relative", metric="rsa", options={"rdm": "euclidean"}, anchors=["s2", "s7", "s9"])
    metric.bind(stimulus_ids=ids)
    expected = wb.metric("rsa", rdm="euclidean").compare(relative_representation(X, [2, 7, 9]),
                                                         relative_representation(Y, [2, 7, 9]))
    assert metric.compare(X, Y) == pytest.approx(expected, abs=1e-12)
    assert metric.score_name == "relative_rsa_spearman"
    with pytest.raises(WorkbenchError, match="1 anchor ids are not among the compared stimuli"):
        wb.metric("relative", anchors=["s2", "zz"]).bind(stimulus_ids=ids).compare(X, Y)
    with pytest.raises(WorkbenchError, match="need the stimulus ids"):
        wb.metric("relative", anchors=["s2"]).compare(X, Y)
    with pytest.raises(WorkbenchError, match="1 to 12 anchors"):
        wb.metric("relative", anchors=13).compare(X, Y)
