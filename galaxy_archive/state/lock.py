"""The single-instance lock on the archive root: overlapping cron runs fail fast (exit 4).

An exclusive, non-blocking ``flock`` on ``<root>/.galaxy-archive.lock``. The kernel drops a
flock when its holder dies (even on kill -9 or a power cut), so a lock left by a dead process
is taken over by the next run without any staleness guesswork. The file itself only tells a
refused run who holds the lock (PID, start time, command); it is never deleted, because
unlinking a flock'ed file lets two processes lock two different inodes of the same name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from galaxy_archive.errors import LockHeldError, StorageError
from galaxy_archive.state.stamps import iso
from galaxy_archive.storage.local import LOCK_NAME

log = logging.getLogger(__name__)
MAX_HOLDER_BYTES = 4096  # the holder note is tiny; never read a huge or hostile file whole


def process_is_alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_path(root: Path) -> Path:
    return root / LOCK_NAME


@contextlib.contextmanager
def archive_lock(
    root: Path, *, command: str, clock: Callable[[], float] = time.time
) -> Iterator[None]:
    """Hold the archive's lock for the duration of the block.

    Raises LockHeldError (exit 4) at once, naming the holder's PID and start time, when another
    process holds it. The holder note is written only while the lock is held and emptied on a
    clean release, so a note found on taking the lock means its writer died holding it.
    """
    path = lock_path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Not O_TRUNC: the note belongs to whoever holds the lock, which may be someone else.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        _take(fd, path)
        previous = _read_holder(fd)
        if previous:
            log.info("took over the lock of a run that did not release it (%s)", previous)
        _write_holder(fd, command, clock())
        try:
            yield
        finally:
            _clear_holder(fd)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _take(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd) or "holder unknown: it has not written its note yet"
        raise LockHeldError(
            f"another galaxy-archive run holds the lock on {path.parent} ({holder}); "
            "this run exits without doing anything"
        ) from None
    except OSError as exc:
        # e.g. ENOLCK on a network filesystem without lock support: running unlocked would
        # let two runs write the same DB and tree, so refuse.
        hint = " (does this filesystem support flock?)" if exc.errno == errno.ENOLCK else ""
        raise StorageError(f"cannot lock {path}: {exc.strerror or exc}{hint}") from exc


def _read_holder(fd: int) -> str:
    """The note as 'pid N, command C, started T'; '' when empty; tolerant of garbage."""
    try:
        raw = os.pread(fd, MAX_HOLDER_BYTES, 0)
    except OSError:
        return ""
    if not raw.strip():
        return ""
    try:
        note = json.loads(raw)
        pid, started, command = note["pid"], note["started_at"], note["command"]
    except (ValueError, TypeError, KeyError):
        return "holder note unreadable"
    return f"pid {pid}, {command}, started {started}"


def _write_holder(fd: int, command: str, now: float) -> None:
    note = {"pid": os.getpid(), "started_at": iso(now), "command": command}
    data = (json.dumps(note, sort_keys=True) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot write the lock file: {exc.strerror or exc}") from exc


def _clear_holder(fd: int) -> None:
    with contextlib.suppress(OSError):  # the lock is released on close all the same
        os.ftruncate(fd, 0)
