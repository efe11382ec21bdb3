"""Faults, hostile input, kill -9 and secrets: what makes sync safe to run unattended."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from galaxy_archive.storage.local import TEMP_SUFFIX
from tests.conftest import Archive
from tests.fakegalaxy import (
    FakeGalaxy,
    V2Build,
    World,
    galaxy_path,
    md5_hex,
    random_bytes,
    zlib_json,
)

PID = "1207658930"
OTHER = "1423049311"


def v2_tree(world: World, **kw: object) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False, **kw
    )  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


def medium_world(size: int = 3_000_000) -> World:
    world = World(seed=11)
    world.add_v2_build(
        PID,
        files={f"data\\f{i}.bin": random_bytes(size // 6, i) for i in range(6)},
        small_files={f"s{i}.txt": b"x" * (i + 10) for i in range(4)},
        chunk_size=128 * 1024,
    )
    world.add_v2_build(OTHER, files={"game.exe": random_bytes(400_000, 99)}, chunk_size=128 * 1024)
    return world


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"*{TEMP_SUFFIX}"))


def test_sync_survives_faults_and_expiring_links(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world()
    server = serve(world, link_ttl_s=2)
    archive = make_archive(server)
    archive.write_config(http={"limit_rate": 400_000})  # a few seconds: links expire mid-run
    server.faults.configure(
        rate=0.06, kinds=["500", "503", "429", "reset", "truncate", "short", "corrupt"], seed=5
    )
    result = archive.run("--json", "sync", PID, OTHER, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert server.faults.count >= 5
    assert server.count("/secure_link", status=200) > 2  # renewed, not fetched per chunk
    assert archive.tree() == v2_tree(world)
    assert temp_files(archive.root) == []


def test_sync_renews_a_link_the_cdn_rejects(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world(1_500_000)
    server = serve(world)
    archive = make_archive(server)
    archive.write_config(http={"limit_rate": 300_000})
    # Mid-run, the CDN's clock jumps past every link handed out so far: links the client
    # still believes valid are answered 403 and must be renewed.
    timer = threading.Timer(1.0, server.advance_clock, args=(7200,))
    timer.start()
    try:
        result = archive.run("sync", PID, "--generation", "2")
    finally:
        timer.cancel()
    assert result.exit_code == 0, result.output
    assert server.count("/v2/store/", status=403) >= 1
    assert server.count("/secure_link", status=200) >= 2
    assert archive.tree() == v2_tree(world, products=[PID])


def test_sync_fails_over_to_the_next_cdn_endpoint(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world(300_000)
    server = serve(world)
    server.dead_endpoints = {"fastly"}
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, products=[PID])
    endpoints = {
        row[0]
        for row in archive.db_rows(
            "SELECT endpoint FROM objects WHERE kind = 'store' AND state = 'verified'"
        )
    }
    assert endpoints == {"gcore"}


def _replace_first_depot(world: World, build: V2Build, raw_manifest: bytes) -> str:
    """Point the build's first depot at `raw_manifest` (named by its MD5, as on the CDN)."""
    manifest_md5 = md5_hex(raw_manifest)
    world.meta[manifest_md5] = raw_manifest
    repository = copy.deepcopy(build.repository)
    repository["depots"][0]["manifest"] = manifest_md5
    _set_repository(world, build, zlib_json(repository))
    return manifest_md5


def _set_repository(world: World, build: V2Build, raw: bytes) -> None:
    world.repository_hashes.discard(build.repository_hash)
    build.repository_bytes = raw
    build.repository_hash = md5_hex(raw)
    world.meta[build.repository_hash] = raw
    world.repository_hashes.add(build.repository_hash)


def _depot_doc(path: str, chunk_md5: str = "0" * 32) -> dict:
    return {
        "version": 2,
        "depot": {
            "items": [
                {
                    "type": "DepotFile",
                    "path": path,
                    "chunks": [
                        {
                            "compressedMd5": chunk_md5,
                            "compressedSize": 10,
                            "md5": "1" * 32,
                            "size": 20,
                        }
                    ],
                }
            ]
        },
    }


