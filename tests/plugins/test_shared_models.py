"""Models shared across subjects on the multi-subject demo: the planted advantage, adaptation, resume.

The demo's subjects share latent factors through subject-specific mixing; with
``shared_topography=0.3`` part of each vertex's mixing is common to all subjects (as on a common
surface), which a shared model can carry to a new subject and a per-subject model cannot. So the
shared models must beat per-subject ones when the new subject has one session, and the gap must
shrink once it has all its sessions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_head
from brain_workbench.store import DamagedEntryError, open_store
from brain_workbench_plugins.demo import DemoDataset
from brain_workbench_plugins.shared_models import adaptation_curve
from brain_workbench_plugins.shared_models.adaptation import averaged_rows, session_order
from brain_workbench_plugins.shared_models.training import checkpoints, run_key

N_UNITS = 500


@pytest.fixture(scope="module")
def demo():
    ds = DemoDataset(n_subjects=4, n_train=120, n_test=40, noise=3.0, shared_topography=0.3, seed=0)
    recordings = {s: ds.recording(s) for s in ds.subjects()}
    rois = recordings["1"].units.rois
    inside = np.flatnonzero(np.any(np.stack(list(rois.values())), axis=0))
    keep = np.zeros(recordings["1"].n_units, dtype=bool)
    keep[np.random.default_rng(0).choice(inside, N_UNITS, replace=False)] = True
    recordings = {s: r.select_units(keep) for s, r in recordings.items()}
    latent = np.concatenate([ds.feature_spaces[k] for k in ("low", "mid", "shape", "topic")], axis=1)
    return ds, recordings, latent


def gap(table, metric: str, k: int, shared: str, single: str) -> float:
    rows = table[(table["metric"] == metric) & (table["k_sessions"] == k)].set_index("model")["value"]
    return float(rows[shared] - rows[single])


def test_plugin_registers_heads_without_importing_torch():
    code = "import sys, brain_workbench_plugins.shared_models; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    registry = wb.get_registry()
    for name in ("shared-decoder", "shared-encoder", "aligned-decoder"):
        entry = registry.get("head", name)
        assert entry.plugin == "shared-models" and all(o.help for o in entry.options().values())


@pytest.mark.parametrize("name, options", [("shared-decoder", {"epochs": 5, "latent_dim": 8}),
                                           ("shared-encoder", {"epochs": 5, "latent_dim": 8}),
                                           ("aligned-decoder", {})])
def test_single_subject_use_passes_the_head_conformance_check(name, options):
    check_head(wb.head(name, **options))


def test_shared_decoder_beats_per_subject_decoders_with_little_data_and_the_gap_shrinks(demo):
    ds, recordings, latent = demo
    models = [{"name": "shared-decoder", "label": "shared",
               "options": {"latent_dim": 32, "epochs": 20, "map_prior": "mean"}},
              {"name": "decoder", "label": "ridge", "options": {"method": "ridge"}}]
    table = adaptation_curve(recordings, ds.ids, latent, "4", models, sessions=(1, None))
    assert set(table["metric"]) == {"top1", "two_way", "mean_r"}
    one = table[(table["k_sessions"] == 1)]
    assert one["n_stimuli"].iloc[0] < 0.35 * table["n_stimuli"].max()
    small_top1, large_top1 = gap(table, "top1", 1, "shared", "ridge"), gap(table, "top1", 10, "shared", "ridge")
    small_2way, large_2way = gap(table, "two_way", 1, "shared", "ridge"), gap(table, "two_way", 10, "shared", "ridge")
    assert small_top1 > 0.15, table
    assert small_2way > 0.03, table
    assert abs(large_top1) < small_top1 / 2 and abs(large_2way) < small_2way / 2, table
    ridge_top1 = table[(table["model"] == "ridge") & (table["metric"] == "top1")].set_index("k_sessions")["value"]
    assert ridge_top1[10] > ridge_top1[1] + 0.3, "the per-subject decoder must improve with more sessions"


def test_shared_encoder_needs_only_unit_embeddings_for_a_new_subject(demo):
    ds, recordings, latent = demo
    distractors = np.random.default_rng(1).standard_normal((len(latent), 200))
    features = np.concatenate([latent, distractors], axis=1)  # most feature dimensions drive no unit
    models = [{"name": "shared-encoder", "label": "shared",
               "options": {"latent_dim": 16, "epochs": 10, "embedding_prior": "mean"}},
              {"name": "ridge", "label": "ridge", "options": {}}]
    table = adaptation_curve(recordings, ds.ids, features, "4", models, sessions=(1, None))
    small, large = gap(table, "mean_r", 1, "shared", "ridge"), gap(table, "mean_r", 10, "shared", "ridge")
    ridge_small = table[(table["model"] == "ridge") & (table["metric"] == "mean_r") & (table["k_sessions"] == 1)]
    assert small > 0.005 and small > 0.1 * float(ridge_small["value"].iloc[0]), table
    assert large < small, table


def test_adapt_fits_only_the_new_subject(demo):
    ds, recordings, latent = demo
    row = {s: i for i, s in enumerate(ds.ids)}
    data = {}
    for s in ("1", "2", "3"):
        rec = recordings[s]
        ids, Y = averaged_rows(rec, np.isin(rec.trial_stimulus_ids, rec.splits["train"]))
        data[s] = (Y, latent[[row[i] for i in ids]])
    model = wb.head("shared-decoder", latent_dim=16, epochs=3).fit(data)
    head_before = [p.clone() for p in model.head_.parameters()]
    maps_before = {s: model.subjects_[s][0].copy() for s in data}
    new = recordings["4"]
    first = np.isin(new.trial_groups["session"], session_order(new)[:2])
    ids, Y = averaged_rows(new, first & np.isin(new.trial_stimulus_ids, new.splits["train"]))
    model.adapt("4", Y, latent[[row[i] for i in ids]])
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(head_before, model.head_.parameters()))
    assert all(np.array_equal(maps_before[s], model.subjects_[s][0]) for s in data)
    assert model.subjects_["4"][0].shape == (N_UNITS, 16)
    test_ids, Y_test = averaged_rows(new, np.isin(new.trial_stimulus_ids, new.splits["test"]))
    scores = model.decode_scores("4", Y_test, latent[[row[i] for i in test_ids]])
    assert scores["two_way"] > 0.8
    with pytest.raises(wb.WorkbenchError, match="not fitted"):
        model.predict("5", Y_test)
    with pytest.raises(wb.WorkbenchError, match="rows"):
        model.adapt("5", Y_test, latent[:3])


@pytest.mark.parametrize("method", ["hyperalignment", "procrustes"])
def test_aligned_decoder_transfers_a_head_through_alignment(demo, method):
    ds, recordings, latent = demo
    models = [{"name": "aligned-decoder", "label": method, "options": {"method": method}}]
    table = adaptation_curve(recordings, ds.ids, latent, "4", models, sessions=(None,), align_fraction=0.5)
    two_way = table[table["metric"] == "two_way"]["value"].iloc[0]
    assert two_way > 0.75, table


def test_bad_multi_subject_input_is_refused(demo):
    with pytest.raises(wb.WorkbenchError, match="same columns"):
        wb.head("shared-decoder").fit({"a": (np.ones((5, 3)), np.ones((5, 2))), "b": (np.ones((5, 3)), np.ones((5, 4)))})
    with pytest.raises(wb.WorkbenchError, match="unit space"):
        rng = np.random.default_rng(0)
        model = wb.head("shared-decoder", epochs=1, latent_dim=2, map_prior="mean").fit(
            {"a": (rng.standard_normal((20, 6)), rng.standard_normal((20, 3)))})
        model.adapt("b", rng.standard_normal((20, 5)), rng.standard_normal((20, 3)))
    with pytest.raises(wb.WorkbenchError, match="CUDA is not available"):
        if __import__("torch").cuda.is_available():
            raise wb.WorkbenchError("CUDA is not available (skipped: this machine has CUDA)")
        wb.head("shared-decoder", device="cuda").fit({"a": (np.ones((5, 3)), np.ones((5, 2)))})


# ---- seeded, checkpointed, resumable training ------------------------------------------------

OPTIONS = {"latent_dim": 6, "hidden": 32, "epochs": 14, "batch_size": 16, "checkpoint_every": 2, "seed": 3}
TRAIN = textwrap.dedent("""
    import sys, time
    import numpy as np
    from brain_workbench_plugins.shared_models.decoder import SharedDecoder
    arrays = np.load(sys.argv[1])
    data = {s: (arrays["Y" + s], arrays["X" + s]) for s in ("a", "b")}
    SharedDecoder(**{options}, store=sys.argv[2], run_name="run").fit(data, progress=lambda e, loss: time.sleep(0.2))
