"""`sync` of the dependency repository and dependency depots (issue: patches and dependencies)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from galaxy_archive.state.db import open_db
from tests.conftest import MIGRATIONS, Archive
from tests.fakegalaxy import (
    DependencyRepository,
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


def dependency_files(version: int = 1) -> dict[str, dict[str, bytes]]:
    return {
        "MSVC2019": {"__redist\\MSVC2019\\VC_redist.x64.exe": random_bytes(70_000, 10 + version)},
        "DirectX": {
            "__redist\\DirectX\\DXSETUP.exe": random_bytes(40_000, 20),
            "__redist\\DirectX\\dx.cab": random_bytes(30_000, 21),
        },
        "ISI": {"__redist\\ISI\\scriptinterpreter.exe": random_bytes(20_000, 30)},
        "MSVC2010": {"__redist\\MSVC2010\\vcredist_x86.exe": random_bytes(25_000, 40)},
        "DOSBox074": {"DOSBOX\\dosbox.exe": random_bytes(15_000, 50)},
    }


def dependency_world() -> World:
    world = World(seed=6)
    world.set_dependencies(
        "59705672826648994",
        dependency_files(),
        executable_paths={"DOSBox074": ""},
        chunk_size=32 * 1024,
    )
    world.add_v2_build(
        PID, files={"game.exe": random_bytes(30_000, 1)}, dependencies=["MSVC2019", "DirectX"]
    )
    world.add_v2_build(
        OTHER,
        files={"other.exe": random_bytes(30_000, 2)},
        dependencies=["ISI", "NotInTheRepository"],
    )
    world.add_v1_build(
        PID, files={"old.exe": random_bytes(10_000, 3)}, redists=["MSVC2010", "OLDREDIST"]
    )
    return world


def tree_of(world: World, top: str = "v2/", **kw: object) -> dict[str, bytes]:
    expected = world.expected_tree(include_patches=False, **kw)  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith(top)}


def dependency_requests(server: FakeGalaxy) -> int:
    return server.count("/dependencies/")


def test_sync_archives_referenced_dependencies_byte_for_byte(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, OTHER, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == tree_of(world, generations=(2,))
    assert "NotInTheRepository" in result.stderr  # named by a build, unknown: a warning
    report = json.loads(result.stdout)["dependencies"]
    assert report == {"repository_build_id": "59705672826648994", "selected": 3, "complete": 3}

    versions = archive.db_rows(
        "SELECT r.build_id, r.generation, r.manifest_md5, b.body FROM dependency_repositories r "
        "JOIN json_bodies b ON b.md5 = r.body_md5"
    )
    latest = world.dependency_versions[-1]
    assert [v[:3] for v in versions] == [("59705672826648994", 2, latest.manifest_hash)]
    assert json.loads(versions[0][3])["build_id"] == "59705672826648994"
    states = dict(archive.db_rows("SELECT dependency_id, state FROM dependency_depots"))
    assert states == {
        "MSVC2019": "complete",
        "DirectX": "complete",
        "ISI": "complete",
        "MSVC2010": "listed",
        "DOSBox074": "listed",
    }
    paths = dict(archive.db_rows("SELECT dependency_id, executable_path FROM dependency_depots"))
    assert paths["DOSBox074"] == "" and paths["DirectX"] == "__redist/DirectX/DXSETUP.exe"
    # chunks: unsigned, through one open_link, no product
    chunks = archive.db_rows(
        "SELECT product_id, endpoint, source_url FROM objects WHERE kind = 'dep_store'"
    )
    assert len(chunks) == sum(
        len(world.dependency_versions[-1].depots[d].chunks) for d in ("MSVC2019", "DirectX", "ISI")
    )
    for product, endpoint, source_url in chunks:
        assert product is None and endpoint == "fastly"
        assert "/content-system/v2/dependencies/store/" in source_url
    assert server.count("/open_link", status=200) == 1
    assert server.count("/secure_link") == 2  # the two products' own chunks only


def test_sync_dependency_chunks_come_from_the_cdn_when_open_link_fails(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    server.faults.always("/open_link", "500")
    result = archive.run("sync", PID, OTHER, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == tree_of(world, generations=(2,))
    assert server.count("/open_link") >= 1 and server.count("/open_link", status=200) == 0
    assert server.count("/content-system/v2/dependencies/store/", status=200) > 0


def test_sync_second_run_fetches_no_dependency_again(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, OTHER, "--generation", "2").exit_code == 0
    server.clear_requests()
    result = archive.run("--json", "sync", PID, OTHER, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert server.count("/dependencies/repository") == 1  # asked once per run
    assert server.count("/v2/dependencies/") == 0 and server.count("/open_link") == 0
    assert json.loads(result.stdout)["fetched"] == 0


def test_sync_all_dependencies(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    archive = make_archive(serve(world))
    archive.write_config(sync={"dependencies": "all"})
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == tree_of(
        world, products=[PID], generations=(2,), include_dependencies="all"
    )


def test_sync_without_dependencies(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2", "--no-dependencies")
    assert result.exit_code == 0, result.output
    assert archive.tree() == tree_of(
        world, products=[PID], generations=(2,), include_dependencies=False
    )
    assert dependency_requests(server) == 0
    archive.write_config(sync={"dependencies": False})
    assert archive.run("sync", PID, OTHER, "--generation", "2").exit_code == 0
    assert dependency_requests(server) == 0
    assert not any(k.startswith("v2/dependencies/") for k in archive.tree())


def test_sync_keeps_every_repository_version(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    world.set_dependencies(
        "59705672826649999",
        dependency_files(version=2),
        executable_paths={"DOSBox074": ""},
        chunk_size=32 * 1024,
    )
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == tree_of(
        world, products=[PID], generations=(2,), dependency_versions="all"
    )
    versions = archive.db_rows(
        "SELECT build_id, first_seen <= last_seen FROM dependency_repositories ORDER BY id"
    )
    assert versions == [("59705672826648994", 1), ("59705672826649999", 1)]
    msvc = archive.db_rows(
        "SELECT r.build_id, d.state FROM dependency_depots d JOIN "
        "dependency_repositories r ON r.id = d.repository_id "
        "WHERE d.dependency_id = 'MSVC2019' ORDER BY r.id"
    )
    assert msvc == [("59705672826648994", "complete"), ("59705672826649999", "complete")]


def test_sync_maps_generation_1_redists_to_v2_dependencies(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    archive = make_archive(serve(world))
    v1_build = next(b for b in world.builds if b.generation == 1)
    # The V1 phase (issue 3) records redists in v1_redists; before it is merged, this test
    # creates the table and the rows the V1 phase would write.
    db = open_db(archive.root / "archive.db", now=time.time(), migrations_dir=MIGRATIONS)
    has_table = (
        db.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'v1_redists'").fetchone()
        is not None
    )
    if not has_table:
        db.conn.execute(
            "CREATE TABLE v1_redists (product_id TEXT, build_id TEXT, redist TEXT, "
            "executable TEXT, argument TEXT, size INTEGER)"
        )
        db.conn.executemany(
            "INSERT INTO v1_redists VALUES (?, ?, ?, ?, ?, 0)",
            [
                (PID, v1_build.build_id, r, f"__redist/{r}/setup.exe", "/q")
                for r in ("MSVC2010", "OLDREDIST")
            ],
        )
        db.conn.commit()
    db.close()
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    wanted = tree_of(world, "v2/dependencies/", products=[PID])
    assert {k: v for k, v in archive.tree().items() if k.startswith("v2/dependencies/")} == wanted
    msvc2010 = world.dependency_versions[-1].depots["MSVC2010"].manifest_hash
    assert f"v2/dependencies/meta/{galaxy_path(msvc2010)}" in wanted
    states = dict(archive.db_rows("SELECT dependency_id, state FROM dependency_depots"))
    assert states["MSVC2010"] == "complete" and states["ISI"] == "listed"
    # generation 2 only: the V1 build is not archived in this run, so its redist is not wanted
    fresh = make_archive(serve(world), name="second")
    assert fresh.run("sync", PID, "--generation", "2").exit_code == 0
    assert f"v2/dependencies/meta/{galaxy_path(msvc2010)}" not in fresh.tree()


def test_sync_dry_run_plans_dependency_chunks(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert server.count("/v2/dependencies/store/") == 0
    expected = tree_of(world, "v2/dependencies/", products=[PID], generations=(2,))
    chunks = [v for k, v in expected.items() if k.startswith("v2/dependencies/store/")]
    metas = {k for k in expected if k.startswith("v2/dependencies/meta/")}
    assert metas == {k for k in archive.tree() if k.startswith("v2/dependencies/")}
    report = json.loads(result.stdout)["dependencies"]
    assert report["planned_objects"] == len(chunks)
    assert report["planned_bytes"] == sum(len(v) for v in chunks)


def test_sync_hostile_dependency_repository_is_named_and_the_run_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    doc = {"depots": [{"dependencyId": "../../evil", "manifest": "0" * 32, "languages": ["*"]}]}
    raw = zlib_json(doc)
    world.dep_meta[md5_hex(raw)] = raw
    world.dependency_versions.append(
        DependencyRepository("59705672826650000", md5_hex(raw), doc, raw, {})
    )
    archive = make_archive(serve(world))
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    problems = "\n".join(json.loads(result.stdout)["problems"])
    assert f"dependency repository manifest {md5_hex(raw)}" in problems
    assert "is not a dependency id; entry skipped" in problems
    # Stored verbatim (its shape is right); nothing its unsafe entry names (issue 11).
    stored = [k for k in archive.tree() if k.startswith("v2/dependencies/")]
    assert stored == [f"v2/dependencies/meta/{galaxy_path(md5_hex(raw))}"]
    assert archive.db_rows("SELECT state FROM builds WHERE generation = 2") == [("complete",)]
    assert archive.db_rows("SELECT build_id FROM dependency_repositories") == [
        ("59705672826650000",)
    ]


def test_status_shows_patches_and_dependencies(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    old = next(b for b in world.builds if isinstance(b, V2Build) and b.product_id == PID)
    new = world.add_v2_build(PID, files={"game.exe": random_bytes(30_000, 9)})
    world.add_patch(PID, old, new)
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, OTHER, "--generation", "2").exit_code == 0
    result = archive.run("--json", "status")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["patches"] == {"pairs": 1, "complete": 1, "by_outcome": {"patch": 1}}
    assert doc["dependencies"] == {
        "repository_versions": 1,
        "latest_build_id": "59705672826648994",
        "dependencies": 5,
        "depots_archived": 3,
    }
    text = archive.run("status").output
    assert "patches: 1 pairs (patch 1), 1 complete" in text
    assert (
        "dependencies: repository 59705672826648994 (1 versions seen), 3 depots archived "
        "of 5 dependencies listed" in text
    )
    assert json.loads(archive.run("--json", "status", OTHER).stdout)["patches"]["pairs"] == 0


def test_sync_asks_the_dependency_repository_once_for_the_whole_library(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = dependency_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", "--owned", "--generation", "2")
    assert result.exit_code == 0, result.output
    assert server.count("/dependencies/repository") == 1
    assert archive.tree() == tree_of(world, generations=(2,))
