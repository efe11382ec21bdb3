"""`verify`, `verify --repair` and sync over a tree or DB that points outside the archive root:
symlinks are never followed, nothing outside the root is read or written, and a damaged place
(a file where a directory should be) fails its object alone while the run goes on."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes
from tests.unprivileged import rerun_unprivileged

PID = "1207658930"
DLC = "1207658931"


def hostile_world() -> World:
    world = World(seed=21)
    files = {f"data\\f{i}.bin": random_bytes(70_000, 10 + i) for i in range(8)}
    world.add_v2_build(PID, files=files, chunk_size=64 * 1024)
    world.owned.add(int(PID))
    return world


def v2_tree(world: World) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(2,), include_patches=False, include_dependencies=False
    )
    return {k: v for k, v in expected.items() if k.startswith("v2/")}


@pytest.fixture
def synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> tuple[World, Archive]:
    world = hostile_world()
    archive = make_archive(serve(world))
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    return world, archive


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the archive root: nothing may be read or written here."""
    directory = tmp_path / "outside"
    directory.mkdir()
    return directory


def chunks(archive: Archive) -> list[str]:
    """A large chunk's path under each fan-out directory (v2/store/<xx>), largest first."""
    rows = archive.db_rows(
        "SELECT path FROM objects WHERE kind = 'store' AND size > 1000 ORDER BY size DESC, path"
    )
    by_fan_out: dict[str, str] = {}
    for (path,) in rows:
        by_fan_out.setdefault(fan_out(path), path)
    assert len(by_fan_out) >= 4, "the world needs chunks under several fan-out directories"
    return list(by_fan_out.values())


def fan_out(path: str) -> str:
    return path.rsplit("/", 2)[0]  # v2/store/ab/cd/abcd… -> v2/store/ab


def under(archive: Archive, directory: str) -> list[str]:
    rows = archive.db_rows(
        "SELECT path FROM objects WHERE path LIKE ? ORDER BY path", directory + "/%"
    )
    return [str(row[0]) for row in rows]


def flip_byte(path: Path, offset: int = 100) -> bytes:
    damaged = bytearray(path.read_bytes())
    damaged[offset] ^= 0x01
    path.write_bytes(bytes(damaged))
    return bytes(damaged)


def verify_json(archive: Archive, *args: str) -> tuple[int, dict[str, Any]]:
    result = archive.run("--json", "verify", *args)
    assert result.exit_code in (0, 1), (result.output, result.exception)
    return result.exit_code, json.loads(result.stdout)


def problems_by_path(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["path"]: p for p in report["problems"]}


def state_of(archive: Archive, relative: str) -> str:
    return str(archive.db_rows("SELECT state FROM objects WHERE path = ?", relative)[0][0])


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry under `directory` (symlinks by target): to prove nothing was written."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            entries[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            entries[name] = path.read_bytes()
        else:
            entries[name] = "dir"
    return entries


def last_verify_exit(archive: Archive) -> int:
    rows = archive.db_rows("SELECT exit_code FROM runs WHERE command = 'verify' ORDER BY id DESC")
    return int(rows[0][0])


# --- symlinks in the tree ----------------------------------------------------------------------


def test_symlinked_directory_is_never_followed_nor_written_through(
    synced: tuple[World, Archive], outside: Path
) -> None:
    world, archive = synced
    linked_chunk, other = chunks(archive)[:2]
    directory = fan_out(linked_chunk)
    behind_link = under(archive, directory)
    # The directory moved outside the root and linked back, its objects intact but one.
    shutil.move(archive.root / directory, outside / "moved")
    (archive.root / directory).symlink_to(outside / "moved")
    flip_byte(outside / "moved" / linked_chunk.split("/", 3)[3])
    flip_byte(archive.root / other)
    before = snapshot(outside)

    code, report = verify_json(archive)
    assert code == 1
    problems = problems_by_path(report)
    assert set(problems) == {*behind_link, other}
    for path in behind_link:  # the intact ones too: what is behind a symlink is not looked at
        assert problems[path]["detail"] == f"{directory} is a symlink; not followed"
        assert state_of(archive, path) == "corrupt"

    code, report = verify_json(archive, "--repair")
    assert code == 1
    problems = problems_by_path(report)
    assert problems[other]["repair"] == "repaired"
    assert (archive.root / other).read_bytes() == v2_tree(world)[other]
    for path in behind_link:
        assert problems[path]["repair"] == "failed"
        assert problems[path]["repair_detail"] == (f"{path}: not written: {directory} is a symlink")
        assert problems[path]["quarantined_to"] is None
    assert snapshot(outside) == before  # nothing written, moved or quarantined out there
    assert last_verify_exit(archive) == 1


