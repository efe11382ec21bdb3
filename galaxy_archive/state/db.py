"""The state DB (SQLite; sqlite-utils for dict-row queries): opening it and typed record/query
functions. The migrations runner is state/migrations.py.

The DB is the todo list: objects not 'verified' are what a sync still has to fetch. Only the
thread that opened it writes to it; workers hand results back to that thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from galaxy_archive.errors import StorageError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.migrations import (
    apply_migrations,
    default_migrations_dir,
    recorded_migrations,
    refuse_unknown_migrations,
)
from galaxy_archive.state.read_only import read_only_copy
from galaxy_archive.state.stamps import iso as iso  # re-exported: callers import it from here

if TYPE_CHECKING:
    import sqlite_utils

# How long a statement waits for another process's write transaction before it fails.
BUSY_TIMEOUT_S = 30.0
# What to tell the user when SQLite gives up on the DB, by primary result code.
_DB_FAULTS = {
    sqlite3.SQLITE_BUSY: "is locked by another process for longer than {timeout:g} s; "
    "try again when that process has finished",
    sqlite3.SQLITE_LOCKED: "is locked; try again when the other run has finished",
    sqlite3.SQLITE_NOTADB: "is not an SQLite database; restore it from a backup, or move it "
    "aside and run sync to build a new one",
    sqlite3.SQLITE_CORRUPT: "is damaged; restore it from a backup, or move it aside and run "
    "sync to build a new one (`sqlite3 archive.db .recover` may save its contents)",
    sqlite3.SQLITE_IOERR: "could not be read or written (I/O error); check the disk",
    sqlite3.SQLITE_FULL: "could not be written: the disk is full",
    sqlite3.SQLITE_READONLY: "is read-only; check its and its directory's permissions",
    sqlite3.SQLITE_CANTOPEN: "cannot be opened; check its and its directory's permissions",
    sqlite3.SQLITE_PERM: "cannot be accessed; check its permissions",
}


def database_fault(path: Path, exc: sqlite3.Error) -> StorageError | None:
    """The one-line error for SQLite giving up on the DB file itself (locked, not a database,
    damaged, I/O), naming it and what to do; None for anything else (a bug in a query)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    advice = _DB_FAULTS.get(code & 0xFF)  # the primary code of an extended one
    if advice is None:
        return None
    return StorageError(f"the state DB {path} {advice.format(timeout=BUSY_TIMEOUT_S)} ({exc})")


@dataclass(frozen=True)
class ObjectRow:
    id: int
    kind: ObjectKind
    path: str
    md5: str | None
    size: int | None
    state: ObjectState
    product_id: str | None


@dataclass(frozen=True)
class NewObject:
    """An object a manifest names, before it is known to the DB."""

    kind: ObjectKind
    path: str
    md5: str | None
    size: int | None = None
    inflated_md5: str | None = None
    inflated_size: int | None = None
    product_id: str | None = None


