"""`sync` of the patches between generation-2 builds (issue: patches and dependencies)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.models.decoding import decode_meta
from galaxy_archive.models.dependencies import DependencyMode
from galaxy_archive.models.manifests import parse_depot_manifest
from galaxy_archive.sync.context import SyncOptions
from galaxy_archive.sync.run import run_sync
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, Patch, V2Build, World, galaxy_path, md5_hex, random_bytes
from tests.fakegalaxy import zlib_json as fake_zlib_json

PID = "1207658930"
DLC = "1207658931"
DAY_S = 86400.0


def patched_world() -> tuple[World, list[V2Build]]:
    """Three windows builds (with a DLC) and two beta builds, a patch between each pair."""
    world = World(seed=5)
    base = {
        "bin\\game.exe": random_bytes(120_000, 1),
        "data\\main.pak": random_bytes(150_000, 2),
        "readme.txt": b"version 1\n" * 10,
    }
    builds = [
        world.add_v2_build(
            PID,
            files=base,
            dlcs={DLC: {"dlc\\extra.pak": random_bytes(60_000, 3)}},
            chunk_size=64 * 1024,
        ),
        world.add_v2_build(
            PID,
            files={**base, "bin\\game.exe": random_bytes(120_000, 4)},
            dlcs={DLC: {"dlc\\extra.pak": random_bytes(60_000, 5)}},
            chunk_size=64 * 1024,
        ),
        world.add_v2_build(
            PID,
            files={**base, "data\\main.pak": random_bytes(150_000, 6)},
            dlcs={DLC: {"dlc\\extra.pak": random_bytes(60_000, 5)}},
            chunk_size=64 * 1024,
        ),
    ]
    beta = [
        world.add_v2_build(PID, branch="beta", files={"beta.bin": random_bytes(30_000, 7)}),
        world.add_v2_build(PID, branch="beta", files={"beta.bin": random_bytes(30_000, 8)}),
    ]
    world.add_v2_build(PID, "osx", files={"Game.app\\game": random_bytes(40_000, 9)})
    world.add_patch(PID, builds[0], builds[1], chunk_size=1024)
    world.add_patch(PID, builds[1], builds[2])
    world.add_patch(PID, beta[0], beta[1])
    world.owned.update({int(PID), int(DLC)})
    return world, builds


def v2_tree(world: World, **kw: object) -> dict[str, bytes]:
    kw.setdefault("include_dependencies", False)
    expected = world.expected_tree(generations=(2,), **kw)  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


def index_requests(server: FakeGalaxy) -> list[dict[str, str]]:
    return [
        r.query
        for r in server.requests
        if r.role == "content_system" and r.path.endswith("/patches")
    ]


def test_sync_archives_patches_byte_for_byte(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, builds = patched_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    assert any(k.startswith("v2/patches/store/") for k in archive.tree())
    report = json.loads(result.stdout)
    assert report["patches"] == {"asked": 3, "patch": 3, "complete": 3}

    rows = archive.db_rows(
        "SELECT from_build_id, to_build_id, os, branch, outcome, state, "
        "patch_id FROM patches ORDER BY branch, from_build_id"
    )
    first = world.patch(PID, builds[0].build_id, builds[1].build_id)
    assert first is not None
    assert (
        builds[0].build_id,
        builds[1].build_id,
        "windows",
        None,
        "patch",
        "complete",
        first.patch_id,
    ) in rows
    assert len(rows) == 3 and {r[3] for r in rows} == {None, "beta"}
    # the raw index answers are kept with when they were asked
    bodies = archive.db_rows(
        "SELECT q.status, q.asked_at, b.body FROM patch_queries q "
        "JOIN json_bodies b ON b.md5 = q.body_md5"
    )
    assert len(bodies) == 3 and all(status == 200 for status, _, _ in bodies)
    assert any(json.loads(body)["id"] == first.patch_id for _, _, body in bodies)
    # chunks came through the secure link with root /patches/store, under their product
    assert any(
        q.get("root") == "/patches/store"
        for q in (r.query for r in server.requests if r.path.endswith("/secure_link"))
    )
    chunks = archive.db_rows(
        "SELECT o.product_id, o.endpoint, o.source_url, p.product_id "
        "FROM objects o JOIN object_products p ON p.object_id = o.id "
        "WHERE o.kind = 'patch_store'"
    )
    assert {row[0] for row in chunks} == {PID, DLC}
    for product, endpoint, source_url, linked in chunks:
        assert product == linked and endpoint == "fastly"
        assert f"/content-system/v2/patches/store/{product}/" in source_url
        assert "token" not in source_url


def test_sync_patch_fully_archived_is_never_asked_again(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    server = serve(world)
    archive = make_archive(server)
    archive.write_config(sync={"patch_recheck": "0s"})  # even with no waiting at all
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    server.clear_requests()
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert index_requests(server) == []
    assert server.count("/v2/patches/") == 0
    assert json.loads(result.stdout)["fetched"] == 0


def test_sync_accepts_the_from_to_index_keys(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    server = serve(world)
    server.patch_index_keys = "from_to"  # the GALAXYDL variant (protocol.md 8a)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)


def _two_builds(world: World) -> tuple[V2Build, V2Build]:
    return (
        world.add_v2_build(PID, files={"a.bin": random_bytes(20_000, 1)}),
        world.add_v2_build(PID, files={"a.bin": random_bytes(20_000, 2)}),
    )


def test_sync_no_patch_is_asked_again_only_after_the_interval(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=8)
    old, new = _two_builds(world)
    server = serve(world)
    archive = make_archive(server)
    offset = [0.0]
    app = App(config=load(archive.config_path), clock=lambda: time.time() + offset[0])
    options = SyncOptions(generations=(2,), dependencies=DependencyMode.NONE)

    def sync_after(days: float) -> int:
        server.advance_clock(days * DAY_S - offset[0])  # the server's clock moves with ours
        offset[0] = days * DAY_S
        server.clear_requests()
        return int(run_sync(app, [PID], options, workers=2).exit_code)

    assert sync_after(0) == 0
    assert len(index_requests(server)) == 1
    assert archive.db_rows("SELECT outcome, state, patch_id FROM patches") == [
        ("no_patch", "none", None)
    ]

    world.add_patch(PID, old, new)  # GOG makes a patch later
    assert sync_after(6.9) == 0
    assert index_requests(server) == []  # within the 7 days: not asked
    assert not any(k.startswith("v2/patches/") for k in archive.tree())

    assert sync_after(7.1) == 0
    assert index_requests(server) == [
        {"_version": "4", "from_build_id": old.build_id, "to_build_id": new.build_id}
    ]
    assert archive.db_rows("SELECT outcome, state FROM patches") == [("patch", "complete")]
    asked = archive.db_rows("SELECT outcome, asked_at FROM patch_queries ORDER BY id")
    assert [a[0] for a in asked] == ["no_patch", "patch"] and asked[0][1] < asked[1][1]
    assert archive.tree() == v2_tree(world)


def test_sync_patch_recheck_is_configurable(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=8)
    _two_builds(world)
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    server.clear_requests()
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert index_requests(server) == []  # default: 7 days
    archive.write_config(sync={"patch_recheck": "0s"})
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert len(index_requests(server)) == 1
    assert archive.db_rows("SELECT count(*) FROM patch_queries") == [(2,)]


def test_sync_records_an_empty_patch_and_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=9)
    old, new = _two_builds(world)
    patch = world.add_patch(PID, old, new, empty=True)
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output  # GOG's answer, not an error
    assert archive.tree() == v2_tree(world)
    assert archive.tree()[f"v2/patches/meta/{galaxy_path(patch.patch_id)}"] == zlib.compress(b"{}")
    assert archive.db_rows("SELECT outcome, state, patch_id FROM patches") == [
        ("empty", "complete", patch.patch_id)
    ]
    assert json.loads(result.stdout)["patches"] == {"asked": 1, "empty": 1}
    server.clear_requests()
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert index_requests(server) == []  # asked again only after the interval


def _put_root(world: World, old: V2Build, new: V2Build, raw: bytes, patch_id: str = "") -> str:
    """Make the index name `raw` as the pair's patch root (by its MD5, as on the CDN)."""
    patch_id = patch_id or md5_hex(raw)
    world.patch_meta[patch_id] = raw
    world.patches[(PID, old.build_id, new.build_id)] = Patch(
        PID, old.build_id, new.build_id, patch_id, raw, []
    )
    return patch_id


