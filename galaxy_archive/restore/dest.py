"""DEST, the directory a restore writes into, with a containment of its own.

Every path is DEST-relative and already safe (models.install_plan); on top of that nothing on
the way is followed: each directory is opened from its parent with O_NOFOLLOW, so a symlink
already in DEST (planted, or left by anything) is refused and named instead of leading the
writes elsewhere. A file is written to a temp file beside it, checked by the caller, then
renamed over the final name: a final name never holds unchecked bytes. No fsync: a rerun
checks every file by size and MD5, so a file lost to a crash is found and written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from galaxy_archive.errors import PathRefused

TEMP_SUFFIX = ".restore-part"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_EXECUTABLE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class Destination:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._root_fd)

    @contextlib.contextmanager
    def parent(self, relative: str, *, create: bool) -> Iterator[tuple[int, str] | None]:
        """(fd of the directory holding `relative`, its last name); None when a directory on
        the way is absent and `create` is False. PathRefused when one is not a directory."""
        *dirs, name = relative.split("/")
        fd = os.dup(self._root_fd)
        try:
            for index, part in enumerate(dirs):
                child = self._open_dir(fd, part, "/".join(dirs[: index + 1]), create)
                os.close(fd)
                fd = child
                if fd < 0:
                    break
            yield (fd, name) if fd >= 0 else None
        finally:
            if fd >= 0:
                os.close(fd)

    def make_dir(self, relative: str) -> None:
        with self.parent(relative + "/.", create=True):
            pass

    def kind_of(self, parent_fd: int, name: str, relative: str) -> str | None:
        """'file' or None (absent); PathRefused for anything else in the way."""
        try:
            found = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(found.st_mode):
            return "file"
        what = "a symlink" if stat.S_ISLNK(found.st_mode) else "not a regular file"
        raise PathRefused(f"{relative}: refused: {what} is already there in DEST")

    def md5_and_size(self, parent_fd: int, name: str) -> tuple[str, int]:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size

    def is_executable(self, parent_fd: int, name: str) -> bool:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        return mode & _EXECUTABLE == _EXECUTABLE

    @contextlib.contextmanager
    def temp_file(self, parent_fd: int, name: str) -> Iterator[int]:
        """A fresh temp file beside `name` (a leftover of a killed run is replaced); removed
        unless `publish` renamed it."""
        temp = name + TEMP_SUFFIX
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent_fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o644, dir_fd=parent_fd)
        try:
            yield fd
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent_fd)

    def publish(self, parent_fd: int, name: str, fd: int, *, is_executable: bool) -> None:
        """The checked temp file becomes `name` (atomically replacing what was there)."""
        if is_executable:
            os.fchmod(fd, 0o755)
        os.rename(name + TEMP_SUFFIX, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)

    def set_executable(self, parent_fd: int, name: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)

    def link(self, relative: str, target: str) -> bool:
        """Make the symlink; False when it is there already with this target."""
        with self.parent(relative, create=True) as found:
            assert found is not None
            fd, name = found
            try:
                if os.readlink(name, dir_fd=fd) == target:
                    return False
                raise PathRefused(f"{relative}: refused: a symlink to elsewhere is already there")
            except FileNotFoundError:
                pass
            except OSError as exc:  # EINVAL: something that is not a link
                raise PathRefused(f"{relative}: refused: something else is already there") from exc
            os.symlink(target, name, dir_fd=fd)
            return True

    def unnamed_files(self, named: set[str]) -> list[str]:
        """DEST-relative paths of the files and links in DEST the build does not name (left
        alone; listed with -v). Symlinked directories are not followed."""
        found = []
        for top, dirs, files in os.walk(self.root, followlinks=False):
            base = Path(top).relative_to(self.root)
            for name in files + [d for d in dirs if (Path(top) / d).is_symlink()]:
                relative = (base / name).as_posix()
                if relative not in named:
                    found.append(relative)
        return sorted(found)

    @staticmethod
    def _open_dir(parent_fd: int, name: str, relative: str, create: bool) -> int:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent_fd)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            return -1
        except OSError as exc:  # ELOOP / ENOTDIR: a symlink or a file where a directory goes
            raise PathRefused(
                f"{relative}: refused: not a plain directory in DEST (symlinks are not followed)"
            ) from exc
