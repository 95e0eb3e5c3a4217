"""Ctrl-C and SIGTERM: the first asks the run to stop after the current step and save
its state; a second one stops at once (state files are written atomically, so the last
one saved stays consistent). A :class:`StopWhen` among a run's callbacks asks the same
from elsewhere (a batch worker whose driver was stopped)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterable, Iterator


class StopWhen:
    """A run callback that asks the run to stop after the current step, as a first Ctrl-C
    does, once ``predicate()`` is true; signals only reach a process's main thread."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate

    def __call__(self, state) -> None:
        pass  # the loop asks ``predicate`` itself, before every step


class StopRequest:
    def __init__(self, also: Iterable[Callable[[], bool]] = ()) -> None:
        self.requested = False
        self.also = tuple(also)

    def __call__(self) -> bool:
        return self.requested or any(predicate() for predicate in self.also)


@contextlib.contextmanager
def graceful_stop(callbacks: Iterable = ()) -> Iterator[StopRequest]:
    """A stop flag set by Ctrl-C/SIGTERM or by any :class:`StopWhen` in ``callbacks``."""
    stop = StopRequest(c.predicate for c in callbacks if isinstance(c, StopWhen))
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
