"""The zarr store: keys, resumable block writes across killed processes, concurrent readers, verify, gc."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from brain_workbench.cli import app
from brain_workbench.store import (
    META,
    ArraySpec,
    Store,
    check_key,
    load_recording,
    open_store,
    safe_name,
    save_recording,
)
from brain_workbench.types import Recording, Units, WorkbenchError

runner = CliRunner()
PATH = "features/enc-1a2b/layer3"
N_ROWS, WIDTH, BLOCK_ROWS = 40, 5, 2
N_BLOCKS = N_ROWS // BLOCK_ROWS

WRITER = r"""
import sys, time
import numpy as np
from brain_workbench.store import ArraySpec, Store

url, path, log, sleep, n_rows, width, rows = sys.argv[1:8]
n_rows, width, rows, sleep = int(n_rows), int(width), int(rows), float(sleep)
specs = {"x": ArraySpec((n_rows, width), "float32"), "ids": ArraySpec((n_rows,), "str", blocked=False)}
with Store(url).writer(path, specs, kind="features", block_rows=rows) as w:
    for block in w.pending_blocks():
        with open(log, "a") as f:
            f.write(f"{block}\n")
        time.sleep(sleep)
        start, stop = block * rows, min((block + 1) * rows, n_rows)
        w.write_block(block, {"x": np.arange(start, stop)[:, None] * 1000.0 + np.arange(width)})
    w.put("ids", np.array([f"stimulus-with-a-long-name-{i:04d}" for i in range(n_rows)]))
    w.finish()
"""

READER = r"""
import json, sys, time
import numpy as np
from brain_workbench.store import Store

url, path, n_blocks, rows, width, timeout = sys.argv[1:7]
n_blocks, rows, width, timeout = int(n_blocks), int(rows), int(width), float(timeout)
store = Store(url)
polls = partial = bad = errors = 0
deadline = time.time() + timeout
while time.time() < deadline:
    try:
        meta = store.meta(path)
        if meta is None:
            continue
        done = meta["blocks"]["done"]
        polls += 1
        partial += 0 < len(done) < n_blocks
        array = store.root[path]["x"]
        for block in done:
            got = array[block * rows:(block + 1) * rows]
            want = np.arange(block * rows, (block + 1) * rows)[:, None] * 1000.0 + np.arange(width)
            bad += not np.array_equal(got, want)
        if meta["complete"]:
            break
    except Exception as exc:
        errors += 1
        print(repr(exc), file=sys.stderr)
print(json.dumps({"polls": polls, "partial": partial, "bad": bad, "errors": errors,
                  "complete": bool(store.is_complete(path))}))
