"""What a manifest fetched again by `sync` is held to (sync.context.task_unless_verified).

A manifest's size, and a V1 manifest's MD5, were measured when it was last stored: when verify
finds the stored copy broken, sync fetches it again as upstream serves it now, held only to
its id (V2) and to parsing. A chunk is held to the size and MD5 its manifest names.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

from galaxy_archive.models.layout import ObjectKind, cas_path
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes
from tests.integration.test_meta_flags import manifest_ids, one_build_world

PID = "1207658930"


def flip_last_byte_but_one(archive: Archive, relative: str) -> None:
    path = archive.root / relative
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # same size: only the MD5 tells
    path.write_bytes(bytes(data))


def verify_finds_corrupt(archive: Archive, relative: str) -> None:
    result = archive.run("--json", "verify")
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.stdout)["problems"]
    assert (problem["path"], problem["state"]) == (relative, "corrupt")


def sync_json(archive: Archive, generation: str) -> dict[str, object]:
    result = archive.run("--json", "sync", PID, "--generation", generation)
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_a_v2_manifest_kept_as_served_is_fetched_again_at_whatever_size_it_is_served(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = one_build_world()
    server = serve(world)
    archive = make_archive(server)
    repository, _ = manifest_ids(world)
    plain = zlib.decompress(world.meta[repository])
    server.meta_bodies[repository] = plain  # kept as served, flagged (protocol.md 3.2)
    sync_json(archive, "2")
    relative = cas_path(ObjectKind.META, repository)
    assert len(world.meta[repository]) != len(plain)  # what the test is about
    flip_last_byte_but_one(archive, relative)
    verify_finds_corrupt(archive, relative)
    server.meta_bodies.clear()  # now served as named: other bytes, another size
    report = sync_json(archive, "2")
    assert report["fetched"] == 1 and report["problems"] == []
    assert archive.tree()[relative] == world.meta[repository]
    assert archive.db_rows("SELECT served_md5 FROM objects WHERE md5 = ?", repository) == [(None,)]
    assert archive.run("verify").exit_code == 0


def test_a_v1_manifest_is_fetched_again_as_upstream_serves_it_now(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=21)
    world.add_v1_build(PID, files={"bin\\game.exe": random_bytes(70_000, 1)})
    server = serve(world)
    archive = make_archive(server)
    sync_json(archive, "1")
    (build,) = world.builds
    assert isinstance(build, V1Build)
    key = f"{build.manifest_dir(PID)}/repository.json"
    relative = f"v1/manifests/{key}"
    flip_last_byte_but_one(archive, relative)
    verify_finds_corrupt(archive, relative)
    # The same document in other bytes: the MD5 measured last time must not bind the fetch.
    reformatted = json.dumps(json.loads(world.v1_manifests[key]), indent=1).encode()
    assert reformatted != world.v1_manifests[key]
    world.v1_manifests[key] = reformatted
    report = sync_json(archive, "1")
    assert report["fetched"] == 1 and report["problems"] == []
    assert archive.tree()[relative] == reformatted


def test_a_chunk_is_still_held_to_the_md5_its_manifest_names(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = one_build_world()
    server = serve(world)
    archive = make_archive(server)
    sync_json(archive, "2")
    chunk = next(path for path in archive.tree() if path.startswith("v2/store/"))
    flip_last_byte_but_one(archive, chunk)
    flipped = archive.tree()[chunk]
    verify_finds_corrupt(archive, chunk)
    md5 = chunk.rsplit("/", 1)[1]
    good = world.store[md5]
    world.store[md5] = good[:-1] + bytes([good[-1] ^ 0x01])  # the CDN now serves wrong bytes
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.stdout)["problems"]
    assert md5 in problem
    assert archive.db_rows("SELECT state FROM objects WHERE md5 = ?", md5) == [("missing",)]
    assert archive.tree()[chunk] == flipped  # what the CDN served never reached the tree
