"""Files in the archive tree that the DB does not account for. Reads directories, never files.

The tree is listed in the DB's path order and merged with one ordered query per top directory
(`known` below), so memory stays flat and there is no query per file or directory.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterator

from galaxy_archive.storage import PARTIAL_SUFFIX, TEMP_SUFFIX, TREE_TOPS


class Stray(enum.StrEnum):
    UNKNOWN = "unknown"  # not recorded in the DB
    TEMP = "temp"  # a download's temporary file (left by a dead run, or in flight)
    PARTIAL = "partial"  # a V1 blob being fetched by ranges: kept so a later run resumes it


class WalkStopped(Exception):
    """`is_over` said stop (time budget spent, or the run was asked to stop)."""


def find_strays(
    root: str, known: Callable[[str], Iterator[str]], is_over: Callable[[], bool]
) -> Iterator[tuple[str, Stray]]:
    """Every file under root's v1/ and v2/ that `known(top)` (the recorded paths under a top
    directory, in path order) does not list, with what it looks like.

    Raises WalkStopped when `is_over()` (asked once per directory) turns true.
    """
    for top in TREE_TOPS:
        recorded = known(top)
        next_known = next(recorded, None)
        for path in sorted_files(root, top, is_over):
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
    """Every file under root/relative, as relative paths in SQLite's (binary) path order.

    A directory sorts as its name plus '/', so that every path below it comes out together,
    at the place the DB's ORDER BY path puts it. Symlinks are listed as files.
    """
    if is_over():
        raise WalkStopped
    try:
        with os.scandir(os.path.join(root, relative)) as entries:
            keys = [e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return
    for key in sorted(keys):
        if key.endswith("/"):
            yield from sorted_files(root, f"{relative}/{key[:-1]}", is_over)
        else:
            yield f"{relative}/{key}"
