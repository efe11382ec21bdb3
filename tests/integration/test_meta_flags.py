"""A meta file whose bytes do not hash to its id but parse is kept and flagged (protocol.md 3.2):
sync keeps it, its build completes, a second sync leaves it alone, verify checks the bytes kept.
Bytes that do not parse are still rejected."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from galaxy_archive.models.layout import ObjectKind, cas_path
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"


def one_build_world() -> World:
    world = World(seed=13)
    world.add_v2_build(
        PID,
        files={"bin\\game.exe": random_bytes(200_000, 1), "readme.txt": b"hello"},
        chunk_size=128 * 1024,
    )
    world.owned.add(int(PID))
    return world


def manifest_ids(world: World) -> tuple[str, str]:
    """The build's repository manifest id and its first depot manifest id."""
    (build,) = world.builds
    depot = build.depots[0]  # type: ignore[union-attr]
    return build.repository_hash, depot.manifest_hash  # type: ignore[union-attr]


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sync_json(archive: Archive) -> tuple[int, dict[str, Any]]:
    result = archive.run("--json", "sync", PID, "--generation", "2")
    return result.exit_code, json.loads(result.stdout)


class Flagged:
    """An archive synced while both manifests were served as plain JSON."""

    def __init__(self, world: World, server: FakeGalaxy, archive: Archive) -> None:
        self.world, self.server, self.archive = world, server, archive
        self.ids = manifest_ids(world)
        self.plain = {h: zlib.decompress(world.meta[h]) for h in self.ids}
        server.meta_bodies.update(self.plain)
        self.code, self.report = sync_json(archive)

    def flags(self) -> dict[str, str | None]:
        """served_md5 of every meta object; the other depots' manifests were served as named."""
        rows = self.archive.db_rows("SELECT md5, served_md5 FROM objects WHERE kind = 'meta'")
        return dict(rows)

    def expected_flags(self) -> dict[str, str | None]:
        return {h: md5(self.plain[h]) if h in self.plain else None for h in self.flags()}


@pytest.fixture
def flagged(serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]) -> Flagged:
    world = one_build_world()
    server = serve(world)
    synced = Flagged(world, server, make_archive(server))
    assert synced.code == 0, synced.report["problems"]
    return synced


def test_plain_json_manifests_are_kept_flagged_and_the_build_completes(flagged: Flagged) -> None:
    archive, world = flagged.archive, flagged.world
    # a warning, not a problem: the bytes parse and the build is whole (exit 0)
    assert flagged.code == 0, flagged.report["problems"]
    assert flagged.report["problems"] == [] and flagged.report["failed"] == 0
    tree = archive.tree()
    for h in flagged.ids:
        path = cas_path(ObjectKind.META, h)
        assert tree[path] == flagged.plain[h]  # kept at its normal path, as served
        (warning,) = [w for w in flagged.report["warnings"] if w.startswith(path)]
        assert f"MD5 {md5(flagged.plain[h])}, not its id (protocol.md 3.2)" in warning
    assert set(flagged.ids) <= set(flagged.flags())
    assert flagged.flags() == flagged.expected_flags()
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False
    )
    chunks = {k: v for k, v in expected.items() if k.startswith("v2/store/")}
    assert chunks and {k: v for k, v in tree.items() if k.startswith("v2/store/")} == chunks
    assert archive.db_rows("SELECT state FROM builds") == [("complete",)]


def test_second_sync_fetches_no_flagged_manifest_again(flagged: Flagged) -> None:
    flagged.server.clear_requests()
    code, report = sync_json(flagged.archive)
    assert code == 0 and report["fetched"] == 0 and report["warnings"] == []
    assert flagged.server.count("/v2/meta/") == 0
    assert flagged.server.count("/manifests/builds/") == 0
    assert flagged.flags() == flagged.expected_flags()


@pytest.mark.parametrize("level", [[], ["--deep"]])
def test_verify_checks_the_kept_bytes_not_the_id(flagged: Flagged, level: list[str]) -> None:
    result = flagged.archive.run("--json", "verify", *level)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []


def test_verify_finds_a_flipped_byte_in_a_kept_file_and_repair_restores_it(
    flagged: Flagged,
) -> None:
    archive = flagged.archive
    repository = flagged.ids[0]
    path = archive.root / cas_path(ObjectKind.META, repository)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # still the same size
    path.write_bytes(bytes(data))
    result = archive.run("--json", "verify")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["path"] == cas_path(ObjectKind.META, repository)
    assert problem["state"] == "corrupt"
    result = archive.run("--json", "verify", "--repair")
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == flagged.plain[repository]  # the bytes kept before, again
    assert flagged.flags()[repository] == md5(flagged.plain[repository])
    assert archive.run("verify").exit_code == 0


def test_matching_bytes_served_again_clear_the_flag(flagged: Flagged) -> None:
    archive, repository = flagged.archive, flagged.ids[0]
    flagged.server.meta_bodies.clear()  # every endpoint serves the bytes of the id again
    (archive.root / cas_path(ObjectKind.META, repository)).unlink()
    assert archive.run("verify", "--repair").exit_code == 0
    tree = archive.tree()
    assert tree[cas_path(ObjectKind.META, repository)] == flagged.world.meta[repository]
    assert flagged.flags()[repository] is None


def test_unparseable_meta_is_still_rejected(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = one_build_world()
    server = serve(world)
    archive = make_archive(server)
    _, depot = manifest_ids(world)
    broken = bytearray(world.meta[depot])
    broken[len(broken) // 2] ^= 0xFF  # a flipped byte in the zlib stream: corruption
    server.meta_bodies[depot] = bytes(broken)
    code, report = sync_json(archive)
    assert code == 1
    assert any(depot in p and "does not match" in p for p in report["problems"])
    assert cas_path(ObjectKind.META, depot) not in archive.tree()
    assert archive.db_rows("SELECT served_md5 FROM objects WHERE md5 = ?", depot) == [(None,)]
    assert archive.db_rows("SELECT state FROM builds") == [("incomplete",)]


def test_patch_and_dependency_manifests_served_plain_are_kept_and_flagged(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=14)
    world.set_dependencies("59705672826648994", {"MSVC2019": {"vcredist.exe": b"x" * 5000}})
    old = world.add_v2_build(PID, files={"a.bin": random_bytes(40_000, 1)}, dependencies=[])
    new = world.add_v2_build(
        PID, files={"a.bin": random_bytes(40_000, 2)}, dependencies=["MSVC2019"]
    )
    patch = world.add_patch(PID, old, new)
    world.owned.add(int(PID))
    dependency_manifest = world.dependency_versions[-1].depots["MSVC2019"].manifest_hash
    plain = {
        patch.patch_id: zlib.decompress(patch.root_bytes),
        patch.depots[0].manifest_hash: zlib.decompress(patch.depots[0].manifest_bytes),
        dependency_manifest: zlib.decompress(world.dep_meta[dependency_manifest]),
    }
    server = serve(world)
    server.meta_bodies.update(plain)
    archive = make_archive(server)
    code, report = sync_json(archive)
    assert code == 0, report["problems"]
    flagged = dict(
        archive.db_rows("SELECT md5, served_md5 FROM objects WHERE served_md5 IS NOT NULL")
    )
    assert flagged == {h: md5(body) for h, body in plain.items()}
    assert len(report["warnings"]) == 3
    assert archive.db_rows("SELECT state FROM patches") == [("complete",)]
    assert archive.db_rows(
        "SELECT state FROM dependency_depots WHERE dependency_id = 'MSVC2019'"
    ) == [("complete",)]
    assert archive.run("verify").exit_code == 0
