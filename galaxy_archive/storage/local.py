"""The archive tree on disk, the local backend of `interface.ObjectStore`: atomic, verified
writes, reads that follow no symlink, quarantine, the listing and the temp-file sweep.

Invariant: nothing unverified is ever visible at a final path. Bytes stream into a temporary
file in the target directory while they are hashed; only when size and MD5 match is the file
fsynced and renamed into place (readers see the old file or the new one, never a partial one).

Nothing is written outside the root (see containment): an object's path must lead into v1/
or v2/ without leaving the root, and no write passes a symlink or a file on the way there.
Such an object is a StorageError naming it; the other objects are unaffected.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from galaxy_archive.errors import DigestMismatch, IntegrityError, PathRefused, StorageError
from galaxy_archive.storage.containment import Escape, Tree, path_problem
from galaxy_archive.storage.interface import Check, StoredEntry, StoredObject

# Re-exported (`as`): the names belong to the tree (see names); callers know them from here.
from galaxy_archive.storage.names import LOCK_NAME as LOCK_NAME
from galaxy_archive.storage.names import PARTIAL_SUFFIX as PARTIAL_SUFFIX
from galaxy_archive.storage.names import QUARANTINE_DIR as QUARANTINE_DIR
from galaxy_archive.storage.names import TEMP_SUFFIX as TEMP_SUFFIX
from galaxy_archive.storage.names import TREE_TOPS as TREE_TOPS
from galaxy_archive.storage.tree_walk import sorted_entries

_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def partial_path(final: Path) -> Path:
    """Where a V1 blob bound for `final` is assembled: `.<name>.galaxy-partial` beside it."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


