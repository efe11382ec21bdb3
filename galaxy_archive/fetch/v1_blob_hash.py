"""Check a V1 blob's file records while it downloads: its bytes in offset order, one pass.

MD5 is sequential, and ranges finish in any order, so the blob is walked from offset 0:
bytes fetched in this pass are handed over from the range buffers (see v1_blob_io) and
hashed from memory; bytes already on disk (resumed from an earlier run, or the whole file
when one found at the final path is checked) are read back.

MD5 is the costliest step of a download, and one digest cannot be split, but different
files can be hashed at once: the records are shared out between lanes, a thread each, that
walk the same buffers (hashlib releases the GIL). A buffer is given back once every lane has
passed it. Bytes read back are walked by a single lane, so they are read once.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from galaxy_archive.errors import StorageError
from galaxy_archive.fetch.v1_blob_io import ReadBack
from galaxy_archive.models.v1_ranges import ByteRange, Extent, ExtentChecker

READ_BACK_BLOCK_BYTES = 4 * 1024 * 1024
LANES = 2  # the machines this runs on have two cores or more; the receiving needs one too


@dataclass
class _Handed:
    data: memoryview
    buffer: mmap.mmap
    lanes_left: int


class InOrderHasher:
    """Feeds `[0, total)` to ExtentCheckers in order. `on_disk` are the ranges to read back
    from `file`; every other range must be handed over by `hand_over` (its buffer is given to
    `release` once hashed). `finish` waits for the end; `cancel` stops it early."""

    def __init__(
        self,
        file: ReadBack,
        total: int,
        extents: Sequence[Extent],
        on_disk: Sequence[ByteRange],
        release: Callable[[mmap.mmap], None],
    ) -> None:
        self._file = file
        self._total = total
        self._on_disk = {piece.start: piece for piece in on_disk}
        self._release = release
        self._checkers = _share_out(extents, 1 if on_disk else LANES)
        self._ready: dict[int, _Handed] = {}
        self._condition = threading.Condition()
        self._is_cancelled = False
        self._error: OSError | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(c,), name="blob-hash", daemon=True)
            for c in self._checkers
        ]

    def start(self) -> InOrderHasher:
        for thread in self._threads:
            thread.start()
        return self

    def hand_over(self, offset: int, data: memoryview, buffer: mmap.mmap) -> None:
        """Bytes of the blob at `offset`, fetched and written; `data` is a view of `buffer`."""
        with self._condition:
            self._ready[offset] = _Handed(data, buffer, len(self._checkers))
            self._condition.notify_all()

    def cancel(self) -> None:
        self._stop_lanes()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join()

    def finish(self) -> tuple[str, list[Extent]]:
        """Once every byte was fed: the MD5 of the bytes outside every extent, and the
        extents whose bytes do not match."""
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise StorageError(f"{self._file.what}: cannot read back ({self._error})")
        bad = [extent for checker in self._checkers for extent in checker.finish()]
        return self._checkers[0].uncovered_md5, sorted(bad, key=lambda e: (e.offset, e.path))

    def _run(self, checker: ExtentChecker) -> None:
        position = 0
        try:
            while position < self._total:
                on_disk = self._on_disk.get(position)
                if on_disk is not None:
                    if not self._read_back(checker, on_disk):
                        return
                    position = on_disk.end
                    continue
                handed = self._wait_for(position)
                if handed is None:
                    return
                checker.feed(position, handed.data)
                self._passed(position, handed)
                position += len(handed.data)
        except OSError as exc:
            self._error = exc
            self._stop_lanes()

    def _stop_lanes(self) -> None:
        with self._condition:
            self._is_cancelled = True
            self._condition.notify_all()

    def _wait_for(self, position: int) -> _Handed | None:
        with self._condition:
            while position not in self._ready:
                if self._is_cancelled:
                    return None
                self._condition.wait()
            return self._ready[position]

    def _passed(self, position: int, handed: _Handed) -> None:
        """A lane is done with the bytes at `position`: the last one gives the buffer back."""
        with self._condition:
            handed.lanes_left -= 1
            if handed.lanes_left:
                return
            del self._ready[position]
        self._release(handed.buffer)

    def _read_back(self, checker: ExtentChecker, piece: ByteRange) -> bool:
        """Feed `piece` from the file; False once cancelled."""
        view = memoryview(bytearray(min(READ_BACK_BLOCK_BYTES, piece.length)))
        position = piece.start
        while position < piece.end:
            if self._is_cancelled:
                return False
            count = self._file.read_into(view[: min(len(view), piece.end - position)], position)
            checker.feed(position, view[:count])
            position += count
        return True


def _share_out(extents: Sequence[Extent], lanes: int) -> list[ExtentChecker]:
    """A checker per lane, the extents shared out so each lane has about as many bytes to
    hash; the first one also hashes the bytes outside every extent."""
    shares: list[list[Extent]] = [[] for _ in range(lanes)]
    loads = [0] * lanes
    for extent in sorted(extents, key=lambda e: (e.offset, e.size)):
        lane = loads.index(min(loads))
        shares[lane].append(extent)
        loads[lane] += extent.size
    first = ExtentChecker(shares[0], coverage=extents)
    return [first, *(ExtentChecker(share, hash_uncovered=False) for share in shares[1:])]
