"""`verify` over a synced archive: damage on disk is found at the right level and named with its
builds, --repair brings back a byte-identical tree, --max-age/--time-budget slice the work."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.models.verify_plan import VerifyLevel, VerifyOptions
from galaxy_archive.runs import exit_code_of
from galaxy_archive.state.db import iso
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.storage.local import ArchiveStore
from galaxy_archive.verify.object_checks import CheckItem, CheckResult, ObjectChecker
from galaxy_archive.verify.verifier import Verifier, run_verify
from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes

PID = "1207658930"
DLC = "1207658931"
OTHER = "1400000001"
DAY_S = 86400.0


def verify_world() -> World:
    world = World(seed=11)
    files = {
        "bin\\game.exe": random_bytes(300_000, 1),
        "data\\big.pak": random_bytes(600_000, 2),
        "readme.txt": b"hello",
    }
    small = {f"config\\f{i}.ini": f"setting={i}\n".encode() * (i + 1) for i in range(4)}
    world.add_v2_build(
        PID,
        files=files,
        small_files=small,
        chunk_size=256 * 1024,
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(200_000, 3)}},
        version_name="1.0",
    )
    world.add_v2_build(
        PID,
        files={**files, "bin\\game.exe": random_bytes(300_000, 4)},
        chunk_size=256 * 1024,
        version_name="1.1",
    )
    world.add_v2_build(OTHER, files={"other.dat": random_bytes(100_000, 5)})
    world.owned.update({int(PID), int(DLC), int(OTHER)})
    return world


def v2_tree(world: World) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False
    )
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


@pytest.fixture
def synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> Iterator[tuple[World, Archive]]:
    world = verify_world()
    archive = make_archive(serve(world))
    for product in (PID, OTHER):
        result = archive.run("sync", product, "--generation", "2")
        assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    yield world, archive


def verify_json(archive: Archive, *args: str) -> tuple[int, dict[str, Any]]:
    result = archive.run("--json", "verify", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def chunk(archive: Archive, product: str = PID, *, rank: int = 0, kind: str = "store") -> str:
    """The path of a required chunk of `product` (by size, largest first)."""
    rows = archive.db_rows(
        "SELECT DISTINCT o.path, o.size FROM objects o "
        "JOIN manifest_objects mo ON mo.object_id = o.id AND mo.role != 'sfc_member' "
        "JOIN build_depots bd ON bd.manifest_object_id = mo.manifest_object_id "
        "WHERE bd.product_id = ? AND o.kind = ? AND o.state = 'verified' "
        "ORDER BY o.size DESC, o.path",
        product,
        kind,
    )
    return str(rows[rank][0])


def depot_manifest(archive: Archive, product: str = PID) -> str:
    rows = archive.db_rows(
        "SELECT o.path FROM build_depots bd JOIN objects o ON o.id = bd.manifest_object_id "
        "WHERE bd.product_id = ? AND bd.is_offline = 0 ORDER BY bd.size DESC, o.path",
        product,
    )
    return str(rows[0][0])


def flip_byte(archive: Archive, relative: str, offset: int = 100) -> bytes:
    path = archive.root / relative
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[offset] ^= 0x01
    path.write_bytes(bytes(damaged))
    return bytes(damaged)


def problems_by_path(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["path"]: p for p in report["problems"]}


def builds_of(archive: Archive, relative: str) -> set[str]:
    rows = archive.db_rows(
        "SELECT DISTINCT bd.build_id FROM objects o "
        "JOIN manifest_objects mo ON mo.object_id = o.id "
        "JOIN build_depots bd ON bd.manifest_object_id = mo.manifest_object_id "
        "WHERE o.path = ? UNION SELECT bd.build_id FROM objects o JOIN build_depots bd "
        "ON bd.manifest_object_id = o.id WHERE o.path = ?",
        relative,
        relative,
    )
    return {row[0] for row in rows}


def state_of(archive: Archive, relative: str) -> str:
    return str(archive.db_rows("SELECT state FROM objects WHERE path = ?", relative)[0][0])


# --- levels ----------------------------------------------------------------------------------


def test_verify_clean_archive_exits_0_without_network(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    archive.server.clear_requests()
    objects = archive.db_rows("SELECT count(*) FROM objects WHERE state = 'verified'")[0][0]
    for level in ("--quick", None, "--deep"):
        code, report = verify_json(archive, *([level] if level else []))
        assert code == 0, report["problems"]
        assert report["checked"] == report["planned"] == report["ok"] == objects
        assert report["problems"] == [] and report["tree_walked"]
        assert report["absent_upstream"] == 0 and report["left"] == 0
    assert archive.server.requests == []
    assert archive.run("logout").exit_code == 0
    assert archive.run("verify").exit_code == 0  # no login needed either


def test_verify_flipped_byte_in_chunk_is_found_by_md5_not_by_quick(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    victim = chunk(archive)
    flip_byte(archive, victim)
    code, report = verify_json(archive, "--quick")
    assert code == 0 and report["problems"] == []  # same size: a stat cannot see it
    code, report = verify_json(archive)
    assert code == 1
    problem = problems_by_path(report)[victim]
    assert problem["state"] == "corrupt" and "MD5" in problem["detail"]
    assert problem["kind"] == "store" and problem["md5"] == victim.rsplit("/", 1)[1]
    assert {b["build_id"] for b in problem["builds"]} == builds_of(archive, victim)
    assert len(report["problems"]) == 1
    assert state_of(archive, victim) == "corrupt"
    broken = {b["build_id"] for b in report["builds_no_longer_complete"]}
    assert broken == builds_of(archive, victim)
    states = dict(archive.db_rows("SELECT build_id, state FROM builds WHERE generation = 2"))
    assert {b for b, s in states.items() if s != "complete"} == broken


def test_verify_human_output_names_object_and_builds(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    victim = chunk(archive)
    flip_byte(archive, victim)
    result = archive.run("verify")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if victim in line]
    assert len(lines) == 1
    for build_id in builds_of(archive, victim):
        assert f"{PID}/{build_id}" in lines[0]
    assert result.output.strip().splitlines()[-1].startswith("verify full: checked")
    assert "1 corrupt" in result.output
    quiet = archive.run("-q", "verify")  # cron: nothing but the problems
    assert quiet.exit_code == 1
    printed = [line for line in quiet.output.splitlines() if line.strip()]
    assert len(printed) == 1 and victim in printed[0]


def test_verify_truncated_and_deleted_chunks_are_found_by_quick(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    truncated, deleted = chunk(archive, rank=0), chunk(archive, rank=1)
    path = archive.root / truncated
    path.write_bytes(path.read_bytes()[:-7])
    (archive.root / deleted).unlink()
    code, report = verify_json(archive, "--quick")
    assert code == 1
    problems = problems_by_path(report)
    assert set(problems) == {truncated, deleted}
    assert problems[truncated]["state"] == "corrupt" and "size" in problems[truncated]["detail"]
    assert problems[deleted]["state"] == "missing"
    assert state_of(archive, truncated) == "corrupt" and state_of(archive, deleted) == "missing"


def test_verify_corrupted_manifest_is_found_at_default_level(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    manifest = depot_manifest(archive)
    flip_byte(archive, manifest, offset=40)
    assert verify_json(archive, "--quick")[0] == 0
    code, report = verify_json(archive)
    assert code == 1
    problem = problems_by_path(report)[manifest]
    assert problem["kind"] == "meta" and problem["state"] == "corrupt"
    assert {b["build_id"] for b in problem["builds"]} == builds_of(archive, manifest)


def test_verify_deep_inflates_chunks_and_parses_manifests(synced: tuple[World, Archive]) -> None:
    """What default cannot see: bytes that match their recorded MD5 but are wrong inside.

    Sync never records such an object (names are MD5s); the DB is edited to simulate a CDN
    that served a chunk whose content is not what the manifest says, and a manifest whose
    recorded MD5 was taken from bytes that are not JSON.
    """
    _world, archive = synced
    victim_chunk = chunk(archive)
    manifest = depot_manifest(archive, OTHER)
    not_json = b"x\x9c" + b"not json at all"  # zlib header, then garbage
    (archive.root / manifest).write_bytes(not_json)
    with sqlite3.connect(archive.root / "archive.db") as conn:
        conn.execute("UPDATE objects SET inflated_md5 = ? WHERE path = ?", ("0" * 32, victim_chunk))
        conn.execute(
            "UPDATE objects SET md5 = ?, size = ? WHERE path = ?",
            (hashlib.md5(not_json).hexdigest(), len(not_json), manifest),
        )
    code, report = verify_json(archive)
    assert code == 0, report["problems"]
    code, report = verify_json(archive, "--deep")
    assert code == 1
    problems = problems_by_path(report)
    assert set(problems) == {victim_chunk, manifest}
    assert "inflated MD5" in problems[victim_chunk]["detail"]
    assert "does not parse" in problems[manifest]["detail"]


def test_verify_product_filter_checks_only_that_product(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    victim = chunk(archive, OTHER)
    flip_byte(archive, victim)
    code, report = verify_json(archive, PID)
    assert code == 0 and not report["tree_walked"]
    dlc_chunks = archive.db_rows("SELECT count(*) FROM object_products WHERE product_id = ?", DLC)[
        0
    ][0]
    assert dlc_chunks > 0
    assert report["checked"] > dlc_chunks  # the base game's, its DLC's chunks, its manifests
    code, report = verify_json(archive, OTHER)
    assert code == 1 and set(problems_by_path(report)) == {victim}


# --- V1 blobs and manifests (synced by the V1 sync: by ranges, every file recorded) -----------


def v1_world() -> World:
    world = World(seed=12)
    world.add_v1_build(
        PID,
        files={
            "bin\\game.exe": random_bytes(200_000, 1),
            "data\\level1.dat": random_bytes(150_000, 2),
            "data\\level2.dat": random_bytes(150_000, 3),
        },
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(50_000, 4)}},
        padding=64,
    )
    world.owned.add(int(PID))
    return world


@pytest.fixture
def v1_synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> tuple[World, V1Build, Archive]:
    world = v1_world()
    archive = make_archive(serve(world))
    archive.write_config(sync={"v1_range_size": 64 * 1024})
    assert archive.run("sync", PID, "--generation", "1").exit_code == 0
    build = world.builds[0]
    assert isinstance(build, V1Build)
    assert archive.db_rows("SELECT state FROM builds WHERE generation = 1") == [("complete",)]
    return world, build, archive


def v1_blob(build: V1Build, product_id: str = PID) -> str:
    return f"v1/depots/{build.manifest_dir(product_id)}/main.bin"


def v1_tree(world: World) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(1,), include_patches=False, include_dependencies=False
    )
    return {k: v for k, v in expected.items() if k.startswith("v1/")}


def test_verify_flipped_byte_in_v1_extent_is_named_by_default(
    v1_synced: tuple[World, V1Build, Archive],
) -> None:
    _world, build, archive = v1_synced
    target = "/data/level1.dat"  # V1 paths as the manifest has them; the DB drops the '/'
    blob = v1_blob(build)
    assert verify_json(archive, "--deep")[0] == 0
    flip_byte(archive, blob, build.depots[0].offsets[target] + 1000)

    assert verify_json(archive, "--quick")[0] == 0  # the size is still right
    code, report = verify_json(archive)
    assert code == 1
    problem = problems_by_path(report)[blob]
    assert problem["kind"] == "v1_blob" and "MD5" in problem["detail"]
    # GOG has no MD5 of a whole blob: its file records' MD5s are the proof, named by offset
    assert len(problem["files"]) == 1 and problem["files"][0].startswith(target.lstrip("/"))
    assert "level2" not in problem["detail"]
    assert [b["build_id"] for b in problem["builds"]] == [build.build_id]
    assert report["builds_no_longer_complete"] == [
        {"product_id": PID, "build_id": build.build_id, "generation": 1}
    ]


def test_verify_flipped_byte_between_v1_files_is_found(
    v1_synced: tuple[World, V1Build, Archive],
) -> None:
    _world, build, archive = v1_synced
    blob = v1_blob(build)
    first = build.depots[0].offsets["/bin/game.exe"]
    flip_byte(archive, blob, first + 200_000 + 10)  # in the padding after game.exe

    code, report = verify_json(archive)
    assert code == 1
    problem = problems_by_path(report)[blob]
    assert problem["files"] == []  # every file is intact...
    assert "outside its file records" in problem["detail"]  # ...the bytes between are not
    assert verify_json(archive, "--repair")[0] == 0
    assert (archive.root / blob).read_bytes() == build.blobs[PID]


def test_verify_corrupted_v1_manifest_is_found(
    v1_synced: tuple[World, V1Build, Archive],
) -> None:
    _world, build, archive = v1_synced
    manifest = f"v1/manifests/{build.manifest_dir()}/repository.json"
    flip_byte(archive, manifest, offset=5)
    code, report = verify_json(archive)
    assert code == 1
    problem = problems_by_path(report)[manifest]
    assert problem["kind"] == "v1_manifest" and problem["builds"][0]["build_id"] == build.build_id


def test_verify_of_a_product_checks_the_v1_blobs_of_its_dlc(
    v1_synced: tuple[World, V1Build, Archive],
) -> None:
    _world, build, archive = v1_synced
    dlc_blob = v1_blob(build, DLC)
    flip_byte(archive, dlc_blob, 1000)
    code, report = verify_json(archive, PID)
    assert code == 1 and set(problems_by_path(report)) == {dlc_blob}


def test_verify_of_a_product_the_archive_does_not_hold_is_a_usage_error(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    for ids in (["999999"], [PID, "0" + PID]):  # a typo must not check nothing and exit 0
        result = archive.run("verify", *ids)
        assert result.exit_code == 2, result.output
        assert f"no product {ids[-1]} in this archive" in result.output
    assert archive.db_rows("SELECT count(*) FROM runs WHERE command = 'verify'") == [(0,)]
    assert archive.run("verify", DLC).exit_code == 0  # a DLC is a product of the archive


def test_verify_repair_brings_back_v1_blobs_and_manifests(
    v1_synced: tuple[World, V1Build, Archive],
) -> None:
    world, build, archive = v1_synced
    blob, dlc_blob = v1_blob(build), v1_blob(build, DLC)
    depot_manifest = f"v1/manifests/{build.manifest_dir()}/{build.depots[1].manifest_name}"
    damaged = flip_byte(archive, blob, 1000)
    (archive.root / dlc_blob).unlink()
    flip_byte(archive, depot_manifest, offset=3)
    code, report = verify_json(archive)
    assert code == 1 and len(report["problems"]) == 3
    assert archive.db_rows("SELECT state FROM builds WHERE generation = 1") == [("incomplete",)]
    code, report = verify_json(archive, "--deep", "--repair")
    assert code == 0, report["problems"]
    assert report["repaired"] == 3
    assert archive.tree() == v1_tree(world)
    quarantined = problems_by_path(report)[blob]["quarantined_to"]
    assert (archive.root / quarantined).read_bytes() == damaged
    assert report["builds_complete_again"] == [
        {"product_id": PID, "build_id": build.build_id, "generation": 1}
    ]
    assert archive.db_rows("SELECT state FROM builds WHERE generation = 1") == [("complete",)]
    assert verify_json(archive, "--deep")[0] == 0


def test_verify_names_patches_and_dependencies_and_repairs_them(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=13)
    world.set_dependencies(
        "59705672826648994",
        {"MSVC2019": {"__redist\\MSVC2019\\VC_redist.x64.exe": random_bytes(70_000, 10)}},
        chunk_size=32 * 1024,
    )
    old = world.add_v2_build(
        PID, files={"game.exe": random_bytes(60_000, 1)}, dependencies=["MSVC2019"]
    )
    new = world.add_v2_build(
        PID, files={"game.exe": random_bytes(60_000, 2)}, dependencies=["MSVC2019"]
    )
    world.add_patch(PID, old, new, chunk_size=4096)
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    expected = archive.tree()
    patch_chunk = str(
        archive.db_rows("SELECT path FROM objects WHERE kind = 'patch_store' ORDER BY path")[0][0]
    )
    dep_chunk = str(
        archive.db_rows("SELECT path FROM objects WHERE kind = 'dep_store' ORDER BY path")[0][0]
    )
    assert archive.db_rows("SELECT state FROM patches") == [("complete",)]
    flip_byte(archive, patch_chunk, offset=5)
    (archive.root / dep_chunk).unlink()

    code, report = verify_json(archive)
    assert code == 1
    problems = problems_by_path(report)
    assert problems[patch_chunk]["needed_by"] == [f"patch {PID} {old.build_id}->{new.build_id}"]
    assert problems[dep_chunk]["needed_by"] == ["dependency MSVC2019"]
    assert sorted(report["others_no_longer_complete"]) == [
        "dependency MSVC2019",
        f"patch {PID} {old.build_id}->{new.build_id}",
    ]
    assert archive.db_rows("SELECT state FROM patches") == [("incomplete",)]

    code, report = verify_json(archive, "--repair")
    assert code == 0, report["problems"]
    assert report["repaired"] == 2 and archive.tree() == expected
    assert archive.db_rows(
        "SELECT state FROM dependency_depots WHERE dependency_id = 'MSVC2019'"
    ) == [("complete",)]


# --- repair ------------------------------------------------------------------------------------


def test_verify_repair_brings_back_a_byte_identical_tree(synced: tuple[World, Archive]) -> None:
    world, archive = synced
    flipped, truncated, deleted = (chunk(archive, rank=r) for r in range(3))
    offline = chunk(archive, kind="offline")
    manifest = depot_manifest(archive)
    damaged = {
        flipped: flip_byte(archive, flipped),
        offline: flip_byte(archive, offline, offset=10),
        manifest: flip_byte(archive, manifest, offset=40),
    }
    damaged[truncated] = (archive.root / truncated).read_bytes()[:-3]
    (archive.root / truncated).write_bytes(damaged[truncated])
    (archive.root / deleted).unlink()
    builds_before = archive.db_rows("SELECT build_id, state FROM builds ORDER BY build_id")

    code, report = verify_json(archive, "--repair")
    assert code == 0, report["problems"]
    assert report["repaired"] == 5 and report["corrupt"] == 4 and report["missing"] == 1
    assert archive.tree() == v2_tree(world)
    quarantined = {
        p["path"]: (archive.root / p["quarantined_to"]).read_bytes()
        for p in report["problems"]
        if p["quarantined_to"]
    }
    assert quarantined == damaged
    for problem in report["problems"]:
        if problem["quarantined_to"]:
            assert problem["quarantined_to"].startswith(f"quarantine/{problem['path']}.")
    assert archive.db_rows(
        "SELECT DISTINCT state FROM objects WHERE path IN (?, ?, ?, ?, ?)",
        flipped,
        truncated,
        deleted,
        offline,
        manifest,
    ) == [("verified",)]
    assert archive.db_rows("SELECT build_id, state FROM builds ORDER BY build_id") == builds_before
    code, report = verify_json(archive, "--deep")
    assert code == 0 and report["tree_walked"]  # quarantine/ is outside the tree


def test_verify_repair_reports_what_the_cdn_no_longer_has(synced: tuple[World, Archive]) -> None:
    world, archive = synced
    victim = chunk(archive, OTHER)
    md5 = victim.rsplit("/", 1)[1]
    world.store.pop(md5)  # the CDN no longer has it: 404 under every product
    world.store_owners.pop(md5)
    flip_byte(archive, victim)
    code, report = verify_json(archive, "--repair")
    assert code == 1
    problem = problems_by_path(report)[victim]
    assert problem["repair"] == "unrecoverable" and report["unrecoverable"] == 1
    assert (archive.root / problem["quarantined_to"]).exists()
    assert state_of(archive, victim) == "absent_upstream"
    assert {b["build_id"] for b in report["builds_no_longer_complete"]} == builds_of(
        archive, victim
    )
    code, report = verify_json(archive)  # not on disk by design now: counted, not checked
    assert report["absent_upstream"] == 1 and victim not in problems_by_path(report)


def test_verify_repair_fetches_manifests_where_sync_found_them(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    """A repository manifest only the builds list's collector link serves is fetched there."""
    world = World(seed=6)
    world.add_v2_build(PID, files={"a.bin": random_bytes(20_000, 1)}, link_style="collector")
    server = serve(world)
    server.collector_manifests_on_cdn = False  # only the collector host has it
    archive = make_archive(server)
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    repository = str(
        archive.db_rows(
            "SELECT o.path FROM builds b JOIN objects o ON o.id = b.repository_object_id"
        )[0][0]
    )
    flip_byte(archive, repository, offset=20)
    code, report = verify_json(archive, "--repair")
    assert code == 0 and problems_by_path(report)[repository]["repair"] == "repaired"
    assert archive.tree() == v2_tree(world)
    assert server.count("/manifests/builds/", role="collector", status=200) == 2


