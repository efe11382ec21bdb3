"""What a person sees (issue 12): every run tells the truth on stdout, stderr and in its exit
code, under -q from cron, with --json after the command, and with the usual mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from galaxy_archive.errors import ExitCode
from galaxy_archive.report import SyncReport
from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes
from tests.integration.serving import ServeProcess

PID = "1207658930"


def small_world() -> World:
    world = World(seed=31)
    world.add_v2_build(PID, files={"game.exe": random_bytes(300_000, 1)}, chunk_size=64 * 1024)
    return world


def synced(serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]) -> Archive:
    archive = make_archive(serve(small_world()))
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    return archive


def test_quiet_sync_with_a_failed_chunk_names_it_and_prints_the_summary(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = small_world()
    server = serve(world)
    victim = sorted(h for h in world.store if PID in world.store_owners[h])[0]
    server.faults.always(victim, "500")
    archive = make_archive(server)
    done = archive.run_process("-q", "sync", PID, "--generation", "2")
    assert done.returncode == ExitCode.PROBLEMS
    assert f"chunk {victim}" in done.stderr  # what cron mails
    assert "failed 1" in done.stdout


def test_quiet_sync_that_succeeds_prints_nothing(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    done = archive.run_process("sync", PID, "--generation", "2", "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_json_and_quiet_are_accepted_after_the_command(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced(serve, make_archive)
    result = archive.run("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "status"
    result = archive.run("verify", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "verify"


def test_a_closed_stdout_ends_the_command_quietly(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    """As after `--json status | head -1`: the reader has gone before the document is written
    (its end of the pipe closed first, so the write fails every time)."""
    archive = synced(serve, make_archive)
    for command in (["--json", "status"], ["verify", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "galaxy_archive",
                    "--config",
                    str(archive.config_path),
                    *command,
                ],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                check=False,
            )
        finally:
            os.close(write_end)
        assert (done.returncode, done.stderr) == (ExitCode.PROBLEMS, "")


def test_a_config_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    done = run_cli("--config", str(tmp_path), "status")
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip() == (
        f"galaxy-archive: cannot read the config file {tmp_path}: Is a directory"
    )


def test_a_log_file_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    log_file = tmp_path / "afile" / "run.log"
    done = run_cli("--root", str(tmp_path), "--log-file", str(log_file), "status")
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.startswith(f"galaxy-archive: cannot open the log file {log_file}: ")
    assert len(done.stderr.splitlines()) == 1


def test_a_root_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    root = tmp_path / "afile"
    root.write_text("")
    done = run_cli("--root", str(root), "sync", PID)
    assert done.returncode == ExitCode.USAGE
    assert done.stderr == f"galaxy-archive: the archive root {root} is not a directory\n"


def test_status_of_a_product_not_archived_exits_2(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced(serve, make_archive)
    result = archive.run("status", "999")
    assert result.exit_code == ExitCode.USAGE
    assert "no product 999 in this archive" in result.output


def test_login_and_logout_print_a_json_document(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()), login=False)
    result = archive.run("login", "--code", "test-code", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "login"
    result = archive.run("--json", "logout")
    assert json.loads(result.stdout) == {"command": "logout", "exit_code": 0, "was_logged_in": True}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "galaxy_archive", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(REPO / ".no-home"),
            "XDG_CONFIG_HOME": "/nonexistent",
        },
    )


def test_sync_of_a_product_gog_does_not_know_is_an_error_and_not_recorded(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced(serve, make_archive)
    result = archive.run("sync", "999999")
    assert result.exit_code == ExitCode.PROBLEMS
    assert "product 999999: GOG lists no builds of it" in result.output
    assert archive.run("status", "999999").exit_code == ExitCode.USAGE
    assert archive.run("status", PID).exit_code == 0


def test_sync_with_a_build_or_branch_that_matches_nothing_says_so(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    result = archive.run("sync", PID, "--build", "123")
    assert result.exit_code == ExitCode.PROBLEMS
    assert f"product {PID}: no build matches --build 123" in result.output
    result = archive.run("sync", PID, "--branch", "nope")
    assert result.exit_code == ExitCode.PROBLEMS
    assert f"product {PID}: no build matches --branch nope" in result.output


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """A read-only view of a directory: a read-only bind mount as root (for whom modes do not
    count), the modes otherwise."""
    mounts: list[Path] = []
    chmodded: list[Path] = []

    def view(source: Path) -> Path:
        if os.geteuid() != 0:
            for path in [source, *source.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
                chmodded.append(path)
            return source
        target = tmp_path / "ro-view"
        target.mkdir()
        for command in (
            ["mount", "--bind", str(source), str(target)],
            ["mount", "-o", "remount,ro,bind", str(target)],
        ):
            if subprocess.run(command, capture_output=True, check=False).returncode:
                pytest.skip("cannot make a read-only mount here")
            mounts.append(target)
        return target

    yield view
    for target in dict.fromkeys(mounts):
        subprocess.run(["umount", str(target)], check=False)
    for path in chmodded:
        path.chmod(path.stat().st_mode | 0o200)


def test_status_and_verify_read_a_read_only_archive_and_say_nothing_was_recorded(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    read_only_view: Callable[[Path], Path],
) -> None:
    archive = synced(serve, make_archive)
    root = read_only_view(archive.root)
    status = archive.run_process("--root", str(root), "status", "--json")
    assert status.returncode == 0, status.stderr
    assert [p["product_id"] for p in json.loads(status.stdout)["products"]] == [PID]
    assert "read-only: this run reads the archive and records nothing" in status.stderr
    verify = archive.run_process("--root", str(root), "verify")
    assert verify.returncode == 0, verify.stderr
    assert "records nothing" in verify.stderr
    assert "0 missing, 0 corrupt" in verify.stdout


def test_restore_and_serve_read_a_read_only_archive(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    read_only_view: Callable[[Path], Path],
    tmp_path: Path,
) -> None:
    archive = synced(serve, make_archive)
    root = read_only_view(archive.root)
    listed = archive.run_process("--root", str(root), "restore", PID, "--json")
    assert listed.returncode == 0, listed.stderr
    [build] = json.loads(listed.stdout)["builds"]
    dest = tmp_path / "dest"
    restored = archive.run_process(
        "--root", str(root), "restore", PID, build["build_id"], str(dest)
    )
    assert restored.returncode == 0, restored.stderr
    assert "0 failed" in restored.stdout and any(dest.rglob("*"))
    config = tmp_path / "ro.toml"
    config.write_text(archive.config_path.read_text().replace(str(archive.root), str(root)))
    server = ServeProcess(config)
    try:
        beat = requests.get(f"{server.url}/galaxy-archive/heartbeat", timeout=10)
        builds = requests.get(
            f"{server.url}/products/{PID}/os/windows/builds?generation=2", timeout=10
        )
    finally:
        assert server.stop() == 0, server.stderr
    assert beat.status_code == 204
    assert builds.status_code == 200 and builds.json()["items"], builds.text


def on_a_terminal(archive: Archive, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with a terminal as stdin, stdout and stderr (script(1)), as a person runs it."""
    command = " ".join(
        [sys.executable, "-m", "galaxy_archive", "--config", str(archive.config_path), *args]
    )
    return subprocess.run(
        ["script", "-qec", f"stty cols 120; {command}", "/dev/null"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_sync_on_a_terminal_shows_a_progress_bar_logs_above_it_and_one_summary(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    done = on_a_terminal(archive, "sync", PID, "--generation", "2")
    assert done.returncode == 0, done.stdout
    screen = done.stdout
    assert "100%" in screen and "objects" in screen  # the bar: share, bytes and objects
    assert "/s" in screen  # a rate
    assert f"product {PID}: done" in screen  # a line as the product completes
    summaries = [line for line in screen.splitlines() if "already present" in line]
    assert len(summaries) == 1, screen


def test_a_second_sync_says_how_much_is_archived_and_that_nothing_was_needed(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced(serve, make_archive)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("nothing new needed: ") and "0 objects" not in last, last


def test_a_dry_run_lists_what_adds_up_to_its_total_in_one_unit(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    result = archive.run("sync", PID, "--dry-run")
    assert result.exit_code == 0, result.output
    total, *lines = [line for line in result.stdout.splitlines() if "objects" in line]
    listed = sum(int(line.split(": ")[1].split(" objects")[0]) for line in lines)
    assert total.startswith(f"dry run: {listed} objects to fetch, ")
    assert all(line.endswith("KiB") for line in [total, *lines])


def test_the_demo_leaves_a_usable_archive_and_prints_what_to_try(tmp_path: Path) -> None:
    root = tmp_path / "demo-archive"
    demo = subprocess.run(
        [sys.executable, "scripts/demo.py", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    tries = [line.split()[1:] for line in demo.stdout.splitlines() if line.startswith("  galaxy")]
    assert ["--config", str(tmp_path / "demo-archive.toml"), "verify"] in tries
    for args in tries:
        done = subprocess.run(
            [sys.executable, "-m", "galaxy_archive", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (args, done.stderr)


def test_verify_on_a_terminal_shows_objects_done_of_those_planned(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = synced(serve, make_archive)
    done = on_a_terminal(archive, "verify")
    assert done.returncode == 0, done.stdout
    assert "13/13 objects" in done.stdout and "100%" in done.stdout
    assert len([line for line in done.stdout.splitlines() if "verify full:" in line]) == 1


def test_sync_without_a_terminal_prints_the_summary_and_the_problems_only(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    done = archive.run_process("sync", PID, "--generation", "2", "--no-dependencies")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no bar, no INFO lines: cron mails nothing on a good night
    assert done.stdout.startswith("fetched ") and len(done.stdout.splitlines()) == 1


def test_summary_of_an_interrupted_run_says_so_and_keeps_optional_absences_apart() -> None:
    report = SyncReport(fetched=96, absent_optional=10, is_interrupted=True)
    line = report.summary_line()
    assert line.startswith("interrupted (the next run resumes): fetched 96")
    assert "absent upstream 0, 10 optional members absent upstream" in line


def test_quiet_on_a_terminal_shows_no_bar(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    done = on_a_terminal(archive, "sync", PID, "--generation", "2", "--no-dependencies", "-q")
    assert (done.returncode, done.stdout) == (0, ""), done.stdout