"""


def expected_x(n_rows: int = N_ROWS, width: int = WIDTH) -> np.ndarray:
    return (np.arange(n_rows)[:, None] * 1000.0 + np.arange(width)).astype(np.float32)


def start_writer(url: str, log: Path, sleep: float, path: str = PATH) -> subprocess.Popen:
    args = [url, path, str(log), str(sleep), str(N_ROWS), str(WIDTH), str(BLOCK_ROWS)]
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def logged(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def write_entry(store: Store, path: str = PATH, finish: bool = True, n_rows: int = 10) -> None:
    specs = {"x": ArraySpec((n_rows, 3), "float32"), "ids": ArraySpec((n_rows,), "str", blocked=False)}
    with store.writer(path, specs, kind="features", block_rows=4) as w:
        for block in w.pending_blocks():
            rows = w.block_slice(block)
            w.write_block(block, {"x": np.arange(rows.start * 3, rows.stop * 3, dtype=np.float32).reshape(-1, 3)})
        w.put("ids", np.array([f"a-stimulus-id-longer-than-sixteen-{i}" for i in range(n_rows)]))
        if finish:
            w.finish(config={"test": True})


# ---- keys -----------------------------------------------------------------------------------
BAD_KEYS = ["../x", "a/../b", "", "/", "a//b", "has space", "x/has space", "a/./b", ".hidden", "a/zarr.json",
            "__private", "a\\b", "é", "x" * 201]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(key: str, tmp_store: Store) -> None:
    with pytest.raises(WorkbenchError, match="store key"):
        check_key(key)
    for call in (lambda: tmp_store.writer(key, {"x": ArraySpec((2,), "float32")}, kind="t"),
                 lambda: tmp_store.open(key), lambda: tmp_store.delete(key), lambda: tmp_store.ls(key),
                 lambda: tmp_store.meta(key)):
        with pytest.raises(WorkbenchError):
            call()


def test_non_string_keys_and_good_keys(tmp_store: Store) -> None:
    for key in (None, 3, b"features/x"):
        with pytest.raises(WorkbenchError):
            check_key(key)  # type: ignore[arg-type]
    assert check_key("/features/clip-1a2b/layer_3.attn/") == "features/clip-1a2b/layer_3.attn"
    assert safe_name("blocks.3/attn out") != safe_name("blocks.3_attn_out")
    check_key(safe_name("blocks.3/attn out"))


# ---- resumable writes -----------------------------------------------------------------------
def test_killed_write_is_incomplete_reported_and_resumed(tmp_path: Path, tmp_store: Store) -> None:
    url, first, second = tmp_store.url, tmp_path / "first.log", tmp_path / "second.log"
    proc = start_writer(url, first, sleep=0.2)
    try:
        wait_for(lambda: len((tmp_store.meta(PATH) or {}).get("blocks", {}).get("done", [])) >= 3,
                 what="three finished blocks")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = set(tmp_store.meta(PATH)["blocks"]["done"])
    assert 3 <= len(done_before) < N_BLOCKS and not tmp_store.is_complete(PATH)

    problems = tmp_store.verify()
    assert [(p.path, p.status) for p in problems] == [(PATH, "incomplete")]
    assert f"{len(done_before)}/{N_BLOCKS} blocks" in problems[0].detail
    result = runner.invoke(app, ["store", "verify", "--store", url, "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)[0]["status"] == "incomplete"
    with pytest.raises(WorkbenchError, match="incomplete"):
        tmp_store.open(PATH)

    rerun = start_writer(url, second, sleep=0.0)
    assert rerun.wait(timeout=60) == 0, rerun.stderr.read()
    assert logged(second) == sorted(set(range(N_BLOCKS)) - done_before), "finished blocks must not be recomputed"
    assert tmp_store.is_complete(PATH) and tmp_store.verify() == []
    np.testing.assert_array_equal(tmp_store.open(PATH)["x"], expected_x())
    assert runner.invoke(app, ["store", "verify", "--store", url]).exit_code == 0


def test_concurrent_reader_never_sees_unwritten_done_blocks(tmp_path: Path, tmp_store: Store) -> None:
    reader = subprocess.Popen([sys.executable, "-c", READER, tmp_store.url, PATH, str(N_BLOCKS), str(BLOCK_ROWS),
                               str(WIDTH), "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = start_writer(tmp_store.url, tmp_path / "w.log", sleep=0.05)
    assert writer.wait(timeout=60) == 0, writer.stderr.read()
    out, err = reader.communicate(timeout=60)
    report = json.loads(out)
    assert report["complete"] and report["bad"] == 0 and report["errors"] == 0, (report, err)
    assert report["partial"] >= 3, f"the reader should have seen the entry half-written: {report}"


def test_complete_entry_is_not_rewritten(tmp_store: Store) -> None:
    write_entry(tmp_store)
    specs = {"x": ArraySpec((10, 3), "float32"), "ids": ArraySpec((10,), "str", blocked=False)}
    w = tmp_store.writer(PATH, specs, kind="features", block_rows=4)
    assert w.complete and w.pending_blocks() == []
    w.write_block(0, {"x": np.zeros((4, 3))})
    w.finish()
    assert tmp_store.open(PATH)["x"][0, 1] == 1.0 and tmp_store.verify() == []


def test_incomplete_entry_of_another_shape_restarts(tmp_store: Store) -> None:
    write_entry(tmp_store, finish=False)
    assert len(tmp_store.meta(PATH)["blocks"]["done"]) == 3
    with tmp_store.writer(PATH, {"x": ArraySpec((6, 3), "float32")}, kind="features", block_rows=4) as w:
        assert w.pending_blocks() == [0, 1] and sorted(w.group.array_keys()) == ["x"]


def test_nan_and_bad_blocks_are_refused(tmp_store: Store) -> None:
    with tmp_store.writer(PATH, {"x": ArraySpec((4, 2), "float32")}, kind="features", block_rows=2) as w:
        for bad in (np.nan, np.inf):
            with pytest.raises(WorkbenchError, match="NaN or infinite"):
                w.write_block(0, {"x": np.array([[0.0, 1.0], [bad, 2.0]])})
        with pytest.raises(WorkbenchError, match="shape"):
            w.write_block(0, {"x": np.zeros((3, 2))})
        with pytest.raises(WorkbenchError, match="must hold arrays"):
            w.write_block(0, {"y": np.zeros((2, 2))})
        for block in (-1, 2, 1.0):
            with pytest.raises(WorkbenchError, match="out of range"):
                w.write_block(block, {"x": np.zeros((2, 2))})  # type: ignore[arg-type]
        assert w.pending_blocks() == [0, 1]
        w.write_block(1, {"x": np.ones((2, 2))})
        with pytest.raises(WorkbenchError, match=r"still misses blocks \[0\]"):
            w.finish()
    assert tmp_store.meta(PATH)["blocks"]["done"] == [1] and tmp_store.meta(PATH)["writer"] is None


def test_entries_do_not_nest(tmp_store: Store) -> None:
    write_entry(tmp_store)
    with pytest.raises(WorkbenchError, match="is already an entry"):
        tmp_store.writer(PATH + "/inner", {"x": ArraySpec((2,), "float32")}, kind="t")
    with pytest.raises(WorkbenchError, match="already holds other entries"):
        tmp_store.writer("features", {"x": ArraySpec((2,), "float32")}, kind="t")


def test_open_errors_are_clear(tmp_store: Store, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="has no entry 'features/none'.*workbench store ls"):
        tmp_store.open("features/none")
    write_entry(tmp_store)
    with pytest.raises(WorkbenchError, match="has no array 'y'; it has ids, x"):
        tmp_store.open(PATH)["y"]
    with pytest.raises(WorkbenchError, match="no store at"):
        open_store(tmp_path / "missing.zarr", create=False)
    assert not (tmp_path / "missing.zarr").exists()


# ---- verify ---------------------------------------------------------------------------------
def _chunk_files(store: Store, name: str) -> list[Path]:
    return sorted(p for p in (Path(store.url) / PATH / name / "c").rglob("*") if p.is_file())


def test_verify_reports_garbage_chunk(tmp_store: Store) -> None:
    write_entry(tmp_store)
    _chunk_files(tmp_store, "x")[1].write_bytes(b"\x00garbage" * 3)
    problems = tmp_store.verify()
    assert [(p.path, p.status) for p in problems] == [(PATH, "corrupt")]
    assert "block 1" in problems[0].detail
    result = runner.invoke(app, ["store", "verify", "--store", tmp_store.url])
    assert result.exit_code == 1 and "corrupt" in result.stdout
    assert runner.invoke(app, ["store", "verify", "--store", tmp_store.url, "--quick"]).exit_code == 0


def test_verify_reports_values_changed_behind_the_store(tmp_store: Store) -> None:
    write_entry(tmp_store)
    zarr.open_array(store=tmp_store.url, path=f"{PATH}/x", mode="r+")[5, 2] = 42.0
    problems = tmp_store.verify()
    assert [p.status for p in problems] == ["corrupt"] and "block 1 does not match" in problems[0].detail


def test_verify_reports_deleted_chunk_and_changed_strings(tmp_store: Store) -> None:
    write_entry(tmp_store)
    write_entry(tmp_store, "features/enc-1a2b/layer4")
    _chunk_files(tmp_store, "x")[0].unlink()
    ids = zarr.open_array(store=tmp_store.url, path="features/enc-1a2b/layer4/ids", mode="r+")
    ids[0] = "a-stimulus-id-longer-than-sixteen-X"
    problems = {p.path: p.detail for p in tmp_store.verify()}
    assert "block 0" in problems[PATH]
    assert "array 'ids'" in problems["features/enc-1a2b/layer4"]


# ---- gc -------------------------------------------------------------------------------------
def test_gc_keeps_complete_and_live_entries(tmp_path: Path, tmp_store: Store) -> None:
    write_entry(tmp_store, "features/a/complete")
    write_entry(tmp_store, "features/a/abandoned", finish=False)
    for name, age in (("recent", 60.0), ("stale", 7 * 3600.0)):
        write_entry(tmp_store, f"features/other-host/{name}", finish=False)
        group = tmp_store.root[f"features/other-host/{name}"]
        meta = dict(group.attrs[META])
        meta["writer"] = {"pid": 1, "host": "node-" + socket.gethostname(), "updated": time.time() - age}
        group.attrs[META] = meta
    live = start_writer(tmp_store.url, tmp_path / "live.log", sleep=60.0, path="features/a/live")
    try:
        wait_for(lambda: tmp_store.meta("features/a/live") is not None, what="the live writer")
        assert sorted(tmp_store.gc(dry_run=True)) == ["features/a/abandoned", "features/other-host/stale"]
        assert len(tmp_store.ls()) == 5
        result = runner.invoke(app, ["store", "gc", "--store", tmp_store.url])
        assert result.exit_code == 0 and "removed 2 entries" in result.stdout
        assert sorted(e.path for e in tmp_store.ls()) == ["features/a/complete", "features/a/live",
                                                         "features/other-host/recent"]
        with pytest.raises(WorkbenchError, match=f"being written by process {live.pid}"):
            tmp_store.writer("features/a/live", {"x": ArraySpec((2,), "float32")}, kind="t")
    finally:
        os.kill(live.pid, signal.SIGKILL)
        live.wait()
    assert tmp_store.gc() == ["features/a/live"]
    assert [p.path for p in tmp_store.verify()] == ["features/other-host/recent"]


def test_entry_left_by_another_host_can_be_resumed(tmp_store: Store) -> None:
    """A retried cluster job on another node finishes the entry instead of waiting for a heartbeat."""
    write_entry(tmp_store, finish=False)
    group = tmp_store.root[PATH]
    meta = dict(group.attrs[META])
    meta["writer"] = {"pid": os.getpid(), "host": "node-" + socket.gethostname(), "updated": time.time()}
    group.attrs[META] = meta
    assert tmp_store.gc() == []
    write_entry(tmp_store)
    assert tmp_store.is_complete(PATH) and tmp_store.verify() == []


# ---- other backends and recordings -----------------------------------------------------------
def test_fsspec_memory_store_round_trip() -> None:
    url = f"memory://wb-{uuid.uuid4().hex}/s.zarr"
    store = Store(url)
    write_entry(store)
    again = Store(url)
    np.testing.assert_array_equal(again.open(PATH)["x"], np.arange(30, dtype=np.float32).reshape(10, 3))
    assert [e.path for e in again.ls()] == [PATH] and again.verify() == []
    write_entry(again, "features/enc-1a2b/partial", finish=False)
    assert again.gc() == ["features/enc-1a2b/partial"]
    again.delete(PATH)
    assert again.ls() == []


def _recording(three_d: bool) -> Recording:
    rng = np.random.default_rng(0)
    n_trials, n_units, n_times = 12, 7, 5
    ids = np.array([f"img-{i % 6:03d}" for i in range(n_trials)])
    shape = (n_trials, n_units, n_times) if three_d else (n_trials, n_units)
    units = Units(
        space="eeg-10-20" if three_d else "fsaverage5", n=n_units,
        rois={"z last alphabetically": np.arange(n_units) < 3, "V1/V2 (dorsal)": np.arange(n_units) % 2 == 0,
              "a": np.ones(n_units, bool)},
        names=np.array([f"ch{i}" for i in range(n_units)]) if three_d else None,
        vertex=None if three_d else np.arange(n_units) * 10,
        hemisphere=None if three_d else np.array(["left", "right"] * 3 + ["left"]),
        coords=rng.standard_normal((n_units, 3)),
    )
    return Recording(
        dataset="demo", subject="sub-01", responses=rng.standard_normal(shape).astype(np.float32),
        trial_stimulus_ids=ids, units=units,
        splits={"test": np.array(["img-000", "img-001"]), "train shared": np.array([f"img-{i:03d}" for i in range(2, 6)])},
        times=np.linspace(-0.1, 0.5, n_times) if three_d else None,
        noise_ceiling=rng.uniform(0, 1, n_units).astype(np.float32),
        preprocessing=[{"step": "zscore", "per": "session"}],
    )


@pytest.mark.parametrize("three_d", [False, True])
def test_recording_round_trip(three_d: bool, tmp_store: Store) -> None:
    rec = _recording(three_d)
    save_recording(tmp_store, "responses/demo/sub-01", rec, attrs={"source": "test"})
    back = load_recording(tmp_store, "responses/demo/sub-01")
    np.testing.assert_array_equal(back.responses, rec.responses)
    assert back.responses.shape == rec.responses.shape and back.responses.dtype == np.float32
    np.testing.assert_array_equal(back.trial_stimulus_ids, rec.trial_stimulus_ids)
    assert back.trial_stimulus_ids.dtype.kind == "U"
    assert list(back.splits) == list(rec.splits)
    for name in rec.splits:
        np.testing.assert_array_equal(back.splits[name], rec.splits[name])
    assert list(back.units.rois) == list(rec.units.rois), "ROI order decides roi_labels"
    np.testing.assert_array_equal(back.units.roi_labels(), rec.units.roi_labels())
    for attr in ("names", "vertex", "hemisphere", "coords"):
        mine, theirs = getattr(rec.units, attr), getattr(back.units, attr)
        assert (mine is None) == (theirs is None), attr
        if mine is not None:
            np.testing.assert_array_equal(theirs, mine)
    assert back.units.space == rec.units.space and back.units.n == rec.units.n
    np.testing.assert_allclose(back.noise_ceiling, rec.noise_ceiling)
    if three_d:
        np.testing.assert_allclose(back.times, rec.times)
    else:
        assert back.times is None
    assert back.preprocessing == rec.preprocessing and (back.dataset, back.subject) == ("demo", "sub-01")
    assert tmp_store.open("responses/demo/sub-01").attrs["source"] == "test"
    averaged = back.average_repetitions()
    assert averaged.responses.shape[0] == 6 and tmp_store.verify() == []


def test_load_recording_refuses_other_entries(tmp_store: Store) -> None:
    write_entry(tmp_store)
    with pytest.raises(WorkbenchError, match="not a cached recording"):
        load_recording(tmp_store, PATH)
