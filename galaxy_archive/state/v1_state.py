"""The V1 tables of the state DB (migrations/0002_v1.sql): depots, redists, blobs, extents.

Typed record and query functions over a StateDB; like the rest of the DB, only the thread
that opened it calls them, and the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from galaxy_archive.models.v1_manifests import V1DepotRef, V1File, V1Item, V1Redist
from galaxy_archive.models.v1_ranges import ByteRange, Extent
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.stamps import iso


@dataclass(frozen=True)
class BlobRecord:
    """A blob object and where its download stands."""

    object_id: int
    path: str
    product_id: str
    os: str
    legacy_build_id: int
    name: str
    min_size: int
    total_size: int | None
    range_size: int | None
    uncovered_md5: str | None  # of the bytes outside every file record, once stored
    done: tuple[ByteRange, ...]


@dataclass(frozen=True)
class NewBlob:
    object_id: int
    product_id: str
    os: str
    legacy_build_id: int
    name: str
    min_size: int


# --- repository ----------------------------------------------------------------------------


def record_v1_depot(
    db: StateDB, product_id: str, build_id: str, manifest_object_id: int, depot: V1DepotRef
) -> None:
    db.conn.execute(
        "INSERT OR IGNORE INTO v1_depots (product_id, build_id, manifest_object_id, "
        "depot_product_ids, languages, systems, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            product_id,
            build_id,
            manifest_object_id,
            json.dumps(list(depot.product_ids)),
            json.dumps(list(depot.languages)),
            json.dumps(list(depot.systems)),
            depot.size,
        ),
    )


def record_v1_redists(
    db: StateDB, product_id: str, build_id: str, redists: Iterable[V1Redist]
) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO v1_redists (product_id, build_id, redist, executable, argument, "
        "size, target_dir) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (product_id, build_id, r.redist, r.executable, r.argument, r.size, r.target_dir)
            for r in redists
        ],
    )


def mark_indexed(db: StateDB, object_id: int, now: float) -> None:
    """A V1 manifest whose contents are recorded (builds are complete only once they are)."""
    db.conn.execute(
        "INSERT OR REPLACE INTO indexed_manifests (object_id, indexed_at) VALUES (?, ?)",
        (object_id, iso(now)),
    )


# --- depot manifests -----------------------------------------------------------------------


def index_v1_manifest(
    db: StateDB,
    manifest_object_id: int,
    files: Sequence[tuple[V1File, int]],
    items: Iterable[V1Item],
    empty_files: Iterable[V1File],
    now: float,
) -> None:
    """Record a depot manifest's file extents (file, blob object id) and data-less records.

    A path listed twice keeps its first record. A blob that was already verified gets new
    extents to answer for, so it goes back to 'present' and the next blob phase checks it.
    """
    db.conn.executemany(
        'INSERT OR IGNORE INTO v1_extents (blob_object_id, manifest_object_id, path, "offset", '
        "size, md5, flags) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (blob_id, manifest_object_id, str(f.path), f.offset, f.size, f.md5, _flags(f.flags))
            for f, blob_id in files
        ],
    )
    rows = [
        (manifest_object_id, str(i.path), i.kind, i.target, i.symlink_type, "[]") for i in items
    ]
    rows += [(manifest_object_id, str(f.path), "empty_file", None, None, _flags(f.flags))
             for f in empty_files]  # fmt: skip
    db.conn.executemany(
        "INSERT OR IGNORE INTO v1_items (manifest_object_id, path, kind, target, symlink_type, "
        "flags) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.conn.execute(
        "UPDATE objects SET state = 'present', updated_at = ? WHERE state = 'verified' AND id IN "
        "(SELECT DISTINCT blob_object_id FROM v1_extents WHERE manifest_object_id = ?)",
        (iso(now), manifest_object_id),
    )
    mark_indexed(db, manifest_object_id, now)


def _flags(flags: Sequence[str]) -> str:
    return json.dumps(list(flags))


def ensure_blobs(db: StateDB, blobs: Iterable[NewBlob], now: float) -> None:
    """Create the v1_blobs rows (the objects exist already); raise min_size when it grew."""
    db.conn.executemany(
        "INSERT INTO v1_blobs (object_id, product_id, os, legacy_build_id, name, min_size, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (object_id) DO UPDATE SET "
        "min_size = max(min_size, excluded.min_size)",
        [
            (b.object_id, b.product_id, b.os, b.legacy_build_id, b.name, b.min_size, iso(now))
            for b in blobs
        ],
    )


# --- blobs ---------------------------------------------------------------------------------


def blob_record(db: StateDB, object_id: int) -> BlobRecord | None:
    row = db.conn.execute(
        "SELECT o.id, o.path, b.product_id, b.os, b.legacy_build_id, b.name, b.min_size, "
        "b.total_size, b.range_size, b.uncovered_md5 "
        "FROM v1_blobs b JOIN objects o ON o.id = b.object_id WHERE b.object_id = ?",
        (object_id,),
    ).fetchone()
    if row is None:
        return None
    done = tuple(
        ByteRange(start, end)
        for start, end in db.conn.execute(
            "SELECT start_offset, end_offset FROM v1_blob_ranges WHERE blob_object_id = ? "
            "ORDER BY start_offset",
            (object_id,),
        )
    )
    object_id, path, product_id, os_name, legacy, name, min_size, total, range_size, uncovered = row
    return BlobRecord(
        object_id,
        path,
        product_id,
        os_name,
        legacy,
        name,
        min_size,
        total,
        range_size,
        uncovered,
        done,
    )


def blob_extents(db: StateDB, object_id: int) -> list[Extent]:
    """Every file record inside the blob, over all manifests that name it, by offset."""
    return [
        Extent(path, offset, size, md5)
        for path, offset, size, md5 in db.conn.execute(
            'SELECT path, "offset", size, md5 FROM v1_extents WHERE blob_object_id = ? '
            'AND size > 0 ORDER BY "offset", size',
            (object_id,),
        )
    ]


def save_blob_progress(
    db: StateDB,
    object_id: int,
    *,
    total_size: int | None,
    range_size: int | None,
    done: Sequence[ByteRange],
    now: float,
) -> None:
    """Replace the blob's recorded ranges by `done` (merged; bytes already fsynced)."""
    db.conn.execute(
        "UPDATE v1_blobs SET total_size = ?, range_size = ?, updated_at = ? WHERE object_id = ?",
        (total_size, range_size, iso(now), object_id),
    )
    db.conn.execute("DELETE FROM v1_blob_ranges WHERE blob_object_id = ?", (object_id,))
    db.conn.executemany(
        "INSERT INTO v1_blob_ranges (blob_object_id, start_offset, end_offset) VALUES (?, ?, ?)",
        [(object_id, r.start, r.end) for r in done],
    )


