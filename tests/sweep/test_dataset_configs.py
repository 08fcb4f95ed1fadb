"""The shipped NSD and THINGS-EEG2 configs run end to end on files in the real published layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brain_workbench.store import load_recording
from brain_workbench.sweep import Sweep, load_cell_scores, load_config, results_table
from fixtures_datasets import make_nsd, make_things_eeg2

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.filterwarnings("ignore:NSD subject 1. sessions")
def test_nsd_config_runs_on_the_published_layout(tmp_path):
    root = tmp_path / "nsd"
    make_nsd(root, subjects=(1,), n_shared=6, n_unique=14)
    cfg = load_config(CONFIGS / "nsd-clip.yaml", [f"dataset.options.local_path={root}", f"store={tmp_path / 's.zarr'}",
                                                   "encoders.0.layers=[1.0]", "encoders.0.options.pretrained=null",
                                                   "permutations=10", "heads.0.options.cv=3"])
    summary = Sweep(cfg).run()
    assert summary["computed"] == 1
    frame = results_table(Sweep(cfg).store, "nsd-clip")
    assert set(frame["subject"]) == {"1"} and "all" in set(frame["roi"])
    (cell, arrays), = list(load_cell_scores(Sweep(cfg).store, "nsd-clip"))
    assert np.isfinite(arrays["score"]).all() and arrays["score"].ndim == 1
    store = Sweep(cfg).store
    rec = load_recording(store, cell["response_path"])
    assert set(rec.units.hemisphere) == {"left", "right"}, "NSD's lh/rh files give left/right units"
    from brain_workbench.figures.brainmap import surface_arrays
    from brain_workbench.figures.sweep import draw_brainmap
    from brain_workbench.report import write_report

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
                       "encoders.0.layers=[1.0]", "encoders.0.options.pretrained=null", "permutations=10",
                       "heads.0.options.cv=3"])
    Sweep(cfg).run()
    (cell, arrays), = list(load_cell_scores(Sweep(cfg).store, "things-eeg2-clip"))
    from fixtures_datasets import EEG_CHANNELS

    assert arrays["score"].shape == (len(EEG_CHANNELS), len(arrays["times"]))
    frame = results_table(Sweep(cfg).store, "things-eeg2-clip")
    assert frame["peak_time"].notna().all()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_through_the_sweep_loader(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


def test_shared_configs_align_on_the_stimuli_every_subject_saw():
    from brain_workbench_plugins.analyses import sections

    nsd, eeg = load_config(CONFIGS / "nsd-shared.yaml"), load_config(CONFIGS / "things-eeg2-shared.yaml")
    # NSD's shared1000 and THINGS-EEG2's 200 test images are each dataset's `test` split
    nsd_shared, eeg_shared = sections.shared(nsd), sections.shared(eeg)
    assert nsd_shared is not None and eeg_shared is not None
    assert nsd_shared.align.split == eeg_shared.align.split == "test"
    assert nsd.dataset.options["average_repetitions"] is False and eeg.dataset.options["data"] == "raw"
    assert nsd_shared.session_group == eeg_shared.session_group == "session"


@pytest.mark.filterwarnings("ignore:NSD subject")
@pytest.mark.filterwarnings("ignore:encoder 'clip'")
def test_nsd_shared_config_runs_on_the_published_layout(tmp_path, monkeypatch):
    from brain_workbench_plugins import nsd

    monkeypatch.setattr(nsd, "N_SESSIONS", {s: 3 for s in range(1, 9)})
    monkeypatch.setattr(nsd, "HELD_OUT_SESSIONS", 0)
    root = tmp_path / "nsd"
    make_nsd(root, subjects=(1, 2, 3), n_shared=8, n_unique=14, n_sessions=3)
    cfg = load_config(CONFIGS / "nsd-shared.yaml", [
        f"dataset.options.local_path={root}", f"store={tmp_path / 's.zarr'}", "subjects=[1, 2, 3]",
        "shared.new_subjects=[3]", "shared.sessions=[1, null]", "shared.device=cpu", "shared.n_candidates=null",
        "encoders.0.options.pretrained=null",
        "shared.models=[{name: aligned-decoder, label: procrustes, options: {method: procrustes}},"
        " {name: decoder, label: ridge, options: {method: ridge, cv: 2}}]"])
    summary = Sweep(cfg).run()
    assert summary["computed"] == 4
    store = Sweep(cfg).store
    rec = load_recording(store, Sweep(cfg).recording_key("3"))
    assert list(dict.fromkeys(rec.trial_groups["session"])) == ["1", "2", "3"]
    from brain_workbench.sweep import tidy_table

    table = tidy_table(store, "nsd-shared")
    assert set(table.loc[table["kind"] == "adaptation", "k_sessions"]) == {1, 3}


@pytest.mark.filterwarnings("ignore:encoder 'clip'")
def test_things_eeg2_shared_config_refuses_preprocessed_data_before_extracting(tmp_path):
    from brain_workbench.types import WorkbenchError

    root = tmp_path / "things"
    make_things_eeg2(root, subjects=(1, 2), n_train_concepts=4, n_test=4)
    cfg = load_config(CONFIGS / "things-eeg2-shared.yaml", [
        f"dataset.options.local_path={root}", "dataset.options.data=preprocessed", f"store={tmp_path / 's.zarr'}",
        "shared.new_subjects=[2]", "shared.device=cpu", "encoders.0.options.pretrained=null"])
    with pytest.raises(WorkbenchError, match="labels no trial 'session'.*adaptation needs each trial's session"):
        Sweep(cfg).run()
    assert not (tmp_path / "s.zarr" / "features").exists()