def test_sync_records_invalid_and_unsupported_patch_roots_and_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=10)
    builds = [world.add_v2_build(PID, files={"a.bin": random_bytes(20_000, i)}) for i in range(5)]
    garbage = _put_root(world, builds[0], builds[1], b"\x00\x01 not zlib, not JSON")
    bsdiff_root = fake_zlib_json({"algorithm": "bsdiff", "baseProductId": PID, "depots": []})
    bsdiff = _put_root(world, builds[1], builds[2], bsdiff_root)
    good = world.add_patch(PID, builds[2], builds[3])
    _put_root(world, builds[3], builds[4], b"{}", patch_id="Z" * 32)  # a hostile index id
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    problems = "\n".join(json.loads(result.stdout)["problems"])
    assert f"patch root {garbage}" in problems and "neither zlib nor JSON" in problems
    assert f"patch root {bsdiff}" in problems and "'bsdiff' is not supported" in problems
    assert f"ends in '{'Z' * 32}', not in a manifest id" in problems
    outcomes = dict(archive.db_rows("SELECT from_build_id, outcome FROM patches"))
    assert outcomes == {
        builds[0].build_id: "invalid",
        builds[1].build_id: "unsupported",
        builds[2].build_id: "patch",
        builds[3].build_id: "error",
    }
    tree = archive.tree()
    assert f"v2/patches/meta/{galaxy_path(garbage)}" not in tree  # never written
    assert tree[f"v2/patches/meta/{galaxy_path(bsdiff)}"] == bsdiff_root  # GOG's bytes, kept
    assert f"v2/patches/meta/{galaxy_path(good.patch_id)}" in tree
    for depot in good.depots:
        for h in depot.chunks:
            assert f"v2/patches/store/{galaxy_path(h)}" in tree
    states = {row[0] for row in archive.db_rows("SELECT state FROM builds")}
    assert states == {"complete"}  # the run went on


