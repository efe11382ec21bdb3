"""What the archive needs of a place to keep objects: the one way into the tree.

Every module outside `storage/` reads and writes the tree's objects only through an
`ObjectStore`; the local filesystem (`storage.local`) is one backend, an S3-API bucket another.
Paths are the tree's relative paths (`v2/store/aa/bb/<md5>`, `v1/depots/...`, as `layout`
makes them); a path that could leave the tree is refused with `PathRefused` by every method.

Guarantees every backend keeps:
- nothing unverified is ever visible at a final path: `write_verified` and `publish` make an
  object visible only after its size and MD5 (and the caller's check) passed;
- readers see the old object or the new one, never a partial one;
- nothing is ever followed or written outside the tree (no symlink is followed);
- a failing medium (disk full, read-only, bucket unreachable) is a StorageError naming the
  object, never a bare OSError or a library's exception, and never carries a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

# A check run on an object's complete bytes before it becomes visible (for example: a
# manifest must also parse). It reads from the start of the reader; an exception from it
# discards the object like a hash mismatch.
Check = Callable[[BinaryIO], None]


@dataclass(frozen=True)
class StoredObject:
    """What was written: the digest and size measured while streaming."""

    md5: str
    size: int


@dataclass(frozen=True)
class StoredEntry:
    """One entry found when listing the tree: a file (any name, temp and partial files
    included) or, with `is_listed` False, a directory that could not be listed."""

    path: str
    is_listed: bool = True


class ObjectStore(Protocol):
    """A place to keep the archive's objects. Thread-safe: the downloader's workers call it
    concurrently (for different paths)."""

    def write_verified(
        self,
        relative: str,
        pieces: Iterable[bytes],
        *,
        expected_md5: str | None,
        expected_size: int | None,
        check: Check | None = None,
    ) -> StoredObject:
        """Stream `pieces` to `relative`, hashing them; visible only once size, MD5 and
        `check` passed (else IntegrityError/DigestMismatch, or what `check` raised, and
        nothing is left behind). Replaces an object already there atomically."""
        ...

    def open_read(self, relative: str) -> BinaryIO:
        """The stored object's bytes from the start. FileNotFoundError when there is none;
        PathRefused when the path (or a directory on the way) is not a plain one."""
        ...

    def size_of(self, relative: str) -> int | None:
        """The stored object's size, or None when there is no object to adopt there."""
        ...

    def md5_of(self, relative: str) -> tuple[str, int]:
        """(MD5, size) of the stored bytes, read in blocks. FileNotFoundError when absent."""
        ...

    def quarantine(self, relative: str, now: float) -> str:
        """Move the object aside, out of the tree's objects, as evidence (never deleted);
        return where it went, relative to the archive root."""
        ...

    def delete(self, relative: str) -> None:
        """Remove the object (gc). No error when it is already gone."""
        ...

    def list_files(self, top: str, is_over: Callable[[], bool]) -> Iterator[StoredEntry]:
        """Every entry under `top` (a tree top such as `v1` or `v2`), in SQLite's binary path
        order, symlinks listed as files and never followed; a directory that cannot be listed
        is one entry with `is_listed` False. Stops (WalkStopped) when `is_over()` turns true."""
        ...

    def staging_path(self, relative: str) -> Path:
        """A local file where an object too large to stream in one piece (a V1 blob fetched
        by ranges) is assembled with positional writes; kept across runs so a later run can
        resume it. Its directory exists; the file may not."""
        ...

    def publish(self, relative: str, staged: Path, *, md5: str, size: int) -> StoredObject:
        """Make a staged file (already checked by the caller) the object at `relative`: after
        this it is visible, durable and the staged file is gone."""
        ...

    def local_path(self, relative: str) -> Path | None:
        """A real filesystem path to the stored object when the backend has one (the local
        tree: a server can use sendfile), else None (read it with `open_read`)."""
        ...
