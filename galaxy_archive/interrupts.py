"""SIGINT and SIGTERM during a long command: stop cleanly first, abort on a second signal.

First signal: `stop` is set. The use case plans nothing new, lets the objects in flight finish,
commits the DB, ends its run record and exits 130; the next run resumes.
Second signal: `abort` is set too, so the downloads in flight are abandoned at their next piece
(storage discards their temporary files; nothing half-written is ever visible), and
KeyboardInterrupt is raised in the main thread so nothing waits on a slow server. The DB keeps
what was committed; the next run resumes from there.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, abort: threading.Event) -> Iterator[None]:
    """Install the two-stage handlers for the block; the previous handlers come back after.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.warning("%s: finishing the objects in flight, then stopping", name)
            stop.set()
            return
        log.warning("%s again: abandoning the objects in flight", name)
        abort.set()
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