def test_verify_repair_never_drops_evidence_it_cannot_move(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    victim = chunk(archive)
    damaged = flip_byte(archive, victim)
    (archive.root / "quarantine").write_bytes(b"not a directory")
    code, report = verify_json(archive, "--repair")
    assert code == 1
    problem = problems_by_path(report)[victim]
    assert problem["repair"] == "failed" and "quarantine" in problem["repair_detail"]
    assert (archive.root / victim).read_bytes() == damaged  # left as it was, not replaced
    assert state_of(archive, victim) == "corrupt"


def test_verify_repair_needs_a_login(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    (archive.root / chunk(archive)).unlink()
    assert archive.run("logout").exit_code == 0
    result = archive.run("verify", "--repair")
    assert result.exit_code == 3
    assert archive.db_rows("SELECT count(*) FROM runs WHERE command = 'verify'") == [(0,)]


def test_verify_repair_takes_the_lock_plain_verify_does_not(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    (archive.root / chunk(archive)).unlink()
    with archive_lock(archive.root, command="sync"):
        result = archive.run("verify", "--repair")
        assert result.exit_code == 4 and "holds the lock" in result.output
        assert archive.run("verify").exit_code == 1  # reads and stamps: runs beside a sync
    assert archive.run("verify", "--repair").exit_code == 0


# --- the tree --------------------------------------------------------------------------------


def test_verify_reports_unknown_and_temp_files_and_keeps_them(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    unknown = "v2/store/ab/cd/abcd" + "0" * 28
    temp = chunk(archive).rsplit("/", 1)[0] + "/.x.1234abcd.galaxy-tmp"
    stray = "v1/depots/1/windows/2/main.bin"
    partial = "v1/depots/1/windows/2/.main.bin.galaxy-partial"  # a V1 download to resume
    for relative in (unknown, temp, stray, partial):
        (archive.root / relative).parent.mkdir(parents=True, exist_ok=True)
        (archive.root / relative).write_bytes(b"?")
    code, report = verify_json(archive, "--quick")
    assert code == 1 and report["problems"] == []
    assert report["unknown_files"] == [stray, unknown]  # v1 before v2
    assert report["temp_files"] == [temp] and report["partial_files"] == [partial]
    assert all((archive.root / r).exists() for r in (unknown, temp, stray, partial))


def test_verify_leaves_temp_files_of_a_live_run_and_dead_runs_to_sync(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    temp = chunk(archive).rsplit("/", 1)[0] + "/.x.1234abcd.galaxy-tmp"
    (archive.root / temp).write_bytes(b"?")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with sqlite3.connect(archive.root / "archive.db") as conn:
            conn.execute(
                "INSERT INTO runs (command, pid, started_at) VALUES ('sync', ?, ?)",
                (other.pid, iso(0)),
            )
        code, report = verify_json(archive)  # a sync is downloading: its temp file is in use
        assert code == 0 and report["temp_files"] == [] and report["tree_walked"]
    finally:
        other.kill()
        other.wait()
    code, report = verify_json(archive)  # the sync died: its temp file is a leftover
    assert code == 1 and report["temp_files"] == [temp]
    assert archive.db_rows("SELECT ended_at FROM runs WHERE pid = ?", other.pid) == [(None,)]
    assert (archive.root / temp).exists()  # the next sync (it holds the lock) sweeps it
    code, report = verify_json(archive, "--repair")  # so does --repair, under the lock
    assert code == 0 and not (archive.root / temp).exists()
    assert archive.db_rows("SELECT exit_code FROM runs WHERE pid = ?", other.pid) == [(-9,)]


# --- incremental: --max-age, --time-budget, kill -9 --------------------------------------------


class StepClock:
    """A clock that moves `step_s` forward every time it is read."""

    def __init__(self, start: float, step_s: float) -> None:
        self.now = start
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def verify_with_clock(archive: Archive, clock: Callable[[], float], **options: Any) -> Any:
    app = App(config=load(archive.config_path), clock=clock)
    return run_verify(app, VerifyOptions(**options))


def stamps(archive: Archive) -> dict[str, str]:
    return dict(archive.db_rows("SELECT path, verified_at FROM objects WHERE state = 'verified'"))


def test_verify_max_age_rechecks_only_what_is_due(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    synced_at = max(stamps(archive).values())
    start = max(os.path.getmtime(archive.root / "archive.db"), 0.0)
    report = verify_with_clock(archive, StepClock(start + 10 * DAY_S, 0), max_age_s=30 * DAY_S)
    assert report.planned == 0 and report.exit_code == 0
    assert max(stamps(archive).values()) == synced_at
    quick = verify_with_clock(
        archive, StepClock(start + 31 * DAY_S, 0), max_age_s=30 * DAY_S, level=VerifyLevel.QUICK
    )
    assert quick.checked == len(stamps(archive)) and quick.exit_code == 0
    assert max(stamps(archive).values()) == synced_at  # a stat proves no bytes: no stamp
    report = verify_with_clock(archive, StepClock(start + 31 * DAY_S, 0), max_age_s=30 * DAY_S)
    assert report.planned == report.checked == len(stamps(archive))
    assert set(stamps(archive).values()) == {iso(start + 31 * DAY_S)}


class SlowChecker(ObjectChecker):
    """Each check takes `seconds` on the injected clock (a big object on a slow disk)."""

    def __init__(self, root: Any, clock: StepClock, seconds: float) -> None:
        super().__init__(ArchiveStore(root))
        self.clock, self.seconds = clock, seconds

    def check(self, item: CheckItem) -> CheckResult:
        self.clock.now += self.seconds
        return super().check(item)


def verify_slowly(archive: Archive, clock: StepClock, **options: Any) -> Any:
    """Check the objects with one worker, each check taking 1 s on `clock`."""
    app = App(config=load(archive.config_path), clock=clock)
    db = app.open_db()
    try:
        verifier = Verifier(
            db=db,
            store=ArchiveStore(archive.root),
            options=VerifyOptions(workers=1, **options),
            clock=clock,
        )
        verifier.checker = SlowChecker(archive.root, clock, 1.0)
        verifier.check_objects()
    finally:
        db.close()
    return verifier.report


def test_verify_time_budget_checks_oldest_first_and_resumes(
    synced: tuple[World, Archive],
) -> None:
    _world, archive = synced
    paths = sorted(stamps(archive))
    order = paths[::-1]  # verified longest ago first: the reverse of path order
    with sqlite3.connect(archive.root / "archive.db") as conn:
        for age, path in enumerate(order):
            conn.execute(
                "UPDATE objects SET verified_at = ? WHERE path = ?",
                (iso(1_600_000_000 + age * DAY_S), path),
            )
        conn.execute("UPDATE objects SET verified_at = NULL WHERE path = ?", (order[-1],))
    order = [order[-1], *order[:-1]]  # never verified comes first of all
    now = 1_900_000_000.0
    clock = StepClock(now, 0)
    report = verify_slowly(archive, clock, time_budget_s=12.5, max_age_s=30 * DAY_S)
    assert report.is_budget_spent and report.exit_code == 0
    # started at 0, 1, ... 12 s; a batch already queued starts nothing at 13 s
    assert report.checked == 13 and report.left == len(order) - 13
    fresh = {p for p, s in stamps(archive).items() if s >= iso(now)}
    assert fresh == set(order[:13])
    assert "left for the next run (time budget spent)" in report.summary_line()

    rounds = 1
    while report.left:
        report = verify_slowly(archive, clock, time_budget_s=12.5, max_age_s=30 * DAY_S)
        rounds += 1
        assert report.planned == len(order) - len(fresh)  # nothing proved is checked again
        assert report.checked == min(13, report.planned)
        fresh = {p for p, s in stamps(archive).items() if s >= iso(now)}
    assert fresh == set(order) and rounds > 2


class SyncBesideChecker(ObjectChecker):
    """While `path` is being checked, a sync beside the verify stores it (another connection)."""

    def __init__(self, root: Any, db_path: Any, path: str) -> None:
        super().__init__(ArchiveStore(root))
        self.db_path, self.path = db_path, path

    def check(self, item: CheckItem) -> CheckResult:
        result = super().check(item)
        if item.path == self.path:
            with sqlite3.connect(self.db_path, timeout=5) as conn:
                conn.execute(
                    "UPDATE objects SET state = 'verified' WHERE id = ?", (item.object_id,)
                )
        return result


def test_verify_leaves_the_state_a_sync_wrote_meanwhile(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    victim = chunk(archive)
    (archive.root / victim).unlink()
    with sqlite3.connect(archive.root / "archive.db") as conn:
        conn.execute("UPDATE objects SET state = 'missing' WHERE path = ?", (victim,))
    clock = StepClock(2_000_000_000.0, 0)
    app = App(config=load(archive.config_path), clock=clock)
    db = app.open_db()
    try:
        verifier = Verifier(
            db=db, store=ArchiveStore(archive.root), options=VerifyOptions(workers=1), clock=clock
        )
        verifier.checker = SyncBesideChecker(archive.root, archive.root / "archive.db", victim)
        verifier.check_objects()
    finally:
        db.close()
    assert [p.path for p in verifier.report.problems] == [victim]  # reported as found
    assert state_of(archive, victim) == "verified"  # but the sync's newer word stands


def test_a_verify_that_fails_is_recorded_with_the_exit_code_the_user_sees() -> None:
    assert exit_code_of(ConfigError("x")) == ExitCode.USAGE
    assert exit_code_of(KeyboardInterrupt()) == ExitCode.INTERRUPTED
    assert exit_code_of(RuntimeError("a bug")) == ExitCode.USAGE  # not "interrupted"


def test_verify_killed_keeps_what_it_proved(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    total = len(stamps(archive))
    start = 2_000_000_000.0
    script = f"""
import os, signal
from pathlib import Path
from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.output import Progress
from galaxy_archive.verify.verifier import run_verify
from galaxy_archive.models.verify_plan import VerifyOptions

class KillAfter(Progress):
    seen = 0
    def add_object(self):
        self.seen += 1
        if self.seen == 12:
            os.kill(os.getpid(), signal.SIGKILL)

t = [{start}]
def clock():
    t[0] += 1.0
    return t[0]

app = App(config=load(Path({str(archive.config_path)!r})), clock=clock)
run_verify(app, VerifyOptions(workers=1), progress=KillAfter(is_enabled=False))
"""
    process = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    proved = {p for p, s in stamps(archive).items() if s >= iso(start)}
    assert 6 <= len(proved) <= 12  # committed about once a (fake) second, as it went
    assert archive.db_rows(
        "SELECT count(*) FROM runs WHERE command = 'verify' AND ended_at IS NULL"
    ) == [(1,)]
    report = verify_with_clock(archive, StepClock(start + 100, 0), max_age_s=1000)
    assert report.planned == total - len(proved) and report.exit_code == 0


def test_verify_stops_cleanly_when_asked(synced: tuple[World, Archive]) -> None:
    """SIGINT/SIGTERM set App.stop (interrupts.py): nothing new is started, exit 130."""
    _world, archive = synced
    app = App(config=load(archive.config_path), clock=StepClock(2_000_000_000.0, 1.0))
    app.stop.set()
    report = run_verify(app, VerifyOptions())
    assert report.is_interrupted and report.exit_code == 130
    assert report.checked == 0 and report.left == report.planned > 0
    assert not report.is_tree_walked
    assert archive.db_rows("SELECT exit_code FROM runs WHERE command = 'verify'") == [(130,)]


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("--quick", "--deep"), ("--max-age", "soon"), ("--time-budget", "-1h"), ("nope",)]
)
def test_verify_rejects_bad_options(synced: tuple[World, Archive], args: tuple[str, ...]) -> None:
    _world, archive = synced
    result = archive.run("verify", *args)
    assert result.exit_code == 2, result.output


def test_verify_without_an_archive_exits_2(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(World(seed=1)), login=False)
    result = archive.run("verify")
    assert result.exit_code == 2 and "no archive" in result.output
    assert not (archive.root / "archive.db").exists()


def test_verify_is_recorded_for_status(synced: tuple[World, Archive]) -> None:
    _world, archive = synced
    flip_byte(archive, chunk(archive))
    assert archive.run("verify").exit_code == 1
    result = archive.run("--json", "status")
    last = json.loads(result.stdout)["last_verify"]
    assert last["exit_code"] == 1
    assert last["summary"]["corrupt"] == 1 and last["summary"]["problems"] == 1
    assert VerifyLevel(last["summary"]["level"]) is VerifyLevel.FULL
