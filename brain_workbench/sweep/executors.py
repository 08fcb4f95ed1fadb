"""Executors run pending cells and yield ``(cell, result)`` in completion order.

``inline`` runs in this process (default, easiest to debug); ``local`` uses a process pool on this
machine; ``dask`` submits to a dask.distributed scheduler (dask-jobqueue reaches Slurm/PBS). Workers
only compute and return arrays: the coordinating process alone writes to the store. Worker processes
this machine starts (the ``local`` pool, a local dask cluster) exit when their coordinator dies, even
by SIGKILL, instead of holding their memory until their cell finishes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from brain_workbench.analysis.contract import Cell
from brain_workbench.types import WorkbenchError

CellFunction = Callable[[str, Any], Any]
CellRunner = Callable[[str, list[Cell], CellFunction], Iterator[tuple[Cell, Any]]]
EXECUTORS = ("inline", "local", "dask")
PARENT_POLL_S = 0.2


def exit_with_parent(parent: int, interval: float = PARENT_POLL_S) -> None:
    """Watch, in a daemon thread, that this process's parent is still ``parent``; exit at once when it is
    not (the coordinator died and this worker was re-parented), so no orphan keeps running."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="workbench-exit-with-parent", daemon=True).start()


def run_inline(store_url: str, cells: list[Cell], fn: CellFunction) -> Iterator[tuple[Cell, Any]]:
    for cell in cells:
        yield cell, fn(store_url, cell)


def _init_worker(coordinator: int | None = None) -> None:
    if coordinator is not None:
        exit_with_parent(coordinator)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run_local(store_url: str, cells: list[Cell], workers: int | None = None, *,
              fn: CellFunction) -> Iterator[tuple[Cell, Any]]:
    """Run ``fn(store_url, cell)`` for each cell in a pool of spawned processes that die with this one."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=context,
                             initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, store_url, cell): cell for cell in cells}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def run_dask(store_url: str, cells: list[Cell], address: str | None = None, workers: int | None = None, *,
             fn: CellFunction) -> Iterator[tuple[Cell, Any]]:
    """Submit cells to the scheduler at ``address`` (e.g. one a dask-jobqueue SLURMCluster started),
    or to a local cluster of ``workers`` processes when no address is given (distributed's worker
    processes already exit when the process that started them dies; a test checks it)."""
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise WorkbenchError("the dask executor needs dask.distributed: pip install 'brain-workbench[dask]'") from None
    local = {"n_workers": workers} if workers else {}
    client = Client(address) if address else Client(processes=True, dashboard_address=None, **local)
    try:
        futures = {client.submit(fn, store_url, cell, pure=False): cell for cell in cells}
        for future in dask_completed(list(futures)):
            yield futures[future], future.result()
    finally:
        client.close()


def get_executor(name: str, workers: int | None = None, address: str | None = None) -> CellRunner:
    if name == "inline":
        return run_inline
    if name == "local":
        def local(url: str, cells: list[Cell], fn: CellFunction) -> Iterator[tuple[Cell, Any]]:
            return run_local(url, cells, workers, fn=fn)

        return local
    if name == "dask":
        def dask(url: str, cells: list[Cell], fn: CellFunction) -> Iterator[tuple[Cell, Any]]:
            return run_dask(url, cells, address, workers, fn=fn)

        return dask
    raise WorkbenchError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
