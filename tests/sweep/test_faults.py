"""Faults during a sweep: two sweeps on one store and Ctrl-C (real `workbench` subprocesses), a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import zarr.storage._local as zarr_local

import slow_plugins
from brain_workbench.cli import main
from brain_workbench.store import open_store
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import config_from_dict

HERE = Path(__file__).parent


def _start(tmp_path: Path, store: Path, tag: str, sleep: float, **env: str) -> subprocess.Popen:
    cfg = tmp_path / "race.yaml"
    cfg.write_text(yaml.safe_dump(slow_plugins.config(str(store))))
    environ = {**os.environ, "FIT_LOG": str(tmp_path / "fits.log"), "FIT_SLEEP": str(sleep),
               "TABLE_OUT": str(tmp_path / f"table-{tag}.json"), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.Popen([sys.executable, str(HERE / "slow_plugins.py"), "sweep", "run", str(cfg),
                             "--store", str(store)], env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_identical_sweeps_at_once_fit_each_cell_once_and_both_succeed(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    runs = [_start(tmp_path, store, tag, sleep=0.3) for tag in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in runs]
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{err}"
        assert "Traceback" not in err and "KeyError" not in err
    fits = (tmp_path / "fits.log").read_text().split()
    assert len(fits) == 12, f"each of the 12 cells is fitted exactly once, got {len(fits)} fits"
    computed = [int(out.split("done: ")[1].split(" cell")[0]) for out, _ in outs]
    assert sum(computed) == 12
    assert any("another sweep" in out + err for out, err in outs), f"one sweep waited for the other: {outs}"
    tables = [json.loads((tmp_path / f"table-{t}.json").read_text()) for t in ("a", "b")]
    assert tables[0] == tables[1] and len(tables[0]) > 0
    assert not list((tmp_path / "store.claims").glob("*.json")), "every claim was released"
    slow_plugins.register()
    sweep = Sweep(config_from_dict(slow_plugins.config(str(store))), open_store(store, mode="r"))
    status = sweep.status()
    assert status["cells_done"] == status["cells"] == 12


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    run = _start(tmp_path, store, "a", sleep=0.6)
    log = tmp_path / "fits.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().split()) >= 3):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, (out, err)
    slow_plugins.register()
    status = Sweep(config_from_dict(slow_plugins.config(str(store))), open_store(store, mode="r")).status()
    assert 2 <= status["cells_done"] < 12
    text = " ".join(err.split())
    assert f"interrupted: {status['cells_done']} of 12 cells are saved in {store}" in text, err
    assert f"workbench sweep run {tmp_path / 'race.yaml'} --store {store}" in text, err
    assert "Traceback" not in err and "Aborted" not in err


def test_a_full_disk_names_the_entry_and_the_store_and_the_rerun_resumes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    slow_plugins.register()
    store = tmp_path / "store.zarr"
    cfg = tmp_path / "race.yaml"
    cfg.write_text(yaml.safe_dump(slow_plugins.config(str(store))))
    put = zarr_local._put

    def full(path, value, exclusive=False):
        if "/results/race/" in str(path) and "manifest" not in str(path) and path.name != "zarr.json":
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name
        return put(path, value, exclusive=exclusive)

    monkeypatch.setattr(zarr_local, "_put", full)
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "run", str(cfg), "--store", str(store)])
    assert exit_.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "error: no space left on the disk holding 'results/race/" in err and f"in store {store}" in err, err
    assert "free space or pass another --store" in err
    monkeypatch.setattr(zarr_local, "_put", put)
    sweep = Sweep(config_from_dict(slow_plugins.config(str(store))), open_store(store))
    assert sweep.status()["cells_done"] == 0, "the cell that hit the full disk is not complete"
    assert sweep.run()["computed"] == 12


def test_an_identical_rerun_never_removes_the_manifest(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Another sweep's reader must never find them missing while this one finishes."""
    slow_plugins.register()
    sweep = Sweep(config_from_dict(slow_plugins.config(str(tmp_path / "store.zarr"))))
    table = Path(sweep.run()["table"])
    deleted: list[str] = []
    delete = sweep.store.delete
    monkeypatch.setattr(sweep.store, "delete", lambda path: (deleted.append(path), delete(path)))
    assert sweep.run()["computed"] == 0
    assert deleted == [], "the identical manifest is kept, not deleted and rewritten"
    assert table.exists() and not list(table.parent.glob("*.partial")), "the table is replaced by a rename"
