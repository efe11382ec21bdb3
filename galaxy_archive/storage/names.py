"""The names the local tree gives what is not an object: temp, partial and lock files, tops.

Apart from `local` so that the tree walk, which classifies what it finds by these names, and
the backend, which makes them, share them without importing each other.
"""

from __future__ import annotations

TEMP_SUFFIX = ".galaxy-tmp"
# A V1 blob fetched by ranges (fetch.v1_blobs) lives in `.<name>.galaxy-partial` until it is
# checked and published; unlike temp files it is kept after a crash, so the next run resumes it.
PARTIAL_SUFFIX = ".galaxy-partial"
LOCK_NAME = ".galaxy-archive.lock"
# What the tree may hold besides objects; everything else under these is checked by verify.
TREE_TOPS = ("v1", "v2")
QUARANTINE_DIR = "quarantine"
