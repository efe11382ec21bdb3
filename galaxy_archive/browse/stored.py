"""Reading archived manifests back for `show` and `diff`: the DB says where, the store gives
the bytes, and the bytes are hashed before anything is parsed. Read-only.

A manifest is trusted only when the MD5 of its stored bytes is the one the DB recorded for it
(its id, or the `served_md5` of a meta file kept with other bytes, see meta_flags): a flipped
byte on disk is named as corrupt, never shown or compared as if it were the archived manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from galaxy_archive.errors import GalaxyArchiveError, IntegrityError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import StateDB, object_kind


class ObjectReader(Protocol):
    """What reading back needs of the store: `storage.interface.ObjectStore.open_read`, which
    every ObjectStore has (typed apart so a backend is not asked for more than is used)."""

    def open_read(self, relative: str) -> BinaryIO: ...


class NotInArchive(GalaxyArchiveError):
    """What was asked for (a manifest, a build) is not stored in the archive (exit 1)."""


@dataclass(frozen=True)
class StoredRow:
    """An objects row as far as reading it back needs."""

    id: int
    kind: ObjectKind
    path: str
    md5: str | None
    size: int | None
    state: ObjectState
    served_md5: str | None

    @property
    def expected_md5(self) -> str | None:
        """The MD5 the stored bytes must have."""
        return self.served_md5 or self.md5


_ROW_COLUMNS = "id, kind, path, md5, size, state, served_md5"
_STORED_STATES = (ObjectState.PRESENT, ObjectState.VERIFIED)


def row_by_path(db: StateDB, path: str) -> StoredRow | None:
    found = db.conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM objects WHERE path = ?", (path,)
    ).fetchone()
    return _row(found) if found else None


def row_by_id(db: StateDB, object_id: int) -> StoredRow | None:
    found = db.conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM objects WHERE id = ?", (object_id,)
    ).fetchone()
    return _row(found) if found else None


def _row(found: tuple[int, str, str, str | None, int | None, str, str | None]) -> StoredRow:
    object_id, kind, path, md5, size, state, served_md5 = found
    return StoredRow(
        id=object_id,
        kind=object_kind(object_id, path, kind),
        path=path,
        md5=md5,
        size=size,
        state=ObjectState(state),
        served_md5=served_md5,
    )


def read_checked(store: ObjectReader, row: StoredRow) -> bytes:
    """The object's stored bytes, once they hash to what the DB recorded.

    NotInArchive when it was never stored (or its file is gone); IntegrityError when verify
    found it corrupt or its bytes have another MD5 now.
    """
    if row.state is ObjectState.CORRUPT:
        raise IntegrityError(f"{row.path}: recorded as corrupt (verify --repair fetches it again)")
    if row.state not in _STORED_STATES:
        raise NotInArchive(f"{row.path}: not stored in the archive (state {row.state})")
    try:
        with store.open_read(row.path) as handle:
            body = handle.read()
    except FileNotFoundError:
        raise NotInArchive(f"{row.path}: recorded as stored, but its file is missing") from None
    except OSError as exc:
        raise IntegrityError(f"{row.path}: cannot be read ({exc.strerror or exc})") from exc
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if row.expected_md5 is not None and md5 != row.expected_md5:
        raise IntegrityError(
            f"{row.path}: corrupt: its stored bytes have MD5 {md5}, not {row.expected_md5} "
            "(verify --repair fetches it again)"
        )
    return body
