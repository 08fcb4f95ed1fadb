"""Progress inside one cell: a cell computed in the coordinating process (a generation cell runs for minutes)
reports its own steps to the run's progress display through :func:`step_progress`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Sink = Callable[[str, int], Callable[[int], None]]
_sink: ContextVar[Sink | None] = ContextVar("brain_workbench_step_progress", default=None)


def step_progress(label: str, total: int) -> Callable[[int], None]:
    """A counter for ``total`` steps shown as ``label`` by the running sweep's reporter (a no-op outside a sweep
    or in a worker process, where no display is reachable); call it with the number of steps just done."""
    sink = _sink.get()
    return sink(label, total) if sink is not None else (lambda n: None)


@contextmanager
def progress_sink(sink: Sink) -> Iterator[None]:
    """While inside, :func:`step_progress` counters go to ``sink`` (a reporter's ``progress`` method)."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
