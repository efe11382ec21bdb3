"""`sync` of generation-2 builds against the fake Galaxy (issue: V2 mirroring)."""

from __future__ import annotations

import json
from collections.abc import Callable

from galaxy_archive.models.layout import galaxy_path
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, V2Build, World, random_bytes

PID = "1207658930"
DLC = "1207658931"


def two_build_world() -> World:
    world = World(seed=3)
    files = {
        "bin\\game.exe": random_bytes(300_000, 1),
        "data\\big.pak": random_bytes(900_000, 2),
        "readme.txt": b"hello",
        "empty.dat": b"",
    }
    small = {f"config\\f{i}.ini": f"setting={i}\n".encode() * (i + 1) for i in range(6)}
    world.add_v2_build(
        PID,
        files=files,
        small_files=small,
        chunk_size=256 * 1024,
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(200_000, 3)}},
        languages={
            "en-US": {"lang\\en.pak": random_bytes(50_000, 4)},
            "de-DE": {"lang\\de.pak": random_bytes(50_000, 5)},
        },
        version_name="1.0",
    )
    files2 = {**files, "bin\\game.exe": random_bytes(300_000, 6)}
    small2 = {path: data + b"v2\n" for path, data in small.items()}
    world.add_v2_build(
        PID,
        files=files2,
        small_files=small2,
        chunk_size=256 * 1024,
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(200_000, 3)}},
        absent_member_chunks=True,
        version_name="1.1",
    )
    world.add_v2_build(PID, "osx", files={"Game.app\\Contents\\game": random_bytes(100_000, 7)})
    world.owned.update({int(PID), int(DLC)})
    return world


def v2_tree(world: World, **kw: object) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False, **kw
    )  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


