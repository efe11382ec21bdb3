"""SIGINT/SIGTERM: the first stops cleanly, the second aborts; handlers restored afterwards."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from galaxy_archive.interrupts import stop_on_signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupts_first_signal_stops_second_aborts(signum: signal.Signals) -> None:
    before = signal.getsignal(signum)
    stop, abort = threading.Event(), threading.Event()
    with stop_on_signals(stop, abort):
        os.kill(os.getpid(), signum)
        assert stop.is_set() and not abort.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
        assert abort.is_set()
    assert signal.getsignal(signum) is before


def test_interrupts_outside_the_main_thread_do_nothing() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with stop_on_signals(threading.Event(), threading.Event()):
                pass
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == []
