"""The shipped NSD and THINGS-EEG2 configs run end to end on files in the real published layouts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from workbench.store import load_recording, save_recording
import pytest

from workbench.sweep import Sweep, load_config
from workbench.sweep import load_cell_scores, results_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_datasets import make_nsd, make_things_eeg2  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.filterwarnings("ignore:NSD subject 1. sessions")
def test_nsd_config_runs_on_the_published_layout(tmp_path):
    root = tmp_path / "nsd"
    make_nsd(root, subjects=(1,), n_shared=6, n_unique=14)
    cfg = load_config(CONFIGS / "nsd-clip.yaml", [f"dataset.options.local_path={root}", f"store={tmp_path / 's.zarr'}",
                                                   "encoders.0.layers=[1.0]", "encoders.0.options.pretrained=null", "permutations=10", "heads.0.options.cv=3"])
    summary = Sweep(cfg).run()
    assert summary["computed"] == 1
    frame = results_table(Sweep(cfg).store, "nsd-clip")
    assert set(frame["subject"]) == {"1"} and "all" in set(frame["roi"])
    (cell, arrays), = list(load_cell_scores(Sweep(cfg).store, "nsd-clip"))
    assert np.isfinite(arrays["score"]).all() and arrays["score"].ndim == 1
    store = Sweep(cfg).store
    rec = load_recording(store, cell["response_path"])
    assert set(rec.units.hemisphere) == {"left", "right"}, "NSD's lh/rh files give left/right units"
    from workbench.figures.brainmap import surface_arrays
    from workbench.figures.sweep import draw_brainmap
    from workbench.report import write_report

    hemis = surface_arrays(arrays["score"], rec.units.hemisphere, rec.units.vertex, rec.units.space)
    assert all(np.isfinite(hemis[h]).any() for h in ("left", "right")), "both hemispheres carry values"
    assert draw_brainmap(store, "nsd-clip", tmp_path / "map.png", value="alpha").stat().st_size > 10_000
    page = write_report(store, "nsd-clip", tmp_path / "report").read_text()
    assert "brainmap_" in page


def test_things_eeg2_config_keeps_channels_and_times(tmp_path):
    root = tmp_path / "things"
    make_things_eeg2(root, subjects=(1,), n_train_concepts=6, n_test=4)
    cfg = load_config(CONFIGS / "things-eeg2-clip.yaml",
                      [f"dataset.options.local_path={root}", f"store={tmp_path / 's.zarr'}",
                       "encoders.0.layers=[1.0]", "encoders.0.options.pretrained=null", "permutations=10", "heads.0.options.cv=3"])
    Sweep(cfg).run()
    (cell, arrays), = list(load_cell_scores(Sweep(cfg).store, "things-eeg2-clip"))
    from fixtures_datasets import EEG_CHANNELS

    assert arrays["score"].shape == (len(EEG_CHANNELS), len(arrays["times"]))
    frame = results_table(Sweep(cfg).store, "things-eeg2-clip")
    assert frame["peak_time"].notna().all()
