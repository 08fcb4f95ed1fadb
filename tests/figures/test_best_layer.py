"""Best-layer maps: a discrete legend of layer names, and vertices whose best layer does not beat the runner-up
in both halves of the test stimuli left uncoloured (issue 23, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from brain_workbench.figures.brainmap import label_map, layer_colours, plot_best_layer
from brain_workbench.numerics.scoring import BELOW_THRESHOLD, UNRELIABLE, reliable_best_layer
from brain_workbench.types import Units
from brain_workbench_plugins.analyses.encoding import split_half_scores

N = 10242


def reference(scores, a, b, min_score):
    """A per-unit loop: the best layer, unless below ``min_score`` or not ahead of the runner-up in a half."""
    out = []
    for u in range(scores.shape[1]):
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i, u], i))
        best, second = ranked[0], ranked[1]
        if scores[best, u] < min_score:
            out.append(BELOW_THRESHOLD)
        elif not (a[best, u] > a[second, u] and b[best, u] > b[second, u]):
            out.append(UNRELIABLE)
        else:
            out.append(best)
    return np.array(out)


def test_reliable_best_layer_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    scores, a, b = (rng.uniform(-0.2, 0.8, (5, 400)) for _ in range(3))
    np.testing.assert_array_equal(reliable_best_layer(scores, a, b, min_score=0.3), reference(scores, a, b, 0.3))
    planted = np.array([[0.9, 0.5, 0.05], [0.2, 0.45, 0.04]])
    halves_a = np.array([[0.8, 0.6, 0.0], [0.1, 0.4, 0.0]])
    halves_b = np.array([[0.9, 0.3, 0.0], [0.3, 0.5, 0.0]])
    assert reliable_best_layer(planted, halves_a, halves_b, 0.1).tolist() == [0, UNRELIABLE, BELOW_THRESHOLD]
    assert reliable_best_layer(planted, min_score=0.1).tolist() == [0, 0, BELOW_THRESHOLD]


def test_split_half_scores_are_pearson_r_on_two_disjoint_halves() -> None:
    rng = np.random.default_rng(1)
    Y, P = rng.standard_normal((21, 3)), rng.standard_normal((21, 3))
    halves = split_half_scores(Y, P, seed=4)
    order = np.random.default_rng(4).permutation(21)
    for name, rows in (("score_half_a", order[:10]), ("score_half_b", order[10:])):
        expected = [pearsonr(Y[rows, u], P[rows, u])[0] for u in range(3)]
        np.testing.assert_allclose(halves[name], expected, rtol=1e-5)
    assert split_half_scores(Y[:6], P[:6], seed=0) == {}


@pytest.fixture(scope="module")
def units() -> Units:
    return Units("fsaverage5", N, rois={}, hemisphere=np.repeat("left", N), vertex=np.arange(N))


def test_map_shows_layer_names_and_masks_unreliable_vertices(units) -> None:
    from nilearn import datasets

    part = datasets.load_fsaverage("fsaverage5")["inflated"].parts["left"]
    y, faces = part.coordinates[:, 1], part.faces
    back, front = y < -50, y > 0
    rng = np.random.default_rng(2)
    depths, names = [0.0, 0.5, 1.0], ["stem", "block3", "head"]
    scores = 0.4 + 0.01 * rng.standard_normal((3, N))
    scores[2, back] += 0.3                      # "head" wins at the back, in both halves
    scores[0, front] += 0.3                     # "stem" wins at the front in the full set, in one half only
    half_a, half_b = scores.copy(), scores.copy()
    half_b[:, ~back] = -scores[:, ~back]        # elsewhere the second half ranks the layers the other way round
    fig = plot_best_layer(scores, depths, units, layer_names=names, halves=(half_a, half_b), min_score=0.2,
                          views=["lateral"], hemispheres=["left"])
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["head"]
    assert legend.get_title().get_text().startswith("best layer")
    assert f"{int(back.sum())} of {N} vertices" in legend.get_title().get_text()
    assert not fig.axes[-1].images and len(fig.axes) == 1, "a discrete legend, no continuous colour bar"
    drawn = fig.axes[0].collections[0]._facecolor3d
    head = layer_colours(depths, names)["head"]
    labels = label_map({"head": back})
    assert np.allclose(drawn[(labels[faces] == 1).all(axis=1)], head)
    in_front = front[faces].all(axis=1)
    for colour in layer_colours(depths, names).values():
        assert not np.isclose(drawn[in_front], colour).all(axis=1).any(), "unreliable vertices stay uncoloured"
    unmasked = plot_best_layer(scores, depths, units, layer_names=names, min_score=0.2, views=["lateral"],
                               hemispheres=["left"])
    assert [t.get_text() for t in unmasked.legends[0].get_texts()] == names, "without halves noise wins too"
