"""Reads and writes that stay below the archive root, whatever the tree or the DB hold.

The root itself may be a symlink (``/srv/archive -> /mnt/disk3``): it is resolved once, and
below it nothing is followed. A path the DB recorded must be a plain relative path (no ``..``,
nothing absolute); every directory on the way to an object must be a real directory, not a
symlink or a file; the object itself is opened with O_NOFOLLOW by its readers.

A directory found to be a real one is remembered for the run, so a run over 100,000 objects
costs one lstat per directory, not one per object and level. This guards against what the
tree holds when a run looks at it (symlinks planted or left by hand, damage); a process that
swaps directories for symlinks while the run goes on is not in its scope.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


class Escape(Exception):
    """A path that would leave the archive root or pass through something that is not a
    real directory below it; the message names the part that is wrong."""


def path_problem(relative: object) -> str | None:
    """Why `relative` (an object's path as the DB recorded it) cannot name a place below the
    root, or None when it can: a non-empty relative POSIX path without '', '.' or '..'
    components or NUL bytes."""
    if not isinstance(relative, str) or not relative:
        return f"recorded path {relative!r} is not a path"
    if "\x00" in relative or relative[0] == "/":
        return f"recorded path {relative!r} is absolute or invalid"
    # Only these can make a component '', '.' or '..' (a layout path has none; this runs per
    # object in verify, and the substring tests cost a quarter of a split)
    if _may_have_odd_parts(relative) and any(
        part in ("", ".", "..") for part in relative.split("/")
    ):
        return f"recorded path {relative!r} is not a plain relative path (it may leave the root)"
    return None


def _may_have_odd_parts(relative: str) -> bool:
    return relative[0] == "." or "/." in relative or "//" in relative or relative[-1] == "/"


class Tree:
    """The directories below one archive root, each checked once per run.

    Thread-safe: the cache only grows, and a race costs a second lstat, never a wrong answer.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.realpath(root)
        self.prefix = os.path.join(self.root, "")  # plain strings: pathlib costs more than a stat
        self._real_dirs: set[str] = {""}

    def check_dirs(self, relative: str) -> None:
        """Check the directories on the way to `relative` (a safe relative path).

        Raises Escape when one is a symlink or not a directory, FileNotFoundError when one is
        missing (so is the object), another OSError when one cannot be looked at.
        """
        parent = relative.rpartition("/")[0]
        if parent not in self._real_dirs:  # the usual case ends here: one set lookup
            self._walk(parent, is_creating=False)

    def make_dirs(self, relative: str) -> None:
        """Create the missing directories on the way to `relative`; raise Escape (or an OSError)
        as check_dirs does instead of creating anything through a symlink or a file."""
        parent = relative.rpartition("/")[0]
        if parent not in self._real_dirs:
            if not os.path.isdir(self.root):
                os.makedirs(self.root, exist_ok=True)
            self._walk(parent, is_creating=True)

    def _walk(self, directory: str, *, is_creating: bool) -> None:
        """Check (or create) `directory` and each of its parents from the deepest one known."""
        unknown: list[str] = []
        while directory not in self._real_dirs:
            unknown.append(directory)
            directory = directory.rpartition("/")[0]
        for directory in reversed(unknown):
            self._inspect(directory, is_creating=is_creating)
            self._real_dirs.add(directory)

    def _inspect(self, directory: str, *, is_creating: bool) -> None:
        full = self.prefix + directory
        try:
            mode = os.lstat(full).st_mode
        except FileNotFoundError:
            if not is_creating:
                raise
            # made meanwhile (by another thread or process): look again
            with contextlib.suppress(FileExistsError):
                os.mkdir(full)
            mode = os.lstat(full).st_mode
        if stat.S_ISLNK(mode):
            raise Escape(f"{directory} is a symlink")
        if not stat.S_ISDIR(mode):
            raise Escape(f"{directory} is not a directory")