""")


def synthetic_subjects() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((120, 6))
    X = np.tanh(z @ rng.standard_normal((6, 10)))
    return {s: (z[40 * i:40 * i + 80] @ rng.standard_normal((6, 30)) + 0.5 * rng.standard_normal((80, 30)),
                X[40 * i:40 * i + 80]) for i, s in enumerate(("a", "b"))}


def test_training_is_seeded_and_identical_with_or_without_checkpoints(tmp_path: Path):
    data = synthetic_subjects()
    plain = wb.head("shared-decoder", **OPTIONS).fit(data)
    again = wb.head("shared-decoder", **OPTIONS).fit(data)
    stored = wb.head("shared-decoder", **OPTIONS, store=str(tmp_path / "s.zarr"), run_name="run").fit(data)
    Y = data["a"][0]
    np.testing.assert_array_equal(plain.predict("a", Y), again.predict("a", Y))
    np.testing.assert_array_equal(plain.predict("a", Y), stored.predict("a", Y))
    found = checkpoints(open_store(str(tmp_path / "s.zarr")), run_key("run"))
    assert [epoch for epoch, _ in found] == [12, 14], "the last `keep` checkpoints are kept"
    rerun = wb.head("shared-decoder", **OPTIONS, store=str(tmp_path / "s.zarr"), run_name="run").fit(data)
    assert rerun.resumed_from_ == 14
    np.testing.assert_array_equal(plain.predict("a", Y), rerun.predict("a", Y))
    with pytest.raises(wb.WorkbenchError, match="other data or options"):
        wb.head("shared-decoder", **{**OPTIONS, "lr": 5e-3}, store=str(tmp_path / "s.zarr"), run_name="run").fit(data)


@pytest.mark.filterwarnings("ignore:Object at zarr.*partial is not recognized")  # polling races the writer
def test_a_training_run_killed_mid_way_resumes_and_ends_identical(tmp_path: Path):
    data = synthetic_subjects()
    np.savez(tmp_path / "data.npz", **{f"{k}{s}": v for s, (Y, X) in data.items() for k, v in (("Y", Y), ("X", X))})
    store_path = str(tmp_path / "store.zarr")
    script = TRAIN.replace("{options}", repr(OPTIONS))
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data.npz"), store_path],
                            stderr=subprocess.PIPE)
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if (Path(store_path) / "shared-models").exists():
                try:
                    found = checkpoints(open_store(store_path), run_key("run"))
                except (KeyError, FileNotFoundError, DamagedEntryError):  # a listing raced with the writer
                    found = []  # (temporary files, or a new group's children listed before its zarr.json lands)
                if found and found[-1][0] >= 4:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared within 90 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = checkpoints(open_store(store_path), run_key("run"))[-1][0]
    assert 4 <= killed_at < OPTIONS["epochs"]
    resumed = wb.head("shared-decoder", **OPTIONS, store=store_path, run_name="run").fit(data)
    assert resumed.resumed_from_ == killed_at
    reference = wb.head("shared-decoder", **OPTIONS).fit(data)
    np.testing.assert_array_equal(resumed.loss_curve_, reference.loss_curve_)
    for a, b in zip(resumed.head_.parameters(), reference.head_.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for s in data:
        np.testing.assert_array_equal(resumed.subjects_[s][0], reference.subjects_[s][0])
        np.testing.assert_array_equal(resumed.predict(s, data[s][0]), reference.predict(s, data[s][0]))


def test_encoder_training_extended_from_a_checkpoint_equals_one_longer_run(tmp_path: Path):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((90, 12))
    data = {s: (X[30 * i:30 * i + 60], X[30 * i:30 * i + 60] @ rng.standard_normal((12, 25))
                + rng.standard_normal((60, 25))) for i, s in enumerate(("a", "b"))}
    options = {"latent_dim": 4, "hidden": 8, "batch_size": 16, "checkpoint_every": 3, "seed": 1}
    store = str(tmp_path / "enc.zarr")
    wb.head("shared-encoder", **options, epochs=6, store=store, run_name="enc").fit(data)
    longer = wb.head("shared-encoder", **options, epochs=10, store=store, run_name="enc").fit(data)
    plain = wb.head("shared-encoder", **options, epochs=10).fit(data)
    assert longer.resumed_from_ == 6 and len(longer.loss_curve_) == 10
    np.testing.assert_array_equal(longer.predict("b", X), plain.predict("b", X))
    assert plain.loss_curve_[-1] < plain.loss_curve_[0]
