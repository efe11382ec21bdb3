"""Byte ranges of a V1 blob: planning, Content-Range checks, extent MD5s. Pure.

A `main.bin` is fetched as half-open ranges ``[start, end)`` by parallel HTTP Range requests
(protocol.md 6.3). What is on disk is a `RangeSet`; what is still to fetch is its gaps, cut
into pieces of at most the configured range size. Every 206 is checked against the range that
was asked for before one byte of it is used. Before a blob is renamed into place, the bytes
of every file record are hashed in order by an `ExtentChecker`.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from galaxy_archive.errors import IntegrityError

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class RangeViolation(IntegrityError):
    """A ranged answer that is not exactly the range asked for: an error, never data."""


@dataclass(frozen=True, order=True)
class ByteRange:
    """Bytes ``start`` .. ``end - 1`` of a blob (never empty)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"not a byte range: [{self.start}, {self.end})")

    @property
    def length(self) -> int:
        return self.end - self.start

    def header(self) -> str:
        """The Range request header value (HTTP ranges are inclusive)."""
        return f"bytes={self.start}-{self.end - 1}"

    def __str__(self) -> str:
        return f"{self.start}-{self.end - 1}"


def split_range(span: ByteRange, range_size: int) -> list[ByteRange]:
    """`span` cut into consecutive pieces of `range_size` bytes (the last may be shorter)."""
    if range_size < 1:
        raise ValueError("range_size must be positive")
    return [
        ByteRange(start, min(start + range_size, span.end))
        for start in range(span.start, span.end, range_size)
    ]


class RangeSet:
    """Disjoint, merged, ordered byte ranges: the parts of a blob written so far."""

    def __init__(self, ranges: Iterable[ByteRange] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for piece in ranges:
            self.add(piece)

    @property
    def ranges(self) -> tuple[ByteRange, ...]:
        return tuple(ByteRange(s, e) for s, e in zip(self._starts, self._ends, strict=True))

    @property
    def covered(self) -> int:
        """How many bytes the set holds."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def add(self, piece: ByteRange) -> None:
        """Add a range, merging it with those it overlaps or touches."""
        start, end = piece.start, piece.end
        first = bisect.bisect_left(self._ends, start)  # first range ending at or after start
        last = bisect.bisect_right(self._starts, end)  # ranges from `last` on start after end
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]

    def remove(self, piece: ByteRange) -> None:
        """Take the bytes of `piece` out of the set (what is left of a range stays)."""
        kept_starts: list[int] = []
        kept_ends: list[int] = []
        first = bisect.bisect_right(self._ends, piece.start)
        last = bisect.bisect_left(self._starts, piece.end)
        for s, e in zip(self._starts[first:last], self._ends[first:last], strict=True):
            if s < piece.start:
                kept_starts.append(s)
                kept_ends.append(piece.start)
            if e > piece.end:
                kept_starts.append(piece.end)
                kept_ends.append(e)
        self._starts[first:last] = kept_starts
        self._ends[first:last] = kept_ends

    def prefix_end(self) -> int:
        """Where the run of bytes starting at offset 0 ends (0 when byte 0 is missing)."""
        if self._starts and self._starts[0] == 0:
            return self._ends[0]
        return 0

    def gaps(self, total: int) -> list[ByteRange]:
        """The ranges of ``[0, total)`` not in the set."""
        gaps: list[ByteRange] = []
        position = 0
        for s, e in zip(self._starts, self._ends, strict=True):
            if s >= total:
                break
            if s > position:
                gaps.append(ByteRange(position, s))
            position = max(position, e)
        if position < total:
            gaps.append(ByteRange(position, total))
        return gaps


def plan_ranges(total: int, range_size: int, done: RangeSet) -> list[ByteRange]:
    """The requests still to make: every gap of `done` in a blob of `total` bytes, in order,
    cut into ranges of at most `range_size` bytes."""
    return [piece for gap in done.gaps(total) for piece in split_range(gap, range_size)]


# --- Content-Range (RFC 9110 14.4) ---------------------------------------------------------


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # exclusive
    total: int | None  # None: the server sent "*" (length unknown)


def parse_content_range(value: str | None) -> ContentRange:
    """Parse ``bytes a-b/total``; anything else is a RangeViolation."""
    if value is None:
        raise RangeViolation("206 without a Content-Range")
    match = _CONTENT_RANGE_RE.match(value)
    if match is None:
        raise RangeViolation(f"malformed Content-Range {value[:80]!r}")
    first, last, total = match.groups()
    if int(last) < int(first):
        raise RangeViolation(f"malformed Content-Range {value[:80]!r}")
    return ContentRange(int(first), int(last) + 1, None if total == "*" else int(total))


def check_partial_response(
    asked: ByteRange,
    total: int,
    *,
    status: int,
    content_range: str | None,
    content_length: str | None,
) -> None:
    """Raise RangeViolation unless the answer is a 206 for exactly `asked` of `total` bytes,
    or a 200 with all of them when `asked` is the whole blob (RFC 9110 lets a server do that).

    Any other 200 means the server ignored the Range and is sending the whole blob; a
    Content-Range that differs from the request (shifted, shortened, another total) means the
    bytes would land at the wrong offset. The body length is checked by the caller while it
    streams.
    """
    if status == 200:
        if asked.start != 0 or asked.end != total:
            raise RangeViolation(f"asked for bytes {asked}, got the whole blob (HTTP 200)")
        _check_announced_length(asked, content_length)
        return
    if status != 206:
        raise RangeViolation(f"asked for bytes {asked}, got HTTP {status}")
    answer = parse_content_range(content_range)
    if (answer.start, answer.end) != (asked.start, asked.end):
        raise RangeViolation(f"asked for bytes {asked}, got bytes {answer.start}-{answer.end - 1}")
    if answer.total is not None and answer.total != total:
        raise RangeViolation(f"the blob is {total} bytes, but this answer says {answer.total}")
    _check_announced_length(asked, content_length)


def _check_announced_length(asked: ByteRange, content_length: str | None) -> None:
    if content_length is not None and content_length.strip() != str(asked.length):
        raise RangeViolation(
            f"asked for {asked.length} bytes, the answer announces {content_length.strip()[:20]}"
        )


# --- file records inside a blob ------------------------------------------------------------


@dataclass(frozen=True)
class Extent:
    """A file record's bytes ``[offset, offset + size)`` in a blob and their MD5 (`hash`)."""

    path: str
    offset: int
    size: int
    md5: str

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def span(self) -> ByteRange:
        return ByteRange(self.offset, self.end)


@dataclass
class _Active:
    extent: Extent
    digest: hashlib._Hash = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))


