"""`restore PRODUCT_ID`: the builds the archive could restore, newest first. Read-only."""

from __future__ import annotations

from typing import Any

from galaxy_archive.state.db import StateDB

_COLUMNS = ("build_id", "os", "generation", "version_name", "date_published", "is_listed", "state")


def restorable_builds(db: StateDB, product_id: str) -> list[dict[str, Any]]:
    """Every archived build of the product (restore refuses, naming why, one it cannot do)."""
    rows = db.conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM builds WHERE product_id = ? "
        "ORDER BY date_published DESC, build_id DESC",
        (product_id,),
    )
    return [{**dict(zip(_COLUMNS, row, strict=True)), "is_listed": bool(row[5])} for row in rows]
