"""Volume-space and channel (time-resolved) units get tables, layer figures and a report; brain maps
are drawn for surface data only and are left out, not failed, for the others."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.report import write_report
from brain_workbench.sweep import Sweep, results_table, summary_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, Units, WorkbenchError, digest


class PixelEncoder:
    name = "pixel-units-test"
    modality = "image"

    def layers(self):
        return [LayerInfo("low", 0.5), LayerInfo("high", 1.0)]

    def encode(self, batch, layers):
        x = np.stack([np.asarray(im.convert("RGB").resize((4, 4)), np.float32).reshape(-1) / 255 for im in batch])
        return {"low": x, "high": np.c_[x.mean(1), x.std(1)]}

    def fingerprint(self):
        return digest("pixel-units-test", 1)


class Reshaped:
    """The demo's first units recast as volume voxels or as EEG channels × times."""

    def __init__(self, kind: str):
        self._demo = wb.dataset("demo", n_subjects=2, n_train=24, n_test=10)
        self.kind, self.name, self.modalities = kind, f"{kind}-units-test", ("image",)

    def subjects(self):
        return self._demo.subjects()

    def stimuli(self, modality=None):
        return self._demo.stimuli("image")

    def fetch(self, dest, accept_terms=False, **options):
        raise WorkbenchError("nothing to fetch")

    def fingerprint(self):
        return digest(self.name, self._demo.fingerprint())

    def recording(self, subject):
        rec = self._demo.recording(subject)
        if self.kind == "volume":
            n = 60
            units = Units(space="MNI152", n=n, rois={"A": np.arange(n) < 30, "B": np.arange(n) >= 30},
                          ijk=np.c_[np.arange(n) % 5, np.arange(n) // 5 % 4, np.arange(n) // 20],
                          shape=(5, 4, 3), affine=np.eye(4))
            return replace(rec, dataset=self.name, responses=rec.responses[:, :n], units=units,
                           noise_ceiling=rec.noise_ceiling[:n])
        n, t = 8, 3
        Y = rec.responses[:, : n * t].reshape(len(rec.responses), n, t)
        units = Units(space="eeg-10-20", n=n, rois={"occipital": np.arange(n) < 4},
                      names=np.array([f"C{i}" for i in range(n)]))
        return replace(rec, dataset=self.name, responses=Y, units=units, times=np.array([0.0, 0.1, 0.2]),
                       noise_ceiling=None)


@pytest.mark.parametrize("kind", ["volume", "channels"])
def test_non_surface_units_get_tables_figures_and_a_report(tmp_path, kind):
    wb.register("pixel-units-test", PixelEncoder, kind="encoder", replace=True)
    wb.register(f"{kind}-units-test", lambda: Reshaped(kind), kind="dataset", replace=True)
    data = {"name": kind, "store": str(tmp_path / "s.zarr"), "permutations": 5,
            "dataset": {"name": f"{kind}-units-test"}, "encoders": [{"name": "pixel-units-test"}],
            "heads": [{"name": "ridge", "options": {"alphas": [10.0]}}], "metrics": [{"name": "cka"}]}
    sweep = Sweep(config_from_dict(data))
    sweep.run()
    frame = results_table(sweep.store, kind)
    rois = {"volume": {"all", "A", "B"}, "channels": {"all", "occipital"}}[kind]
    assert set(frame["roi"]) == rois and set(frame["kind"]) == {"encoding", "metric"}
    if kind == "channels":
        assert frame[frame.kind == "encoding"]["peak_time"].notna().all()
    summary = summary_table(sweep.store, kind)
    assert (summary[summary.score == "mean_r"]["n_subjects"] == 2).all()
    page = write_report(sweep.store, kind, tmp_path / "report").read_text()
    assert "layers.png" in page and "layers_cka.png" in page and "brainmap_" not in page
    assert "Encoding: ridge, mean Pearson r per ROI" in page
