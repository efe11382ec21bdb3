"""What builds, patches and dependencies need, read from the views of migration 0009, and the
states that follow from it. The one place that says which objects make something complete.

build_needs(product_id, build_id, object_id, role, is_required, depot_manifest_id,
depot_product_id): every object a V1 or V2 build needs. role is 'repository',
'depot_manifest' (every V2 depot: DLC and offline depots included), 'chunk', 'sfc',
'sfc_member' (optional: is_required 0), 'v1_depot_manifest' or 'v1_blob'.
depot_manifest_id is the depot manifest it is needed through (NULL for the repository);
depot_product_id the product whose secure link serves a V2 object (NULL for V1).

patch_needs(product_id, from_build_id, to_build_id, object_id, role, is_required,
depot_manifest_id, depot_product_id): the root manifest ('patch_root'), the patch depot
manifests and their delta chunks; every one is required.

dependency_needs(manifest_object_id, object_id, role, is_required): an archived dependency
depot's manifest and its chunks ('sfc_member' ones optional).

A view may list an object twice for one owner: every query here counts DISTINCT object_id.
Only the thread that owns the DB calls these; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import ObjectRow, StateDB, object_row

_OBJECT_COLUMNS = "o.id, o.kind, o.path, o.md5, o.size, o.state, o.product_id"
# Needed objects that are not verified (or not recorded at all).
_UNVERIFIED = (
    "LEFT JOIN objects o ON o.id = n.object_id WHERE (o.id IS NULL OR o.state != :verified)"
)
_MANIFEST_ROLES = ("repository", "v1_depot_manifest")
_CHUNK_ROLES = "n.role IN ('chunk', 'sfc', 'sfc_member')"


def unverified_build_objects(db: StateDB, product_id: str, build_id: str) -> int:
    """Required objects of the build not verified, plus 1 when its repository is unknown."""
    missing: int = db.conn.execute(
        f"SELECT count(DISTINCT n.object_id) FROM build_needs n {_UNVERIFIED} "
        "AND n.product_id = :p AND n.build_id = :b AND n.is_required",
        {"p": product_id, "b": build_id, "verified": ObjectState.VERIFIED},
    ).fetchone()[0]
    no_repository = db.conn.execute(
        "SELECT count(*) FROM builds WHERE product_id = ? AND build_id = ? "
        "AND repository_object_id IS NULL",
        (product_id, build_id),
    ).fetchone()[0]
    return int(missing + no_repository)


def update_build_states(db: StateDB, product_id: str, build_ids: Sequence[str], now: float) -> None:
    """V2: complete = its repository, depot manifests and required chunks are all verified."""
    for build_id in build_ids:
        is_complete = unverified_build_objects(db, product_id, build_id) == 0
        db.set_build_complete(product_id, build_id, is_complete=is_complete, now=now)


def update_v1_build_states(
    db: StateDB, product_id: str, build_ids: Sequence[str], now: float
) -> None:
    """V1: complete = repository.json and every depot manifest verified and recorded, and every
    blob their file records point into verified."""
    for build_id in build_ids:
        unindexed = db.conn.execute(
            "SELECT count(*) FROM build_needs n "
            "LEFT JOIN indexed_manifests i ON i.object_id = n.object_id "
            f"WHERE n.product_id = ? AND n.build_id = ? AND n.role IN {_MANIFEST_ROLES} "
            "AND i.object_id IS NULL",
            (product_id, build_id),
        ).fetchone()[0]
        is_complete = unindexed == 0 and unverified_build_objects(db, product_id, build_id) == 0
        db.set_build_complete(product_id, build_id, is_complete=is_complete, now=now)


def pending_depot_objects(
    db: StateDB, product_id: str, build_ids: Sequence[str]
) -> list[tuple[ObjectRow, str, tuple[str, ...]]]:
    """Chunks the builds' V2 depots reference that are not verified: (row, role, products).

    A chunk in several depots is required if any of them needs it, and is fetched under
    each depot's product in turn (the CDN stores chunks per product, protocol.md 4.4).
    An SFC member chunk recorded as absent upstream is not asked for again: the CDN is
    allowed not to have it (protocol.md 4.3).
    """
    found: dict[int, tuple[ObjectRow, str, list[str]]] = {}
    for start in range(0, len(build_ids), 400):
        batch = list(build_ids[start : start + 400])
        marks = ",".join("?" * len(batch))
        rows = db.conn.execute(
            f"SELECT {_OBJECT_COLUMNS}, n.role, n.depot_product_id FROM build_needs n "
            "JOIN objects o ON o.id = n.object_id "
            f"WHERE n.product_id = ? AND n.build_id IN ({marks}) AND {_CHUNK_ROLES} "
            "AND o.state != ? AND NOT (n.role = 'sfc_member' AND o.state = ?)",
            [product_id, *batch, ObjectState.VERIFIED, ObjectState.ABSENT_UPSTREAM],
        ).fetchall()
        for row in rows:
            known = found.setdefault(row[0], (object_row(row[:7]), row[7], []))
            if known[1] == "sfc_member" and row[7] != "sfc_member":
                found[row[0]] = known = (known[0], row[7], known[2])
            if row[8] not in known[2]:
                known[2].append(row[8])
    return [(row, role, tuple(products)) for row, role, products in found.values()]


def build_completeness(db: StateDB, product_id: str) -> dict[str, tuple[int, int, int, int]]:
    """build id -> (objects needed, verified, bytes needed, bytes verified) over the required
    objects already recorded (an object of unknown size counts 0 bytes)."""
    rows = db.conn.execute(
        "SELECT n.build_id, count(*), coalesce(sum(o.state = :verified), 0), "
        "coalesce(sum(o.size), 0), "
        "coalesce(sum(CASE WHEN o.state = :verified THEN o.size END), 0) "
        "FROM (SELECT DISTINCT build_id, object_id FROM build_needs "
        "      WHERE product_id = :p AND is_required) n "
        "LEFT JOIN objects o ON o.id = n.object_id GROUP BY n.build_id",
        {"p": product_id, "verified": ObjectState.VERIFIED},
    )
    return {
        build_id: (needed, verified, size, done) for build_id, needed, verified, size, done in rows
    }


# --- patches -------------------------------------------------------------------------------


def unverified_patch_objects(db: StateDB, product_id: str, from_build: str, to_build: str) -> int:
    """Objects the pair's patch needs (root, depot manifests, chunks) not verified, plus 1
    when its root manifest is not known yet."""
    keys = {"p": product_id, "f": from_build, "t": to_build, "verified": ObjectState.VERIFIED}
    missing: int = db.conn.execute(
        f"SELECT count(DISTINCT n.object_id) FROM patch_needs n {_UNVERIFIED} "
        "AND n.product_id = :p AND n.from_build_id = :f AND n.to_build_id = :t",
        keys,
    ).fetchone()[0]
    no_root = db.conn.execute(
        "SELECT count(*) FROM patches WHERE product_id = :p AND from_build_id = :f "
        "AND to_build_id = :t AND root_object_id IS NULL",
        keys,
    ).fetchone()[0]
    return int(missing + no_root)


def pending_patch_chunks(
    db: StateDB, product_id: str, from_build: str, to_build: str
) -> list[tuple[ObjectRow, str]]:
    """Delta chunks of the pair's patch depots not verified: (row, depot product)."""
    return [
        (object_row(row[:7]), row[7])
        for row in db.conn.execute(
            f"SELECT {_OBJECT_COLUMNS}, n.depot_product_id FROM patch_needs n "
            "JOIN objects o ON o.id = n.object_id WHERE n.product_id = ? AND "
            f"n.from_build_id = ? AND n.to_build_id = ? AND {_CHUNK_ROLES} AND o.state != ?",
            (product_id, from_build, to_build, ObjectState.VERIFIED),
        )
    ]


