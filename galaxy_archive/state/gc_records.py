"""gc's writes to the DB: mark objects as not stored, then forget them.

An object gc deletes goes in three steps, each durable before the next (gc.collector):
`mark_unstored` (committed), the file deleted through the store, `forget` (committed). A row
marked unstored reads to verify as "planned, never fetched": it is not checked, and its path is
still recorded, so a kill between any two steps leaves neither a "missing" object (a row
whose file is gone) nor an "unknown" file (a file whose row is gone).
"""

from __future__ import annotations

from collections.abc import Sequence

from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import StateDB

# Rows that describe an object itself (who it belongs to, what a manifest lists, a blob's
# ranges): they go with it. The tables that say what a build, patch or dependency needs are
# not here: an object they name is needed (state.needs) and never forgotten; a new table
# referencing objects and missing here makes `forget` fail on the foreign key, not lose data.
_DESCRIBING_COLUMNS = (
    ("object_products", "object_id"),
    ("manifest_objects", "manifest_object_id"),
    ("manifest_objects", "object_id"),
    ("sfc_members", "manifest_object_id"),
    ("indexed_manifests", "object_id"),
    ("v1_items", "manifest_object_id"),
    ("v1_extents", "manifest_object_id"),
    ("v1_extents", "blob_object_id"),
    ("v1_blob_ranges", "blob_object_id"),
    ("v1_blobs", "object_id"),
)
_BATCH = 400  # SQLite's host-parameter limit is far above; keeps statements short


def _batches(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[start : start + _BATCH]) for start in range(0, len(ids), _BATCH)]


def mark_unstored(db: StateDB, object_ids: Sequence[int], now: str) -> None:
    """Record the objects as never fetched (state missing, no fetch or verify date), and
    commit: from here verify neither checks them nor calls their files unknown."""
    with db.conn:
        for batch in _batches(object_ids):
            marks = ",".join("?" * len(batch))
            db.conn.execute(
                "UPDATE objects SET state = ?, fetched_at = NULL, verified_at = NULL, "
                f"updated_at = ? WHERE id IN ({marks})",
                [ObjectState.MISSING, now, *batch],
            )


def forget(db: StateDB, object_ids: Sequence[int]) -> None:
    """Remove the objects' rows and the rows describing them, and commit."""
    with db.conn:
        for batch in _batches(object_ids):
            marks = ",".join("?" * len(batch))
            for table, column in _DESCRIBING_COLUMNS:
                db.conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", batch)
            db.conn.execute(f"DELETE FROM objects WHERE id IN ({marks})", batch)


def object_count(db: StateDB) -> int:
    return int(db.conn.execute("SELECT count(*) FROM objects").fetchone()[0])


def state_of(db: StateDB, path: str) -> str | None:
    """The recorded state of the object at `path`, or None when none is recorded there."""
    row = db.conn.execute("SELECT state FROM objects WHERE path = ?", (path,)).fetchone()
    return None if row is None else str(row[0])