class StateDB:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._db: sqlite_utils.Database | None = None

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for queries that return dict rows.

        Made on first use: importing sqlite_utils costs about 0.1 s (it imports numpy whenever
        numpy is installed), which commands that never need it, a plain verify above all,
        should not pay at every start.
        """
        if self._db is None:
            import sqlite_utils  # local: see the docstring

            # open_db alone sets the connection up: no pragma of sqlite-utils' own (we have no
            # triggers) and no plugin hooks, so it behaves the same whether or not this is made.
            self._db = sqlite_utils.Database(
                self.conn, recursive_triggers=False, execute_plugins=False
            )
        return self._db

    def close(self) -> None:
        self.conn.close()

    # --- runs ------------------------------------------------------------------------------

    def start_run(
        self, command: str, pid: int, now: float, *, is_alive: Callable[[int], bool]
    ) -> tuple[int, bool]:
        """Record a run. Earlier runs that never ended and whose process is gone (killed, or
        the machine lost power) are closed with exit code -9; True when there were any, so
        the caller sweeps the temp files they left. A plain `verify` still running beside
        this run is alive and left alone."""
        with self.conn:
            unfinished = self.conn.execute(
                "SELECT id, pid FROM runs WHERE ended_at IS NULL"
            ).fetchall()
            dead = [(iso(now), run_id) for run_id, run_pid in unfinished if not is_alive(run_pid)]
            self.conn.executemany("UPDATE runs SET ended_at = ?, exit_code = -9 WHERE id = ?", dead)
            cursor = self.conn.execute(
                "INSERT INTO runs (command, pid, started_at) VALUES (?, ?, ?)",
                (command, pid, iso(now)),
            )
        return int(cursor.lastrowid or 0), bool(dead)

    def end_run(self, run_id: int, exit_code: int, summary: dict[str, Any], now: float) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, summary = ? WHERE id = ?",
                (iso(now), exit_code, json.dumps(summary, sort_keys=True), run_id),
            )

    def last_run(self, command: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT started_at, ended_at, exit_code, summary FROM runs WHERE command = ? "
            "AND ended_at IS NOT NULL ORDER BY id DESC LIMIT 1",
            (command,),
        ).fetchone()
        if row is None:
            return None
        return {
            "started_at": row[0],
            "ended_at": row[1],
            "exit_code": row[2],
            "summary": json.loads(row[3]) if row[3] else None,
        }

    # --- products and builds lists ---------------------------------------------------------

    def touch_product(self, product_id: str, now: float, error: str | None = None) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO products (product_id, first_seen) VALUES (?, ?) "
                "ON CONFLICT (product_id) DO NOTHING",
                (product_id, iso(now)),
            )
            self.conn.execute(
                "UPDATE products SET last_synced = ?, last_error = ? WHERE product_id = ?",
                (iso(now), error, product_id),
            )

    def forget_product(self, product_id: str) -> bool:
        """Drop the product record of an id that has no builds here (GOG does not know it),
        so that `status` does not list a typo for good. True when it was dropped."""
        with self.conn:
            cursor = self.conn.execute(
                "DELETE FROM products WHERE product_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM builds WHERE product_id = ?)",
                (product_id, product_id),
            )
        return cursor.rowcount > 0

    def set_dlc_of(self, product_id: str, base_product_id: str) -> None:
        """Record that `product_id` is a DLC mirrored with `base_product_id`'s builds."""
        with self.conn:
            self.conn.execute(
                "UPDATE products SET dlc_of = ? WHERE product_id = ?",
                (base_product_id, product_id),
            )

    def known_dlc(self) -> dict[str, str]:
        """DLC id -> base product id, as recorded by earlier runs."""
        return dict(
            self.conn.execute(
                "SELECT product_id, dlc_of FROM products WHERE dlc_of IS NOT NULL"
            ).fetchall()
        )

    def record_builds_list(
        self,
        product_id: str,
        os_name: str,
        generation: int,
        *,
        with_password: bool,
        status: int,
        body: bytes,
        now: float,
    ) -> None:
        body_md5 = self.save_json_body(body)
        self.conn.execute(
            "INSERT INTO build_list_fetches (product_id, os, generation, with_password, "
            "fetched_at, status, body_md5) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (product_id, os_name, generation, int(with_password), iso(now), status, body_md5),
        )

    def save_json_body(self, body: bytes) -> str | None:
        """Keep a raw API answer once (json_bodies, by MD5); its MD5, None for an empty body."""
        if not body:
            return None
        body_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self.conn.execute(
            "INSERT OR IGNORE INTO json_bodies (md5, body) VALUES (?, ?)",
            (body_md5, body.decode("utf-8", "replace")),
        )
        return body_md5

    def upsert_build(self, row: dict[str, Any], now: float) -> None:
        """Insert a listed build or refresh it; first_seen is kept, nothing is ever deleted."""
        self.conn.execute(
            "INSERT INTO builds (product_id, build_id, os, generation, branch, version_name, "
            "date_published, legacy_build_id, manifest_url, item, first_seen, last_seen, "
            "is_listed) VALUES (:product_id, :build_id, :os, :generation, :branch, "
            ":version_name, :date_published, :legacy_build_id, :manifest_url, :item, :now, :now, "
            "1) "
            "ON CONFLICT (product_id, build_id) DO UPDATE SET branch = excluded.branch, "
            "version_name = excluded.version_name, date_published = excluded.date_published, "
            "manifest_url = excluded.manifest_url, item = excluded.item, "
            "last_seen = excluded.last_seen, is_listed = 1",
            {**row, "now": iso(now)},
        )

    def add_build_by_id(self, row: dict[str, Any], now: float) -> None:
        """Record a build known only by its manifest id (not listed); one recorded already,
        listed or not, keeps what it has."""
        self.conn.execute(
            "INSERT INTO builds (product_id, build_id, os, generation, branch, version_name, "
            "date_published, legacy_build_id, manifest_url, item, first_seen, last_seen, "
            "is_listed) VALUES (:product_id, :build_id, :os, :generation, :branch, "
            ":version_name, :date_published, :legacy_build_id, :manifest_url, :item, :now, :now, "
            "0) ON CONFLICT (product_id, build_id) DO NOTHING",
            {**row, "now": iso(now)},
        )

    def mark_unlisted(self, product_id: str, os_name: str, listed: set[str]) -> int:
        """Builds of this product and OS absent from a complete list: kept, marked delisted."""
        rows = self.conn.execute(
            "SELECT build_id FROM builds WHERE product_id = ? AND os = ? AND is_listed = 1",
            (product_id, os_name),
        ).fetchall()
        gone = [r[0] for r in rows if r[0] not in listed]
        self.conn.executemany(
            "UPDATE builds SET is_listed = 0 WHERE product_id = ? AND build_id = ?",
            [(product_id, b) for b in gone],
        )
        return len(gone)

    def builds(self, product_id: str) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT * FROM builds WHERE product_id = ? ORDER BY date_published, build_id",
                [product_id],
            )
        )

    # --- objects ---------------------------------------------------------------------------

    def ensure_objects(self, objects: Sequence[NewObject], now: float) -> dict[str, int]:
        """Insert objects not yet known (by path); return path -> id for all of them."""
        stamp = iso(now)
        self.conn.executemany(
            "INSERT INTO objects (kind, path, md5, size, inflated_md5, inflated_size, "
            "product_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (path) DO NOTHING",
            [
                (
                    str(o.kind),
                    o.path,
                    o.md5,
                    o.size,
                    o.inflated_md5,
                    o.inflated_size,
                    o.product_id,
                    stamp,
                )
                for o in objects
            ],
        )
        ids: dict[str, int] = {}
        paths = [o.path for o in objects]
        for start in range(0, len(paths), 500):
            batch = paths[start : start + 500]
            marks = ",".join("?" * len(batch))
            for object_id, path in self.conn.execute(
                f"SELECT id, path FROM objects WHERE path IN ({marks})", batch
            ):
                ids[path] = object_id
        return ids

    def object_by_path(self, path: str) -> ObjectRow | None:
        row = self.conn.execute(
            "SELECT id, kind, path, md5, size, state, product_id FROM objects WHERE path = ?",
            (path,),
        ).fetchone()
        return _object_row(row) if row else None

    def add_object_products(self, pairs: Iterable[tuple[int, str]]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO object_products (object_id, product_id) VALUES (?, ?)", pairs
        )

    def mark_verified(
        self,
        object_id: int,
        *,
        size: int,
        now: float,
        md5: str | None = None,
        product_id: str | None = None,
        endpoint: str | None = None,
        source_url: str | None = None,
        fetched: bool = True,
    ) -> None:
        stamp = iso(now)
        self.conn.execute(
            "UPDATE objects SET state = 'verified', size = ?, md5 = coalesce(md5, ?), "
            "error = NULL, verified_at = ?, "
            "updated_at = ?, fetched_at = CASE WHEN ? THEN ? ELSE fetched_at END, "
            "product_id = coalesce(?, product_id), endpoint = coalesce(?, endpoint), "
            "source_url = coalesce(?, source_url) WHERE id = ?",
            (size, md5, stamp, stamp, fetched, stamp, product_id, endpoint, source_url, object_id),
        )

    def mark_problem(self, object_id: int, *, state: ObjectState, error: str, now: float) -> None:
        self.conn.execute(
            "UPDATE objects SET state = ?, error = ?, updated_at = ? WHERE id = ?",
            (state, error, iso(now), object_id),
        )

    def objects_by_state(self) -> dict[str, dict[str, int]]:
        """state -> {"count", "bytes"} over every object."""
        result: dict[str, dict[str, int]] = {}
        for state, count, size in self.conn.execute(
            "SELECT state, count(*), coalesce(sum(size), 0) FROM objects GROUP BY state"
        ):
            result[state] = {"count": count, "bytes": size}
        return result

    # --- builds, depots, manifests ---------------------------------------------------------

    def set_repository(self, product_id: str, build_id: str, object_id: int) -> None:
        self.conn.execute(
            "UPDATE builds SET repository_object_id = ? WHERE product_id = ? AND build_id = ?",
            (object_id, product_id, build_id),
        )

    def record_build_depot(
        self, product_id: str, build_id: str, manifest_object_id: int, depot: dict[str, Any]
    ) -> None:
        """Record that a build uses a depot."""
        self.conn.execute(
            "INSERT OR IGNORE INTO build_depots (product_id, build_id, manifest_object_id, "
            "depot_product_id, languages, size, compressed_size, is_offline, is_gog_depot) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                product_id,
                build_id,
                manifest_object_id,
                depot["product_id"],
                json.dumps(depot["languages"]),
                depot["size"],
                depot["compressed_size"],
                int(depot["is_offline"]),
                int(depot["is_gog_depot"]),
            ),
        )

    def is_indexed(self, manifest_object_id: int) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM indexed_manifests WHERE object_id = ?", (manifest_object_id,)
            ).fetchone()
            is not None
        )

    def index_manifest(
        self,
        manifest_object_id: int,
        references: Sequence[tuple[int, str]],
        sfc_members: Sequence[tuple[str, int, int, str | None]],
        now: float,
    ) -> None:
        """Record what a depot manifest references; a required role wins over 'sfc_member'."""
        self.conn.executemany(
            "INSERT INTO manifest_objects (manifest_object_id, object_id, role) VALUES (?, ?, ?) "
            "ON CONFLICT DO UPDATE SET role = excluded.role WHERE role = 'sfc_member'",
            [(manifest_object_id, object_id, role) for object_id, role in references],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO sfc_members (manifest_object_id, path, sfc_offset, sfc_size, "
            "md5) VALUES (?, ?, ?, ?, ?)",
            [(manifest_object_id, *member) for member in sfc_members],
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO indexed_manifests (object_id, indexed_at) VALUES (?, ?)",
            (manifest_object_id, iso(now)),
        )

    def link_depot_products(self, product_id: str) -> None:
        """For the product's build depots whose manifest is indexed but not linked yet: record
        that the depot's chunks belong to the depot's product, and mark them linked."""
        self.conn.execute(
            "INSERT OR IGNORE INTO object_products (object_id, product_id) "
            "SELECT mo.object_id, bd.depot_product_id FROM build_depots bd "
            "JOIN indexed_manifests im ON im.object_id = bd.manifest_object_id "
            "JOIN manifest_objects mo ON mo.manifest_object_id = bd.manifest_object_id "
            "WHERE bd.product_id = ? AND bd.products_linked = 0",
            (product_id,),
        )
        self.conn.execute(
            "UPDATE build_depots SET products_linked = 1 WHERE product_id = ? "
            "AND products_linked = 0 AND manifest_object_id IN "
            "(SELECT object_id FROM indexed_manifests)",
            (product_id,),
        )

    def set_build_complete(
        self, product_id: str, build_id: str, *, is_complete: bool, now: float
    ) -> None:
        """Mark a build complete (keeping when it first was) or incomplete; one rule for V1
        and V2 builds, whichever decides it."""
        if is_complete:
            self.conn.execute(
                "UPDATE builds SET state = 'complete', error = NULL, "
                "completed_at = coalesce(completed_at, ?) WHERE product_id = ? AND build_id = ?",
                (iso(now), product_id, build_id),
            )
        else:
            self.conn.execute(
                "UPDATE builds SET state = 'incomplete', completed_at = NULL "
                "WHERE product_id = ? AND build_id = ?",
                (product_id, build_id),
            )

    def set_build_error(self, product_id: str, build_id: str, error: str) -> None:
        self.conn.execute(
            "UPDATE builds SET state = 'incomplete', error = ? WHERE product_id = ? "
            "AND build_id = ?",
            (error, product_id, build_id),
        )


def object_kind(object_id: int, path: str, kind: str) -> ObjectKind:
    """The kind recorded for an object; an unknown one (a DB edited by hand, or a kind of a
    later version) is a StorageError naming the object, not a bug."""
    try:
        return ObjectKind(kind)
    except ValueError:
        raise StorageError(
            f"object {object_id} ({path}) has kind {kind!r}, which this galaxy-archive does "
            "not know (archive.db edited by hand, or written by a newer version)"
        ) from None


def _object_row(row: Sequence[Any]) -> ObjectRow:
    return ObjectRow(
        id=row[0],
        kind=object_kind(row[0], row[2], row[1]),
        path=row[2],
        md5=row[3],
        size=row[4],
        state=ObjectState(row[5]),
        product_id=row[6],
    )


def object_row(row: Sequence[Any]) -> ObjectRow:
    """An ObjectRow from the columns id, kind, path, md5, size, state, product_id (in order)."""
    return _object_row(row)


def open_db(
    path: Path, *, now: float, migrations_dir: Path | None = None, is_read_only: bool = False
) -> StateDB:
    """Open (creating) the DB, switch to WAL and apply pending migrations.

    A file that is not a usable SQLite DB (not a database, damaged, locked for longer than
    BUSY_TIMEOUT_S) is a StorageError naming it; a DB of a newer version is refused
    (ConfigError) before anything in it is changed.

    `is_read_only` (an archive on a read-only disk): the DB is read without writing a byte
    (not even its WAL) into a copy in memory, which takes the run's writes and is forgotten.
    """
    try:
        if is_read_only:
            conn = read_only_copy(path, timeout_s=BUSY_TIMEOUT_S)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open the state DB {path}: {exc}") from exc
    try:
        _prepare(conn, path, migrations_dir or default_migrations_dir(), now)
    except sqlite3.Error as exc:
        conn.close()
        raise database_fault(path, exc) or StorageError(
            f"cannot open the state DB {path}: {exc}"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return StateDB(conn)


def _prepare(conn: sqlite3.Connection, path: Path, migrations_dir: Path, now: float) -> None:
    # First a read: a file that is not a DB fails here, and a newer schema is refused before
    # the pragmas below (WAL) change the file.
    refuse_unknown_migrations(
        recorded_migrations(conn), sorted(p.name for p in migrations_dir.glob("*.sql")), str(path)
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    apply_migrations(conn, migrations_dir, now)
