"""Executors: worker processes die with their coordinator, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brain_workbench.store.entries import _pid_alive

HELPER = '''
import os, time

def hold(store_url, cell):
    with open(cell + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(cell + ".tmp", cell)
    time.sleep(120)
    return {}
'''

COORDINATOR = '''
import sys
sys.path.insert(0, sys.argv[1])
from workbench_exec_helper import hold
from brain_workbench.sweep.executors import run_local, run_dask

kind, cells = sys.argv[2], sys.argv[3:]
runner = run_local(":unused:", cells, 2, fn=hold) if kind == "local" else \\
    run_dask(":unused:", cells, workers=2, fn=hold)
for _ in runner:
    pass
'''


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["local", "dask"])
def test_workers_die_with_a_killed_coordinator(tmp_path: Path, kind: str) -> None:
    if kind == "dask":
        pytest.importorskip("dask.distributed")
    (tmp_path / "workbench_exec_helper.py").write_text(textwrap.dedent(HELPER))
    cells = [str(tmp_path / f"pid-{i}") for i in range(2)]
    coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR, str(tmp_path), kind, *cells],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        _wait(lambda: all(Path(c).exists() for c in cells), 60, "both workers to start their cell")
        workers = [int(Path(c).read_text()) for c in cells]
        assert coordinator.pid not in workers and all(_pid_alive(p) for p in workers)
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.wait(timeout=10)
        _wait(lambda: not any(_pid_alive(p) for p in workers), 10, f"workers {workers} to exit")
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
        for pid in workers:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