def test_object_that_is_a_symlink_is_never_read_and_is_replaced_by_repair(
    synced: tuple[World, Archive], outside: Path
) -> None:
    world, archive = synced
    identical, foreign = chunks(archive)[:2]
    # One links to an identical copy outside the root, one to a file like /etc/passwd.
    shutil.copyfile(archive.root / identical, outside / "copy")
    (outside / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    for path, target in ((identical, outside / "copy"), (foreign, outside / "passwd")):
        (archive.root / path).unlink()
        (archive.root / path).symlink_to(target)
    before = snapshot(outside)

    for level in (("--quick",), ()):
        code, report = verify_json(archive, *level)
        assert code == 1
        problems = problems_by_path(report)
        assert set(problems) == {identical, foreign}
        for problem in problems.values():
            assert (problem["state"], problem["detail"]) == (
                "corrupt",
                "is a symlink; not followed",
            )
    assert state_of(archive, identical) == "corrupt"  # never stamped verified

    code, report = verify_json(archive, "--repair")
    assert code == 0, report["problems"]
    assert archive.tree() == v2_tree(world)
    for problem in report["problems"]:  # the symlinks are kept as evidence, as symlinks
        kept = archive.root / problem["quarantined_to"]
        assert kept.is_symlink() and kept.parent.resolve().is_relative_to(archive.root.resolve())
        assert not (archive.root / problem["path"]).is_symlink()
    assert snapshot(outside) == before


@pytest.mark.parametrize("linked", ["quarantine", "quarantine/v2"])
def test_symlinked_quarantine_is_refused_for_that_repair(
    synced: tuple[World, Archive], outside: Path, linked: str
) -> None:
    _world, archive = synced
    victim = chunks(archive)[0]
    damaged = flip_byte(archive.root / victim)
    (archive.root / linked).parent.mkdir(parents=True, exist_ok=True)
    (archive.root / linked).symlink_to(outside)
    code, report = verify_json(archive, "--repair")
    assert code == 1
    problem = problems_by_path(report)[victim]
    assert problem["repair"] == "failed" and f"{linked} is a symlink" in problem["repair_detail"]
    assert (archive.root / victim).read_bytes() == damaged  # the evidence stays where it was
    assert snapshot(outside) == {}


def test_archive_root_may_itself_be_a_symlink(
    synced: tuple[World, Archive], tmp_path: Path
) -> None:
    """/srv/archive -> /mnt/disk3 is a normal setup: resolved once, then checked below."""
    world, archive = synced
    victim = chunks(archive)[0]
    flip_byte(archive.root / victim)
    link = tmp_path / "archive-link"
    link.symlink_to(archive.root)
    result = archive.run("--root", str(link), "--json", "verify", "--repair")
    assert result.exit_code == 0, result.output
    assert archive.tree() == v2_tree(world)
    assert archive.run("--root", str(link), "verify").exit_code == 0


# --- recorded paths that leave the root ----------------------------------------------------------


def test_recorded_paths_that_leave_the_root_are_never_opened_nor_repaired(
    synced: tuple[World, Archive], outside: Path
) -> None:
    world, archive = synced
    copied, overwritten, absolute, damaged = chunks(archive)[:4]
    # An identical copy (reading it would stamp the row verified) and a precious file (a
    # repair through the path would overwrite it and move it aside next to it).
    (outside / "copy").write_bytes((archive.root / copied).read_bytes())
    (outside / "victim").write_bytes(b"precious")
    (outside / "abs").write_bytes((archive.root / absolute).read_bytes())
    hostile = {
        copied: "../outside/copy",
        overwritten: "v2/../../outside/victim",
        absolute: str(outside / "abs"),
    }
    for path, recorded in hostile.items():
        archive.db_rows("UPDATE objects SET path = ? WHERE path = ?", recorded, path)
    flip_byte(archive.root / damaged)
    before = snapshot(outside)

    code, report = verify_json(archive)
    assert code == 1
    problems = problems_by_path(report)
    assert set(problems) == {*hostile.values(), damaged}
    for recorded in hostile.values():
        assert problems[recorded]["state"] == "corrupt"
        assert repr(recorded) in problems[recorded]["detail"]
        assert problems[recorded]["detail"].endswith("; not opened")
        assert state_of(archive, recorded) == "corrupt"

    code, report = verify_json(archive, "--repair")
    assert code == 1
    problems = problems_by_path(report)
    assert problems[damaged]["repair"] == "repaired"
    for recorded in hostile.values():
        problem = problems[recorded]
        assert problem["repair"] == "failed" and problem["quarantined_to"] is None
        assert problem["repair_detail"].startswith(f"not written: recorded path {recorded!r}")
    assert snapshot(outside) == before
    assert not (archive.root / "outside").exists()
    quarantined = [str(p.relative_to(archive.root)) for p in archive.root.rglob("quarantine/**/*")]
    assert [p for p in quarantined if (archive.root / p).is_file()] == [
        problems[damaged]["quarantined_to"]
    ]
    assert archive.tree() == v2_tree(world)  # the files the rows named before, untouched


def test_recorded_path_outside_the_tree_is_never_repaired(synced: tuple[World, Archive]) -> None:
    """A row naming the state DB itself: repairing it would move the DB aside and overwrite it."""
    _world, archive = synced
    victim = chunks(archive)[0]
    archive.db_rows("UPDATE objects SET path = 'archive.db' WHERE path = ?", victim)
    code, report = verify_json(archive, "--repair")
    assert code == 1
    problem = problems_by_path(report)["archive.db"]
    assert problem["state"] == "corrupt" and problem["repair"] == "failed"
    assert "is not below v1 or v2" in problem["repair_detail"]
    assert problem["quarantined_to"] is None and not (archive.root / "quarantine").exists()
    assert state_of(archive, "archive.db") == "corrupt"  # the DB is where it was, and works


# --- a damaged place: a file where a directory should be --------------------------------------


def test_directory_replaced_by_a_file_fails_its_objects_only(
    synced: tuple[World, Archive],
) -> None:
    world, archive = synced
    blocked, corrupt, deleted = chunks(archive)[:3]
    directory = blocked.rsplit("/", 1)[0]  # v2/store/ab/cd
    lost = under(archive, directory)
    shutil.rmtree(archive.root / directory)
    (archive.root / directory).write_bytes(b"junk")
    flip_byte(archive.root / corrupt)
    (archive.root / deleted).unlink()

    code, report = verify_json(archive)
    assert code == 1
    problems = problems_by_path(report)
    for path in lost:
        assert problems[path]["detail"] == f"{directory} is not a directory; not followed"
    assert directory in report["unknown_files"]

    result = archive.run("--json", "verify", "--repair")
    assert result.exit_code == 1, (result.output, result.exception)  # no traceback, not 2
    report = json.loads(result.stdout)
    problems = problems_by_path(report)
    assert problems[corrupt]["repair"] == "repaired" and problems[deleted]["repair"] == "repaired"
    expected = v2_tree(world)
    assert (archive.root / corrupt).read_bytes() == expected[corrupt]
    assert (archive.root / deleted).read_bytes() == expected[deleted]
    for path in lost:
        assert problems[path]["repair"] == "failed"
        assert (
            problems[path]["repair_detail"]
            == f"{path}: not written: {directory} is not a directory"
        )
    assert (archive.root / directory).read_bytes() == b"junk"  # not ours to delete
    assert last_verify_exit(archive) == 1


def test_any_os_error_on_the_way_is_a_problem_for_that_object(
    synced: tuple[World, Archive],
) -> None:
    """A directory name the file system refuses (ENAMETOOLONG) stands for any OSError."""
    world, archive = synced
    refused, corrupt = chunks(archive)[:2]
    long_path = f"v2/store/{'x' * 300}/{refused.rsplit('/', 1)[1]}"
    archive.db_rows("UPDATE objects SET path = ? WHERE path = ?", long_path, refused)
    flip_byte(archive.root / corrupt)
    code, report = verify_json(archive)
    problem = problems_by_path(report)[long_path]
    assert code == 1 and problem["detail"] == "cannot stat its directory (File name too long)"
    code, report = verify_json(archive, "--repair")
    problems = problems_by_path(report)
    assert code == 1 and problems[corrupt]["repair"] == "repaired"
    assert problems[long_path]["repair"] == "failed"
    assert (
        "cannot create its directory (File name too long)" in problems[long_path]["repair_detail"]
    )
    assert (archive.root / corrupt).read_bytes() == v2_tree(world)[corrupt]


def permissions_are_enforced(directory: Path) -> bool:
    """False for root (with CAP_DAC_OVERRIDE), who writes through any permission bits."""
    probe = directory / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "file").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
    return False


