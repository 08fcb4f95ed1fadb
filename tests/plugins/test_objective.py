"""A fitted encoding cell as a torch objective: its value on stimuli equals the readout's predict on the cached
features (which test_readout ties to the cell's own predictions), for ROIs, unit lists and contrasts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, load_features
from brain_workbench_plugins.analyses import objective, readout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder, PixelEncoder  # noqa: E402


@pytest.fixture(scope="module")
def finished(pixel_sweep):
    return pixel_sweep[0]


@pytest.mark.parametrize("layer", ["pixels", "energy"])
def test_objective_on_stimuli_equals_readout_predict_on_cached_features(finished, layer: str) -> None:
    cell = readout.encoding_cells(finished.context(), layer=layer)[0]
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell))
    rois = [r for r, m in fitted.unit_rois.items() if m.any()]
    targets = [rois[0], [0, 5, 9], {"roi": rois[0], "minus": rois[1]}]
    fn = objective.readout_objective(PixelEncoder(), layer, fitted, targets)
    dataset = wb.dataset("demo", n_subjects=1, n_train=40, n_test=12)
    ids = list(dataset.stimuli("image").ids[:6])
    X = load_features(Store(finished.config.store, mode="r"), cell.task.feature_path, ids)
    expected = np.stack([fitted.predict(X) @ readout.unit_selection(fitted, t) for t in targets], axis=1)
    got = fn(objective.images_to_tensor(dataset.stimuli("image").get(ids)))
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    assert fn.names == [rois[0], "units[0,5,9]", f"{rois[0]}-{rois[1]}"]


def test_objective_gradient_is_the_readout_weights_on_a_linear_layer(finished) -> None:
    cell = readout.encoding_cells(finished.context(), layer="pixels")[0]
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell))
    fn = objective.readout_objective(PixelEncoder(), "pixels", fitted, ["all"])
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    fn(image).sum().backward()
    w, _ = readout.objective_weights(fitted, "all")
    patch = torch.nn.functional.adaptive_avg_pool2d(image.grad, 4).flatten(1) * 16
    np.testing.assert_allclose(patch.numpy()[0], w, rtol=1e-4, atol=1e-6)


def test_encoder_without_a_differentiable_path_is_refused(finished) -> None:
    cell = readout.encoding_cells(finished.context(), layer="pixels")[0]
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell))
    with pytest.raises(wb.WorkbenchError, match="no differentiable path"):
        objective.readout_objective(ColourEncoder(), "colour", fitted, ["all"])
    with pytest.raises(wb.WorkbenchError, match="at least one target"):
        objective.readout_objective(PixelEncoder(), "pixels", fitted, [])
