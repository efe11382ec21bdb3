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

import hashlib
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


class WalkStopped(Exception):
    """`is_over` said stop (time budget spent, or the run was asked to stop)."""


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
        PathRefused when the path, a directory on the way or the object is not a plain one
        (a symlink is never followed)."""
        ...

    def size_of(self, relative: str) -> int | None:
        """The stored object's size, or None when there is no object to adopt there."""
        ...

    def stat(self, relative: str) -> int:
        """The stored object's size, or why there is none: FileNotFoundError when it is
        absent; PathRefused, its message saying what is wrong, when something is there that is
        not a plain object reached through plain directories (verify reports the message);
        StorageError when it cannot be looked at."""
        ...

    def md5_of(self, relative: str) -> tuple[str, int]:
        """(MD5, size) of the stored bytes, read in blocks. FileNotFoundError when absent."""
        ...

    def quarantine(self, relative: str, now: float) -> str:
        """Move the object aside, out of the tree's objects, as evidence (never deleted);
        return where it went, relative to the archive root. StorageError naming the object
        when it cannot (then it stays where it is)."""
        ...

    def delete(self, relative: str) -> None:
        """Remove the object (gc). No error when it is already gone; PathRefused when the
        path is not a plain one or what is there is not a plain object."""
        ...

    def check_writable(self, relative: str) -> None:
        """Raise PathRefused (naming the object) when an object could not be written at
        `relative` now: asked before evidence is moved aside for a repair that could not be
        written back anyway."""
        ...

    def sweep_temp_files(self) -> int:
        """Remove what dead runs left half-written (temp files; an object store's abandoned
        uploads), never a resumable staged file; return how many were removed. Only under
        the archive lock: a live run's writes in flight look the same."""
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

    def publish(self, relative: str, staged: Path, *, size: int, md5: str | None = None) -> None:
        """Make a staged file (already checked and fsynced by the caller) the object at
        `relative`, atomically: after this it is visible, durable and the staged file is
        gone. `size` is checked again (a staged file of another size is refused); `md5`, when
        the caller knows the whole object's (a V1 blob has none), lets a backend check the
        upload. PathRefused when `staged` is not a plain file or `relative` not a plain path."""
        ...

    def local_path(self, relative: str) -> Path | None:
        """A real filesystem path to the stored object when the backend has one (the local
        tree: a server can use sendfile), else None (read it with `open_read`)."""
        ...


def md5_of_stream(handle: BinaryIO, *, block_size: int = 1 << 20) -> tuple[str, int]:
    """(MD5, size) of what is left to read in `handle`, read in blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while block := handle.read(block_size):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size
