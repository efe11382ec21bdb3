"""Running unattended (issue 6): the lock, signals, bare `sync`, status, --json, network manners,
free space, never prompting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import urllib3.util.retry

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.errors import ExitCode
from galaxy_archive.state.lock import lock_path
from galaxy_archive.storage.local import TEMP_SUFFIX
from galaxy_archive.sync.context import SyncOptions
from galaxy_archive.sync.run import run_sync
from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"
DLC = "1100000001"  # sorts before its base game: the owned list names it first
OTHER = "1423049311"
NO_BUILDS = "1000000002"  # owned (say, a goodies pack), no builds, nobody's DLC


def v2_tree(world: World, **kw: Any) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False, **kw
    )
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


def chunky_world(size: int = 1_500_000, chunk_size: int = 64 * 1024) -> World:
    world = World(seed=21)
    files = {f"data\\f{i}.bin": random_bytes(size // 4, i) for i in range(4)}
    world.add_v2_build(PID, files=files, chunk_size=chunk_size)
    return world


def library_world() -> World:
    world = World(seed=22)
    world.add_v2_build(
        PID,
        files={"game.exe": random_bytes(200_000, 1)},
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(100_000, 2)}},
    )
    world.add_v2_build(OTHER, files={"other.exe": random_bytes(100_000, 3)})
    world.add_product(NO_BUILDS, "Goodies")
    return world


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"*{TEMP_SUFFIX}"))


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def settle(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """The fake server records a request just after answering it: give the last one a moment."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def store_requests(server: FakeGalaxy) -> int:
    return server.count("/store/", role="cdn") + server.count("/store/", role="cdn2")


def lock_note(archive: Archive) -> dict[str, Any] | None:
    try:
        text = lock_path(archive.root).read_text()
    except FileNotFoundError:
        return None
    return json.loads(text) if text.strip() else None


def stored_chunks(archive: Archive) -> int:
    store = archive.root / "v2" / "store"
    if not store.exists():
        return 0
    return sum(1 for p in store.rglob("*") if p.is_file() and not p.name.endswith(TEMP_SUFFIX))


@pytest.fixture
def finish() -> Iterator[Callable[[subprocess.Popen[str]], None]]:
    """Never leave a sync process behind when a test fails half-way."""
    processes: list[subprocess.Popen[str]] = []
    yield processes.append
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


# --- the lock --------------------------------------------------------------------------------


def test_two_syncs_at_once_the_second_exits_4_naming_the_holder(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    finish: Callable[[subprocess.Popen[str]], None],
) -> None:
    archive = make_archive(serve(chunky_world()))
    archive.write_config(http={"limit_rate": 150_000})  # about five seconds
    first = archive.popen("sync", PID)
    finish(first)
    wait_for(lambda: (lock_note(archive) or {}).get("pid") == first.pid)
    started = lock_note(archive)["started_at"]  # type: ignore[index]
    second = archive.run("sync", PID)
    assert second.exit_code == ExitCode.LOCKED, second.output
    assert f"pid {first.pid}" in second.output and started in second.output
    as_json = archive.run("--json", "sync", PID)
    assert as_json.exit_code == ExitCode.LOCKED
    assert json.loads(as_json.stdout) == {
        "command": "sync",
        "exit_code": 4,
        "error": json.loads(as_json.stdout)["error"],
    }
    assert str(first.pid) in json.loads(as_json.stdout)["error"]
    assert first.poll() is None  # the holder was not disturbed
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == ExitCode.INTERRUPTED
    assert lock_note(archive) is None  # released cleanly: the note is emptied


def test_lock_left_by_a_killed_process_does_not_block_the_next_run(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    finish: Callable[[subprocess.Popen[str]], None],
) -> None:
    world = chunky_world(600_000)
    archive = make_archive(serve(world))
    archive.write_config(http={"limit_rate": 200_000})
    victim = archive.popen("sync", PID)
    finish(victim)
    wait_for(lambda: (lock_note(archive) or {}).get("pid") == victim.pid)
    victim.kill()
    victim.wait()
    assert lock_note(archive)["pid"] == victim.pid  # type: ignore[index]  # left behind
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID)
    assert result.returncode == 0, result.stderr
    assert archive.tree() == v2_tree(world)


