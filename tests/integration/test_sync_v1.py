"""`sync` of generation-1 builds: manifests, and main.bin blobs by parallel ranges (issue 3)."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.fetch.tasks import Outcome
from galaxy_archive.storage.local import PARTIAL_SUFFIX
from galaxy_archive.sync.v1_phase import download_blob
from tests.conftest import MIGRATIONS, REPO, Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, md5_hex, random_bytes

PID = "1207658930"
DLC = "1207658931"
RANGE_SIZE = 64 * 1024  # the smallest sync.v1_range_size: many ranges from small blobs


def v1_world(size: int = 600_000, *, padding: int = 0, dlc: bool = True) -> World:
    world = World(seed=7)
    files = {
        "bin\\game.exe": random_bytes(size // 2, 1),
        "data\\main.pak": random_bytes(size // 2, 2),
        "readme.txt": b"read me\n" * 50,
        "empty.cfg": b"",
    }
    dlcs = {DLC: {"dlc\\extra.pak": random_bytes(100_000, 3)}} if dlc else None
    world.add_v1_build(PID, files=files, dlcs=dlcs, padding=padding)
    osx_files = {"Game.app\\Contents\\MacOS\\game": random_bytes(50_000, 4)}
    world.add_v1_build(PID, "osx", files=osx_files)
    return world


def v1_tree(world: World, **kw: object) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(1,), include_patches=False, include_dependencies=False, **kw
    )  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith("v1/")}


def windows_build(world: World) -> V1Build:
    build = world.builds[0]
    assert isinstance(build, V1Build) and build.os == "windows"
    return build


def blob_path(build: V1Build, product_id: str = PID) -> str:
    return f"v1/depots/{build.manifest_dir(product_id)}/main.bin"


def bytes_outside_files(build: V1Build, product_id: str) -> bytes:
    """The bytes of the product's blob that no file record of the build covers."""
    blob = build.blobs[product_id]
    covered = bytearray(len(blob))
    for depot in build.depots:
        if depot.product_id == product_id:
            for path, data in depot.files.items():
                start = depot.offsets[path]
                covered[start : start + len(data)] = b"\x01" * len(data)
    return bytes(byte for byte, is_covered in zip(blob, covered, strict=True) if not is_covered)


def blob_bytes_sent(server: FakeGalaxy) -> int:
    return sum(
        r.bytes_sent
        for r in list(server.requests)
        if r.method == "GET" and r.path.endswith("/main.bin")
    )


def ranged_archive(make_archive: Callable[..., Archive], server: FakeGalaxy) -> Archive:
    archive = make_archive(server)
    archive.write_config(sync={"v1_range_size": RANGE_SIZE})
    return archive


