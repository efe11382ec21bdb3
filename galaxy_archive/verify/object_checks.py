"""Check one stored file against what the DB recorded about it. Runs in worker threads.

No DB access here: the main thread hands over a CheckItem (everything the checks need) and
gets a CheckResult back. Files are read once, in blocks, into a per-thread buffer; hashlib and
zlib release the GIL on large blocks, so threads use every core.

Nothing outside the archive root is read (see containment): a recorded path that could leave
it, a symlink or file on the way to an object, or an object that is a symlink is a problem
named with the object, and its target is never opened.
"""

from __future__ import annotations

import enum
import hashlib
import os
import stat
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.manifests import decode_json, decode_meta
from galaxy_archive.models.v1_ranges import Extent, ExtentChecker
from galaxy_archive.models.verify_plan import Check
from galaxy_archive.storage.containment import Escape, Tree, path_problem

BLOCK_BYTES = 1 << 20
# Inflate at most this much per call, so a zlib bomb cannot take the memory.
INFLATE_STEP_BYTES = 4 << 20
MAX_EXTENT_PROBLEMS = 20  # named per blob; the count says how many more
EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()


class Verdict(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"
    UNPROVEN = "unproven"  # nothing recorded to check the bytes against


@dataclass(frozen=True)
class CheckItem:
    object_id: int
    kind: ObjectKind
    path: str  # relative to the archive root
    md5: str | None
    size: int | None
    checks: frozenset[Check]
    inflated_md5: str | None = None
    inflated_size: int | None = None
    extents: tuple[Extent, ...] = ()  # V1 blob: its file records
    uncovered_md5: str | None = None  # V1 blob: of the bytes outside them, as stored


@dataclass(frozen=True)
class CheckResult:
    item: CheckItem
    verdict: Verdict
    detail: str | None = None
    bytes_read: int = 0
    bad_extents: tuple[str, ...] = ()  # V1 file paths whose bytes are wrong


class _Corrupt(Exception):
    """A check failed; the message says how."""


class _Unproven(Exception):
    """Nothing was recorded to check some of the bytes against."""


class ObjectChecker:
    """Checks files under `root`. Thread-safe: each thread reuses its own read buffer."""

    def __init__(self, root: Path, *, block_bytes: int = BLOCK_BYTES) -> None:
        self.root = root
        self._tree = Tree(root)
        self._block_bytes = block_bytes
        self._local = threading.local()

    def check(self, item: CheckItem) -> CheckResult:
        """Check the stored file at the item's path below the root."""
        unsafe = path_problem(item.path)
        if unsafe is not None:
            return CheckResult(item, Verdict.CORRUPT, f"{unsafe}; not opened")
        try:
            self._tree.check_dirs(item.path)
        except FileNotFoundError:
            return CheckResult(item, Verdict.MISSING, "file is missing")
        except Escape as exc:
            return CheckResult(item, Verdict.CORRUPT, f"{exc}; not followed")
        except OSError as exc:
            return CheckResult(item, Verdict.CORRUPT, f"cannot stat its directory ({exc.strerror})")
        return self.check_file(self._tree.prefix + item.path, item)

    def check_file(self, path: str | Path, item: CheckItem) -> CheckResult:
        """Check `path` (the stored file, or a freshly downloaded temp file) as `item`; a
        symlink there is never followed."""
        try:
            found = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return CheckResult(item, Verdict.MISSING, "file is missing")
        except OSError as exc:
            return CheckResult(item, Verdict.CORRUPT, f"cannot stat ({exc.strerror})")
        if stat.S_ISLNK(found.st_mode):
            return CheckResult(item, Verdict.CORRUPT, "is a symlink; not followed")
        if not stat.S_ISREG(found.st_mode):
            return CheckResult(item, Verdict.CORRUPT, "not a regular file")
        if item.size is not None and found.st_size != item.size:
            return CheckResult(
                item, Verdict.CORRUPT, f"size is {found.st_size} bytes, expected {item.size}"
            )
        if item.checks <= {Check.SIZE}:
            return CheckResult(item, Verdict.OK)
        if item.md5 is None and Check.EXTENTS not in item.checks:
            return CheckResult(item, Verdict.UNPROVEN, "no recorded MD5 to check the bytes against")
        reader = _Reader(item, self._buffer())
        try:
            reader.read(path)
            bad_extents = reader.finish()
        except OSError as exc:
            return CheckResult(
                item, Verdict.CORRUPT, f"cannot read ({exc.strerror or exc})", reader.size
            )
        except _Corrupt as exc:
            return CheckResult(item, Verdict.CORRUPT, str(exc), reader.size)
        except _Unproven as exc:
            return CheckResult(item, Verdict.UNPROVEN, str(exc), reader.size)
        if bad_extents:
            shown = ", ".join(bad_extents[:MAX_EXTENT_PROBLEMS])
            more = len(bad_extents) - MAX_EXTENT_PROBLEMS
            detail = f"wrong bytes in {len(bad_extents)} file(s): {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
            return CheckResult(item, Verdict.CORRUPT, detail, reader.size, tuple(bad_extents))
        return CheckResult(item, Verdict.OK, bytes_read=reader.size)

    def _buffer(self) -> bytearray:
        buffer = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = bytearray(self._block_bytes)
            self._local.buffer = buffer
        return buffer


class _Reader:
    """One pass over a file feeding every check the item asks for."""

    def __init__(self, item: CheckItem, buffer: bytearray) -> None:
        self.item = item
        self.size = 0
        self._buffer = buffer
        self._digest = hashlib.md5(usedforsecurity=False) if item.md5 is not None else None
        self._inflater = _Inflater() if Check.INFLATE in item.checks else None
        self._body: bytearray | None = (
            bytearray() if item.checks & {Check.META_JSON, Check.JSON} else None
        )
        self._blob = _BlobProof(item) if Check.EXTENTS in item.checks else None

    def read(self, path: str | Path) -> None:
        view = memoryview(self._buffer)
        # O_NOFOLLOW: a symlink put in place since the lstat is not followed (ELOOP instead)
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb", buffering=0) as handle:
            while count := handle.readinto(self._buffer):
                block = view[:count]
                if self._digest is not None:
                    self._digest.update(block)
                if self._inflater is not None:
                    self._inflater.feed(block)
                if self._body is not None:
                    self._body += block
                if self._blob is not None:
                    self._blob.feed(self.size, block)
                self.size += count

    def finish(self) -> list[str]:
        """Raise _Corrupt for a whole-object failure; return the V1 files whose bytes are wrong."""
        item = self.item
        if item.size is not None and self.size != item.size:
            raise _Corrupt(f"read {self.size} bytes, expected {item.size}")
        if self._digest is not None and (md5 := self._digest.hexdigest()) != item.md5:
            raise _Corrupt(f"MD5 is {md5}, expected {item.md5}")
        if self._inflater is not None:
            self._inflater.finish(item.inflated_md5, item.inflated_size)
        if self._body is not None:
            _parse(item, bytes(self._body))
        if self._blob is not None:
            return self._blob.finish(self.size)
        return []


class _Inflater:
    """Streaming zlib check: the stream is complete, nothing follows it, and what it inflates
    to has the recorded MD5 and size."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(15)
        self._digest = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def feed(self, block: memoryview) -> None:
        data: Any = block
        try:
            while data:
                if self._inflater.eof:
                    raise _Corrupt("bytes after the end of the zlib stream")
                out = self._inflater.decompress(data, INFLATE_STEP_BYTES)
                self._digest.update(out)
                self.size += len(out)
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise _Corrupt(f"invalid zlib data ({exc})") from None
        if self._inflater.unused_data:
            raise _Corrupt("bytes after the end of the zlib stream")

    def finish(self, expected_md5: str | None, expected_size: int | None) -> None:
        if not self._inflater.eof:
            raise _Corrupt("zlib stream is truncated")
        if expected_size is not None and self.size != expected_size:
            raise _Corrupt(f"inflates to {self.size} bytes, expected {expected_size}")
        md5 = self._digest.hexdigest()
        if expected_md5 is not None and md5 != expected_md5:
            raise _Corrupt(f"inflated MD5 is {md5}, expected {expected_md5}")


class _BlobProof:
    """A V1 blob's proof, in the blob's single read: every file record's MD5 at its offset,
    and the MD5 of the bytes outside them as recorded when the blob was stored (or, for a blob
    stored by an older version, the whole blob's MD5, checked by the reader)."""

    def __init__(self, item: CheckItem) -> None:
        self._item = item
        self._checker = ExtentChecker(e for e in item.extents if e.size > 0)

    def feed(self, position: int, block: memoryview) -> None:
        self._checker.feed(position, block)

    def finish(self, blob_size: int) -> list[str]:
        """The files whose bytes are wrong; raise when only the bytes between them are."""
        bad = [_describe_bad(e, blob_size) for e in self._checker.finish()]
        bad += [
            _describe_bad(e, blob_size)
            for e in self._item.extents
            if e.size == 0 and (e.offset > blob_size or e.md5 != EMPTY_MD5)
        ]
        measured, recorded = self._checker.uncovered_md5, self._item.uncovered_md5
        if bad or measured == recorded:
            return bad
        if recorded is not None:
            raise _Corrupt(
                f"the bytes outside its file records have MD5 {measured}, recorded {recorded}"
            )
        if self._item.md5 is None and measured != EMPTY_MD5:
            raise _Unproven("no recorded MD5 for the bytes outside its file records")
        return bad


def _describe_bad(extent: Extent, blob_size: int) -> str:
    if extent.end > blob_size:
        return f"{extent.path} (ends past the blob's {blob_size} bytes)"
    return f"{extent.path} (offset {extent.offset}, MD5 is not {extent.md5})"


def _parse(item: CheckItem, body: bytes) -> None:
    what = f"{item.kind} {item.path}"
    try:
        if Check.META_JSON in item.checks:
            decode_meta(body, what)
        else:
            decode_json(body, what)
    except ManifestError as exc:
        raise _Corrupt(f"does not parse: {exc}") from None
