"""sync and verify with the archive in an S3 bucket (rclone serve s3 on loopback): the same
tree as a local archive, damage found and repaired, a bucket copied back to a directory is a
valid local archive, a server gone mid-run fails the objects naming it, and no credential is
ever written or shown."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes
from tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

pytestmark = pytest.mark.integration

PID = "1207658930"
OTHER = "1400000001"
V1 = "1500000001"


def s3_world() -> World:
    world = World(seed=21)
    files = {"bin\\game.exe": random_bytes(300_000, 1), "data\\big.pak": random_bytes(600_000, 2)}
    small = {f"config\\f{i}.ini": f"setting={i}\n".encode() * (i + 1) for i in range(4)}
    world.add_v2_build(PID, files=files, small_files=small, chunk_size=256 * 1024)
    world.add_v2_build(OTHER, files={"other.dat": random_bytes(100_000, 5)})
    world.add_v1_build(V1, files={"game.exe": random_bytes(200_000, 6), "a.dat": b"a" * 5000})
    world.owned.update({int(PID), int(OTHER), int(V1)})
    return world


def expected(world: World, *products: str) -> dict[str, bytes]:
    tree = world.expected_tree(products=products, include_patches=False, include_dependencies=False)
    return {path: body for path, body in tree.items() if path.startswith(("v1/", "v2/"))}


def bucket_tree(server: S3Server, prefix: str) -> dict[str, bytes]:
    """What the bucket holds under `prefix`'s v1/ and v2/ (rclone keeps keys as files)."""
    base = server.bucket_dir / prefix
    return {
        path.relative_to(base).as_posix(): path.read_bytes()
        for top in ("v1", "v2")
        for path in sorted((base / top).rglob("*"))
        if path.is_file()
    }


def use_s3(archive: Archive, server: S3Server, prefix: str) -> None:
    archive.write_config(
        storage={"kind": "s3"},
        **{"storage.s3": {"endpoint": server.endpoint, "bucket": BUCKET, "prefix": prefix}},
    )


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"it/{request.node.name[:60]}"


@pytest.fixture
def world_and_archive(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    s3_env: S3Server,
    prefix: str,
) -> Iterator[tuple[World, Archive]]:
    world = s3_world()
    archive = make_archive(serve(world))
    archive.write_config(sync={"v1_range_size": 64 * 1024})
    use_s3(archive, s3_env, prefix)
    yield world, archive


def assert_no_credential(*texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_s3_sync_writes_the_local_tree_into_the_bucket_and_verifies_at_every_level(
    world_and_archive: tuple[World, Archive], s3_env: S3Server, prefix: str
) -> None:
    world, archive = world_and_archive
    result = archive.run("--json", "sync", PID, OTHER, V1)
    assert result.exit_code == 0, result.output
    assert bucket_tree(s3_env, prefix) == expected(world, PID, OTHER, V1)
    assert archive.tree() == {}  # nothing of the tree on local disk
    outputs = [result.stdout, result.stderr]
    for level in ("--quick", None, "--deep"):
        checked = archive.run("--json", "verify", *([level] if level else []))
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.stdout)["problems"] == []
        outputs += [checked.stdout, checked.stderr]
    db_bytes = (archive.root / "archive.db").read_bytes().decode("latin-1")
    assert_no_credential(*outputs, db_bytes, archive.db_dump(), archive.config_path.read_text())