# --- dependencies --------------------------------------------------------------------------


def unverified_dependency_objects(db: StateDB, manifest_object_id: int) -> int:
    """Required objects of the dependency depot (its manifest, its chunks) not verified."""
    missing: int = db.conn.execute(
        f"SELECT count(DISTINCT n.object_id) FROM dependency_needs n {_UNVERIFIED} "
        "AND n.manifest_object_id = :m AND n.is_required",
        {"m": manifest_object_id, "verified": ObjectState.VERIFIED},
    ).fetchone()[0]
    return missing


def pending_dependency_chunks(db: StateDB) -> list[tuple[ObjectRow, bool]]:
    """Chunks of the archived dependency depots not verified: (row, is_optional).

    A chunk is optional only if every depot that lists it lists it as an 'sfc_member'; one
    the CDN did not have is not asked for again (protocol.md 4.3).
    """
    pending: dict[int, tuple[ObjectRow, bool]] = {}
    for row in db.conn.execute(
        f"SELECT {_OBJECT_COLUMNS}, n.is_required FROM dependency_needs n "
        f"JOIN objects o ON o.id = n.object_id WHERE {_CHUNK_ROLES} AND o.state != ? "
        "AND NOT (n.role = 'sfc_member' AND o.state = ?)",
        (ObjectState.VERIFIED, ObjectState.ABSENT_UPSTREAM),
    ):
        is_optional = not row[7] and pending.get(row[0], (None, True))[1]
        pending[row[0]] = (object_row(row[:7]), is_optional)
    return list(pending.values())


# --- what nothing needs (gc) -----------------------------------------------------------------

# Every object some recorded owner needs: the three views, plus a dependency repository's own
# manifest (the record that names the dependency depots; no view lists it because nothing's
# completeness waits on it, but it is what the archive records of the dependency).
NEEDED_OBJECT_IDS_SQL = (
    "SELECT object_id FROM build_needs UNION SELECT object_id FROM patch_needs "
    "UNION SELECT object_id FROM dependency_needs "
    "UNION SELECT manifest_object_id FROM dependency_repositories"
)


def unneeded_objects(db: StateDB) -> list[ObjectRow]:
    """Every recorded object that no build (listed, delisted or added by id), patch or
    dependency the archive records needs, in path order: what gc may delete."""
    return [
        object_row(row)
        for row in db.conn.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM objects o "
            f"WHERE o.id NOT IN ({NEEDED_OBJECT_IDS_SQL}) ORDER BY o.path"
        )
    ]


# --- closures ------------------------------------------------------------------------------


def closure_object_ids(
    db: StateDB, product_ids: Sequence[str], build_ids: Sequence[str] | None
) -> list[int]:
    """Every object the products' builds (all, or only `build_ids`) and the patches between
    those builds need, optional ones included: what an export of the products carries."""
    products = ",".join("?" * len(product_ids))
    build_filter, patch_filter, params = "", "", list(product_ids)
    if build_ids is not None:
        builds = ",".join("?" * len(build_ids))
        build_filter = f" AND build_id IN ({builds})"
        patch_filter = f" AND from_build_id IN ({builds}) AND to_build_id IN ({builds})"
    build_params = params + list(build_ids or [])
    patch_params = params + list(build_ids or []) * 2
    rows = db.conn.execute(
        f"SELECT object_id FROM build_needs WHERE product_id IN ({products}){build_filter} "
        f"UNION SELECT object_id FROM patch_needs WHERE product_id IN ({products}){patch_filter}",
        build_params + patch_params,
    )
    return sorted(row[0] for row in rows)
