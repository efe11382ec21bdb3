"""Check one stored object against what the DB recorded about it. Runs in worker threads.

No DB access here: the main thread hands over a CheckItem (everything the checks need) and
gets a CheckResult back. Objects are read through the run's `ObjectStore` (`stat`, then
`open_read`), once, in blocks, into a per-thread buffer; hashlib and zlib release the GIL on
large blocks, so threads use every core.

Nothing outside the archive root is read: the store refuses a recorded path that could leave
it, a symlink or file on the way to an object, or an object that is a symlink, and says why;
that is a problem named with the object, and its target is never opened.
"""

from __future__ import annotations

import enum
import hashlib
import io
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from galaxy_archive.errors import ManifestError, StorageError
from galaxy_archive.models.decoding import decode_json, decode_meta
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.v1_ranges import Extent, ExtentChecker
from galaxy_archive.models.verify_plan import Check
from galaxy_archive.storage.interface import ObjectStore

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
    """Checks the objects of `store`. Thread-safe: each thread reuses its own read buffer."""

    def __init__(self, store: ObjectStore, *, block_bytes: int = BLOCK_BYTES) -> None:
        self.store = store
        self._block_bytes = block_bytes
        self._local = threading.local()

    def check(self, item: CheckItem) -> CheckResult:
        """Check the stored object at the item's path: its size, then (unless only the size is
        asked for) its bytes."""
        try:
            size = self.store.stat(item.path)
        except FileNotFoundError:
            return CheckResult(item, Verdict.MISSING, "file is missing")
        except StorageError as exc:  # the store says what is wrong (a symlink, ...)
            return CheckResult(item, Verdict.CORRUPT, str(exc))
        if item.size is not None and size != item.size:
            return CheckResult(item, Verdict.CORRUPT, f"size is {size} bytes, expected {item.size}")
        if item.checks <= {Check.SIZE}:
            return CheckResult(item, Verdict.OK)
        if item.md5 is None and Check.EXTENTS not in item.checks:
            return CheckResult(item, Verdict.UNPROVEN, "no recorded MD5 to check the bytes against")
        try:
            reader = self.store.open_read(item.path)
        except (OSError, StorageError) as exc:  # changed since the stat (ELOOP: now a symlink)
            return CheckResult(item, Verdict.CORRUPT, f"cannot read ({_reason(exc)})")
        with reader:
            return self.check_reader(reader, item)

    def check_reader(self, reader: BinaryIO, item: CheckItem) -> CheckResult:
        """Check the bytes `reader` gives from where it stands (a stored object, or a freshly
        downloaded one before it becomes visible) as `item`."""
        pass_ = _Reader(item, self._buffer())
        try:
            pass_.read(reader)
            bad_extents = pass_.finish()
        except OSError as exc:
            return CheckResult(item, Verdict.CORRUPT, f"cannot read ({_reason(exc)})", pass_.size)
        except _Corrupt as exc:
            return CheckResult(item, Verdict.CORRUPT, str(exc), pass_.size)
        except _Unproven as exc:
            return CheckResult(item, Verdict.UNPROVEN, str(exc), pass_.size)
        if bad_extents:
            shown = ", ".join(bad_extents[:MAX_EXTENT_PROBLEMS])
            more = len(bad_extents) - MAX_EXTENT_PROBLEMS
            detail = f"wrong bytes in {len(bad_extents)} file(s): {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
            return CheckResult(item, Verdict.CORRUPT, detail, pass_.size, tuple(bad_extents))
        return CheckResult(item, Verdict.OK, bytes_read=pass_.size)

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

    def read(self, reader: BinaryIO) -> None:
        view = memoryview(self._buffer)
        fill = _filler(reader)
        while count := fill(self._buffer):
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


def _filler(reader: BinaryIO) -> Callable[[bytearray], int | None]:
    """`readinto` of the reader when it has one (a local file: the bytes land in the thread's
    buffer with no copy, which keeps verify at md5sum's speed), else read-and-copy."""
    if isinstance(reader, io.BufferedIOBase | io.RawIOBase):
        return reader.readinto

    def fill(buffer: bytearray) -> int:
        data = reader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    return fill


def _reason(exc: OSError | StorageError) -> str:
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return str(exc)


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
