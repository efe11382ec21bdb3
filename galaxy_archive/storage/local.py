"""The archive tree on disk: atomic, verified writes and the temp-file sweep.

Invariant: nothing unverified is ever visible at a final path. Bytes stream into a temporary
file in the target directory while they are hashed; only when size and MD5 match is the file
fsynced and renamed into place (readers see the old file or the new one, never a partial one).

Nothing is written outside the root (see containment): an object's path must lead into v1/
or v2/ without leaving the root, and no write passes a symlink or a file on the way there.
Such an object is a StorageError naming it; the other objects are unaffected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from galaxy_archive.errors import DigestMismatch, IntegrityError, PathRefused, StorageError
from galaxy_archive.storage.containment import Escape, Tree, path_problem

TEMP_SUFFIX = ".galaxy-tmp"
# A V1 blob fetched by ranges (v1_sync) lives in `.<name>.galaxy-partial` until it is checked
# and renamed; unlike temp files it is kept after a crash, so the next run resumes it.
PARTIAL_SUFFIX = ".galaxy-partial"
LOCK_NAME = ".galaxy-archive.lock"
# What the tree may hold besides objects; everything else under these is checked by verify.
TREE_TOPS = ("v1", "v2")


def partial_path(final: Path) -> Path:
    """Where a V1 blob bound for `final` is assembled: `.<name>.galaxy-partial` beside it."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


@dataclass(frozen=True)
class StoredObject:
    """What was written: the digest and size measured while streaming."""

    md5: str
    size: int


class ArchiveStore:
    """The archive root. All paths given to it are relative, produced by ``layout``."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.tree = Tree(root)
        self._fsync = fsync

    def path(self, relative: str) -> Path:
        return self.root / relative

    def size_of(self, relative: str) -> int | None:
        """Size of the regular file stored at `relative`, or None when there is none to adopt
        (absent, something else, or reached through a symlink or a file on the way)."""
        if path_problem(relative) is not None:
            return None
        try:
            self.tree.check_dirs(relative)
            found = os.lstat(self.tree.prefix + relative)
        except (OSError, Escape):
            return None
        return found.st_size if stat.S_ISREG(found.st_mode) else None

    def open_read(self, relative: str) -> BinaryIO:
        """The stored object's bytes (see interface.ObjectStore): never through a symlink."""
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"not read: {unsafe}")
        try:
            self.tree.check_dirs(relative)
        except Escape as exc:
            raise PathRefused(f"{relative}: not read: {exc}") from exc
        fd = os.open(self.tree.prefix + relative, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return open(fd, "rb")

    def md5_of(self, relative: str) -> tuple[str, int]:
        """(MD5, size) of the stored bytes, read in blocks."""
        with self.open_read(relative) as handle:
            return md5_of_stream(handle)

    def local_path(self, relative: str) -> Path | None:
        """The object's real path (for sendfile), None when the path is not a plain one."""
        if path_problem(relative) is not None:
            return None
        try:
            self.tree.check_dirs(relative)
        except (OSError, Escape):
            return None
        return Path(self.tree.prefix + relative)

    def prepare(self, relative: str) -> Path:
        """The final path of the object at `relative`, its directories made; a StorageError
        naming it when the path leaves the tree or passes a symlink or a file."""
        unsafe = path_problem(relative)
        top, sep, _ = relative.partition("/")
        if unsafe is None and (not sep or top not in TREE_TOPS):
            unsafe = f"recorded path {relative!r} is not below {' or '.join(TREE_TOPS)}"
        if unsafe is not None:
            raise PathRefused(f"not written: {unsafe}")
        try:
            self.tree.make_dirs(relative)
        except Escape as exc:
            raise PathRefused(f"{relative}: not written: {exc}") from exc
        except OSError as exc:
            raise PathRefused(f"{relative}: cannot create its directory ({exc.strerror})") from exc
        return Path(self.tree.prefix + relative)

    def write_verified(
        self,
        relative: str,
        pieces: Iterable[bytes],
        *,
        expected_md5: str | None,
        expected_size: int | None,
        check: Callable[[Path], None] | None = None,
    ) -> StoredObject:
        """Stream pieces to `relative` atomically; raise IntegrityError on any mismatch.

        `check`, when given, runs on the complete temp file before the rename (for example a
        manifest parse); an exception from it discards the file like a hash mismatch.
        """
        final = self.prepare(relative)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with _disk_errors(relative):
                # O_EXCL: a new file of our own, never an existing one (or a symlink's target)
                out = open(temp, "xb")  # noqa: SIM115 - closed below, also on errors
            with out:
                for piece in pieces:
                    digest.update(piece)
                    with _disk_errors(relative):
                        out.write(piece)
                    size += len(piece)
                    if expected_size is not None and size > expected_size:
                        raise IntegrityError(
                            f"{relative}: body longer than the expected {expected_size} bytes"
                        )
                _check_digest(relative, digest.hexdigest(), size, expected_md5, expected_size)
                with _disk_errors(relative):
                    out.flush()
                    if check is not None:
                        check(temp)
                    if self._fsync:
                        os.fsync(out.fileno())
            with _disk_errors(relative):
                os.replace(temp, final)
        except BaseException:
            _unlink_quietly(temp)
            raise
        return StoredObject(md5=digest.hexdigest(), size=size)

    def iter_temp_files(self) -> Iterator[Path]:
        """Every leftover temp file in the tree (after a crash or kill -9). Symlinked
        directories are not followed (os.walk's default), a symlinked top neither."""
        for top in TREE_TOPS:
            base = self.root / top
            if base.is_symlink() or not base.is_dir():
                continue
            for directory, _dirs, files in os.walk(base):
                for name in files:
                    if name.endswith(TEMP_SUFFIX):
                        yield Path(directory) / name

    def sweep_temp_files(self) -> int:
        """Delete leftover temp files; return how many were removed."""
        removed = 0
        for temp in self.iter_temp_files():
            _unlink_quietly(temp)
            removed += 1
        return removed


@contextlib.contextmanager
def _disk_errors(relative: str) -> Iterator[None]:
    """A failing disk (full, read-only, gone) is a StorageError naming the object."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"{relative}: cannot write ({exc.strerror or exc})") from exc


def _check_digest(
    relative: str, md5: str, size: int, expected_md5: str | None, expected_size: int | None
) -> None:
    if expected_size is not None and size != expected_size:
        raise IntegrityError(f"{relative}: got {size} bytes, expected {expected_size}")
    if expected_md5 is not None and md5 != expected_md5:
        raise DigestMismatch(f"{relative}: MD5 {md5} does not match the expected {expected_md5}")


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def md5_of_file(path: Path, *, block_size: int = 1 << 20) -> tuple[str, int]:
    """(MD5, size) of a file, read in blocks; hashlib releases the GIL on large blocks. A
    symlink is not followed (OSError)."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb", buffering=0) as handle:
        buffer = bytearray(block_size)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size


def md5_of_stream(handle: BinaryIO, *, block_size: int = 1 << 20) -> tuple[str, int]:
    """(MD5, size) of what is left to read in `handle`, read in blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while block := handle.read(block_size):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size
