"""A product's DB rows out of one archive and into another, in the export's portable form.

Out: one JSON object per row and table (members.TABLES), object ids replaced by tree paths.
In: nothing is trusted. Table and column names must be the local schema's (never interpolated
from the file otherwise), values plain scalars, object paths ones the layout accepts. Rows are
merged with INSERT OR IGNORE (what the archive already knows wins), a product's first_seen keeps
the earliest, and object rows arrive 'missing' (or 'absent_upstream'): only what the import
verified is marked verified.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from galaxy_archive.errors import UnsafeReference
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import StateDB
from galaxy_archive.transfer.members import check_tree_path, is_object_id_column

# Object columns an import takes from the file; state and dates are the archive's own.
_OBJECT_COLUMNS = (
    *("kind", "path", "md5", "size", "inflated_md5", "inflated_size"),
    *("product_id", "served_md5"),
)


def _columns(db: StateDB, table: str) -> list[str]:
    return [row[1] for row in db.conn.execute(f"PRAGMA table_info({table})")]


def export_rows(
    db: StateDB, table: str, products: Sequence[str], builds: Sequence[str], object_ids: set[int]
) -> Iterator[dict[str, Any]]:
    """The table's rows that belong to the export, object ids as paths."""
    columns = _columns(db, table)
    paths = _paths_of(db, object_ids)
    id_columns = [
        c for c in columns if is_object_id_column(c) or (table == "objects" and c == "id")
    ]
    for values in db.conn.execute(f"SELECT * FROM {table}"):
        row = dict(zip(columns, values, strict=True))
        if not _belongs(table, row, products, builds, object_ids, id_columns):
            continue
        for column in id_columns:
            row[column] = paths.get(row[column]) if row[column] is not None else None
        if table == "objects":
            row.pop("id")
        yield row


def _belongs(
    table: str,
    row: dict[str, Any],
    products: Sequence[str],
    builds: Sequence[str],
    object_ids: set[int],
    id_columns: list[str],
) -> bool:
    if table == "objects":
        return row["id"] in object_ids
    if "product_id" in row and table != "v1_blobs":
        if row["product_id"] not in products:
            return False
        for column in ("build_id", "from_build_id", "to_build_id"):
            if column in row and row[column] not in builds:
                return False
        return True
    return all(row[c] is None or row[c] in object_ids for c in id_columns)


def _paths_of(db: StateDB, object_ids: set[int]) -> dict[int, str]:
    return {
        object_id: path
        for object_id, path in db.conn.execute("SELECT id, path FROM objects")
        if object_id in object_ids
    }


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, separators=(",", ":"), sort_keys=True).encode() + b"\n")
        count += 1
    return count


def merge_rows(
    db: StateDB,
    table: str,
    lines: Iterable[bytes],
    now_iso: str,
    on_refused: Callable[[int, str], None],
) -> int:
    """Insert the file's rows the archive lacks; return how many were added. A row the
    schema refuses (a foreign key to a row neither side has) costs that row: `on_refused`
    gets its line number and why, and the merge goes on."""
    local = _columns(db, table)
    added = 0
    for number, line in enumerate(lines, start=1):
        row = _checked_row(line, local)
        if table == "objects":
            row = {c: row.get(c) for c in _OBJECT_COLUMNS} | {
                "updated_at": now_iso,
                "state": _imported_state(row.get("state")),
            }
            check_tree_path(str(row["kind"]), row["path"])
        elif not _translate_ids(db, row):
            continue  # it points at an object the file did not describe
        _drop_unknown_body(db, row)
        _keep_earliest_first_seen(db, table, row)
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        try:
            cursor = db.conn.execute(
                f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", list(row.values())
            )
        except sqlite3.IntegrityError as exc:
            on_refused(number, str(exc))
            continue
        added += cursor.rowcount
    return added


def _drop_unknown_body(db: StateDB, row: dict[str, Any]) -> None:
    """A recorded API answer (json_bodies) is provenance the export does not carry: a row that
    points at one this archive lacks keeps its facts and loses only that pointer."""
    body = row.get("body_md5")
    if body is None:
        return
    known = db.conn.execute("SELECT 1 FROM json_bodies WHERE md5 = ?", (body,)).fetchone()
    if known is None:
        row["body_md5"] = None


# Rows whose first_seen an import may move earlier (the file saw it first), by their keys.
_FIRST_SEEN_KEYS = {"products": ("product_id",), "builds": ("product_id", "build_id")}


def _keep_earliest_first_seen(db: StateDB, table: str, row: dict[str, Any]) -> None:
    keys = _FIRST_SEEN_KEYS.get(table)
    if keys is None or not isinstance(row.get("first_seen"), str):
        return
    where = " AND ".join(f"{key} = ?" for key in keys)
    db.conn.execute(
        f"UPDATE {table} SET first_seen = min(first_seen, ?) WHERE {where}",
        [row["first_seen"], *(row.get(key) for key in keys)],
    )


def _imported_state(state: object) -> str:
    """What an object row starts as here: 'missing' until this import verifies its bytes. The
    source's word that the CDN lacks it (an optional SFC member) is kept: it claims no bytes."""
    if state == ObjectState.ABSENT_UPSTREAM:
        return ObjectState.ABSENT_UPSTREAM
    return ObjectState.MISSING


def _checked_row(line: bytes, local: list[str]) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        raise UnsafeReference("a DB row is not JSON") from None
    if not isinstance(row, dict):
        raise UnsafeReference("a DB row is not an object")
    for column, value in row.items():
        if column not in local:
            raise UnsafeReference(f"unknown column {column!r}")
        if value is not None and not isinstance(value, str | int | float):
            raise UnsafeReference(f"column {column}: not a plain value")
    return row


def _translate_ids(db: StateDB, row: dict[str, Any]) -> bool:
    for column, value in row.items():
        if not is_object_id_column(column) or value is None:
            continue
        found = db.conn.execute("SELECT id FROM objects WHERE path = ?", (value,)).fetchone()
        if found is None:
            return False
        row[column] = found[0]
    return True
