"""README promises about verify and the lock that had no test (issue 18 items 10-11): the
`verify ended (exit N)` log line, `--deep --repair` checking deeply before the rename, no
secret in what `verify --repair` writes, and refusing to start where flock is not supported."""

from __future__ import annotations

import errno
import fcntl
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from galaxy_archive.errors import ExitCode
from galaxy_archive.state import lock
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"


def small_world() -> World:
    world = World(seed=18)
    world.add_v2_build(
        PID,
        files={"bin\\game.exe": random_bytes(300_000, 1), "data\\a.pak": random_bytes(200_000, 2)},
        chunk_size=64 * 1024,
    )
    world.owned.add(int(PID))
    return world


def synced_archive(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> Archive:
    archive = make_archive(serve(small_world()))
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    return archive


def stored_chunks(archive: Archive) -> list[str]:
    rows = archive.db_rows("SELECT path FROM objects WHERE kind = 'store' ORDER BY path")
    assert len(rows) >= 2
    return [str(row[0]) for row in rows]


def flip_byte(archive: Archive, relative: str) -> None:
    path = archive.root / relative
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))


def last_line(log_file: Path) -> str:
    return log_file.read_text().rstrip("\n").rsplit("\n", 1)[-1]


def test_verify_log_ends_with_the_exit_code(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    archive = synced_archive(serve, make_archive)
    log_file = tmp_path / "verify.log"
    result = archive.run_process("--quiet", "--log-file", str(log_file), "verify")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "verify ended (exit 0): " in last_line(log_file)
    flip_byte(archive, stored_chunks(archive)[0])
    result = archive.run_process("--quiet", "--log-file", str(log_file), "verify")
    assert result.returncode == 1, result.stderr
    assert "verify ended (exit 1): " in last_line(log_file)
    result = archive.run_process("--quiet", "--log-file", str(log_file), "verify", "--repair")
    assert result.returncode == 0, result.stderr
    assert "verify ended (exit 0): " in last_line(log_file)


def test_verify_repair_never_leaks_tokens_or_signed_urls(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    archive = synced_archive(serve, make_archive)
    chunks = stored_chunks(archive)
    flip_byte(archive, chunks[0])
    (archive.root / chunks[1]).unlink()
    log_file = tmp_path / "repair.log"
    archive.server.clear_requests()
    result = archive.run_process("-vv", "--json", "--log-file", str(log_file), "verify", "--repair")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["repaired"] == 2
    tokens = json.loads(archive.token_file.read_text())
    secrets = {tokens["access_token"], tokens["refresh_token"]}
    for request in archive.server.requests:  # the repair's own requests: its signed links
        for key, value in request.query.items():
            if re.search("secret|token|code|password", key, re.I) and key != "client_secret":
                secrets.add(str(value))
        secrets.update(re.findall(r"token=([0-9a-f]{16,})", request.path))
    assert len(secrets) > 2, "the repair fetched through no signed link: nothing was tested"
    haystacks = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "log": log_file.read_text(),
        "db": archive.db_dump(),
    }
    assert chunks[0] in haystacks["log"]  # the log does name what was repaired
    for name, text in haystacks.items():
        for secret in secrets - {PID} - {s for s in secrets if s.isdigit()}:
            assert secret not in text, f"a secret leaked into {name}"


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_sync_refuses_to_start_where_flock_is_not_supported(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    archive = make_archive(serve(small_world()))

    def unsupported(fd: int, operation: int) -> None:
        raise OSError(code, "flock not supported here")

    # What a filesystem without lock support answers (NFS without lockd, some FUSE mounts).
    monkeypatch.setattr(
        lock,
        "fcntl",
        SimpleNamespace(flock=unsupported, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB),
    )
    archive.server.clear_requests()
    result = archive.run("sync", PID)
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    assert "cannot lock" in result.output and "flock not supported here" in result.output
    assert ("does this filesystem support flock?" in result.output) == (code == errno.ENOLCK)
    assert "Traceback" not in result.output
    assert archive.server.requests == []  # refused before any work, not run unlocked
    assert archive.tree() == {}


def test_verify_deep_repair_runs_the_deep_checks_before_the_rename(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced_archive(serve, make_archive)
    victim = stored_chunks(archive)[0]
    # A manifest that names the wrong inflated MD5 for a chunk: its bytes match their MD5 (the
    # store's own check passes on refetch) but do not inflate to what the build needs. Only the
    # deep checks can refuse them; the DB holds what the manifest said.
    with sqlite3.connect(archive.root / "archive.db") as conn:
        conn.execute("UPDATE objects SET inflated_md5 = ? WHERE path = ?", ("0" * 32, victim))
    conn.close()
    result = archive.run("--json", "verify", "--deep", "--repair")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    problem = next(p for p in report["problems"] if p["path"] == victim)
    assert problem["repair"] == "failed", problem
    assert report["repaired"] == 0
    assert not (archive.root / victim).exists()  # refused before the rename, not after
