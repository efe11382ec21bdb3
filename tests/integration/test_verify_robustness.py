"""`verify` (and every command opening archive.db) on a hostile tree, DB or file name: a clear
line and an exit code, never a traceback; what it finds stays visible under -q and in one
piece in the logs and --json."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy_archive.state import db as statedb
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes
from tests.unit.test_tree_walk import DEPTH, make_chain, remove_chain
from tests.unprivileged import rerun_unprivileged

PID = "1207658930"


@pytest.fixture
def synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> Iterator[Archive]:
    world = World(seed=5)
    world.add_v2_build(PID, files={"game.exe": random_bytes(120_000, 1), "readme.txt": b"hello"})
    world.owned.add(int(PID))
    archive = make_archive(serve(world))
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    yield archive


def verify_json(archive: Archive, *args: str) -> tuple[int, dict[str, Any]]:
    result = archive.run("--json", "verify", *args)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, json.loads(result.stdout)


def a_chunk(archive: Archive) -> str:
    return str(archive.db_rows("SELECT min(path) FROM objects WHERE kind = 'store'")[0][0])


def no_traceback(result: Any) -> str:
    assert "Traceback" not in result.output, result.output
    return str(result.output)


# --- finding 8: unknown and temp files are problems, printed under -q -----------------------


def test_verify_quiet_prints_unknown_and_temp_files_it_exits_1_for(synced: Archive) -> None:
    archive = synced
    chunk_dir = a_chunk(archive).rsplit("/", 1)[0]
    unknown, temp = f"{chunk_dir}/stray.bin", f"{chunk_dir}/.x.1234abcd.galaxy-tmp"
    for relative in (unknown, temp):
        (archive.root / relative).write_bytes(b"?")
    result = archive.run("-q", "verify")
    assert result.exit_code == 1
    printed = [line for line in no_traceback(result).splitlines() if line.strip()]
    assert len(printed) == 2
    assert any(unknown in line and "unknown file" in line for line in printed)
    assert any(temp in line and "temp file" in line for line in printed)


# --- finding 3: the tree walk -----------------------------------------------------------------


def test_verify_walks_a_tree_deeper_than_the_recursion_limit(synced: Archive) -> None:
    archive = synced
    base = archive.root / "v2" / "deep"
    make_chain(base, ["d"] * DEPTH)
    try:
        bottom = "v2/deep/" + "/".join(["d"] * DEPTH) + "/bottom"
        (archive.root / bottom).write_bytes(b"x")
        code, report = verify_json(archive)
        assert code == 1 and report["tree_walked"]
        assert report["unknown_files"] == [bottom]
    finally:
        remove_chain(base, DEPTH)


def test_verify_goes_on_past_a_directory_whose_path_is_too_long(synced: Archive) -> None:
    """The walk meets ENAMETOOLONG (20 names of 250 characters); the rest of the tree is still
    walked and the builds are still updated after it."""
    archive = synced
    make_chain(archive.root / "v2" / "long", ["n" * 250] * 20)
    (archive.root / "v2/zz-after").write_bytes(b"x")
    victim = a_chunk(archive)
    (archive.root / victim).write_bytes(b"damaged")
    code, report = verify_json(archive)
    assert code == 1 and report["tree_walked"]
    assert report["unknown_files"] == ["v2/zz-after"]
    assert len(report["unreadable_dirs"]) == 1  # the one whose path became too long
    assert report["unreadable_dirs"][0].startswith("v2/long/" + "n" * 250)
    assert [p["path"] for p in report["problems"]] == [victim]
    assert report["builds_no_longer_complete"]  # update_builds ran after the walk
    assert archive.db_rows("SELECT state FROM builds") == [("incomplete",)]
    assert archive.db_rows("SELECT exit_code FROM runs WHERE command = 'verify'") == [(1,)]


def test_verify_goes_on_past_a_directory_it_may_not_read(
    request: pytest.FixtureRequest,
) -> None:
    if rerun_unprivileged(request):  # root lists a chmod 000 directory anyway
        return
    archive = request.getfixturevalue("synced")  # synced as the user that verifies
    locked = archive.root / "v2" / "locked"
    (locked / "inside").mkdir(parents=True)
    (archive.root / "v2/zz-after").write_bytes(b"x")
    locked.chmod(0)
    try:
        code, report = verify_json(archive)
    finally:
        locked.chmod(0o755)
    assert code == 1 and report["tree_walked"]
    assert report["unknown_files"] == ["v2/zz-after"]
    assert report["unreadable_dirs"] == ["v2/locked"]  # named, not silently skipped


def test_verify_reports_a_symlinked_directory_and_does_not_enter_it(
    synced: Archive, tmp_path: Path
) -> None:
    archive = synced
    outside = tmp_path / "outside"
    (outside / "aa").mkdir(parents=True)
    (outside / "aa" / "secret").write_bytes(b"x")
    (archive.root / "v2/store/zz").symlink_to(outside, target_is_directory=True)
    code, report = verify_json(archive)
    assert code == 1
    assert report["unknown_files"] == ["v2/store/zz"]


# --- finding 9: archive.db that is not a usable database ------------------------------------


def one_error_line(result: Any, *words: str) -> str:
    lines = [line for line in no_traceback(result).splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("galaxy-archive: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_verify_and_status_on_a_file_that_is_not_a_database(synced: Archive) -> None:
    archive = synced
    database = archive.root / "archive.db"
    for leftover in archive.root.glob("archive.db-*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database, it is a text file\n" * 100)
    for command in (("verify",), ("verify", "--quick"), ("status",), ("sync", PID)):
        result = archive.run(*command)
        assert result.exit_code == 1, result.output
        one_error_line(result, str(database), "not an SQLite database", "backup")
    assert database.read_bytes().startswith(b"this is not a database")


def test_verify_on_a_damaged_database(synced: Archive) -> None:
    archive = synced
    database = archive.root / "archive.db"
    with sqlite3.connect(database) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    for page in range(1, len(data) // page_size):  # every page but the first (the schema's)
        start = page * page_size
        data[start : start + page_size] = b"\xa5" * page_size
    database.write_bytes(bytes(data))
    result = archive.run("verify")
    assert result.exit_code == 1, result.output
    one_error_line(result, str(database), "damaged", ".recover")


def test_verify_waits_for_a_lock_then_says_who_holds_it(
    synced: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = synced
    monkeypatch.setattr(statedb, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(archive.root / "archive.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process in a long write transaction
        result = archive.run("verify")
    finally:
        holder.close()
    assert result.exit_code == 1, result.output
    one_error_line(result, "archive.db", "locked by another process", "0.2 s", "try again")
    assert archive.run("verify").exit_code == 0  # released: the same command works


def test_verify_refuses_a_database_of_a_newer_version_without_touching_it(
    synced: Archive,
) -> None:
    archive = synced
    database = archive.root / "archive.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO _migrations VALUES ('0099_future_schema.sql', '2030-01-01T00:00:00Z')"
        )
    before = archive.db_dump()
    for command in (("verify",), ("status",), ("sync", PID)):
        result = archive.run(*command)
        assert result.exit_code == 2, result.output
        one_error_line(result, "newer galaxy-archive", "0099_future_schema.sql", "upgrade")
    assert archive.db_dump() == before  # no run recorded, nothing migrated


# --- finding 10: bogus values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--max-age", "99999999999999999999w"),
        ("--time-budget", "99999999999999999999w"),
        ("--max-age", "36526d"),
    ],
)
def test_verify_durations_beyond_100_years_are_usage_errors(
    synced: Archive, args: tuple[str, ...]
) -> None:
    result = synced.run("verify", *args)
    assert result.exit_code == 2, result.output
    one_error_line(result, args[0], "0 to 100 years")


def test_verify_names_an_object_of_an_unknown_kind(synced: Archive) -> None:
    archive = synced
    victim = a_chunk(archive)
    with sqlite3.connect(archive.root / "archive.db") as conn:
        conn.execute("UPDATE objects SET kind = 'bogus' WHERE path = ?", (victim,))
    result = archive.run("verify")
    assert result.exit_code == 1, result.output
    one_error_line(result, victim, "'bogus'")


# --- finding 11: names in logs and --json -------------------------------------------------------


def test_verify_names_with_a_newline_or_a_bad_byte_stay_one_line_in_log_and_json(
    synced: Archive, tmp_path: Path
) -> None:
    archive = synced
    store = os.fsencode(archive.root / "v2" / "store")
    forged = b"x\n2030-01-01 00:00:00,000 ERROR corrupt: store forged (md5 ?): forged"
    for name in (forged, b"bad\xff", b"q?token=abc"):
        with open(os.path.join(store, name), "wb") as handle:
            handle.write(b"?")
    log_file = tmp_path / "verify.log"
    result = archive.run("--log-file", str(log_file), "-q", "verify")
    assert result.exit_code == 1
    printed = [line for line in no_traceback(result).splitlines() if line.strip()]
    assert "Logging error" not in result.output
    logged = log_file.read_text(encoding="utf-8").splitlines()
    for lines in (printed, [line for line in logged if "unknown file:" in line]):
        assert len(lines) == 3, lines
        assert any("v2/store/x\\n2030-01-01 00:00:00,000 ERROR corrupt" in line for line in lines)
        assert any("v2/store/bad\\xff is not recorded" in line for line in lines)
        assert any("v2/store/q?token=<redacted>" in line for line in lines)
        assert not any(line.startswith("2030") for line in lines)
    code, report = verify_json(archive)
    assert code == 1
    assert report["unknown_files"] == [
        "v2/store/bad\\xff",
        "v2/store/q?token=abc",  # --json: the exact name, for a script to act on
        "v2/store/x\\n2030-01-01 00:00:00,000 ERROR corrupt: store forged (md5 ?): forged",
    ]