UNSAFE_ENTRY_DEPOTS = {
    "dotdot": zlib_json(_depot_doc("..\\..\\..\\evil.txt")),
    "absolute": zlib_json(_depot_doc("/tmp/evil.txt")),
    "non_hex": zlib_json(_depot_doc("ok.txt", "../../../../../evil/aaaaaaaaaaaaaaaaaaaa")),
}
HOSTILE_DEPOTS = {
    "invalid_zlib": b"\x78\x9c" + b"\xde\xad\xbe\xef" * 20,
    "wrong_types": zlib_json(
        {"depot": {"items": [{"type": "DepotFile", "path": 7, "chunks": "lots"}]}}
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_DEPOTS))
def test_sync_hostile_depot_manifest_is_named_and_contained(
    case: str,
    tmp_path: Path,
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
) -> None:
    world = medium_world(200_000)
    bad_build = world.add_v2_build("1111111111", files={"x.txt": b"x"})
    manifest_md5 = _replace_first_depot(world, bad_build, HOSTILE_DEPOTS[case])
    archive = make_archive(serve(world))
    result = archive.run("sync", "1111111111", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    assert f"depot manifest {manifest_md5}" in result.output
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not (archive.root / "v2/meta" / galaxy_path(manifest_md5)).exists()
    good = v2_tree(world, products=[PID])
    assert {k: v for k, v in archive.tree().items() if k in good} == good
    states = dict(archive.db_rows("SELECT product_id, state FROM builds WHERE generation = 2"))
    assert states[PID] == "complete" and states["1111111111"] == "incomplete"


@pytest.mark.parametrize("case", sorted(UNSAFE_ENTRY_DEPOTS))
def test_sync_unsafe_entry_of_a_depot_manifest_is_skipped_named_and_contained(
    case: str,
    tmp_path: Path,
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
) -> None:
    """Its shape is right, so it is stored as GOG served it; its one item is not followed."""
    world = medium_world(200_000)
    bad_build = world.add_v2_build("1111111111", files={"x.txt": b"x"})
    raw = UNSAFE_ENTRY_DEPOTS[case]
    manifest_md5 = _replace_first_depot(world, bad_build, raw)
    archive = make_archive(serve(world))
    result = archive.run("sync", "1111111111", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    assert f"depot manifest {manifest_md5}" in result.output and "entry skipped" in result.output
    # The stored manifest still names the hostile path: restore is what could be tricked into
    # writing it. DEST sits three levels below tmp_path, where "..\\..\\..\\evil.txt" would land.
    absolute_before = Path("/tmp/evil.txt").exists()
    [build_id] = [
        row[0]
        for row in archive.db_rows("SELECT build_id FROM builds WHERE product_id = '1111111111'")
    ]
    dest = tmp_path / "a" / "b" / "c" / "dest"
    restored = archive.run("restore", "1111111111", build_id, str(dest), "--partial")
    assert restored.exit_code == 1, restored.output
    assert "refused: " in restored.output and "entry skipped" in restored.output
    assert Path("/tmp/evil.txt").exists() == absolute_before
    assert not any(p.name in ("evil.txt", "evil") for p in tmp_path.rglob("*"))
    assert (archive.root / "v2/meta" / galaxy_path(manifest_md5)).read_bytes() == raw
    good = v2_tree(world, products=[PID])
    assert {k: v for k, v in archive.tree().items() if k in good} == good
    states = dict(archive.db_rows("SELECT product_id, state FROM builds WHERE generation = 2"))
    assert states[PID] == "complete" and states["1111111111"] == "incomplete"


def test_sync_hostile_repository_manifest_is_named(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world(200_000)
    bad_build = world.add_v2_build("1111111111", files={"x.txt": b"x"})
    _set_repository(world, bad_build, zlib_json({"baseProductId": "1111111111", "depots": "no"}))
    archive = make_archive(serve(world))
    result = archive.run("sync", "1111111111", PID, "--generation", "2")
    assert result.exit_code == 1
    assert f"repository manifest {bad_build.repository_hash}" in result.output
    assert "'depots'" in result.output


def test_sync_chunk_that_never_matches_its_hash_is_not_stored(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world(300_000)
    server = serve(world)
    victim = next(h for h in sorted(world.store) if PID in world.store_owners[h])
    server.faults.always(victim, "corrupt")
    archive = make_archive(server)
    result = archive.run("sync", PID, OTHER, "--generation", "2")
    assert result.exit_code == 1
    assert f"chunk {victim}" in result.output and "MD5" in result.output
    assert not any(p.name == victim for p in archive.root.rglob("*"))
    assert temp_files(archive.root) == []
    assert archive.db_rows("SELECT state FROM builds WHERE product_id = ?", OTHER) == [
        ("complete",)
    ]
    row = archive.db_rows("SELECT state, error FROM objects WHERE md5 = ?", victim)[0]
    assert row[0] == "missing" and "MD5" in row[1]


def test_sync_killed_with_sigkill_resumes_to_a_correct_tree(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = medium_world(6_000_000)
    archive = make_archive(serve(world))
    archive.write_config(http={"limit_rate": 400_000})
    process = archive.popen("sync", PID, "--generation", "2")
    deadline = time.monotonic() + 30
    store = archive.root / "v2" / "store"
    while time.monotonic() < deadline and len(list(store.rglob("*"))) < 15:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    partial = {k: v for k, v in archive.tree().items() if not k.endswith(TEMP_SUFFIX)}
    expected = v2_tree(world, products=[PID])
    assert 0 < len(partial) < len(expected)
    assert all(expected[path] == data for path, data in partial.items())
    archive.write_config(http={"limit_rate": 0})
    result = archive.run_process("sync", PID, "--generation", "2")
    assert result.returncode == 0, result.stderr
    assert archive.tree() == expected
    assert temp_files(archive.root) == []


def test_sync_never_leaks_tokens_or_signed_urls(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world = medium_world(300_000)
    server = serve(world)
    archive = make_archive(server)
    log_file = tmp_path / "sync.log"
    archive.write_config(log={"file": str(log_file)})
    server.faults.configure(rate=0.15, kinds=["503", "reset", "corrupt"], seed=2)
    victim = next(h for h in sorted(world.store) if PID in world.store_owners[h])
    server.faults.always(victim, "corrupt")  # a failure, reported with detail
    result = archive.run_process(
        "-vv", "--json", "sync", PID, "--generation", "2", "--password", "hunter2secret"
    )
    assert result.returncode == 1
    tokens = json.loads(archive.token_file.read_text())
    secrets = {tokens["access_token"], tokens["refresh_token"], "hunter2secret"}
    for request in server.requests:
        for key, value in request.query.items():
            if re.search("secret|token|code|password", key, re.I) and key != "client_secret":
                secrets.add(str(value))
        secrets.update(re.findall(r"token=([0-9a-f]{16,})", request.path))
    assert len(secrets) > 4
    haystacks = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "log": log_file.read_text(),
        "db": archive.db_dump(),
    }
    assert f"chunk {victim}" in haystacks["log"] and f"chunk {victim}" in result.stderr
    for name, text in haystacks.items():
        for secret in secrets:
            if secret in (PID, "46899977096215655") or secret.isdigit():
                continue
            assert secret not in text, f"a secret leaked into {name}"
