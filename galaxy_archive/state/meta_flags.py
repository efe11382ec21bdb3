"""The DB side of meta files kept with bytes that do not hash to their id (models.meta_flags)."""

from __future__ import annotations

import sqlite3


def record_served_md5(
    conn: sqlite3.Connection, object_id: int, path: str, served_md5: str | None
) -> str | None:
    """Record the MD5 of the bytes just stored for a meta object (None: they match its id, and
    an older flag is cleared); return the warning to give for a flagged object."""
    conn.execute("UPDATE objects SET served_md5 = ? WHERE id = ?", (served_md5, object_id))
    if served_md5 is None:
        return None
    return f"{path}: kept, but its bytes have MD5 {served_md5}, not its id (protocol.md 3.2)"
