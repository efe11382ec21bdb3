"""One bad entry costs that entry (issue 11): a manifest whose bytes match its id and whose
shape is right is stored verbatim and followed everywhere but the unsafe entries, each named;
a manifest of the wrong shape (or not zlib/JSON) is never stored, and costs only itself."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, V2Build, World, galaxy_path, md5_hex, random_bytes
from tests.fakegalaxy import zlib_json as zlib_json_of

BAD = "1111111111"
BAD_DLC = "1111111112"
GOOD = "1207658930"
HOSTILE_ID = "../../../../tmp/galaxy-archive-issue11-canary"


def _set_repository(world: World, build: V2Build, repository: dict) -> None:
    raw = zlib_json_of(repository)
    world.repository_hashes.discard(build.repository_hash)
    build.repository_bytes, build.repository_hash = raw, md5_hex(raw)
    world.meta[build.repository_hash] = raw
    world.repository_hashes.add(build.repository_hash)


def _depot_entry(manifest: str) -> dict:
    return {"productId": BAD, "manifest": manifest, "languages": ["*"], "size": 1}


def _bad_world() -> tuple[World, V2Build, dict[str, str]]:
    """BAD's build: its own depot (good), a DLC depot one of whose chunks never matches its
    hash, and three more depot entries: a hostile id, a manifest that is not zlib, one of the
    wrong types. GOOD is a product beside it with nothing wrong."""
    world = World(seed=5)
    world.add_v2_build(GOOD, files={"game.exe": random_bytes(250_000, 9)}, chunk_size=128 * 1024)
    build = world.add_v2_build(
        BAD,
        files={"data\\x.bin": random_bytes(300_000, 1)},
        dlcs={BAD_DLC: {"dlc.bin": random_bytes(200_000, 2)}},
        chunk_size=128 * 1024,
    )
    not_zlib = b"\x78\x9c" + b"\xde\xad\xbe\xef" * 20
    wrong_types = zlib_json_of({"depot": {"items": [{"type": "DepotFile", "path": 7}]}})
    bad = {"not_zlib": md5_hex(not_zlib), "wrong_types": md5_hex(wrong_types)}
    world.meta[bad["not_zlib"]] = not_zlib
    world.meta[bad["wrong_types"]] = wrong_types
    repository = copy.deepcopy(build.repository)
    repository["depots"] += [_depot_entry(HOSTILE_ID), *map(_depot_entry, bad.values())]
    _set_repository(world, build, repository)
    return world, build, bad


def _stored(archive: Archive, kind: str, md5: str) -> bool:
    return (archive.root / kind / galaxy_path(md5)).is_file()


def test_sync_one_bad_entry_costs_that_entry_not_the_build(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, build, bad = _bad_world()
    server = serve(world)
    dlc_depot = next(d for d in build.depots if d.product_id == BAD_DLC and not d.is_gog_depot)
    victim = dlc_depot.chunks[0]
    server.faults.always(victim, "corrupt")
    outside_before = sorted(p for p in tmp_path.rglob("*") if "archive" not in p.parts[-1])
    archive = make_archive(server)
    result = archive.run("sync", BAD, GOOD, "--generation", "2")

    assert result.exit_code == 1, result.output
    # Each of the four bad objects is named.
    assert f"manifest: {HOSTILE_ID!r} is not a 32-hex MD5; entry skipped" in result.output
    assert f"depot manifest {bad['not_zlib']}" in result.output
    assert f"depot manifest {bad['wrong_types']}" in result.output
    assert f"chunk {victim}" in result.output
    # The repository is stored verbatim, though one of its entries was skipped.
    assert (archive.root / "v2/meta" / galaxy_path(build.repository_hash)).read_bytes() == (
        build.repository_bytes
    )
    # Every good depot is complete: its manifest and every chunk, byte for byte.
    for depot in build.depots:
        assert _stored(archive, "v2/meta", depot.manifest_hash), depot.product_id
        for chunk in depot.chunks:
            if chunk != victim:
                stored = archive.root / "v2/store" / galaxy_path(chunk)
                assert md5_hex(stored.read_bytes()) == chunk
    # Nothing of the bad ones.
    assert not _stored(archive, "v2/meta", bad["not_zlib"])
    assert not _stored(archive, "v2/meta", bad["wrong_types"])
    assert not _stored(archive, "v2/store", victim)
    assert not list(archive.root.rglob("*canary*")) and not Path(HOSTILE_ID[11:]).exists()
    outside_after = sorted(p for p in tmp_path.rglob("*") if "archive" not in p.parts[-1])
    assert [p for p in outside_after if archive.root not in p.parents] == [
        p for p in outside_before if archive.root not in p.parents
    ]
    # The good product is complete; the bad build is not, and says why.
    states = dict(archive.db_rows("SELECT product_id, state FROM builds"))
    assert states == {GOOD: "complete", BAD: "incomplete"}
    (error,) = archive.db_rows("SELECT error FROM builds WHERE product_id = ?", BAD)[0]
    assert HOSTILE_ID in error


def test_sync_bad_entry_is_named_again_on_the_next_run(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _build, _bad = _bad_world()
    archive = make_archive(serve(world))
    assert archive.run("sync", BAD, "--generation", "2").exit_code == 1
    again = archive.run("sync", BAD, "--generation", "2")
    assert again.exit_code == 1 and f"{HOSTILE_ID!r}" in again.output
    assert archive.db_rows("SELECT state FROM builds WHERE product_id = ?", BAD) == [
        ("incomplete",)
    ]


def test_sync_unsafe_item_in_a_depot_manifest_costs_that_item(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=6)
    build = world.add_v2_build(BAD, files={"ok.bin": random_bytes(100_000, 3)})
    depot = build.depots[0]
    manifest = copy.deepcopy(depot.manifest)
    good_item = manifest["depot"]["items"][0]
    hostile = copy.deepcopy(good_item)
    hostile["path"] = "..\\..\\..\\evil.txt"
    manifest["depot"]["items"].append(hostile)
    raw = zlib_json_of(manifest)
    world.meta[md5_hex(raw)] = raw
    repository = copy.deepcopy(build.repository)
    repository["depots"][0]["manifest"] = md5_hex(raw)
    _set_repository(world, build, repository)
    archive = make_archive(serve(world))
    result = archive.run("sync", BAD, "--generation", "2")
    assert result.exit_code == 1, result.output
    assert "items[1]: path '..\\\\..\\\\..\\\\evil.txt'" in result.output
    assert _stored(archive, "v2/meta", md5_hex(raw))  # stored verbatim: what GOG served
    for chunk in depot.chunks:
        assert _stored(archive, "v2/store", chunk)
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
