"""Reconstruction and retrieval figures: which examples are shown, what the labels say, save-or-return."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brain_workbench.figures import plot_reconstructions, plot_retrieval
from brain_workbench.figures.reconstructions import pick_examples
from brain_workbench.plugin.testing import sample_images
from brain_workbench.types import WorkbenchError


@pytest.fixture
def data() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    targets = sample_images(12, 32, seed=1)
    recons = {"01": np.ascontiguousarray(targets[:, ::-1]), "02": sample_images(12, 16, seed=2)}
    scores = {"01": np.linspace(0.0, 1.1, 12), "02": np.linspace(1.0, -0.1, 12)}
    return targets, recons, scores


def test_pick_examples_orders_by_score() -> None:
    scores = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6])
    picks = pick_examples(scores, per_group=2, seed=0)
    assert picks["best"] == [1, 6] and picks["worst"] == [2, 5] and picks["median"] == [8, 0]
    shown = [i for g in ("best", "median", "worst") for i in picks[g]]
    assert len(picks["random"]) == 2 and not set(picks["random"]) & set(shown)
    assert pick_examples(scores, 2, higher_is_better=False)["best"] == [2, 5]
    assert pick_examples(np.array([1.0]), 2)["best"] == [0]
    with pytest.raises(WorkbenchError):
        pick_examples(np.array([np.nan, 1.0]))


def test_reconstruction_grid(data, tmp_path: Path) -> None:
    targets, recons, scores = data
    ids = [f"s{i}" for i in range(12)]
    fig = plot_reconstructions(targets, recons, scores, score_name="PixCorr", ids=ids, per_group=2)
    assert len(fig.axes) == 2 * 2 * 8  # subjects × (seen, reconstructed) × (4 groups × 2)
    texts = [t.get_text() for t in fig.texts if t is not fig._suptitle]
    assert texts == ["best", "median", "worst", "random"]
    assert "PixCorr" in fig._suptitle.get_text() and "higher is better" in fig._suptitle.get_text()
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert ylabels == ["subject 01\nseen", "subject 01\nreconstructed", "subject 02\nseen", "subject 02\nreconstructed"]
    assert fig.axes[0].get_title() == "s11" and fig.axes[1].get_xlabel() == "1.100"  # subject 01's best
    assert fig.axes[16].get_title() == "s0"  # subject 02's best is the first image
    out = plot_reconstructions(targets, recons, scores, output_file=tmp_path / "grid" / "recon.png")
    assert out == tmp_path / "grid" / "recon.png" and out.stat().st_size > 10_000
    single = plot_reconstructions(targets, recons["01"], scores["01"], per_group=1)
    assert [ax.get_ylabel() for ax in single.axes if ax.get_ylabel()] == ["seen", "reconstructed"]


def test_reconstruction_grid_refuses_misaligned_input(data) -> None:
    targets, recons, scores = data
    with pytest.raises(WorkbenchError, match="align"):
        plot_reconstructions(targets[:5], recons, scores)
    with pytest.raises(WorkbenchError, match="subjects"):
        plot_reconstructions(targets, recons, {"01": scores["01"]})
    with pytest.raises(WorkbenchError, match="uint8"):
        plot_reconstructions(targets / 255.0, recons, scores)


def test_retrieval_figure(tmp_path: Path) -> None:
    candidates = sample_images(10, 24, seed=3)
    rng = np.random.default_rng(0)
    S = rng.standard_normal((10, 10))
    S[0, 0], S[1, 1] = 10.0, -10.0  # pattern 0 finds its image first; pattern 1 ranks it last
    fig = plot_retrieval(S, candidates, k=4, queries=[0, 1])
    assert len(fig.axes) == 2 * 5
    first, second = fig.axes[:5], fig.axes[5:]
    assert first[0].get_title() == "seen" and "ranked\n1 of 10" in first[0].get_ylabel()
    assert "ranked\n10 of 10" in second[0].get_ylabel()
    assert first[1].get_title().startswith("#1  10.00")
    assert first[1].spines["top"].get_visible() and not first[2].spines["top"].get_visible()
    assert not any(ax.spines["top"].get_visible() for ax in second[1:]), "the true image is not in pattern 1's top 4"
    out = plot_retrieval(S, candidates, true_index=np.arange(10)[::-1], output_file=tmp_path / "r.png")
    assert out.exists()
    with pytest.raises(WorkbenchError, match="true_index"):
        plot_retrieval(S, candidates, true_index=[0] * 3)
    with pytest.raises(WorkbenchError, match="similarity"):
        plot_retrieval(S[:, :5], candidates)
