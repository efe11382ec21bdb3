"""Files in the archive tree that the DB does not account for. Reads directories, never files.

The tree is listed in the DB's path order and merged with one ordered query per top directory
(`known` below), so memory stays flat and there is no query per file or directory.

The walk is iterative (a stack of directory listings, not recursion: any depth), never follows
a symlink (one is listed like a file, so an unrecorded one is an unknown entry), and a
directory it cannot list (permission, I/O error, a path too long) is reported, not raised.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterator

from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.storage.interface import WalkStopped as WalkStopped  # re-exported
from galaxy_archive.storage.names import PARTIAL_SUFFIX, TEMP_SUFFIX, TREE_TOPS

log = logging.getLogger(__name__)
# Opening each directory without following a symlink closes the gap between listing a
# directory and opening it (a directory swapped for a symlink in between is not entered).
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Stray(enum.StrEnum):
    UNKNOWN = "unknown"  # not recorded in the DB (a symlink included: it is never followed)
    TEMP = "temp"  # a download's temporary file (left by a dead run, or in flight)
    PARTIAL = "partial"  # a V1 blob being fetched by ranges: kept so a later run resumes it
    UNREADABLE = "unreadable"  # a directory that could not be listed: what is below is unknown


def find_strays(
    store: ObjectStore, known: Callable[[str], Iterator[str]], is_over: Callable[[], bool]
) -> Iterator[tuple[str, Stray]]:
    """Every file in the store's v1/ and v2/ (`store.list_files`) that `known(top)` (the
    recorded paths under a top directory, in path order) does not list, with what it looks
    like; and every directory that could not be listed, as UNREADABLE.

    Raises WalkStopped when `is_over()` (asked once per directory) turns true.
    """
    for top in TREE_TOPS:
        recorded = known(top)
        next_known = next(recorded, None)
        for entry in store.list_files(top, is_over):
            path = entry.path
            if not entry.is_listed:
                yield path, Stray.UNREADABLE
                continue
            while next_known is not None and next_known < path:
                next_known = next(recorded, None)
            if path == next_known:
                continue
            if path.endswith(TEMP_SUFFIX):
                yield path, Stray.TEMP
            elif path.endswith(PARTIAL_SUFFIX):
                yield path, Stray.PARTIAL
            else:
                yield path, Stray.UNKNOWN


def sorted_files(root: str, relative: str, is_over: Callable[[], bool]) -> Iterator[str]:
    """Every file under root/relative, as relative paths in SQLite's (binary) path order."""
    return (path for path, is_listed in sorted_entries(root, relative, is_over) if is_listed)


def sorted_entries(
    root: str, relative: str, is_over: Callable[[], bool]
) -> Iterator[tuple[str, bool]]:
    """(path, True) for every file under root/relative (anything that is not a directory,
    symlinks included), (path, False) for every directory that could not be listed; relative
    paths in SQLite's (binary) path order.

    A directory sorts as its name plus '/', so that every path below it comes out together,
    at the place the DB's ORDER BY path puts it. A directory that vanished during the walk (a
    sync beside it) is skipped; one that became a file is listed as that file.
    """
    # One iterator of sorted keys per directory being listed, deepest last. A key ending in
    # '/' is a directory still to be opened.
    stack: list[Iterator[str]] = [iter((relative + "/",))]
    while stack:
        key = next(stack[-1], None)
        if key is None:
            stack.pop()
            continue
        if not key.endswith("/"):
            yield key, True
            continue
        directory = key[:-1]
        if is_over():
            raise WalkStopped
        try:
            names = _sorted_keys(os.path.join(root, directory))
        except FileNotFoundError:
            continue
        except NotADirectoryError:  # a file now, or a symlink put in its place since listed
            yield directory, True
            continue
        except OSError as exc:  # PermissionError, EIO, ENAMETOOLONG, ELOOP, ...
            log.debug("cannot list %s: %s", directory, exc.strerror or exc)
            yield directory, False
            continue
        stack.append(iter([f"{directory}/{name}" for name in names]))


def _sorted_keys(path: str) -> list[str]:
    """The entries of the directory at `path`, sorted, directories as name + '/'."""
    fd = os.open(path, _OPEN_DIRECTORY)
    try:
        with os.scandir(fd) as entries:
            return sorted(
                e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in entries
            )
    finally:
        os.close(fd)
