"""A command's row in `runs`, from its start to its end: the one run lifecycle of `sync`,
`verify` and every later command that records a run (restore, gc, import).

- Start. A command that holds the archive lock passes the store: earlier runs whose process
  is dead (killed, power lost) are closed with exit code -9 and the temp files they left are
  swept. Without the lock (a plain verify) the run only adds its row and leaves a dead run for
  the next locked run to clean up after: it must not delete files it does not own.
- End. The command's exit code and summary (JSON) are recorded and its summary line logged.
- A command that raises. The row gets the exit code the CLI shows for the exception
  (`exit_code_of`) and the error, scrubbed of secrets. What the command wrote is first
  committed (`keeps_work`: verify's proofs stay proved) or rolled back (sync's half-done
  work). When the DB itself failed (an sqlite3 error) this is tried all the same, and a
  second sqlite3 error does not hide the first.

Loads no HTTP stack: plain verify starts without requests.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from galaxy_archive.errors import ExitCode, GalaxyArchiveError
from galaxy_archive.redact import scrub
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.lock import process_is_alive
from galaxy_archive.state.verify_records import VerifyRecords
from galaxy_archive.storage.interface import ObjectStore

log = logging.getLogger(__name__)


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code the CLI shows for `exc` (cli._exits): a bug is not an interruption."""
    if isinstance(exc, GalaxyArchiveError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.USAGE


class RecordedRun:
    """One run's row; `start` it, run the command inside `ended_on_error`, then `end` it."""

    def __init__(self, db: StateDB, run_id: int, command: str, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self.run_id = run_id
        self.command = command

    @classmethod
    def start(
        cls,
        db: StateDB,
        command: str,
        *,
        pid: int,
        clock: Callable[[], float],
        locked_store: ObjectStore | None,
    ) -> RecordedRun:
        """Record the run. `locked_store`: the run holds the archive lock, so runs that died
        are closed and their temp files swept from this store; None: only the row is added."""
        if locked_store is None:
            return cls(db, VerifyRecords(db).add_run(command, pid, clock()), command, clock)
        run_id, had_crash = db.start_run(command, pid, clock(), is_alive=process_is_alive)
        if had_crash:
            removed = locked_store.sweep_temp_files()
            log.info("previous run did not finish; removed %d temporary files", removed)
        return cls(db, run_id, command, clock)

    @contextmanager
    def ended_on_error(self, *, keeps_work: bool) -> Iterator[None]:
        """Whatever the block raises, the row says how the run ended; then it propagates."""
        try:
            yield
        except BaseException as exc:
            self._end_with(exc, keeps_work=keeps_work)
            raise

    def _end_with(self, exc: BaseException, *, keeps_work: bool) -> None:
        try:
            if keeps_work:
                self._db.conn.commit()
            else:
                self._db.conn.rollback()
            error = {"error": scrub(str(exc))}
            self._db.end_run(self.run_id, int(exit_code_of(exc)), error, self._clock())
        except sqlite3.Error:
            if not isinstance(exc, sqlite3.Error):
                raise
            # The DB itself failed (locked, full): its own error is the one to show; the row
            # stays open and the next locked run closes it as dead.

    def end(self, exit_code: int, summary: dict[str, Any], summary_line: str) -> None:
        self._db.end_run(self.run_id, exit_code, summary, self._clock())
        log.info("%s ended (exit %d): %s", self.command, exit_code, summary_line)
