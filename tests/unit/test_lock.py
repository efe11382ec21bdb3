"""The archive lock: exclusive, fails fast naming the holder, survives its holder's death."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_archive.errors import ExitCode, LockHeldError
from galaxy_archive.state.lock import archive_lock, lock_path

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def test_lock_second_holder_fails_at_once_naming_pid_start_and_command(tmp_path: Path) -> None:
    with archive_lock(tmp_path, command="sync", clock=lambda: T0):
        note = json.loads(lock_path(tmp_path).read_text())
        assert note == {"pid": os.getpid(), "started_at": "2026-09-21T14:13:20Z", "command": "sync"}
        with pytest.raises(LockHeldError) as caught, archive_lock(tmp_path, command="verify"):
            pytest.fail("a second holder got the lock")
        assert caught.value.exit_code == ExitCode.LOCKED
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message and "2026-09-21T14:13:20Z" in message
        assert "sync" in message and str(tmp_path) in message
    assert lock_path(tmp_path).read_text() == ""  # released cleanly: no holder note
    with archive_lock(tmp_path, command="sync"):  # and free again
        pass


def test_lock_creates_the_root(tmp_path: Path) -> None:
    root = tmp_path / "new" / "archive"
    with archive_lock(root, command="sync"):
        assert lock_path(root).exists()


def test_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), archive_lock(tmp_path, command="sync"):
        raise RuntimeError("boom")
    with archive_lock(tmp_path, command="sync"):
        pass


def test_lock_with_a_stale_note_and_no_holder_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock_path(tmp_path).write_text(
        '{"pid": 999999, "started_at": "2020-01-01T00:00:00Z", "command": "sync"}'
    )
    caplog.set_level("INFO")
    with archive_lock(tmp_path, command="sync", clock=lambda: T0):
        assert json.loads(lock_path(tmp_path).read_text())["pid"] == os.getpid()
    assert "pid 999999" in caplog.text and "did not release" in caplog.text


@pytest.mark.parametrize("garbage", [b"\x00\xff not json", b"[1, 2]", b'{"pid": 1}', b"x" * 9000])
def test_lock_garbled_note_is_tolerated(tmp_path: Path, garbage: bytes) -> None:
    lock_path(tmp_path).write_bytes(garbage)
    with archive_lock(tmp_path, command="sync"):  # no holder: taken over
        lock_path(tmp_path).write_bytes(garbage)  # a holder that wrote nonsense
        with (
            pytest.raises(LockHeldError, match="holder note unreadable"),
            archive_lock(tmp_path, command="sync"),
        ):
            pass


def test_lock_held_by_another_process_and_freed_by_its_death(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\n"
            "from galaxy_archive.state.lock import archive_lock\n"
            "with archive_lock(Path(sys.argv[1]), command='sync'):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with (
            pytest.raises(LockHeldError, match=f"pid {holder.pid}"),
            archive_lock(tmp_path, command="sync"),
        ):
            pass
        holder.kill()  # SIGKILL: no cleanup ran, the note stays, the kernel drops the flock
        holder.wait()
        assert json.loads(lock_path(tmp_path).read_text())["pid"] == holder.pid
        with archive_lock(tmp_path, command="sync"):
            assert json.loads(lock_path(tmp_path).read_text())["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.communicate()
