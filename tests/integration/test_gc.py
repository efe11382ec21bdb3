"""`gc` over an archive synced from the fake server: it deletes only what nothing recorded
needs (a chunk shared with another build stays), stray files, and old quarantine on request;
--dry-run and the 1 % valve delete nothing; a kill in the middle leaves `verify` clean."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.storage.local import ArchiveStore
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes
from tests.integration.test_s3_backend import bucket_tree, use_s3
from tests.integration.test_user_output import on_a_terminal
from tests.integration.test_user_output import read_only_view as read_only_view  # fixture
from tests.s3_server import S3Server

PID = "1207658930"
SHARED = random_bytes(300_000, 1)


def gc_world() -> World:
    world = World(seed=21)
    world.add_v2_build(
        PID,
        files={"shared.pak": SHARED, "old.pak": random_bytes(300_000, 2)},
        chunk_size=256 * 1024,
        version_name="1.0",
    )
    world.add_v2_build(
        PID,
        files={"shared.pak": SHARED, "new.pak": random_bytes(300_000, 3)},
        chunk_size=256 * 1024,
        version_name="1.1",
    )
    world.owned.add(int(PID))
    return world


@pytest.fixture
def archive(serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]) -> Archive:
    archive = make_archive(serve(gc_world()))
    result = archive.run("sync", PID, "--generation", "2", "--no-patches")
    assert result.exit_code == 0, result.output
    return archive


def forget_build(archive: Archive, version: str) -> set[str]:
    """Remove the build's rows by hand (as the issue says); return the paths of its objects
    no other build needs."""
    (build_id,) = archive.db_rows(
        "SELECT build_id FROM builds WHERE product_id = ? AND version_name = ?", PID, version
    )[0]

    def paths(where: str) -> set[str]:
        rows = archive.db_rows(
            "SELECT DISTINCT o.path FROM build_needs n JOIN objects o ON o.id = n.object_id "
            f"WHERE {where}",
            PID,
            build_id,
        )
        return {path for (path,) in rows}

    own = paths("n.product_id = ? AND n.build_id = ?")
    others = paths("NOT (n.product_id = ? AND n.build_id = ?)")
    for table in ("build_depots", "builds"):
        archive.db_rows(f"DELETE FROM {table} WHERE product_id = ? AND build_id = ?", PID, build_id)
    assert own & others, "the world must share a chunk between the builds"
    return own - others


def gc_json(archive: Archive, *args: str) -> tuple[int, dict[str, object]]:
    result = archive.run("gc", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_gc_on_a_clean_archive_deletes_nothing(archive: Archive) -> None:
    before = archive.tree()
    result = archive.run("gc")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "gc: deleted 0 objects and 0 other files, 0 bytes"
    assert archive.tree() == before


def test_gc_deletes_only_the_forgotten_builds_unshared_objects(archive: Archive) -> None:
    before = archive.tree()
    unshared = forget_build(archive, "1.0")
    code, report = gc_json(archive, "--max-delete", "100")
    assert code == 0, report
    after = archive.tree()
    assert set(before) - set(after) == unshared
    assert report["deleted_objects"] == len(unshared)
    assert report["deleted_bytes"] == sum(len(before[path]) for path in unshared)
    recorded = {path for (path,) in archive.db_rows("SELECT path FROM objects")}
    assert not recorded & unshared
    verified = archive.run("verify", "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["missing"] == 0 and report["unknown_files"] == [], report


def test_dry_run_lists_exact_objects_and_bytes_and_deletes_nothing(archive: Archive) -> None:
    before = archive.tree()
    unshared = forget_build(archive, "1.0")
    result = archive.run("gc", "--dry-run", "--max-delete", "100")
    assert result.exit_code == 0, result.output
    listed = {
        line.split()[2]: int(line.split()[0])
        for line in result.stdout.splitlines()
        if line.split()[1:2] == ["unneeded"]
    }
    assert listed == {path: len(before[path]) for path in unshared}
    assert archive.tree() == before


def test_the_one_percent_valve_stops_and_max_delete_lets_it_go(archive: Archive) -> None:
    before = archive.tree()
    unshared = forget_build(archive, "1.0")
    result = archive.run("gc")
    assert result.exit_code == 2
    assert f"then run gc --max-delete {len(unshared)}" in result.stdout
    assert archive.tree() == before
    result = archive.run("gc", "--dry-run")  # lists the plan all the same, and says why
    assert result.exit_code == 0, result.output
    assert "a run would refuse" in result.stdout.splitlines()[-1]
    assert archive.tree() == before
    result = archive.run("gc", "--max-delete", str(len(unshared) - 1))
    assert result.exit_code == 2
    assert archive.tree() == before
    result = archive.run("gc", "--max-delete", str(len(unshared)))
    assert result.exit_code == 0, result.output
    assert set(before) - set(archive.tree()) == unshared


def test_stray_temp_and_unknown_files_go_quarantine_stays(archive: Archive) -> None:
    before = archive.tree()
    some_dir = archive.root / sorted(before)[0]
    unknown = some_dir.parent / "not-an-object"
    temp = some_dir.parent / "abc.galaxy-tmp"
    unknown.write_bytes(b"x" * 10)
    temp.write_bytes(b"y" * 5)
    quarantined = archive.root / "quarantine" / f"{sorted(before)[0]}.20200101T000000Z"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_bytes(b"evidence")
    code, report = gc_json(archive)
    assert code == 0, report
    assert {(d["path"], d["why"]) for d in report["planned"]} == {  # type: ignore[attr-defined]
        (unknown.relative_to(archive.root).as_posix(), "unknown"),
        (temp.relative_to(archive.root).as_posix(), "temp"),
    }
    assert report["deleted_files"] == 2 and report["deleted_bytes"] == 15
    assert archive.tree() == before
    assert quarantined.exists()
    code, report = gc_json(archive, "--quarantine-older-than", "90d")
    assert code == 0 and report["deleted_files"] == 1, report
    assert not quarantined.exists()


def test_a_partial_file_goes_unless_a_recorded_blob_resumes_it(archive: Archive) -> None:
    before = archive.tree()
    blob = sorted(before)[-1]
    directory, _, name = blob.rpartition("/")
    resumable = archive.root / directory / f".{name}.galaxy-partial"
    orphan = archive.root / directory / ".no-such-blob.galaxy-partial"
    resumable.write_bytes(b"half")
    orphan.write_bytes(b"orphan")
    archive.db_rows("UPDATE objects SET state = 'missing' WHERE path = ?", blob)  # to resume
    code, report = gc_json(archive)
    assert code == 0, report
    assert [d["why"] for d in report["planned"]] == ["partial"]  # type: ignore[attr-defined]
    assert resumable.exists() and not orphan.exists()


def test_recent_quarantine_stays_with_quarantine_older_than(archive: Archive) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    recent = archive.root / "quarantine" / f"v2/x.{stamp}"
    recent.parent.mkdir(parents=True)
    recent.write_bytes(b"evidence")
    code, report = gc_json(archive, "--quarantine-older-than", "90d")
    assert code == 0 and report["deleted_files"] == 0, report
    assert recent.exists()


class Killed(BaseException):
    """Stands for SIGKILL: nothing of gc runs after it but the run record's bookkeeping."""


