import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from galaxy_archive.errors import StorageError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.state.db import NewObject, apply_migrations, default_migrations_dir, open_db

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def test_statedb_applies_migrations_once_in_order(tmp_path: Path) -> None:
    db = sqlite_utils.Database(tmp_path / "a.db")
    applied = apply_migrations(db.conn, REPO_MIGRATIONS, 0.0)
    assert applied == sorted(p.name for p in REPO_MIGRATIONS.glob("*.sql"))
    assert apply_migrations(db.conn, REPO_MIGRATIONS, 1.0) == []
    assert "objects" in db.table_names()


def test_statedb_failed_migration_leaves_no_trace(tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0001_ok.sql").write_text("CREATE TABLE a (x);")
    (migrations / "0002_bad.sql").write_text("CREATE TABLE b (x); INSERT INTO nowhere VALUES (1);")
    db = sqlite_utils.Database(tmp_path / "a.db")
    with pytest.raises(StorageError, match=r"0002_bad\.sql"):
        apply_migrations(db.conn, migrations, 0.0)
    assert db.table_names() == ["_migrations", "a"]  # b rolled back with its record
    names = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert names == ["0001_ok.sql"]


def test_statedb_rejects_badly_named_migrations(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(StorageError, match="invalid names"):
        apply_migrations(sqlite3.connect(":memory:"), tmp_path, 0.0)


def test_statedb_default_migrations_dir_is_found() -> None:
    assert (default_migrations_dir() / "0001_initial.sql").is_file()


def test_statedb_objects_upsert_by_path_and_state_check(tmp_path: Path) -> None:
    state = open_db(tmp_path / "s.db", now=0.0, migrations_dir=REPO_MIGRATIONS)
    obj = NewObject(ObjectKind.STORE, "v2/store/aa/bb/" + "a" * 32, "a" * 32, 10)
    first = state.ensure_objects([obj], 0.0)
    again = state.ensure_objects([obj, obj], 5.0)
    assert first == again
    object_id = first[obj.path]
    state.mark_verified(object_id, size=10, now=1.0, endpoint="fastly")
    row = state.object_by_path(obj.path)
    assert row is not None and row.state == "verified"
    with pytest.raises(sqlite3.IntegrityError):
        state.mark_problem(object_id, state="weird", error="x", now=2.0)
    state.close()


def test_statedb_depot_product_links_survive_a_kill_between_phases(tmp_path: Path) -> None:
    state = open_db(tmp_path / "s.db", now=0.0, migrations_dir=REPO_MIGRATIONS)
    manifest = NewObject(ObjectKind.META, "v2/meta/aa/aa/" + "a" * 32, "a" * 32)
    chunk = NewObject(ObjectKind.STORE, "v2/store/bb/bb/" + "b" * 32, "b" * 32, 5)
    ids = state.ensure_objects([manifest, chunk], 0.0)
    depot = {
        "product_id": "2",
        "languages": ["*"],
        "size": 5,
        "compressed_size": 5,
        "is_offline": False,
        "is_gog_depot": False,
    }
    state.record_build_depot("1", "100", ids[manifest.path], depot)
    state.conn.commit()  # ... and the run is killed before the manifest is indexed
    state.link_depot_products("1")
    assert state.conn.execute("SELECT count(*) FROM object_products").fetchone()[0] == 0
    state.index_manifest(ids[manifest.path], [(ids[chunk.path], "chunk")], [], 1.0)
    state.link_depot_products("1")  # the next run
    assert state.conn.execute("SELECT object_id, product_id FROM object_products").fetchall() == [
        (ids[chunk.path], "2")
    ]
    state.close()


def test_statedb_start_run_closes_only_dead_runs(tmp_path: Path) -> None:
    state = open_db(tmp_path / "s.db", now=0.0, migrations_dir=REPO_MIGRATIONS)
    alive_run, crashed = state.start_run("verify", 111, 0.0, is_alive=lambda pid: True)
    assert not crashed
    dead_run, _ = state.start_run("sync", 222, 1.0, is_alive=lambda pid: True)
    _, crashed = state.start_run("sync", 333, 2.0, is_alive=lambda pid: pid != 222)
    assert crashed
    ended = dict(state.conn.execute("SELECT id, exit_code FROM runs WHERE ended_at IS NOT NULL"))
    assert ended == {dead_run: -9}
    assert alive_run not in ended
    state.close()
