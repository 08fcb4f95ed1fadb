"""A cell's own peak memory, measured around its computation (RSS on Linux, else tracemalloc)."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Callable
from typing import Any

from brain_workbench.analysis.contract import CellResult


def _proc_memory_kib() -> dict[str, int] | None:
    """Linux: the process's resident set and its peak since the last reset (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as fh:
            values = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in fh)
                      if k in ("VmHWM", "VmRSS")}
    except OSError:
        return None
    return values if len(values) == 2 else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0: ``5`` into ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _proc_memory_kib() is not None


def measured(compute: Callable[[str, Any], CellResult], store_url: str, cell: Any) -> CellResult:
    """``compute(store_url, cell)``, its result carrying the cell's own peak memory in ``info``.

    On Linux the peak is the rise of the process's peak RSS over the cell (the mark is reset first:
    no overhead); elsewhere it is tracemalloc's peak of traced allocations (about 15% slower cells).
    ``peak_memory_source`` says which.
    """
    before = _proc_memory_kib() if _reset_peak_rss() else None
    if before is not None:
        result = compute(store_url, cell)
        after = _proc_memory_kib() or {"VmHWM": before["VmRSS"]}
        peak, source = round(max(after["VmHWM"] - before["VmRSS"], 0) / 1024, 3), "rss"
    else:
        tracing = not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        try:
            result = compute(store_url, cell)
            peak, source = round((tracemalloc.get_traced_memory()[1] - start) / 2**20, 3), "tracemalloc"
        finally:
            if tracing:
                tracemalloc.stop()
    return dataclasses.replace(result, info={**result.info, "peak_memory_mb": peak, "peak_memory_source": source})