def test_unwritable_directory_fails_its_objects_only(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if rerun_unprivileged(request):  # root writes through any permission
        return
    assert permissions_are_enforced(tmp_path)
    world, archive = request.getfixturevalue("synced")  # synced as the user that repairs
    locked, deleted = chunks(archive)[:2]
    directory = archive.root / locked.rsplit("/", 1)[0]
    (archive.root / locked).unlink()
    (archive.root / deleted).unlink()
    directory.chmod(0o500)
    try:
        code, report = verify_json(archive, "--repair")
    finally:
        directory.chmod(0o755)
    problems = problems_by_path(report)
    assert code == 1 and problems[deleted]["repair"] == "repaired"
    assert problems[locked]["repair"] == "failed"
    assert "Permission denied" in problems[locked]["repair_detail"]
    assert (archive.root / deleted).read_bytes() == v2_tree(world)[deleted]


# --- V1 blobs, written by ranges into a partial file --------------------------------------------


@pytest.fixture
def v1_synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> tuple[World, V1Build, Archive]:
    world = World(seed=22)
    world.add_v1_build(
        PID,
        files={"bin\\game.exe": random_bytes(120_000, 1), "data\\a.dat": random_bytes(90_000, 2)},
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(50_000, 3)}},
    )
    world.owned.add(int(PID))
    archive = make_archive(serve(world))
    archive.write_config(sync={"v1_range_size": 64 * 1024})
    assert archive.run("sync", PID, "--generation", "1").exit_code == 0
    build = world.builds[0]
    assert isinstance(build, V1Build)
    return world, build, archive