def test_sync_v1_mirrors_builds_byte_for_byte(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(padding=13)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    result = archive.run("--json", "sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v1_tree(world)
    build = windows_build(world)
    # fetched by ranges only, never whole
    assert server.count("main.bin", method="GET", status=206) >= 600_000 // RANGE_SIZE
    assert server.count("main.bin", method="GET", status=200) == 0
    # every file with data is recorded as an extent of its blob: offset, size, MD5
    for depot in build.depots:
        rows = archive.db_rows(
            'SELECT e.path, e."offset", e.size, e.md5 FROM v1_extents e '
            "JOIN objects o ON o.id = e.blob_object_id WHERE o.path = ?",
            blob_path(build, depot.product_id),
        )
        assert set(rows) == {
            (path.lstrip("/"), depot.offsets[path], len(data), md5_hex(data))
            for path, data in depot.files.items()
            if data
        }
    blob = build.blobs[PID]
    # GOG has no MD5 of a whole blob: its records' MD5s prove it, with the MD5 of the bytes
    # between and after them measured when it is stored
    assert archive.db_rows(
        "SELECT o.md5, o.size, o.state, o.product_id, b.uncovered_md5 FROM objects o "
        "JOIN v1_blobs b ON b.object_id = o.id WHERE o.path = ?",
        blob_path(build),
    ) == [(None, len(blob), "verified", PID, md5_hex(bytes_outside_files(build, PID)))]
    items = archive.db_rows("SELECT path, kind, target FROM v1_items ORDER BY path")
    assert ("empty.cfg", "empty_file", None) in items and ("bin", "directory", None) in items
    assert any(kind == "symlink" and target == "game" for _, kind, target in items)  # osx
    assert (
        archive.db_rows("SELECT redist, executable, argument, size FROM v1_redists")
        == [("MSVC2010", "__redist/MSVC2010/setup.exe", "/q", "0")] * 2
    )
    states = archive.db_rows("SELECT state FROM builds WHERE generation = 1")
    assert states == [("complete",), ("complete",)]
    report = json.loads(result.stdout)
    assert report["products"][0]["builds_complete"] == 2 and report["failed"] == 0
    # signed URLs are recorded without their token
    urls = [u for (u,) in archive.db_rows("SELECT source_url FROM objects WHERE kind = 'v1_blob'")]
    assert urls and all("token" not in u and "wsSecret" not in u for u in urls)


def test_sync_v1_dlc_depot_manifest_is_found_under_its_game_id(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    assert archive.run("sync", PID, "--generation", "1", "--os", "windows").exit_code == 0
    build = windows_build(world)
    dlc_manifest = next(d.manifest_name for d in build.depots if d.product_id == DLC)
    legacy = f"windows/{build.legacy_build_id}/{dlc_manifest}"
    assert server.count(f"/v1/manifests/{PID}/{legacy}", status=404) >= 1  # beside repository
    assert server.count(f"/v1/manifests/{DLC}/{legacy}", status=200) == 1  # then gameIDs[0]
    stored = archive.root / f"v1/manifests/{PID}/{legacy}"  # kept beside repository.json
    assert stored.read_bytes() == world.v1_manifests[f"{DLC}/{legacy}"]


def test_sync_v1_second_run_fetches_nothing(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    assert archive.run("sync", PID, "--generation", "1").exit_code == 0
    before = server.count("/content-system/v1/")
    result = archive.run("--json", "sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fetched"] == 0
    assert server.count("/content-system/v1/") == before


def test_sync_v1_checks_every_file_record_before_the_rename(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    build = windows_build(world)
    depot = build.depots[0]
    # The CDN's blob has one flipped byte inside data/main.pak: every range is a perfect 206.
    blob = bytearray(world.v1_blobs[build.manifest_dir()])
    blob[depot.offsets["/data/main.pak"] + 1234] ^= 0xFF
    world.v1_blobs[build.manifest_dir()] = bytes(blob)
    archive = ranged_archive(make_archive, serve(world))
    result = archive.run("sync", PID, "--generation", "1", "--os", "windows")
    assert result.exit_code == 1
    assert f"{blob_path(build)}: file data/main.pak (offset" in result.output
    assert not (archive.root / blob_path(build)).exists()
    state, error = archive.db_rows(
        "SELECT state, error FROM objects WHERE path = ?", blob_path(build)
    )[0]
    assert state == "missing" and "data/main.pak" in error
    assert (archive.root / blob_path(build, DLC)).read_bytes() == build.blobs[DLC]
    assert archive.db_rows("SELECT state FROM builds WHERE os = 'windows'") == [("incomplete",)]


@pytest.mark.parametrize("kind", ["range_as_200", "short_206", "wrong_content_range", "corrupt"])
def test_sync_v1_range_faults_never_leave_a_corrupt_blob(
    kind: str, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(300_000, dlc=False)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    server.faults.always("main.bin", kind)
    result = archive.run("sync", PID, "--generation", "1", "--os", "windows")
    assert result.exit_code == 1
    build = windows_build(world)
    assert f"V1 blob {blob_path(build)}" in result.output
    assert server.fault_count >= 3
    assert not (archive.root / blob_path(build)).exists()
    assert archive.db_rows("SELECT state FROM objects WHERE kind = 'v1_blob'") == [("missing",)]


@pytest.mark.parametrize("head_status", [405, 501, 404, 403])
def test_sync_v1_learns_the_size_from_a_ranged_get_when_head_is_refused(
    head_status: int, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=False)
    server = serve(world)
    server.head_status = head_status
    archive = ranged_archive(make_archive, server)
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v1_tree(world)
    assert server.count("main.bin", method="HEAD", status=head_status) >= 2  # both blobs
    assert archive.db_rows("SELECT DISTINCT state FROM objects WHERE kind = 'v1_blob'") == [
        ("verified",)
    ]


def test_sync_v1_takes_a_200_for_a_range_that_is_the_whole_blob(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=False)
    server = serve(world)
    archive = make_archive(server)  # default 8 MiB ranges: each blob is one range
    server.faults.always("main.bin", "range_as_200")
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v1_tree(world)
    assert server.fault_count >= 2


def test_sync_v1_completes_through_a_few_percent_of_faults(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(2_000_000)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    server.faults.configure(
        rate=0.12,
        paths="main.bin",
        seed=4,
        kinds=[
            "range_as_200",
            "short_206",
            "wrong_content_range",
            "corrupt",
            "503",
            "reset",
            "truncate",
        ],
    )
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    assert server.fault_count >= 3
    assert archive.tree() == v1_tree(world)


def test_sync_v1_blob_shorter_than_its_records_is_an_error(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=False)
    build = windows_build(world)
    world.v1_blobs[build.manifest_dir()] = world.v1_blobs[build.manifest_dir()][:-10]
    archive = ranged_archive(make_archive, serve(world))
    result = archive.run("sync", PID, "--generation", "1", "--os", "windows")
    assert result.exit_code == 1
    assert "shorter than its file records need" in result.output
    assert not (archive.root / blob_path(build)).exists()


def test_sync_v1_hostile_depot_manifest_is_named_and_contained(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    build = windows_build(world)
    depot = build.depots[0]
    key = f"{build.manifest_dir()}/{depot.manifest_name}"
    doc = json.loads(world.v1_manifests[key])
    doc["depot"]["files"].append(
        {
            "path": "/../../../evil.txt",
            "size": 4,
            "offset": 0,
            "hash": md5_hex(b"evil"),
            "url": f"{PID}/main.bin",
        }
    )
    world.v1_manifests[key] = json.dumps(doc).encode()
    archive = ranged_archive(make_archive, serve(world))
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 1
    assert f"v1/manifests/{key}" in result.output and "evil.txt" in result.output
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    # Stored verbatim (what GOG served); only the hostile record is skipped (issue 11).
    assert (archive.root / f"v1/manifests/{key}").read_bytes() == world.v1_manifests[key]
    assert "entry skipped" in result.output
    assert (archive.root / blob_path(build, DLC)).read_bytes() == build.blobs[DLC]
    assert (archive.root / blob_path(build)).read_bytes() == build.blobs[PID]
    states = dict(archive.db_rows("SELECT os, state FROM builds"))
    assert states == {"windows": "incomplete", "osx": "complete"}


def test_sync_v1_file_record_without_hash_is_kept_and_proven_by_the_blob_digest(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=False)
    build = windows_build(world)
    depot = build.depots[0]
    key = f"{build.manifest_dir()}/{depot.manifest_name}"
    doc = json.loads(world.v1_manifests[key])
    for record in doc["depot"]["files"]:
        if record.get("path") == "/data/main.pak":
            del record["hash"]  # protocol.md 6.2: any field can be missing
    world.v1_manifests[key] = json.dumps(doc).encode()
    archive = ranged_archive(make_archive, serve(world))
    result = archive.run("sync", PID, "--generation", "1", "--os", "windows")
    assert result.exit_code == 0, result.output
    assert "data/main.pak has no hash" in result.output
    expected = v1_tree(world, os=["windows"])
    expected[f"v1/manifests/{key}"] = world.v1_manifests[key]  # as served, without the hash
    assert archive.tree() == expected
    assert archive.db_rows("SELECT count(*) FROM v1_extents WHERE path = 'data/main.pak'") == [(0,)]
    assert archive.run("verify").exit_code == 0
    blob = archive.root / blob_path(build)
    data = bytearray(blob.read_bytes())
    data[depot.offsets["/data/main.pak"] + 10] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = archive.run("verify")
    assert result.exit_code == 1 and "the bytes outside its file records" in result.output


def test_sync_v1_never_writes_a_blob_through_a_symlinked_directory(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=False)
    build = windows_build(world)
    archive = ranged_archive(make_archive, serve(world))
    outside = tmp_path / "outside"
    outside.mkdir()
    blob_dir = (archive.root / blob_path(build)).parent
    blob_dir.parent.mkdir(parents=True)
    blob_dir.symlink_to(outside)
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 1, result.output
    assert "is a symlink" in result.output
    assert list(outside.iterdir()) == []  # nothing written through it
    assert archive.db_rows("SELECT state FROM builds WHERE os = 'osx'") == [("complete",)]


def test_sync_v1_never_writes_a_blob_through_a_symlinked_partial_file(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    build = windows_build(world)
    archive = ranged_archive(make_archive, serve(world))
    precious = tmp_path / "precious"
    precious.write_bytes(b"precious")
    partial = (archive.root / blob_path(build)).with_name(".main.bin.galaxy-partial")
    partial.parent.mkdir(parents=True)
    partial.symlink_to(precious)
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 1, result.output
    assert ".main.bin.galaxy-partial: a symlink, not followed" in result.output
    assert precious.read_bytes() == b"precious"
    assert (archive.root / blob_path(build, DLC)).read_bytes() == build.blobs[DLC]  # goes on
    assert archive.db_rows("SELECT state FROM builds WHERE os = 'osx'") == [("complete",)]


def test_sync_v1_blob_of_a_product_not_owned_fails_at_once_and_the_rest_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    build = windows_build(world)
    world.owned.discard(int(DLC))
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 1, result.output
    assert f"secure link of product {DLC}: refused (HTTP 403)" in result.output
    assert server.count(f"/products/{DLC}/secure_link") == 1  # refused once, not asked again
    assert (archive.root / blob_path(build)).read_bytes() == build.blobs[PID]
    assert not (archive.root / blob_path(build, DLC)).exists()


def test_sync_v1_no_dlc_and_dry_run(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world()
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    result = archive.run("--json", "sync", PID, "--generation", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert server.count("main.bin") == 0
    planned = json.loads(result.stdout)["products"][0]
    assert planned["planned_objects"] == 3  # two windows blobs (game, DLC) and the osx one
    blobs = {k: v for k, v in v1_tree(world).items() if not k.startswith("v1/manifests/")}
    assert len(blobs) == 3
    assert planned["planned_bytes"] == sum(len(v) for v in blobs.values())  # exact, not a bound
    assert all(path.startswith("v1/manifests/") for path in archive.tree())
    server.single_use_codes = False  # a second archive logs in with the same code
    fresh = make_archive(server, name="no-dlc")
    result = fresh.run("sync", PID, "--generation", "1", "--no-dlc")
    assert result.exit_code == 0, result.output
    assert fresh.tree() == v1_tree(world, include_dlc=False)


def test_sync_v1_killed_mid_blob_resumes_with_the_missing_ranges_only(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(4_000_000, dlc=False)
    build = windows_build(world)
    blob_size = len(build.blobs[PID])
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    archive.write_config(http={"limit_rate": 1_000_000})
    process = archive.popen("sync", PID, "--generation", "1", "--os", "windows")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _recorded_bytes(archive) < blob_size // 4:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    final = archive.root / blob_path(build)
    assert not final.exists()
    assert final.with_name(f".main.bin{PARTIAL_SUFFIX}").exists()
    assert blob_size // 4 <= _recorded_bytes(archive) < blob_size
    first_run = blob_bytes_sent(server)
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID, "--generation", "1", "--os", "windows")
    assert result.returncode == 0, result.stderr
    assert archive.tree() == v1_tree(world, os=["windows"])
    assert blob_bytes_sent(server) - first_run <= blob_size * 3 // 4  # only what was missing
    assert blob_bytes_sent(server) < 1.5 * blob_size


def test_sync_v1_killed_after_the_last_range_finishes_without_fetching(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    """Every range written and recorded, the kill before the rename: the rerun checks the
    partial file read back from disk and renames it, fetching no byte of it again."""
    world = v1_world(dlc=False)
    build = windows_build(world)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    assert archive.run("sync", PID, "--generation", "1", "--os", "windows").exit_code == 0
    final = archive.root / blob_path(build)
    final.rename(final.with_name(f".main.bin{PARTIAL_SUFFIX}"))
    with sqlite3.connect(archive.root / "archive.db") as conn:
        (object_id,) = conn.execute(
            "SELECT id FROM objects WHERE path = ?", (blob_path(build),)
        ).fetchone()
        conn.execute("UPDATE objects SET state = 'missing' WHERE id = ?", (object_id,))
        conn.execute("UPDATE v1_blobs SET uncovered_md5 = NULL WHERE object_id = ?", (object_id,))
        conn.execute(
            "INSERT INTO v1_blob_ranges (blob_object_id, start_offset, end_offset) "
            "VALUES (?, 0, ?)",
            (object_id, len(build.blobs[PID])),
        )
    before = server.count("main.bin", method="GET")
    result = archive.run("sync", PID, "--generation", "1", "--os", "windows")
    assert result.exit_code == 0, result.output
    assert server.count("main.bin", method="GET") == before
    assert archive.tree() == v1_tree(world, os=["windows"])
    assert archive.db_rows("SELECT uncovered_md5 FROM v1_blobs WHERE object_id = ?", object_id) == [
        (md5_hex(bytes_outside_files(build, PID)),)
    ]


def test_sync_v1_sigterm_mid_blob_keeps_the_ranges_done_and_exits_130(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(3_000_000, dlc=False)
    build = windows_build(world)
    blob_size = len(build.blobs[PID])
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    archive.write_config(http={"limit_rate": 800_000})
    process = archive.popen("--json", "sync", PID, "--generation", "1", "--os", "windows")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _recorded_bytes(archive) < blob_size // 5:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert json.loads(stdout)["interrupted"] is True
    assert not (archive.root / blob_path(build)).exists()
    kept = _recorded_bytes(archive)
    assert blob_size // 5 <= kept < blob_size  # the ranges in flight were finished and kept
    first_run = blob_bytes_sent(server)
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID, "--generation", "1", "--os", "windows")
    assert result.returncode == 0, result.stderr
    assert archive.tree() == v1_tree(world, os=["windows"])
    assert blob_bytes_sent(server) - first_run <= blob_size - kept + RANGE_SIZE


def _recorded_bytes(archive: Archive) -> int:
    """Bytes of the blob the client has recorded as written (its DB, read while it runs)."""
    try:
        with sqlite3.connect(archive.root / "archive.db", timeout=5) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(end_offset - start_offset), 0) FROM v1_blob_ranges"
            ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0])


def test_sync_v1_renews_a_link_that_expires_mid_blob(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(3_000_000, dlc=False)
    build = windows_build(world)
    blob_size = len(build.blobs[PID])
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    archive.write_config(http={"limit_rate": 1_000_000})
    process = archive.popen("sync", PID, "--generation", "1", "--os", "windows")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and blob_bytes_sent(server) < blob_size // 3:
        time.sleep(0.02)
    server.advance_clock(7200)  # every link handed out so far has expired at the CDN
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert server.count("main.bin", method="GET", status=403) >= 1
    assert server.count("/secure_link", status=200) >= 2
    assert archive.tree() == v1_tree(world, os=["windows"])
    assert blob_bytes_sent(server) < 1.5 * blob_size  # went on, did not start again


def test_download_blob_serves_verify_repair(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(padding=13)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    assert archive.run("sync", PID, "--generation", "1", "--os", "windows").exit_code == 0
    build = windows_build(world)
    app = App(config=load(archive.config_path), migrations_dir=MIGRATIONS)
    http = app.http(2)
    downloader = app.downloader(http, app.api(http), workers=2)
    db = app.open_db()

    def repair(product_id: str) -> Outcome:
        row = db.object_by_path(blob_path(build, product_id))
        assert row is not None
        result = download_blob(db, app.store(), downloader, row.id, range_size=RANGE_SIZE)
        assert result.error is None
        assert (archive.root / blob_path(build, product_id)).read_bytes() == build.blobs[product_id]
        uncovered = md5_hex(bytes_outside_files(build, product_id))
        assert db.conn.execute(
            "SELECT uncovered_md5 FROM v1_blobs WHERE object_id = ?", (row.id,)
        ).fetchone() == (uncovered,)
        return result.outcome

    try:
        (archive.root / blob_path(build, DLC)).unlink()
        assert repair(DLC) is Outcome.FETCHED
        before = server.count("main.bin", method="GET")
        assert repair(DLC) is Outcome.ALREADY_PRESENT  # adopted after a HEAD, not fetched
        assert server.count("main.bin", method="GET") == before
        # A flipped byte between two files has no file MD5 to catch it, but the MD5 of the
        # bytes outside the files recorded at sync does: such a file is not adopted but fetched.
        stored = archive.root / blob_path(build)
        gap = len(build.depots[0].files["/bin/game.exe"]) + 5
        damaged = bytearray(stored.read_bytes())
        damaged[gap] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        assert repair(PID) is Outcome.FETCHED
    finally:
        db.close()


# Runs a command and writes its peak RSS (KiB) to a file: measured from a small parent, since a
# child forked from the test process would count the test's own memory as its own before exec.
_PEAK_RSS_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


@pytest.mark.slow
def test_sync_v1_two_gigabyte_blob_with_flat_memory(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    part_size, parts = 64 * 1024 * 1024, 32  # 2 GiB
    world = World(seed=9)
    build = world.add_v1_build(PID, files={"placeholder": b"x"}, redists=[])
    # The served blob is a file the fake maps, not bytes held by this process: 32 copies of
    # one random 64 MiB part, so one MD5 serves every file record.
    part = random_bytes(part_size, 5)
    served = tmp_path / "served-main.bin"
    with open(served, "wb") as out:
        for _ in range(parts):
            out.write(part)
    records = [
        {
            "url": f"{PID}/main.bin",
            "path": f"/data/part{i:02}.bin",
            "size": part_size,
            "offset": i * part_size,
            "hash": md5_hex(part),
        }
        for i in range(parts)
    ]
    del part
    manifest_key = f"{build.manifest_dir()}/{build.depots[0].manifest_name}"
    world.v1_manifests[manifest_key] = json.dumps({"depot": {"files": records}}).encode()
    with open(served, "rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as blob:
        world.v1_blobs[build.manifest_dir()] = blob  # type: ignore[assignment]
        archive = make_archive(serve(world))
        peak_file = tmp_path / "peak-rss"
        command = [sys.executable, "-c", _PEAK_RSS_LAUNCHER, str(peak_file), sys.executable,
                   "-m", "galaxy_archive", "--config", str(archive.config_path),
                   "sync", PID, "--generation", "1"]  # fmt: skip
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                                check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        peak_mib = int(peak_file.read_text()) / 1024
        print(f"sync of a 2 GiB blob: peak RSS {peak_mib:.0f} MiB")
        assert peak_mib < 200, f"peak RSS {peak_mib:.0f} MiB"
        stored = archive.root / blob_path(build)
        assert stored.stat().st_size == parts * part_size
        assert _md5_of_file(stored) == _md5_of_file(served)
        world.v1_blobs.clear()  # the fake's views of the map go before the map closes


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def test_sync_v1_never_leaks_signed_urls(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = v1_world(dlc=True)
    server = serve(world)
    archive = ranged_archive(make_archive, server)
    log_file = tmp_path / "sync.log"
    archive.write_config(log={"file": str(log_file)})
    server.endpoints = ["gcore", "fastly"]  # query-string tokens too
    server.faults.configure(rate=0.2, kinds=["503", "reset", "short_206"], paths="main.bin", seed=3)
    server.faults.always(f"/{DLC}/", "wrong_content_range")  # a failure, reported in detail
    result = archive.run_process("-vv", "--json", "sync", PID, "--generation", "1")
    assert result.returncode == 1
    assert f"V1 blob {blob_path(windows_build(world), DLC)}" in result.stderr
    secrets = set()
    for request in server.requests:
        secrets.update(v for k, v in request.query.items() if k == "wsSecret")
        secrets.update(re.findall(r"token=([0-9a-f]{16,})", request.path))
    assert len(secrets) >= 2
    haystacks = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "log": log_file.read_text(),
        "db": archive.db_dump(),
    }
    for name, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a signed URL leaked into {name}"
