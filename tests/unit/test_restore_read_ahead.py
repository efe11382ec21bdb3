"""restore.read_ahead: the pieces in order, the producer's error after them, no thread left."""

from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from galaxy_archive.restore.read_ahead import read_ahead


def _source(count: int, closed: list[bool], error: Exception | None = None) -> Generator[bytes]:
    try:
        for number in range(count):
            yield bytes([number % 256]) * 1000
        if error is not None:
            raise error
    finally:
        closed.append(True)


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "restore-read-ahead"]


def test_read_ahead_gives_every_piece_in_order_then_ends() -> None:
    closed: list[bool] = []
    pieces = list(read_ahead(_source(50, closed), depth=2))
    assert pieces == [bytes([n]) * 1000 for n in range(50)]
    assert closed == [True] and _helpers() == []


def test_read_ahead_raises_the_producers_error_after_the_pieces_before_it() -> None:
    closed: list[bool] = []
    received = []
    with pytest.raises(ValueError, match="chunk 3 is bad"):
        for piece in read_ahead(_source(4, closed, ValueError("chunk 3 is bad"))):
            received.append(piece)
    assert len(received) == 4 and closed == [True] and _helpers() == []


def test_read_ahead_closed_early_stops_the_producer_and_closes_its_source() -> None:
    closed: list[bool] = []
    pieces = read_ahead(_source(10_000, closed), depth=2)
    assert next(pieces) == bytes([0]) * 1000
    pieces.close()  # what a failed write does (contextlib.closing in restore.run)
    assert closed == [True] and _helpers() == []