# --- signals ---------------------------------------------------------------------------------


def test_sigterm_mid_sync_exits_130_and_a_rerun_completes_the_tree(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    finish: Callable[[subprocess.Popen[str]], None],
) -> None:
    world = chunky_world()
    server = serve(world)
    archive = make_archive(server)
    archive.write_config(http={"limit_rate": 300_000})
    process = archive.popen("--json", "sync", PID)
    finish(process)
    wait_for(lambda: stored_chunks(archive) >= 5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "SIGTERM" in stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True and report["exit_code"] == 130
    assert temp_files(archive.root) == []
    expected = v2_tree(world)
    partial = archive.tree()
    assert 0 < len(partial) < len(expected)
    assert all(expected[path] == data for path, data in partial.items())
    # The DB was committed: every chunk on disk is recorded, and the run record ended.
    verified = archive.db_rows(
        "SELECT count(*) FROM objects WHERE kind = 'store' AND state = 'verified'"
    )[0][0]
    assert verified == stored_chunks(archive)
    assert archive.db_rows("SELECT exit_code FROM runs ORDER BY id DESC LIMIT 1") == [(130,)]
    before = store_requests(server)
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID)
    assert result.returncode == 0, result.stderr
    assert archive.tree() == expected
    missing = sum(1 for p in expected if p.startswith("v2/store/")) - verified
    settle(lambda: store_requests(server) - before == missing)
    assert store_requests(server) - before == missing  # nothing stored was fetched again


def test_second_signal_abandons_the_objects_in_flight(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    finish: Callable[[subprocess.Popen[str]], None],
) -> None:
    # Big chunks at a slow rate: after the first signal they would take seconds to finish.
    world = chunky_world(4_000_000, chunk_size=1024 * 1024)
    archive = make_archive(serve(world))
    archive.write_config(http={"limit_rate": 100_000})
    process = archive.popen("sync", PID)
    finish(process)
    store = archive.root / "v2" / "store"
    wait_for(lambda: store.exists() and len(temp_files(store)) >= 1)  # chunks are streaming
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    signalled, stored_before = time.monotonic(), stored_chunks(archive)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - signalled < 5
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert stored_chunks(archive) == stored_before  # dropped, not finished in a hurry
    assert temp_files(archive.root) == []
    expected = v2_tree(world)
    assert all(expected[path] == data for path, data in archive.tree().items())
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID)
    assert result.returncode == 0, result.stderr
    assert archive.tree() == expected