def test_s3_a_flipped_byte_in_the_bucket_is_found_and_repaired(
    world_and_archive: tuple[World, Archive], s3_env: S3Server, prefix: str
) -> None:
    world, archive = world_and_archive
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    chunk = max(
        (path for path in bucket_tree(s3_env, prefix) if path.startswith("v2/store/")),
        key=lambda path: (len(bucket_tree(s3_env, prefix)[path]), path),
    )
    on_disk = s3_env.bucket_dir / prefix / chunk
    damaged = bytearray(on_disk.read_bytes())
    damaged[100] ^= 0x01
    on_disk.write_bytes(bytes(damaged))

    assert archive.run("--json", "verify", "--quick").exit_code == 0  # the size is still right
    found = archive.run("--json", "verify")
    assert found.exit_code == 1, found.output
    assert [problem["path"] for problem in json.loads(found.stdout)["problems"]] == [chunk]

    repaired = archive.run("--json", "verify", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert bucket_tree(s3_env, prefix) == expected(world, PID)
    quarantined = list((s3_env.bucket_dir / prefix / "quarantine").rglob("*"))
    assert [path.read_bytes() for path in quarantined if path.is_file()] == [bytes(damaged)]
    assert archive.run("verify", "--deep").exit_code == 0


def test_s3_a_bucket_copied_to_a_directory_is_a_valid_local_archive(
    world_and_archive: tuple[World, Archive], s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    _world, archive = world_and_archive
    assert archive.run("sync", PID, V1).exit_code == 0
    copy = tmp_path / "copied"
    copy_bucket(s3_env, prefix, copy)
    shutil.copy(archive.root / "archive.db", copy / "archive.db")
    archive.root = copy
    archive.extra_config.pop("storage", None)
    archive.extra_config.pop("storage.s3", None)
    archive.write_config(archive={"root": str(copy)})
    for level in ("--quick", None, "--deep"):
        checked = archive.run("verify", *([level] if level else []))
        assert checked.exit_code == 0, checked.output


def copy_bucket(server: S3Server, prefix: str, target: Path) -> None:
    """Download every key under `prefix` with boto3, as any S3 tool would copy a bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=server.endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    for page in pages:
        for item in page.get("Contents", ()):
            path = target / item["Key"][len(prefix) + 1 :]
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, item["Key"], str(path))


@pytest.fixture
def own_server(tmp_path: Path, s3_env: S3Server) -> Iterator[S3Server]:
    """A server of the test's own (the test stops it), with the session server's keys."""
    server = S3Server(tmp_path / "own-s3").start()
    yield server
    server.stop()


def sync_with_the_server_gone(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], server: S3Server
) -> tuple[World, Archive, Any]:
    world = s3_world()
    archive = make_archive(serve(world))
    use_s3(archive, server, "gone")
    archive.write_config(http={"retries": 1, "timeout": 2})
    assert archive.run("sync", OTHER).exit_code == 0
    server.stop()
    return world, archive, archive.run("--json", "sync", PID)


def test_s3_a_server_gone_fails_the_objects_naming_it_and_the_next_run_completes(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], own_server: S3Server
) -> None:
    world, archive, failed = sync_with_the_server_gone(serve, make_archive, own_server)
    assert failed.exit_code != 0, failed.output
    report = json.loads(failed.stdout)
    assert report["products"][0]["error"].endswith(
        f"cannot upload on {own_server.endpoint} bucket {BUCKET}: "
        "cannot reach the server (EndpointConnectionError)"
    )
    assert_no_credential(failed.stdout, failed.stderr)

    own_server.start()  # the same port again
    again = archive.run("sync", PID)
    assert again.exit_code == 0, again.output
    assert bucket_tree(own_server, "gone") == expected(world, PID, OTHER)
    assert archive.run("verify", "--deep").exit_code == 0


def test_s3_a_server_gone_exits_1_not_interrupted(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], own_server: S3Server
) -> None:
    _world, _archive, failed = sync_with_the_server_gone(serve, make_archive, own_server)
    assert failed.exit_code == 1, failed.output
    assert json.loads(failed.stdout)["interrupted"] is False


@pytest.mark.slow
def test_s3_kill_9_during_chunk_uploads_leaves_no_unverified_object_and_the_rerun_completes(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    s3_env: S3Server,
    prefix: str,
) -> None:
    world = World(seed=22)
    files = {f"data\\f{i:03d}.bin": random_bytes(120_000, 100 + i) for i in range(150)}
    world.add_v2_build(PID, files=files, chunk_size=128 * 1024)
    world.owned.add(int(PID))
    archive = make_archive(serve(world))
    use_s3(archive, s3_env, prefix)
    archive.write_config(sync={"workers": 2})
    store_dir = s3_env.bucket_dir / prefix / "v2" / "store"
    process = archive.popen("sync", PID)
    deadline = time.monotonic() + 60
    while not (store_dir.is_dir() and any(store_dir.rglob("*"))):
        assert process.poll() is None and time.monotonic() < deadline, "sync ended before a chunk"
        time.sleep(0.01)
    process.kill()  # SIGKILL: no clean-up of any kind
    process.communicate()
    partial = bucket_tree(s3_env, prefix)
    want = expected(world, PID)
    assert partial and len(partial) < len(want)
    assert all(want[path] == body for path, body in partial.items())  # nothing unverified

    again = archive.run("sync", PID)
    assert again.exit_code == 0, again.output
    assert bucket_tree(s3_env, prefix) == want
    assert list((archive.root / "s3-spool" / "tmp").iterdir()) == []
    assert archive.run("verify").exit_code == 0