def test_v1_blob_repair_never_writes_through_a_symlinked_partial_file(
    v1_synced: tuple[World, V1Build, Archive], outside: Path
) -> None:
    world, build, archive = v1_synced
    blob = f"v1/depots/{build.manifest_dir(PID)}/main.bin"
    dlc_blob = f"v1/depots/{build.manifest_dir(DLC)}/main.bin"
    expected = world.expected_tree(
        generations=(1,), include_patches=False, include_dependencies=False
    )
    flip_byte(archive.root / blob, 1000)
    (outside / "precious").write_bytes(b"precious")
    (archive.root / blob).with_name(".main.bin.galaxy-partial").symlink_to(outside / "precious")
    shutil.copyfile(archive.root / dlc_blob, outside / "dlc-copy")
    (archive.root / dlc_blob).unlink()
    (archive.root / dlc_blob).symlink_to(outside / "dlc-copy")
    before = snapshot(outside)

    code, report = verify_json(archive, "--repair")
    assert code == 1
    problems = problems_by_path(report)
    assert problems[dlc_blob]["detail"] == "is a symlink; not followed"
    assert problems[dlc_blob]["repair"] == "repaired"
    assert (archive.root / dlc_blob).read_bytes() == expected[dlc_blob]
    assert not (archive.root / dlc_blob).is_symlink()
    assert problems[blob]["repair"] == "failed" and problems[blob]["quarantined_to"] is None
    assert problems[blob]["repair_detail"] == (
        f"{blob}: not written: .main.bin.galaxy-partial is a symlink"
    )
    assert snapshot(outside) == before


# --- sync writes the same way -----------------------------------------------------------------


def test_sync_never_writes_through_a_symlinked_directory(
    synced: tuple[World, Archive], outside: Path
) -> None:
    _world, archive = synced
    victim = chunks(archive)[0]
    directory = fan_out(victim)
    (archive.root / victim).unlink()
    archive.db_rows("UPDATE objects SET state = 'missing' WHERE path = ?", victim)
    shutil.move(archive.root / directory, outside / "moved")
    (archive.root / directory).symlink_to(outside / "moved")
    before = snapshot(outside)
    result = archive.run("sync", PID, "--generation", "2")
    # That object fails (PathRefused); the run goes on and ends with exit 1.
    assert result.exit_code == 1, result.output
    assert f"{victim}: not written: {directory} is a symlink" in result.output
    assert snapshot(outside) == before


def test_sync_never_reads_a_manifest_through_a_symlinked_directory(
    synced: tuple[World, Archive], outside: Path
) -> None:
    """A stored manifest is read back through the store: behind a symlink it is a problem of
    its build, named, and the bytes the link points at (here: the same, moved) are not read."""
    _world, archive = synced
    ((manifest,),) = archive.db_rows(
        "SELECT o.path FROM builds b JOIN objects o ON o.id = b.repository_object_id LIMIT 1"
    )
    directory = fan_out(manifest)
    shutil.move(archive.root / directory, outside / "moved")
    (archive.root / directory).symlink_to(outside / "moved")
    before = snapshot(outside)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == 1, result.output
    assert f"{manifest}: not read: {directory} is a symlink" in result.output
    assert snapshot(outside) == before