def test_sync_mirrors_every_v2_build_byte_for_byte(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    archive = make_archive(serve(world))
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    report = json.loads(result.stdout)
    assert report["failed"] == 0 and report["absent_upstream"] == 0
    assert report["absent_optional"] > 0  # the second build's SFC members are not on the CDN
    states = dict(archive.db_rows("SELECT build_id, state FROM builds WHERE generation = 2"))
    assert set(states.values()) == {"complete"} and len(states) == 3


def test_sync_fetches_a_chunk_shared_with_a_dlc_under_each_product_in_turn(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    shared = random_bytes(150_000, 11)
    world = World(seed=12)
    build = world.add_v2_build(
        PID, files={"common.pak": shared}, dlcs={DLC: {"dlc\\common.pak": shared}}
    )
    world.owned.update({int(PID), int(DLC)})

    def chunks_of(product_id: str) -> set[str]:
        return {h for d in build.unique_depots() if d.product_id == product_id for h in d.chunks}

    common = chunks_of(PID) & chunks_of(DLC)
    assert common
    for h in common:
        world.store_owners[h] = {DLC}  # the CDN holds it under the DLC's id only
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    for h in common:
        assert archive.tree()[f"v2/store/{galaxy_path(h)}"] == world.store[h]
        assert server.count(f"/store/{PID}/{galaxy_path(h)}", status=404) >= 1
    assert archive.db_rows("SELECT DISTINCT state FROM builds WHERE generation = 2") == [
        ("complete",)
    ]


def test_sync_second_run_fetches_nothing_again(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    server.clear_requests()
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert server.count("/v2/store/") == 0
    assert server.count("/v2/meta/") == 0 and server.count("/manifests/builds/") == 0
    assert server.count("/secure_link") == 0
    assert json.loads(result.stdout)["fetched"] == 0


def test_sync_fetches_shared_chunks_once(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    store_gets = [r.path for r in server.requests if "/v2/store/" in r.path and r.status == 200]
    assert len(store_gets) == len(set(store_gets))
    # one secure link per product, reused for every chunk
    assert server.count("/secure_link", status=200) == 2


def test_sync_fetches_a_chunk_shared_by_two_products_once(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    other = "1400000001"
    shared = random_bytes(100_000, 7)  # one chunk, the same bytes in both products
    world = World(seed=18)
    world.add_v2_build(PID, files={"engine.dll": shared, "game.pak": random_bytes(90_000, 8)})
    world.add_v2_build(other, files={"bin\\engine.dll": shared})
    world.owned.update({int(PID), int(other)})
    (chunk,) = [h for h, owners in world.store_owners.items() if owners == {PID, other}]
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, other, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    assert server.count(chunk) == 1  # stored once under its MD5, needed by both products
    owners = archive.db_rows("SELECT product_id FROM objects WHERE md5 = ?", chunk)
    assert len(owners) == 1


def test_sync_records_products_provenance_and_sfc_membership(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    dlc_chunks = archive.db_rows(
        "SELECT o.path, o.product_id, o.endpoint, o.source_url FROM objects o "
        "JOIN object_products p ON p.object_id = o.id WHERE p.product_id = ?",
        DLC,
    )
    assert dlc_chunks
    for _path, product, endpoint, source_url in dlc_chunks:
        assert product == DLC and endpoint == "fastly"
        assert f"/content-system/v2/store/{DLC}/" in source_url and "token" not in source_url
    members = archive.db_rows("SELECT count(*) FROM sfc_members")[0][0]
    assert members == 12  # 6 members in each of the two builds' neutral depots
    absent = archive.db_rows("SELECT count(*) FROM objects WHERE state = 'absent_upstream'")
    assert absent[0][0] > 0


def test_sync_no_dlc_skips_dlc_depots(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2", "--no-dlc").exit_code == 0
    assert archive.tree() == v2_tree(world, include_dlc=False)


def test_sync_dry_run_fetches_only_manifests(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert server.count("/v2/store/") == 0
    assert all(path.startswith("v2/meta/") for path in archive.tree())
    plan = json.loads(result.stdout)["products"][0]
    # Exactly every chunk the world's depot manifests name (SFC members too, even those the
    # CDN lacks: the plan cannot know), each once, at its compressed size: not a lower bound.
    named = manifest_chunk_sizes(world)
    assert plan["planned_objects"] == len(named)
    assert plan["planned_bytes"] == sum(named.values())


def manifest_chunk_sizes(world: World) -> dict[str, int]:
    """compressedMd5 -> compressedSize of every chunk the world's V2 depot manifests name."""
    sizes: dict[str, int] = {}
    for build in world.builds:
        if not isinstance(build, V2Build):
            continue
        depots = [*build.depots, *([build.offline_depot] if build.offline_depot else [])]
        for depot in depots:
            body = depot.manifest["depot"]
            records = [c for item in body["items"] for c in item.get("chunks", [])]
            records += body.get("smallFilesContainer", {}).get("chunks", [])
            sizes.update({c["compressedMd5"]: c["compressedSize"] for c in records})
    return sizes


def test_sync_records_raw_builds_lists_and_keeps_first_seen(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = two_build_world()
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2", "--os", "windows").exit_code == 0
    fetches = archive.db_rows(
        "SELECT f.os, f.generation, f.status, b.body FROM build_list_fetches f "
        "JOIN json_bodies b ON b.md5 = f.body_md5"
    )
    assert {(os_name, gen) for os_name, gen, _, _ in fetches} == {("windows", 1), ("windows", 2)}
    for _os, generation, status, body in fetches:
        assert status == 200
        listed = json.loads(body)
        assert generation == 1 or len(listed["items"]) == 2
    first = dict(archive.db_rows("SELECT build_id, first_seen FROM builds"))
    world.delist(next(iter(first)))
    assert archive.run("sync", PID, "--generation", "2", "--os", "windows").exit_code == 0
    rows = archive.db_rows("SELECT build_id, first_seen, is_listed FROM builds")
    assert {b: f for b, f, _ in rows} == first  # first_seen kept, nothing dropped
    assert sorted(listed for _, _, listed in rows) == [0, 1]
    assert archive.db_rows("SELECT count(*) FROM build_list_fetches")[0][0] == 4


def test_sync_private_branch_needs_its_password(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=5)
    world.add_v2_build(PID, files={"a.bin": random_bytes(10_000, 1)})
    beta = world.add_v2_build(
        PID, files={"a.bin": random_bytes(10_000, 2)}, branch="beta", private_password="s3cret"
    )
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert beta.build_id not in {r[0] for r in archive.db_rows("SELECT build_id FROM builds")}
    result = archive.run(
        "sync", PID, "--generation", "2", "--branch", "beta", "--password", "s3cret"
    )
    assert result.exit_code == 0, result.output
    rows = archive.db_rows("SELECT build_id, branch, state FROM builds")
    assert (beta.build_id, "beta", "complete") in rows
    assert "s3cret" not in archive.db_dump()


def test_sync_follows_collector_links_for_repository_manifests(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=6)
    world.add_v2_build(PID, files={"a.bin": random_bytes(20_000, 1)}, link_style="collector")
    server = serve(world)
    server.collector_manifests_on_cdn = False  # only the collector host has it
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    assert server.count("/manifests/builds/", role="collector", status=200) == 1