def test_a_kill_in_the_middle_leaves_verify_clean(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    unshared = forget_build(archive, "1.0")
    real_delete = ArchiveStore.delete

    def delete_once_then_die(self: ArchiveStore, relative: str) -> None:
        real_delete(self, relative)
        raise Killed

    monkeypatch.setattr(ArchiveStore, "delete", delete_once_then_die)
    with pytest.raises(Killed):
        archive.run("gc", "--max-delete", "100")
    monkeypatch.undo()
    gone = [path for path in unshared if not (archive.root / path).exists()]
    assert len(gone) == 1  # killed between a file's deletion and its row's
    assert archive.db_rows("SELECT state FROM objects WHERE path = ?", gone[0]) == [("missing",)]
    verified = archive.run("verify", "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["missing"] == 0 and report["unknown_files"] == [], report
    result = archive.run("gc", "--max-delete", "100")
    assert result.exit_code == 0, result.output
    assert not any((archive.root / p).exists() for p in unshared)
    assert not archive.db_rows("SELECT path FROM objects WHERE state = 'missing'")
    assert archive.run("verify").exit_code == 0


def test_gc_on_a_read_only_archive_is_a_clear_error(
    archive: Archive, read_only_view: Callable[[Path], Path]
) -> None:
    forget_build(archive, "1.0")
    root = read_only_view(archive.root)
    result = archive.run_process("--root", str(root), "gc", "--max-delete", "100")
    assert result.returncode == 1, result.stderr  # a StorageError, as for sync
    assert "Traceback" not in result.stderr
    assert "lock" in result.stderr and "Read-only" in result.stderr, result.stderr
    assert result.stdout == ""


def test_gc_on_the_s3_backend_deletes_through_the_store(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], s3_env: S3Server
) -> None:
    archive = make_archive(serve(gc_world()))
    use_s3(archive, s3_env, "it/gc")
    result = archive.run("sync", PID, "--generation", "2", "--no-patches")
    assert result.exit_code == 0, result.output
    before = bucket_tree(s3_env, "it/gc")
    unshared = forget_build(archive, "1.0")
    # A key nothing recorded, put in the bucket by someone else (through the S3 API).
    App(config=load(archive.config_path)).store().write_verified(
        "v2/stray-key", [b"zz"], expected_md5=None, expected_size=2
    )
    stray = s3_env.bucket_dir / "it/gc/v2/stray-key"
    assert stray.exists()
    code, report = gc_json(archive, "--max-delete", "100")
    assert code == 0, report
    assert report["deleted_objects"] == len(unshared) and report["deleted_files"] == 1, report
    assert set(before) - set(bucket_tree(s3_env, "it/gc")) == unshared
    assert not stray.exists()
    verified = archive.run("verify", "--json")
    assert verified.exit_code == 0, verified.output


def test_on_a_terminal_the_summary_is_shown_once(archive: Archive) -> None:
    (archive.root / "v2" / "stray").write_bytes(b"s")
    shown = on_a_terminal(archive, "gc")
    assert shown.returncode == 0, shown.stdout
    assert shown.stdout.count("gc: deleted 0 objects and 1 other files, 1 bytes") == 1, shown.stdout
    assert "Traceback" not in shown.stdout
