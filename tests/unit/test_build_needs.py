"""The views of migration 0009 (build_needs, patch_needs, dependency_needs) over a small world
written with the tables of migrations 0001-0008, and the states read from them."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from galaxy_archive.browse.status import collect_status
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import BuildState, ObjectState
from galaxy_archive.state.db import NewObject, StateDB, apply_migrations, open_db
from galaxy_archive.state.dependency_records import DependencyRecords
from galaxy_archive.state.needs import (
    pending_depot_objects,
    unverified_patch_objects,
    update_build_states,
    update_v1_build_states,
)

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
P, DLC = "1", "2"
# Objects of the world, by a short name: (kind, name).
OBJECTS = {
    "repo2": ObjectKind.META, "base": ObjectKind.META, "dlc": ObjectKind.META,
    "offline": ObjectKind.META, "c1": ObjectKind.STORE, "c2": ObjectKind.STORE,
    "sfc": ObjectKind.STORE, "member": ObjectKind.STORE, "c_off": ObjectKind.OFFLINE,
    "repo1": ObjectKind.V1_MANIFEST, "v1depot": ObjectKind.V1_MANIFEST, "blob": ObjectKind.V1_BLOB,
    "proot": ObjectKind.PATCH_META, "pdepot": ObjectKind.PATCH_META,
    "delta": ObjectKind.PATCH_STORE, "ddepot": ObjectKind.DEP_META,
    "dchunk": ObjectKind.DEP_STORE, "dmember": ObjectKind.DEP_STORE,
}  # fmt: skip


def _build(conn: sqlite3.Connection, build_id: str, generation: int, repository: int) -> None:
    conn.execute(
        "INSERT INTO builds (product_id, build_id, os, generation, item, first_seen, last_seen, "
        "repository_object_id) VALUES (?, ?, 'windows', ?, '{}', 't', 't', ?)",
        (P, build_id, generation, repository),
    )


def write_world(db: StateDB) -> dict[str, int]:
    """A V2 build (base depot with an SFC and a member chunk, a DLC depot sharing a chunk, an
    offline depot), a V1 build (one depot, one blob), a patch into the V2 build and an
    archived dependency. Only tables of migrations 0001-0008. Returns name -> object id."""
    news = [NewObject(kind, f"o/{name}", name.ljust(32, "0")) for name, kind in OBJECTS.items()]
    by_path = db.ensure_objects(news, 0.0)
    ids = {name: by_path[f"o/{name}"] for name in OBJECTS}
    conn = db.conn
    db.touch_product(P, 0.0)
    _build(conn, "v2", 2, ids["repo2"])
    for manifest, product, offline in (("base", P, 0), ("dlc", DLC, 0), ("offline", P, 1)):
        conn.execute(
            "INSERT INTO build_depots (product_id, build_id, manifest_object_id, "
            "depot_product_id, languages, is_offline) VALUES (?, 'v2', ?, ?, '[]', ?)",
            (P, ids[manifest], product, offline),
        )
    references = [("base", "c1", "chunk"), ("base", "sfc", "sfc"), ("base", "member", "sfc_member"),
                  ("dlc", "c1", "chunk"), ("dlc", "c2", "chunk"), ("offline", "c_off", "chunk"),
                  ("pdepot", "delta", "chunk"), ("ddepot", "dchunk", "chunk"),
                  ("ddepot", "dmember", "sfc_member")]  # fmt: skip
    conn.executemany(
        "INSERT INTO manifest_objects (manifest_object_id, object_id, role) VALUES (?, ?, ?)",
        [(ids[m], ids[o], role) for m, o, role in references],
    )
    _build(conn, "v1", 1, ids["repo1"])
    conn.execute(
        "INSERT INTO v1_depots (product_id, build_id, manifest_object_id, depot_product_ids, "
        "languages, systems) VALUES (?, 'v1', ?, '[\"1\"]', '[]', '[]')",
        (P, ids["v1depot"]),
    )
    conn.executemany(  # two files in one blob: the blob is needed once
        'INSERT INTO v1_extents (blob_object_id, manifest_object_id, path, "offset", size, md5) '
        "VALUES (?, ?, ?, ?, 1, 'x')",
        [(ids["blob"], ids["v1depot"], name, offset) for offset, name in enumerate("ab")],
    )
    conn.execute(
        "INSERT INTO patches (product_id, from_build_id, to_build_id, os, outcome, asked_at, "
        "root_object_id) VALUES (?, 'v0', 'v2', 'windows', 'patch', 't', ?)",
        (P, ids["proot"]),
    )
    conn.execute(
        "INSERT INTO patch_depots (product_id, from_build_id, to_build_id, manifest_object_id, "
        "depot_product_id, languages) VALUES (?, 'v0', 'v2', ?, ?, '[]')",
        (P, ids["pdepot"], P),
    )
    conn.execute(
        "INSERT INTO dependency_repositories (id, build_id, manifest_md5, manifest_object_id, "
        "first_seen, last_seen) VALUES (1, 'r', 'm', ?, 't', 't')",
        (ids["repo2"],),
    )
    conn.execute(
        "INSERT INTO dependency_depots (repository_id, dependency_id, manifest_md5, "
        "manifest_object_id, languages, item, state) VALUES (1, 'DX', 'm', ?, '[]', '{}', "
        "'pending')",
        (ids["ddepot"],),
    )
    conn.commit()
    return ids


@pytest.fixture
def world(tmp_path: Path) -> tuple[StateDB, dict[str, int]]:
    db = open_db(tmp_path / "s.db", now=0.0, migrations_dir=REPO_MIGRATIONS)
    return db, write_world(db)


def _names(ids: dict[str, int]) -> dict[int, str]:
    return {object_id: name for name, object_id in ids.items()}


def test_build_needs_lists_every_object_of_v1_and_v2_builds(world) -> None:
    db, ids = world
    name = _names(ids)
    rows = {
        (build, name[obj], role, is_required, depot_product)
        for build, obj, role, is_required, depot_product in db.conn.execute(
            "SELECT build_id, object_id, role, is_required, depot_product_id FROM build_needs"
        )
    }
    assert rows == {
        ("v2", "repo2", "repository", 1, P),
        ("v2", "base", "depot_manifest", 1, P),
        ("v2", "dlc", "depot_manifest", 1, DLC),
        ("v2", "offline", "depot_manifest", 1, P),
        ("v2", "c1", "chunk", 1, P),
        ("v2", "c1", "chunk", 1, DLC),  # in both depots: fetched under either product
        ("v2", "c2", "chunk", 1, DLC),
        ("v2", "sfc", "sfc", 1, P),
        ("v2", "member", "sfc_member", 0, P),  # optional
        ("v2", "c_off", "chunk", 1, P),
        ("v1", "repo1", "repository", 1, P),
        ("v1", "v1depot", "v1_depot_manifest", 1, None),
        ("v1", "blob", "v1_blob", 1, None),
    }
    v1_rows = db.conn.execute("SELECT count(*) FROM build_needs WHERE role = 'v1_blob'")
    assert v1_rows.fetchone()[0] == 1  # two file records, one row


def test_patch_and_dependency_needs_list_their_own_objects(world) -> None:
    db, ids = world
    name = _names(ids)
    patch = {
        (name[obj], role, required)
        for obj, role, required in db.conn.execute(
            "SELECT object_id, role, is_required FROM patch_needs "
            "WHERE product_id = ? AND from_build_id = 'v0' AND to_build_id = 'v2'",
            (P,),
        )
    }
    assert patch == {
        ("proot", "patch_root", 1),
        ("pdepot", "depot_manifest", 1),
        ("delta", "chunk", 1),
    }
    dependency = {
        (name[obj], role, required)
        for obj, role, required in db.conn.execute(
            "SELECT object_id, role, is_required FROM dependency_needs "
            "WHERE manifest_object_id = ?",
            (ids["ddepot"],),
        )
    }
    assert dependency == {
        ("ddepot", "depot_manifest", 1),
        ("dchunk", "chunk", 1),
        ("dmember", "sfc_member", 0),
    }


def _verify(db: StateDB, ids: dict[str, int], *names: str) -> None:
    for name in names:
        db.mark_verified(ids[name], size=1, now=1.0)


def _state(db: StateDB, build_id: str) -> str:
    return str(
        db.conn.execute(
            "SELECT state FROM builds WHERE product_id = ? AND build_id = ?", (P, build_id)
        ).fetchone()[0]
    )


def test_v2_build_is_complete_without_its_optional_member_chunk(world) -> None:
    db, ids = world
    _verify(db, ids, "repo2", "base", "dlc", "offline", "c1", "c2", "sfc")
    update_build_states(db, P, ["v2"], 2.0)
    assert _state(db, "v2") == BuildState.INCOMPLETE  # the offline depot's chunk is missing
    _verify(db, ids, "c_off")
    update_build_states(db, P, ["v2"], 3.0)
    assert _state(db, "v2") == BuildState.COMPLETE
    status = collect_status(db, [P])["products"][0]["builds"]
    counts = {b["build_id"]: (b["objects_verified"], b["objects_needed"]) for b in status}
    assert counts == {"v2": (8, 8), "v1": (0, 3)}  # the member chunk is not counted


def test_v1_build_needs_its_manifests_recorded(world) -> None:
    db, ids = world
    _verify(db, ids, "repo1", "v1depot", "blob")
    update_v1_build_states(db, P, ["v1"], 2.0)
    assert _state(db, "v1") == BuildState.INCOMPLETE  # verified, but never indexed
    db.conn.executemany(
        "INSERT INTO indexed_manifests (object_id, indexed_at) VALUES (?, 't')",
        [(ids["repo1"],), (ids["v1depot"],)],
    )
    update_v1_build_states(db, P, ["v1"], 3.0)
    assert _state(db, "v1") == BuildState.COMPLETE


def test_build_without_a_known_repository_is_not_complete(world) -> None:
    db, ids = world
    _verify(db, ids, *[n for n in ids if n != "repo2"])
    db.conn.execute("UPDATE builds SET repository_object_id = NULL WHERE build_id = 'v2'")
    update_build_states(db, P, ["v2"], 2.0)
    assert _state(db, "v2") == BuildState.INCOMPLETE


def test_pending_chunks_skip_a_member_chunk_absent_upstream(world) -> None:
    db, ids = world
    _verify(db, ids, "c2")
    pending = {
        row.path[2:]: (role, products)
        for row, role, products in pending_depot_objects(db, P, ["v2"])
    }
    assert pending == {
        "c1": ("chunk", (P, DLC)),
        "sfc": ("sfc", (P,)),
        "member": ("sfc_member", (P,)),
        "c_off": ("chunk", (P,)),
    }
    db.mark_problem(ids["member"], state=ObjectState.ABSENT_UPSTREAM, error="404", now=1.0)
    assert "o/member" not in {row.path for row, _, _ in pending_depot_objects(db, P, ["v2"])}


def test_patch_and_dependency_states_follow_their_views(world) -> None:
    db, ids = world
    _verify(db, ids, "proot", "pdepot")
    assert unverified_patch_objects(db, P, "v0", "v2") == 1  # the delta chunk
    _verify(db, ids, "delta")
    assert unverified_patch_objects(db, P, "v0", "v2") == 0
    db.conn.execute(
        "INSERT INTO indexed_manifests (object_id, indexed_at) VALUES (?, 't')", (ids["ddepot"],)
    )
    _verify(db, ids, "ddepot", "dchunk")
    assert DependencyRecords(db).update_states(2.0) == 1  # the member chunk is optional


def test_an_archive_of_schema_0008_keeps_working_after_0009(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for sql in sorted(REPO_MIGRATIONS.glob("*.sql")):
        if sql.name < "0009":
            shutil.copy(sql, old / sql.name)
    db = open_db(tmp_path / "s.db", now=0.0, migrations_dir=old)
    ids = write_world(db)
    _verify(db, ids, *ids)
    db.conn.commit()
    db.close()
    assert apply_migrations(sqlite3.connect(tmp_path / "s.db"), REPO_MIGRATIONS, 1.0) == [
        "0009_build_needs.sql"
    ]
    db = open_db(tmp_path / "s.db", now=2.0, migrations_dir=REPO_MIGRATIONS)
    update_build_states(db, P, ["v2"], 3.0)
    assert _state(db, "v2") == BuildState.COMPLETE
    needed = db.conn.execute("SELECT count(DISTINCT object_id) FROM build_needs").fetchone()[0]
    assert needed == 12  # c1 is listed under two depots, and counted once
