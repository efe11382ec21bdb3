"""The state DB's migrations runner: migrations/NNNN_name.sql applied in order, once each.

Migrations only add (tables, columns, indexes, views); each is applied with its record in
`_migrations` in one transaction, and a DB that records a migration this version does not
know is refused before anything in it changes.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

from galaxy_archive.errors import ConfigError, StorageError
from galaxy_archive.state.stamps import iso

_MIGRATION_NAME_RE = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


def default_migrations_dir() -> Path:
    """The packaged copy in a wheel; the repository's `migrations/` in a source checkout."""
    packaged = Path(str(resources.files("galaxy_archive"))) / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def recorded_migrations(conn: sqlite3.Connection) -> set[str]:
    """The migrations recorded in the DB (none in a new one). Reads only."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not has_table:
        return set()
    return {row[0] for row in conn.execute("SELECT name FROM _migrations").fetchall()}


def refuse_unknown_migrations(
    applied: set[str], known: list[str], db_name: str = "the state DB"
) -> None:
    """A DB migrated by a newer galaxy-archive has a schema this version cannot promise to
    read or write correctly: refuse it before changing anything."""
    unknown = sorted(applied - set(known))
    if unknown:
        raise ConfigError(
            f"{db_name} was written by a newer galaxy-archive (it records migrations this "
            f"version does not know: {', '.join(unknown)}); upgrade galaxy-archive to use it"
        )


def apply_migrations(conn: sqlite3.Connection, migrations_dir: Path, now: float) -> list[str]:
    """Apply pending NNNN_name.sql files in order, each with its record in one transaction.

    Refuses (ConfigError) a DB that records migrations not in `migrations_dir`, unchanged.
    """
    names = sorted(p.name for p in migrations_dir.glob("*.sql"))
    bad = [n for n in names if not _MIGRATION_NAME_RE.match(n)]
    if bad:
        raise StorageError(f"migration files with invalid names: {', '.join(bad)}")
    applied = recorded_migrations(conn)
    refuse_unknown_migrations(applied, names)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = []
    for name in names:
        if name in applied:
            continue
        sql = (migrations_dir / name).read_text(encoding="utf-8")
        try:
            # executescript commits whatever is open first; the explicit BEGIN/COMMIT make the
            # migration and its record one transaction.
            conn.executescript(
                f"BEGIN;\n{sql}\n;INSERT INTO _migrations VALUES ('{name}', '{iso(now)}');\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise StorageError(f"migration {name} failed: {exc}") from exc
        done.append(name)
    return done
