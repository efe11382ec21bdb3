"""What `serve` reads from the state DB, opened read-only (SQLite `mode=ro`).

Each method is one short query; `serve` never writes, so it runs on a read-only archive and
beside a running sync (WAL: it sees every transaction the sync commits).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galaxy_archive.errors import StorageError
from galaxy_archive.state.db import BUSY_TIMEOUT_S


@dataclass(frozen=True)
class ServedObject:
    """An object's DB row, as far as serving it needs."""

    id: int
    state: str
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class RecordedBuild:
    build_id: str
    generation: int
    date_published: str | None
    legacy_build_id: int | None
    repository_path: str | None  # the V2 repository manifest's tree path
    is_listed: bool
    item: dict[str, Any]  # the latest raw builds-list item


@dataclass(frozen=True)
class RecordedPatch:
    outcome: str
    patch_id: str | None


@dataclass(frozen=True)
class RecordedDependencies:
    build_id: str
    generation: int | None
    manifest_path: str


class ServeReads:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def object(self, relative: str) -> ServedObject | None:
        row = self.conn.execute(
            "SELECT id, state, size, md5 FROM objects WHERE path = ?", (relative,)
        ).fetchone()
        return ServedObject(*row) if row else None

    def object_under(
        self, relative: str, product_id: str | None
    ) -> tuple[ServedObject, bool] | None:
        """The object's row, and whether the DB records it as belonging to `product_id` (True
        for None): the CDN serves a chunk only under such a product. One indexed query, as
        serve asks it once per request."""
        row = self.conn.execute(
            "SELECT o.id, o.state, o.size, o.md5, ?2 IS NULL OR o.product_id = ?2 OR EXISTS "
            "(SELECT 1 FROM object_products p WHERE p.object_id = o.id AND p.product_id = ?2) "
            "FROM objects o WHERE o.path = ?1",
            (relative, product_id),
        ).fetchone()
        return (ServedObject(*row[:4]), bool(row[4])) if row else None

    def dlc_v1_manifest(self, product_id: str, os_name: str, legacy: str, name: str) -> str | None:
        """The tree path of a V1 depot manifest `name` of a DLC `product_id`, stored beside
        its base game's repository.json (sync keeps it there)."""
        pattern = f'%"{product_id}"%'
        row = self.conn.execute(
            "SELECT o.path FROM objects o JOIN v1_depots d ON d.manifest_object_id = o.id "
            "WHERE o.path LIKE ? ESCAPE '\\' AND d.depot_product_ids LIKE ? LIMIT 1",
            (f"v1/manifests/%/{os_name}/{legacy}/{_like_escape(name)}", pattern),
        ).fetchone()
        return str(row[0]) if row else None

    def products(self) -> list[str]:
        """Every product the archive knows: synced ones, and the DLC its objects belong to."""
        rows = self.conn.execute(
            "SELECT product_id FROM products UNION SELECT DISTINCT product_id FROM "
            "object_products UNION SELECT DISTINCT product_id FROM v1_blobs ORDER BY 1"
        )
        return [str(row[0]) for row in rows]

    def builds(self, product_id: str, os_name: str) -> list[RecordedBuild]:
        """The product's builds for the OS, newest first (GOG's order)."""
        rows = self.conn.execute(
            "SELECT b.build_id, b.generation, b.date_published, b.legacy_build_id, o.path, "
            "b.is_listed, b.item FROM builds b LEFT JOIN objects o ON o.id = "
            "b.repository_object_id WHERE b.product_id = ? AND b.os = ? "
            "ORDER BY b.date_published DESC, length(b.build_id) DESC, b.build_id DESC",
            (product_id, os_name),
        )
        return [_build(row) for row in rows]

    def patch(self, product_id: str, from_build: str, to_build: str) -> RecordedPatch | None:
        row = self.conn.execute(
            "SELECT outcome, patch_id FROM patches WHERE product_id = ? AND from_build_id = ? "
            "AND to_build_id = ?",
            (product_id, from_build, to_build),
        ).fetchone()
        return RecordedPatch(*row) if row else None

    def newest_dependencies(self) -> RecordedDependencies | None:
        row = self.conn.execute(
            "SELECT r.build_id, r.generation, o.path FROM dependency_repositories r "
            "JOIN objects o ON o.id = r.manifest_object_id ORDER BY r.last_seen DESC, r.id DESC "
            "LIMIT 1"
        ).fetchone()
        return RecordedDependencies(*row) if row else None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _build(row: tuple[Any, ...]) -> RecordedBuild:
    build_id, generation, published, legacy, repo_path, listed, item = row
    try:
        parsed = json.loads(item)
    except ValueError:
        parsed = {}
    return RecordedBuild(
        str(build_id),
        int(generation),
        published,
        legacy,
        repo_path,
        bool(listed),
        parsed if isinstance(parsed, dict) else {},
    )


def open_read_only(path: Path) -> ServeReads:
    """The DB at `path`, read-only: nothing is created, migrated or written. A missing or
    unusable file is a StorageError naming it."""
    if not path.is_file():
        raise StorageError(f"no archive DB at {path}: run `galaxy-archive sync` first")
    try:
        conn = _connect(path, "mode=ro")
    except sqlite3.OperationalError:
        # mode=ro reads a WAL DB only where its -shm exists or can be made; on a read-only
        # mount (a backup disk) it cannot, and nobody can be writing the DB there either, so
        # it is read as immutable.
        try:
            conn = _connect(path, "immutable=1")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the state DB {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the state DB {path}: {exc}") from exc
    return ServeReads(conn)


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?{mode}",
        uri=True,
        timeout=BUSY_TIMEOUT_S,
        check_same_thread=False,
    )
    try:
        conn.execute("SELECT 1 FROM objects LIMIT 1")
    except sqlite3.Error:
        conn.close()
        raise
    return conn
