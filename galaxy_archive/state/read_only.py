"""Reading archive.db on a read-only disk (a backup mounted read-only): a copy in memory.

The copy takes whatever the run writes (verify's stamps, its run record) and is forgotten
with the connection: not a byte is written beside the DB, not even its WAL or -shm.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def read_only_copy(path: Path, *, timeout_s: float) -> sqlite3.Connection:
    """archive.db copied into memory through a read-only open: mode=ro reads a WAL DB when
    its -shm exists or can be made; immutable=1 when even that is impossible (a read-only
    mount, which nobody can be writing either)."""
    copy = sqlite3.connect(":memory:")
    try:
        _copy_into(copy, f"{path.as_uri()}?mode=ro", timeout_s)
    except sqlite3.OperationalError:
        _copy_into(copy, f"{path.as_uri()}?immutable=1", timeout_s)
    return copy


def _copy_into(copy: sqlite3.Connection, uri: str, timeout_s: float) -> None:
    with closing(sqlite3.connect(uri, uri=True, timeout=timeout_s)) as source:
        source.backup(copy)