def test_sync_pairs_run_over_every_recorded_build_listed_or_not(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, builds = patched_world()
    world.add_patch(PID, builds[0], builds[2])  # the pair a list without builds[1] would make
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    world.delist(builds[1].build_id)  # GOG stops listing the middle build
    server.clear_requests()
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert index_requests(server) == []  # both pairs were answered already
    assert archive.tree() == v2_tree(world, include_delisted=True)
    pairs = archive.db_rows("SELECT from_build_id, to_build_id FROM patches WHERE branch IS NULL")
    assert sorted(pairs) == sorted(
        [(builds[0].build_id, builds[1].build_id), (builds[1].build_id, builds[2].build_id)]
    )


def test_sync_no_patches_option_and_config(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2", "--no-patches")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, include_patches=False)
    assert index_requests(server) == []
    archive.write_config(sync={"patches": False})
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert index_requests(server) == []
    assert archive.db_rows("SELECT count(*) FROM patches") == [(0,)]


def test_sync_no_dlc_skips_dlc_patch_depots(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2", "--no-dlc")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, include_dlc=False)
    assert archive.db_rows("SELECT DISTINCT depot_product_id FROM patch_depots") == [(PID,)]
    # with the DLC later: its patch depots are added, the index is not asked again
    server.clear_requests()
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert index_requests(server) == []
    assert archive.tree() == v2_tree(world)


def test_sync_patches_follow_the_build_and_os_filters(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, builds = patched_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2", "--build", builds[1].build_id)
    assert result.exit_code == 0, result.output
    assert [q["to_build_id"] for q in index_requests(server)] == [builds[1].build_id]
    result = archive.run("sync", PID, "--generation", "2", "--os", "osx")
    assert result.exit_code == 0, result.output
    assert archive.db_rows("SELECT count(*) FROM patches") == [(1,)]


def test_sync_dry_run_plans_patch_chunks_without_fetching_them(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, "--generation", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert server.count("/v2/patches/store/") == 0
    expected = v2_tree(world)
    metas = {k for k in expected if k.startswith("v2/patches/meta/")}
    assert metas <= set(archive.tree())
    chunks = [v for k, v in expected.items() if k.startswith(("v2/store/", "v2/patches/store/"))]
    planned = json.loads(result.stdout)["products"][0]
    assert planned["planned_objects"] >= len(chunks)
    assert planned["planned_bytes"] >= sum(len(v) for v in chunks)


# --- a real xdelta3 delta ---------------------------------------------------------------------


def _xdelta3() -> str:
    found = shutil.which("xdelta3")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("xdelta3 is not installed (.ci/run installs it with apt-get)")
        pytest.skip("xdelta3 is not installed (apt-get install xdelta3)")
    return found


def test_sync_archives_a_real_xdelta3_patch_that_applies(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    xdelta3 = _xdelta3()
    source = random_bytes(400_000, 21)
    target = bytearray(source)
    target[1000:1100] = b"patched!" * 12 + b"edit"
    target[200_000:200_000] = random_bytes(30_000, 22)  # an insertion
    del target[350_000:360_000]
    target = bytes(target)
    (tmp_path / "source").write_bytes(source)
    (tmp_path / "target").write_bytes(target)
    subprocess.run(
        [
            xdelta3,
            "-e",
            "-f",
            "-s",
            str(tmp_path / "source"),
            str(tmp_path / "target"),
            str(tmp_path / "delta"),
        ],
        check=True,
        capture_output=True,
    )
    delta = (tmp_path / "delta").read_bytes()

    world = World(seed=12)
    path = "bin\\game.exe"
    old = world.add_v2_build(PID, files={path: source, "readme.txt": b"same"})
    new = world.add_v2_build(PID, files={path: target, "readme.txt": b"same"})
    chunk_size = max(1024, len(delta) // 4)  # several chunks, to test their order
    world.add_patch(PID, old, new, deltas={path: delta}, chunk_size=chunk_size)
    archive = make_archive(serve(world))
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output

    # From the archive alone: the patch depot manifest's DepotDiff, its chunks in order.
    depot_md5 = archive.db_rows(
        "SELECT o.md5 FROM patch_depots pd JOIN objects o ON o.id = pd.manifest_object_id"
    )
    assert len(depot_md5) == 1
    manifest_path = archive.root / "v2/patches/meta" / galaxy_path(depot_md5[0][0])
    manifest = parse_depot_manifest(decode_meta(manifest_path.read_bytes(), "m"), "m")
    (diff,) = manifest.diffs
    assert len(diff.chunks) > 1
    archived_delta = b"".join(
        zlib.decompress(
            (archive.root / "v2/patches/store" / galaxy_path(c.compressed_md5)).read_bytes()
        )
        for c in diff.chunks
    )
    (tmp_path / "archived.delta").write_bytes(archived_delta)
    subprocess.run(
        [
            xdelta3,
            "-d",
            "-f",
            "-s",
            str(tmp_path / "source"),
            str(tmp_path / "archived.delta"),
            str(tmp_path / "out"),
        ],
        check=True,
        capture_output=True,
    )
    out_md5 = hashlib.md5((tmp_path / "out").read_bytes()).hexdigest()
    assert out_md5 == diff.md5_target == md5_hex(target)
    assert diff.md5_source == md5_hex(source)


def test_sync_patches_and_dependencies_survive_faults_without_leaking_secrets(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, builds = patched_world()
    world.set_dependencies(
        "59705672826648994",
        {"MSVC2019": {"__redist\\MSVC2019\\VC_redist.x64.exe": random_bytes(80_000, 30)}},
        chunk_size=16 * 1024,
    )
    server = serve(world, link_ttl_s=3600)
    archive = make_archive(server)
    server.faults.configure(rate=0.05, kinds=["500", "503", "reset", "truncate", "short"], seed=4)
    server.faults.once(f"/products/{PID}/patches", "truncate")  # a JSON answer cut off
    server.faults.once("/dependencies/repository", "reset")
    patch = world.patch(PID, builds[0].build_id, builds[1].build_id)
    assert patch is not None
    server.faults.once(patch.depots[0].chunks[0], "corrupt")  # a delta chunk with a bad byte
    server.faults.once("/v2/dependencies/store/", "corrupt")
    result = archive.run("--json", "sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    injected = {(f.kind, f.path.rsplit("/", 1)[-1]) for f in server.faults.injected}
    assert {
        ("truncate", "patches"),
        ("reset", "repository"),
        ("corrupt", patch.depots[0].chunks[0]),
    } <= injected
    assert archive.tree() == v2_tree(world, include_dependencies="referenced")
    secrets = {q["wsSecret"] for q in (r.query for r in server.requests) if "wsSecret" in q}
    for request in server.requests:
        if request.path.startswith("/token="):
            secrets.add(request.path.split("~token=")[1].split("/")[0])
    assert len(secrets) >= 2
    dump = archive.db_dump()
    assert not any(secret in dump or secret in result.output for secret in secrets)


def test_sync_manifest_adds_a_build_gog_no_longer_lists(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    """issue 15 §3: a build known only by its repository manifest id is archived whole, with
    patches to its neighbours (placed by build id: it has no date), recorded as not listed."""
    world, builds = patched_world()
    world.delist(builds[1].build_id)  # GOG never lists it to this archive
    archive = make_archive(serve(world))
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# from gogdb\n{builds[1].repository_hash.upper()}\n\n")
    result = archive.run("sync", PID, "--generation", "2", "--manifest-file", str(ids))
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world, include_delisted=True)
    pairs = archive.db_rows("SELECT from_build_id, to_build_id FROM patches WHERE branch IS NULL")
    assert sorted(pairs) == sorted(
        [(builds[0].build_id, builds[1].build_id), (builds[1].build_id, builds[2].build_id)]
    )
    row = archive.db_rows(
        "SELECT is_listed, state, item FROM builds WHERE build_id = ?", builds[1].build_id
    )[0]
    assert row[:2] == (0, "complete")
    assert json.loads(row[2])["added_by"] == "repository manifest id (sync --manifest)"


def test_sync_manifest_names_an_id_it_cannot_use_and_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _ = patched_world()
    other = world.add_v2_build("1423049311", files={"x": b"x"})
    archive = make_archive(serve(world))
    result = archive.run(
        "sync", PID, "--generation", "2", "--no-patches",
        "--manifest", "0" * 32,
        "--manifest", "../../etc/passwd",
        "--manifest", other.repository_hash,
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"repository manifest {'0' * 32} (--manifest): not available" in result.output
    assert "'../../etc/passwd' is not a 32-hex MD5" in result.output
    assert "is a build of product 1423049311, not of one synced" in result.output
    assert archive.db_rows("SELECT count(*) FROM builds WHERE product_id = '1423049311'") == [(0,)]
    states = {row[0] for row in archive.db_rows("SELECT state FROM builds")}
    assert states == {"complete"}  # the listed builds went on
