"""v1_blob_hash: a blob's records checked in offset order over lanes, whatever order the
ranges arrive in, with some ranges read back from disk."""

from __future__ import annotations

import hashlib
import mmap
import random
import threading
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy_archive.fetch.v1_blob_hash import InOrderHasher
from galaxy_archive.fetch.v1_blob_io import BlobFile
from galaxy_archive.models.v1_ranges import ByteRange, Extent, RangeSet, plan_ranges


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def outside(blob: bytes, extents: list[Extent]) -> bytes:
    covered = {i for e in extents for i in range(e.offset, e.end)}
    return bytes(b for i, b in enumerate(blob) if i not in covered)


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, list[Extent], set[str], list[ByteRange], int]:
    blob = draw(st.binary(min_size=1, max_size=3000))
    extents, bad = [], set()
    for number in range(draw(st.integers(0, 10))):
        offset = draw(st.integers(0, len(blob) - 1))
        size = draw(st.integers(1, len(blob) - offset))
        is_bad = draw(st.booleans())
        extents.append(
            Extent(f"f{number}", offset, size, md5(blob[offset : offset + size] + b"!" * is_bad))
        )
        if is_bad:
            bad.add(f"f{number}")
    on_disk = []
    if draw(st.booleans()):
        start = draw(st.integers(0, len(blob) - 1))
        on_disk = [ByteRange(start, draw(st.integers(start + 1, len(blob))))]
    return blob, extents, bad, on_disk, draw(st.integers(1, 700))


@settings(max_examples=60, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**16))
def test_hasher_finds_the_bad_records_whatever_the_arrival_order(
    tmp_path_factory: object,
    case: tuple[bytes, list[Extent], set[str], list[ByteRange], int],
    seed: int,
) -> None:
    blob, extents, bad, on_disk, range_size = case
    path = tmp_path_factory.mktemp("blob") / "partial"  # type: ignore[attr-defined]
    stored = bytearray(len(blob))
    for piece in on_disk:
        stored[piece.start : piece.end] = blob[piece.start : piece.end]
    path.write_bytes(bytes(stored))
    todo = plan_ranges(len(blob), range_size, RangeSet(on_disk))
    random.Random(seed).shuffle(todo)
    released: list[mmap.mmap] = []
    file = BlobFile(path, "blob", writable=False)
    try:
        hasher = InOrderHasher(file, len(blob), extents, on_disk, released.append).start()
        senders = [
            threading.Thread(target=hand_over, args=(hasher, blob, todo[i::3])) for i in range(3)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        uncovered, found = hasher.finish()
    finally:
        file.close()
    assert {e.path for e in found} == bad
    assert uncovered == md5(outside(blob, extents))
    assert len(released) == len(todo)  # every buffer handed over came back once


def hand_over(hasher: InOrderHasher, blob: bytes, pieces: list[ByteRange]) -> None:
    for piece in pieces:
        buffer = mmap.mmap(-1, piece.length)
        buffer[:] = blob[piece.start : piece.end]
        hasher.hand_over(piece.start, memoryview(buffer), buffer)


def test_hasher_cancel_stops_lanes_waiting_for_ranges(tmp_path: Path) -> None:
    file = BlobFile(tmp_path / "partial", "blob")
    hasher = InOrderHasher(file, 100, [Extent("f", 0, 100, md5(b"x"))], [], lambda _b: None)
    before = set(threading.enumerate())
    hasher.start()
    lanes = [t for t in threading.enumerate() if t not in before and t.name == "blob-hash"]
    assert lanes  # waiting for offset 0, which never comes
    canceller = threading.Thread(target=hasher.cancel, daemon=True)
    canceller.start()
    canceller.join(timeout=10)  # bounded: a cancel that cannot stop the lanes must not hang
    assert not canceller.is_alive(), "cancel() did not return"
    deadline = time.monotonic() + 10
    for lane in lanes:
        lane.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(lane.is_alive() for lane in lanes), "cancel() left lanes waiting"
    file.close()