# --- never prompting ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("sync",), ("sync", "--owned")])
def test_bare_sync_without_a_terminal_or_login_exits_3_at_once(
    args: tuple[str, ...],
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
) -> None:
    archive = make_archive(serve(library_world()), login=False)
    archive.write_config(sync={"products": [PID]})
    # stdin is a pipe nobody writes to or closes: any prompt would hang here until the timeout.
    process = subprocess.Popen(
        [sys.executable, "-m", "galaxy_archive", "--config", str(archive.config_path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.wait(timeout=20) == ExitCode.NOT_LOGGED_IN
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate()
    assert "galaxy-archive login" in stderr
    assert not (archive.root / "archive.db").exists()


# --- bare sync: sync.products and the owned library --------------------------------------------


def test_bare_sync_mirrors_sync_products_then_the_owned_library_with_dlc_under_its_game(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = library_world()
    server = serve(world)
    archive = make_archive(server)
    archive.write_config(sync={"products": [OTHER], "generations": [2]})

    result = archive.run("sync")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, products=[OTHER])
    assert server.count(f"/products/{PID}/") == 0  # not asked for: the library is off

    result = archive.run("--json", "sync", "--owned")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)  # the DLC's depots came with its base game
    report = {p["product_id"]: p for p in json.loads(result.stdout)["products"]}
    assert set(report) == {OTHER, PID, DLC, NO_BUILDS}
    assert report[DLC]["dlc_of"] == PID and report[DLC]["error"] is None
    assert report[NO_BUILDS]["dlc_of"] is None and report[NO_BUILDS]["builds_seen"] == 0
    assert report[PID]["builds_complete"] == 1

    status = json.loads(archive.run("--json", "status").stdout)
    products = {p["product_id"]: p for p in status["products"]}
    assert products[DLC]["dlc_of"] == PID and products[DLC]["builds"] == []
    assert products[NO_BUILDS]["dlc_of"] is None and products[NO_BUILDS]["builds"] == []
    text = archive.run("status").output
    assert f"product {DLC} (DLC of {PID})" in text

    # Now known as a DLC, the id costs no request at all (sync.owned from the config this time).
    archive.write_config(sync={"owned": True})
    server.clear_requests()
    result = archive.run("--json", "sync")
    assert result.exit_code == 0, result.output
    assert server.count(f"/products/{DLC}/os/") == 0
    assert server.count(f"/products/{NO_BUILDS}/os/") > 0
    dlc = next(p for p in json.loads(result.stdout)["products"] if p["product_id"] == DLC)
    assert dlc["dlc_of"] == PID


# --- status: delisted builds ---------------------------------------------------------------------


def test_delisted_build_stays_in_the_archive_and_status_shows_it(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=23)
    old = world.add_v2_build(PID, files={"a.bin": random_bytes(150_000, 1)}, version_name="1.0")
    world.add_v2_build(PID, files={"a.bin": random_bytes(150_000, 2)}, version_name="1.1")
    archive = make_archive(serve(world))
    assert archive.run("sync", PID).exit_code == 0
    world.delist(old.build_id)
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, include_delisted=True)
    assert archive.tree() != v2_tree(world)  # the old build's files are kept

    text = archive.run("status", PID)
    assert text.exit_code == 0
    line = next(x for x in text.output.splitlines() if old.build_id in x)
    assert "DELISTED" in line and "complete" in line
    doc = json.loads(archive.run("--json", "status", PID).stdout)
    builds = {b["build_id"]: b for b in doc["products"][0]["builds"]}
    assert builds[old.build_id]["is_listed"] is False
    assert builds[old.build_id]["state"] == "complete"
    assert builds[old.build_id]["objects_needed"] == builds[old.build_id]["objects_verified"] > 2
    assert all(b["is_listed"] for b_id, b in builds.items() if b_id != old.build_id)
    assert doc["last_sync"]["exit_code"] == 0
    assert doc["bytes_stored"] == sum(len(data) for data in archive.tree().values())


# --- logs ----------------------------------------------------------------------------------------


def test_log_file_option_overrides_the_config_key(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    archive = make_archive(serve(chunky_world(100_000)))
    configured, given = tmp_path / "configured.log", tmp_path / "logs" / "given.log"
    archive.write_config(log={"file": str(configured)})
    result = archive.run_process("--quiet", "--log-file", str(given), "sync", PID)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # quiet for cron's mail
    assert "sync ended (exit 0)" in given.read_text()
    assert not configured.exists()


# --- free space ----------------------------------------------------------------------------------


def test_sync_refuses_to_fill_the_disk(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = chunky_world(400_000)
    archive = make_archive(serve(world))
    config = load(archive.config_path)
    small_disk = App(config=config, disk_free=lambda _path: 50_000_000)
    report = run_sync(small_disk, [PID], SyncOptions(generations=(2,)), workers=2)
    assert report.exit_code == ExitCode.PROBLEMS
    (problem,) = report.problems
    assert "not enough free space" in problem and "50000000 bytes) free" in problem
    assert stored_chunks(archive) == 0  # nothing downloaded for the product
    roomy = App(config=config, disk_free=lambda _path: 10**12)
    report = run_sync(roomy, [PID], SyncOptions(generations=(2,)), workers=2)
    assert report.exit_code == ExitCode.OK, report.problems
    assert archive.tree() == v2_tree(world)


def test_sync_refuses_to_fill_the_disk_with_v1_blobs(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=9)
    world.add_v1_build(PID, files={"data\\main.pak": random_bytes(400_000, 1)})
    world.owned.add(int(PID))
    server = serve(world)
    archive = make_archive(server)
    config = load(archive.config_path)
    small_disk = App(config=config, disk_free=lambda _path: 50_000_000)
    report = run_sync(small_disk, [PID], SyncOptions(generations=(1,)), workers=2)
    assert report.exit_code == ExitCode.PROBLEMS
    (problem,) = report.problems
    assert "not enough free space" in problem and "50000000 bytes) free" in problem
    assert [p for p in archive.tree() if p.endswith(".bin")] == []  # no blob byte fetched
    assert not any(r.path.endswith(".bin") for r in server.requests)
    roomy = App(config=config, disk_free=lambda _path: 10**12)
    report = run_sync(roomy, [PID], SyncOptions(generations=(1,)), workers=2)
    assert report.exit_code == ExitCode.OK, report.problems
    assert any(p.endswith(".bin") for p in archive.tree())
    assert any(r.path.endswith(".bin") for r in server.requests)  # the check above can fail


# --- network manners -----------------------------------------------------------------------------


def test_limit_rate_caps_the_bytes_per_second_of_a_sync(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    limit = 300_000
    archive = make_archive(serve(chunky_world(1_600_000)))
    archive.write_config(http={"limit_rate": limit})
    started = time.monotonic()
    result = archive.run("--json", "sync", PID)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    fetched = json.loads(result.stdout)["bytes_fetched"]
    assert fetched > 700_000
    # The bucket allows a one-second burst; beyond that the rate holds across all 4 workers.
    assert fetched <= limit * (elapsed + 1.0)
    assert elapsed >= fetched / limit - 1.0


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain-http forward proxy: GET http://host/path -> the origin, answer relayed."""

    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")
        }
        with requests.Session() as session:
            session.trust_env = False  # this is the proxy: never chain to another one
            upstream = session.get(
                self.path, headers=headers, stream=True, timeout=10, allow_redirects=False
            )
            body = upstream.raw.read(decode_content=False)
        self.send_response(upstream.status_code)
        for key, value in upstream.headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_http_proxy_carries_every_request(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = chunky_world(200_000)
    server = serve(world)
    archive = make_archive(server)
    seen: list[str] = []
    handler = type("Proxy", (_ForwardingProxy,), {"seen": seen})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    proxy.daemon_threads = True
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        archive.write_config(http={"proxy": f"http://127.0.0.1:{proxy.server_address[1]}"})
        server.clear_requests()
        result = archive.run("sync", PID)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    settle(lambda: len(server.requests) == len(seen))
    assert len(seen) == len(server.requests) > 10  # every request went through the proxy
    assert all(url.startswith(server.url) for url in seen)


def test_429_with_retry_after_and_503_are_retried(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = chunky_world(300_000)
    server = serve(world)
    archive = make_archive(server)
    server.faults.once(f"/products/{PID}/os/windows/builds", "429")
    server.faults.once("/secure_link", "503")
    server.faults.once("/store/", "429")
    server.faults.once("/store/", "503")
    # urllib3's Retry does the waiting (not App.sleep): record its waits, not the wall clock,
    # which an idle machine made long enough even with Retry-After ignored.
    waits: list[float] = []
    monkeypatch.setattr(
        urllib3.util.retry, "time", SimpleNamespace(time=time.time, sleep=waits.append)
    )
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    assert [f.kind for f in server.faults.injected].count("429") == 2
    assert server.faults.count == 4
    # Each 429 carries Retry-After: 1; the configured backoff (0.01 s) waits far less.
    assert [w for w in waits if w >= 1.0] == [1.0, 1.0], waits
    assert archive.tree() == v2_tree(world)