def pending_v1_blobs(db: StateDB, manifest_object_ids: Sequence[int]) -> list[BlobRecord]:
    """Blobs the given depot manifests point into that are not verified yet."""
    ids: list[int] = []
    for start in range(0, len(manifest_object_ids), 400):
        batch = list(manifest_object_ids[start : start + 400])
        marks = ",".join("?" * len(batch))
        ids += [
            row[0]
            for row in db.conn.execute(
                "SELECT DISTINCT o.id FROM v1_extents e JOIN objects o ON o.id = e.blob_object_id "
                f"WHERE e.manifest_object_id IN ({marks}) AND o.state != 'verified' "
                "ORDER BY o.path",
                batch,
            )
        ]
    records = [blob_record(db, object_id) for object_id in dict.fromkeys(ids)]
    return [r for r in records if r is not None]


def set_blob_stored(db: StateDB, object_id: int, uncovered_md5: str) -> None:
    """Record what proves a blob just stored: its file records (already in v1_extents) and
    the MD5 of the bytes outside them. A whole-blob MD5 from an older version is dropped:
    it described the bytes stored before."""
    db.conn.execute(
        "UPDATE v1_blobs SET uncovered_md5 = ? WHERE object_id = ?", (uncovered_md5, object_id)
    )
    db.conn.execute("UPDATE objects SET md5 = NULL WHERE id = ?", (object_id,))