class ArchiveStore:
    """The archive root, an `ObjectStore` on the local filesystem. All paths given to it are
    relative, produced by ``layout``; none is followed through a symlink."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.tree = Tree(root)
        self._fsync = fsync

    # --- reading ---------------------------------------------------------------------------

    def size_of(self, relative: str) -> int | None:
        """Size of the regular file stored at `relative`, or None when there is none to adopt
        (absent, something else, or reached through a symlink or a file on the way)."""
        try:
            return self.stat(relative)
        except (OSError, StorageError):
            return None

    def stat(self, relative: str) -> int:
        """The stored object's size, or why there is none (see interface.ObjectStore): one
        lstat per object, the directories on the way checked once per run."""
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"{unsafe}; not opened")
        try:
            self.tree.check_dirs(relative)
        except Escape as exc:
            raise PathRefused(f"{exc}; not followed") from exc
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot stat its directory ({exc.strerror})") from exc
        try:
            found = os.lstat(self.tree.prefix + relative)
        except NotADirectoryError as exc:  # a file swapped in on the way since it was checked
            raise FileNotFoundError(exc.errno, exc.strerror, relative) from exc
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot stat ({exc.strerror})") from exc
        if stat.S_ISLNK(found.st_mode):
            raise PathRefused("is a symlink; not followed")
        if not stat.S_ISREG(found.st_mode):
            raise PathRefused("not a regular file")
        return found.st_size

    def open_read(self, relative: str) -> BinaryIO:
        """The stored object's bytes (see interface.ObjectStore): never through a symlink."""
        return open(self._open_fd(relative, "read"), "rb")

    def md5_of(self, relative: str) -> tuple[str, int]:
        """(MD5, size) of the stored bytes, read in blocks."""
        return _md5_of_fd(self._open_fd(relative, "read"))

    def local_path(self, relative: str) -> Path | None:
        """The object's real path (for sendfile), None when the path is not a plain one."""
        if path_problem(relative) is not None:
            return None
        try:
            self.tree.check_dirs(relative)
        except (OSError, Escape):
            return None
        return Path(self.tree.prefix + relative)

    def list_files(self, top: str, is_over: Callable[[], bool]) -> Iterator[StoredEntry]:
        """Every entry under `top` in SQLite's path order (see tree_walk.sorted_entries)."""
        unsafe = path_problem(top)
        if unsafe is not None:
            raise PathRefused(f"not listed: {unsafe}")
        for path, is_listed in sorted_entries(self.tree.root, top, is_over):
            yield StoredEntry(path, is_listed)

    def _open_fd(self, relative: str, verb: str) -> int:
        """A descriptor on the object, opened without following a symlink anywhere below the
        root: PathRefused when the path, a directory on the way or the object itself is not a
        plain one (a symlink), FileNotFoundError when absent."""
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"not {verb}: {unsafe}")
        try:
            self.tree.check_dirs(relative)
        except Escape as exc:
            raise PathRefused(f"{relative}: not {verb}: {exc}") from exc
        try:
            return os.open(self.tree.prefix + relative, _OPEN_READ)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise PathRefused(f"{relative}: not {verb}: is a symlink") from exc

    # --- writing ---------------------------------------------------------------------------

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
        check: Check | None = None,
    ) -> StoredObject:
        """Stream pieces to `relative` atomically; raise IntegrityError on any mismatch.

        `check`, when given, reads the complete temp file before the rename (for example a
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
                        with open(os.open(temp, _OPEN_READ), "rb") as reader:
                            check(reader)
                    if self._fsync:
                        os.fsync(out.fileno())
            with _disk_errors(relative):
                os.replace(temp, final)
        except BaseException:
            _unlink_quietly(temp)
            raise
        return StoredObject(md5=digest.hexdigest(), size=size)

    def staging_path(self, relative: str) -> Path:
        """`.<name>.galaxy-partial` beside the object's final path, its directory made (the
        file itself is opened with O_NOFOLLOW by v1_blob_io)."""
        return partial_path(self.prepare(relative))

    def publish(self, relative: str, staged: Path, *, size: int, md5: str | None = None) -> None:
        """Rename the staged file into place (the caller fsynced it): atomic, and only a plain
        file of `size` bytes (never a symlink put in its place). `md5` is not read again here:
        the caller checked every byte while it was assembled."""
        del md5  # the local rename needs no digest; an object store's upload checks it
        final = self.prepare(relative)
        try:
            found = os.lstat(staged)
        except OSError as exc:
            raise StorageError(f"{relative}: cannot rename into place ({exc.strerror})") from exc
        if not stat.S_ISREG(found.st_mode):
            raise PathRefused(f"{relative}: not written: {staged.name} is not a plain file")
        if found.st_size != size:
            raise IntegrityError(f"{relative}: staged {found.st_size} bytes, expected {size}")
        try:
            os.replace(staged, final)
        except OSError as exc:
            raise StorageError(f"{relative}: cannot rename into place ({exc.strerror})") from exc

    def check_writable(self, relative: str) -> None:
        """The object's directory is reached through real directories (made if missing) and
        open to writing, and no symlink waits at its staging path."""
        final = self.prepare(relative)
        if not os.access(final.parent, os.W_OK | os.X_OK):
            raise PathRefused(f"{relative}: cannot write into its directory (Permission denied)")
        staged = partial_path(final)
        if os.path.islink(staged):
            raise PathRefused(f"{relative}: not written: {staged.name} is a symlink")

    def quarantine(self, relative: str, now: float) -> str:
        """Move the object to ``quarantine/<relative>.<UTC timestamp>``; return that path.

        The file is moved as it is (a symlink as a symlink: its target is left alone), and never
        through or into a symlink or a file on the way: that is a StorageError naming the object.
        """
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        target = f"{QUARANTINE_DIR}/{relative}.{stamp}"
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"cannot move to {QUARANTINE_DIR}/: {unsafe}")
        tree = self.tree
        try:
            tree.check_dirs(relative)
            tree.make_dirs(target)
            number = 1
            while os.path.lexists(tree.prefix + target):  # two repairs of one object in a second
                number += 1
                target = f"{QUARANTINE_DIR}/{relative}.{stamp}.{number}"
            os.replace(tree.prefix + relative, tree.prefix + target)
        except Escape as exc:
            raise StorageError(f"cannot move {relative} to {QUARANTINE_DIR}/: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot move {relative} to {target}: {exc.strerror}") from exc
        return target

    def delete(self, relative: str) -> None:
        """Unlink the object; nothing when it is gone already. A symlink (or a directory) is
        not what gc recorded: refused, left for verify to report."""
        try:
            self.stat(relative)
        except FileNotFoundError:
            return
        except PathRefused as exc:
            raise PathRefused(f"{relative}: not deleted: {exc}") from exc
        try:
            os.unlink(self.tree.prefix + relative)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"{relative}: cannot delete ({exc.strerror})") from exc

    # --- leftovers -------------------------------------------------------------------------

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
    """(MD5, size) of a file, read in blocks. A symlink is not followed (OSError)."""
    return _md5_of_fd(os.open(path, _OPEN_READ), block_size=block_size)


def _md5_of_fd(fd: int, *, block_size: int = 1 << 20) -> tuple[str, int]:
    """(MD5, size) of the file open at `fd` (closed after), read in blocks into one buffer;
    hashlib releases the GIL on large blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(fd, "rb", buffering=0) as handle:
        buffer = bytearray(block_size)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size
