"""runs.RecordedRun: the run lifecycle sync and verify share (and restore, gc, import will):
the row, the sweep after a dead run under the lock, the end, and how a raising command ends.
A real DB and a real local store in tmp_path; the end-to-end runs are in
tests/integration/test_unattended.py and test_verify.py."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_archive.errors import AuthError, ExitCode
from galaxy_archive.runs import RecordedRun, exit_code_of
from galaxy_archive.state.db import StateDB, open_db
from galaxy_archive.storage.local import ArchiveStore
from tests.conftest import REPO

OWN_PID = 4242


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _db(tmp_path: Path) -> StateDB:
    return open_db(tmp_path / "archive.db", now=0.0, migrations_dir=REPO / "migrations")


def _rows(db: StateDB) -> list[tuple[str, int, int | None, bool]]:
    """(command, pid, exit code, ended) of every run, in order."""
    return [
        (command, pid, code, ended is not None)
        for command, pid, code, ended in db.conn.execute(
            "SELECT command, pid, exit_code, ended_at FROM runs ORDER BY id"
        )
    ]


@pytest.fixture
def left_by_a_dead_run(tmp_path: Path) -> tuple[StateDB, ArchiveStore, Path]:
    """A DB with a run whose process died, and the temp file it left in the tree."""
    db = _db(tmp_path)
    db.start_run("sync", _dead_pid(), 1.0, is_alive=lambda _pid: True)
    temp = tmp_path / "v2/store/ab/cd/.abcd.1234.galaxy-tmp"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"half a chunk")
    return db, ArchiveStore(tmp_path, fsync=False), temp


def test_run_under_the_lock_closes_a_dead_run_and_sweeps_its_temp_files(
    left_by_a_dead_run: tuple[StateDB, ArchiveStore, Path],
) -> None:
    db, store, temp = left_by_a_dead_run
    run = RecordedRun.start(db, "sync", pid=OWN_PID, clock=lambda: 5.0, locked_store=store)
    assert not temp.exists()
    assert [row[2:] for row in _rows(db)] == [(-9, True), (None, False)]
    run.end(0, {"fetched": 3}, "3 fetched")
    (summary,) = db.conn.execute("SELECT summary FROM runs WHERE id = ?", (run.run_id,))
    assert json.loads(summary[0]) == {"fetched": 3}
    assert _rows(db)[-1] == ("sync", OWN_PID, 0, True)


def test_run_without_the_lock_leaves_a_dead_run_and_its_files_alone(
    left_by_a_dead_run: tuple[StateDB, ArchiveStore, Path],
) -> None:
    db, _store, temp = left_by_a_dead_run
    RecordedRun.start(db, "verify", pid=OWN_PID, clock=lambda: 5.0, locked_store=None)
    assert temp.exists()
    assert [row[2:] for row in _rows(db)] == [(None, False), (None, False)]


def _raising_run(db: StateDB, exc: BaseException, *, keeps_work: bool) -> None:
    """A command that writes a row (not committed) and then raises `exc`."""
    db.conn.execute("CREATE TABLE work (x)")
    run = RecordedRun.start(db, "verify", pid=OWN_PID, clock=lambda: 5.0, locked_store=None)
    with pytest.raises(type(exc)), run.ended_on_error(keeps_work=keeps_work):
        db.conn.execute("INSERT INTO work VALUES (1)")
        raise exc


@pytest.mark.parametrize(("keeps_work", "kept"), [(True, [(1,)]), (False, [])])
def test_run_that_raises_keeps_or_drops_its_work_and_records_the_error(
    tmp_path: Path, keeps_work: bool, kept: list[tuple[int]]
) -> None:
    db = _db(tmp_path)
    _raising_run(db, AuthError("GOG said no to https://x/?token=SECRET"), keeps_work=keeps_work)
    with sqlite3.connect(tmp_path / "archive.db") as other:  # what another reader sees
        assert other.execute("SELECT x FROM work").fetchall() == kept
        ((code, summary),) = other.execute("SELECT exit_code, summary FROM runs")
    assert code == int(ExitCode.NOT_LOGGED_IN)
    assert "SECRET" not in summary and "GOG said no" in json.loads(summary)["error"]


@pytest.mark.parametrize(
    ("exc", "code"),
    [(KeyboardInterrupt(), ExitCode.INTERRUPTED), (RuntimeError("a bug"), ExitCode.USAGE)],
)
def test_run_records_the_exit_code_the_cli_shows(
    tmp_path: Path, exc: BaseException, code: ExitCode
) -> None:
    db = _db(tmp_path)
    _raising_run(db, exc, keeps_work=False)
    assert _rows(db) == [("verify", OWN_PID, int(code), True)]
    assert exit_code_of(exc) == code


def test_run_whose_db_fails_raises_the_db_error_not_a_second_one(tmp_path: Path) -> None:
    db = _db(tmp_path)
    run = RecordedRun.start(db, "sync", pid=OWN_PID, clock=lambda: 5.0, locked_store=None)
    db.conn.close()  # every later statement fails, as with a DB gone bad mid-run
    with (
        pytest.raises(sqlite3.ProgrammingError, match="first"),
        run.ended_on_error(keeps_work=True),
    ):
        raise sqlite3.ProgrammingError("first")
