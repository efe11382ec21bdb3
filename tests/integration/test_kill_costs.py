"""What a SIGKILL of the whole sync costs (issue 11), against a throttled fake CDN.

V1: about half a second of each range in flight, not whole ranges (three kills at random
moments of a 48 MiB blob, then a run to the end). V2: the chunks in flight, and no chunk
counts as stored that is not."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

from galaxy_archive.storage.local import PARTIAL_SUFFIX, TEMP_SUFFIX
from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes

PID = "1207658930"
BLOB_FILE_BYTES = 24 * 1024 * 1024  # two of them: a blob of just over 48 MiB
WORKERS = 6
PER_CONNECTION_BYTES_PER_S = 800 * 1024  # 6 ranges at once: the blob takes about 10 s
KILLS = 3


def _world() -> World:
    world = World(seed=11)
    files = {
        "bin\\game.exe": random_bytes(BLOB_FILE_BYTES, 1),
        "data\\main.pak": random_bytes(BLOB_FILE_BYTES, 2),
        "readme.txt": b"read me\n" * 50,
    }
    world.add_v1_build(PID, files=files)
    return world


def _recorded(archive: Archive) -> tuple[int, int]:
    """(bytes recorded as on disk, recorded disjoint pieces), read from the client's DB."""
    try:
        with sqlite3.connect(archive.root / "archive.db", timeout=5) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(end_offset - start_offset), 0), count(*) FROM v1_blob_ranges"
            ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0, 0
    return int(row[0]), int(row[1])


def _sync(archive: Archive, generation: str = "1") -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "galaxy_archive", "--config", str(archive.config_path)]
    return subprocess.Popen(
        [*command, "sync", PID, "--generation", generation, "--os", "windows"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its own process group, killed whole
    )


def _kill_mid_blob(archive: Archive, blob_size: int, rng: random.Random) -> int:
    """Run a sync until it has recorded more of the blob in several pieces (several ranges in
    flight), wait a random moment more, SIGKILL its process group; the bytes recorded."""
    before, _ = _recorded(archive)
    target = before + int(blob_size * rng.uniform(0.08, 0.18))
    process = _sync(archive)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            recorded, pieces = _recorded(archive)
            if recorded >= target and pieces >= 2:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("the blob made no progress")
        time.sleep(rng.uniform(0.0, 1.0))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    return _recorded(archive)[0]


def test_three_kills_mid_blob_cost_at_most_a_quarter_of_it(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = _world()
    build = world.builds[0]
    assert isinstance(build, V1Build)
    blob = build.blobs[PID]
    assert len(blob) >= 48 * 1024 * 1024
    server = serve(world)
    server.throttle_bytes_per_s = PER_CONNECTION_BYTES_PER_S
    archive = make_archive(server)
    archive.write_config(sync={"workers": WORKERS})
    rng = random.Random()
    final = archive.root / f"v1/depots/{build.manifest_dir(PID)}/main.bin"
    partial = final.with_name(f".main.bin{PARTIAL_SUFFIX}")

    recorded = []
    for _ in range(KILLS):
        recorded.append(_kill_mid_blob(archive, len(blob), rng))
        print(f"\nkilled: {recorded[-1]} recorded, {server.bytes_served('/main.bin')} served")
    assert recorded == sorted(recorded) and recorded[-1] < len(blob), recorded
    assert partial.exists() and not final.exists()

    server.throttle_bytes_per_s = None
    done = _sync(archive)
    _stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr

    assert final.read_bytes() == blob
    assert not partial.exists()
    assert [p.name for p in final.parent.iterdir()] == ["main.bin"]
    served = server.bytes_served("/main.bin")
    ratio = served / len(blob)
    print(f"\nblob {len(blob)} bytes, {served} served over {KILLS} kills and a rerun: {ratio:.3f}x")
    assert ratio <= 1.25


CHUNK_BYTES = 2 * 1024 * 1024
V2_WORKERS = 4


def _v2_world() -> World:
    world = World(seed=12)
    files = {f"data\\f{i}.bin": random_bytes(6 * 1024 * 1024, 20 + i) for i in range(4)}
    world.add_v2_build(PID, files=files, chunk_size=CHUNK_BYTES)
    return world


def _chunk_bytes_served(server: FakeGalaxy, world: World) -> int:
    return sum(
        r.bytes_sent
        for r in list(server.requests)
        if r.method == "GET" and r.path.rsplit("/", 1)[-1] in world.store
    )


def test_a_kill_mid_v2_download_costs_at_most_the_chunks_in_flight(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = _v2_world()
    server = serve(world)
    server.throttle_bytes_per_s = 1024 * 1024  # 4 chunks at once, 2 s each
    archive = make_archive(server)
    archive.write_config(sync={"workers": V2_WORKERS})
    store = archive.root / "v2" / "store"
    process = _sync(archive, "2")
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            stored = [p for p in store.rglob("*") if p.is_file() and TEMP_SUFFIX not in p.name]
            if len(stored) >= 3:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("no chunk was stored")
        time.sleep(random.uniform(0.0, 1.0))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    server.throttle_bytes_per_s = None
    rerun = _sync(archive, "2")
    _stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    verify = archive.run("verify")
    assert verify.exit_code == 0, verify.output
    assert list(archive.root.rglob(f"*{TEMP_SUFFIX}")) == []

    served = _chunk_bytes_served(server, world)
    total = sum(len(body) for body in world.store.values())
    largest = max(len(body) for body in world.store.values())
    print(f"\nchunks {total} bytes, {served} served over a kill and a rerun")
    assert served <= total + V2_WORKERS * largest