class ExtentChecker:
    """Checks every extent's MD5 as the blob's bytes are fed to it in order from offset 0,
    and hashes the bytes no extent covers (GOG publishes no MD5 of a whole blob: its file
    records' MD5s plus this digest, recorded when the blob is stored, prove every byte of it,
    in a single pass).

    Memory stays flat whatever the sizes: one running digest per extent that overlaps the
    bytes being fed. Identical records (same offset, size and MD5) are hashed once. Extents
    of size 0 have no bytes to check and are not accepted. Several checkers can share out a
    blob's extents (each in its own thread): one is given every extent of the blob as
    `coverage` and hashes the bytes outside them all, the others have `hash_uncovered` off.
    """

    def __init__(
        self,
        extents: Iterable[Extent],
        *,
        coverage: Iterable[Extent] | None = None,
        hash_uncovered: bool = True,
    ) -> None:
        self._twins: dict[tuple[int, int, str], list[Extent]] = {}
        for extent in extents:
            if extent.size <= 0:
                raise ValueError(f"{extent.path}: an extent must hold bytes")
            self._twins.setdefault((extent.offset, extent.size, extent.md5), []).append(extent)
        firsts = [twins[0] for twins in self._twins.values()]
        self._waiting = sorted(firsts, key=lambda e: (e.offset, e.end), reverse=True)
        self._active: list[_Active] = []
        self._covered = _merged(firsts if coverage is None else coverage)
        self._next_covered = 0  # the first of self._covered not behind the position
        self._uncovered = hashlib.md5(usedforsecurity=False) if hash_uncovered else None
        self.position = 0
        self.bad: list[Extent] = []

    @property
    def is_done(self) -> bool:
        return not self._waiting and not self._active

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """Hash the next bytes of the blob (`offset` must be where the last call stopped)."""
        if offset != self.position:
            raise ValueError(f"fed offset {offset}, expected {self.position}")
        end = offset + len(data)
        self._feed_uncovered(offset, data)
        while self._waiting and self._waiting[-1].offset < end:
            self._active.append(_Active(self._waiting.pop()))
        still_active: list[_Active] = []
        for active in self._active:
            extent = active.extent
            low, high = max(extent.offset, offset), min(extent.end, end)
            if low < high:
                active.digest.update(data[low - offset : high - offset])
            if extent.end <= end:
                self._settle(extent, active.digest.hexdigest())
            else:
                still_active.append(active)
        self._active = still_active
        self.position = end

    def _feed_uncovered(self, offset: int, data: bytes | memoryview) -> None:
        if self._uncovered is None:
            return
        position, end, covered = offset, offset + len(data), self._covered
        while position < end:
            while self._next_covered < len(covered) and covered[self._next_covered].end <= position:
                self._next_covered += 1
            upcoming = covered[self._next_covered] if self._next_covered < len(covered) else None
            if upcoming is not None and upcoming.start <= position:
                position = min(end, upcoming.end)  # inside an extent: not ours to hash here
                continue
            stop = end if upcoming is None else min(end, upcoming.start)
            self._uncovered.update(data[position - offset : stop - offset])
            position = stop

    def finish(self) -> list[Extent]:
        """The extents whose bytes did not match, and those the fed bytes did not reach."""
        unreached = [a.extent for a in self._active] + list(reversed(self._waiting))
        self._active, self._waiting = [], []
        for extent in unreached:
            self.bad.extend(self._twins_of(extent))
        return self.bad

    @property
    def uncovered_md5(self) -> str:
        """The MD5 of the bytes fed so far that lie outside every extent, in offset order."""
        if self._uncovered is None:
            raise ValueError("this checker does not hash the bytes outside its extents")
        return self._uncovered.hexdigest()

    def _settle(self, extent: Extent, md5: str) -> None:
        if md5 != extent.md5:
            self.bad.extend(self._twins_of(extent))

    def _twins_of(self, extent: Extent) -> list[Extent]:
        return self._twins[(extent.offset, extent.size, extent.md5)]


def _merged(extents: Iterable[Extent]) -> list[ByteRange]:
    """The bytes the extents cover, as sorted, disjoint ranges."""
    covered = RangeSet(e.span for e in extents if e.size > 0)
    return list(covered.ranges)


def extents_end(extents: Sequence[Extent]) -> int:
    """The size a blob needs at least: the highest offset + size of its file records."""
    return max((e.end for e in extents), default=0)
