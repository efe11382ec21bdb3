"""Range planning, Content-Range checks and extent MD5s for V1 blobs (pure)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.models.v1_ranges import (
    ByteRange,
    Extent,
    ExtentChecker,
    RangeSet,
    RangeViolation,
    check_partial_response,
    extents_end,
    parse_content_range,
    plan_ranges,
    split_range,
)

TOTAL = 1000


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@st.composite
def byte_ranges(draw: st.DrawFn, total: int = TOTAL) -> ByteRange:
    start = draw(st.integers(0, total - 1))
    return ByteRange(start, draw(st.integers(start + 1, total)))


def as_bytes(ranges: list[ByteRange] | tuple[ByteRange, ...]) -> set[int]:
    return {b for r in ranges for b in range(r.start, r.end)}


def assert_ordered_disjoint(ranges: list[ByteRange] | tuple[ByteRange, ...]) -> None:
    for left, right in itertools.pairwise(ranges):
        assert left.end <= right.start


def test_byte_range_rejects_empty_and_negative() -> None:
    with pytest.raises(ValueError):
        ByteRange(5, 5)
    with pytest.raises(ValueError):
        ByteRange(-1, 3)
    assert ByteRange(0, 10).header() == "bytes=0-9"


@given(total=st.integers(1, 10_000), range_size=st.integers(1, 3000))
def test_split_range_covers_exactly_in_order(total: int, range_size: int) -> None:
    pieces = split_range(ByteRange(0, total), range_size)
    assert pieces[0].start == 0 and pieces[-1].end == total
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert all(p.length <= range_size for p in pieces)
    assert all(p.length == range_size for p in pieces[:-1])


@given(st.lists(byte_ranges(), max_size=12))
def test_range_set_holds_the_union_merged_and_ordered(ranges: list[ByteRange]) -> None:
    done = RangeSet(ranges)
    assert as_bytes(done.ranges) == as_bytes(ranges)
    assert done.covered == len(as_bytes(ranges))
    # merged: no two ranges overlap or even touch
    assert all(a.end < b.start for a, b in zip(done.ranges, done.ranges[1:], strict=False))


@given(st.lists(byte_ranges(), max_size=8), st.lists(byte_ranges(), max_size=4))
def test_range_set_remove_is_set_difference(
    added: list[ByteRange], removed: list[ByteRange]
) -> None:
    done = RangeSet(added)
    for piece in removed:
        done.remove(piece)
    assert as_bytes(done.ranges) == as_bytes(added) - as_bytes(removed)
    assert_ordered_disjoint(done.ranges)


@given(
    done=st.lists(byte_ranges(), max_size=10),
    range_size=st.integers(1, 400),
    total=st.integers(1, TOTAL),
)
def test_plan_ranges_fetches_exactly_the_missing_bytes(
    done: list[ByteRange], range_size: int, total: int
) -> None:
    have = RangeSet(done)
    plan = plan_ranges(total, range_size, have)
    assert_ordered_disjoint(plan)
    assert all(p.length <= range_size and p.end <= total for p in plan)
    planned = as_bytes(plan)
    assert planned.isdisjoint(as_bytes(have.ranges))
    assert planned | as_bytes(have.ranges) >= set(range(total))
    assert planned == set(range(total)) - as_bytes(have.ranges)


def test_plan_ranges_nothing_when_all_done_and_prefix_end() -> None:
    done = RangeSet([ByteRange(0, 40), ByteRange(40, 100)])
    assert plan_ranges(100, 8, done) == []
    assert done.prefix_end() == 100
    assert RangeSet([ByteRange(1, 5)]).prefix_end() == 0
    assert plan_ranges(10, 4, RangeSet()) == [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]


def test_parse_content_range_accepts_rfc_forms_and_rejects_others() -> None:
    parsed = parse_content_range("bytes 10-19/100")
    assert (parsed.start, parsed.end, parsed.total) == (10, 20, 100)
    assert parse_content_range("bytes 0-0/*").total is None
    for bad in (None, "", "bytes 10-5/100", "items 0-1/2", "bytes=0-1/2", "bytes 0-1"):
        with pytest.raises(RangeViolation):
            parse_content_range(bad)


ASKED = ByteRange(100, 200)


def check(
    status: int = 206,
    content_range: str | None = "bytes 100-199/1000",
    content_length: str | None = "100",
) -> None:
    check_partial_response(
        ASKED, 1000, status=status, content_range=content_range, content_length=content_length
    )


def test_check_partial_response_accepts_the_exact_answer() -> None:
    check()
    check(content_length=None)
    check(content_range="bytes 100-199/*")


def test_check_partial_response_accepts_a_200_only_when_the_whole_blob_was_asked_for() -> None:
    whole = ByteRange(0, 1000)
    check_partial_response(whole, 1000, status=200, content_range=None, content_length="1000")
    check_partial_response(whole, 1000, status=200, content_range=None, content_length=None)
    with pytest.raises(RangeViolation, match="announces 999"):
        check_partial_response(whole, 1000, status=200, content_range=None, content_length="999")
    with pytest.raises(RangeViolation, match="HTTP 200"):  # the first range of a bigger blob
        check_partial_response(
            ByteRange(0, 1000), 1001, status=200, content_range=None, content_length="1001"
        )


@pytest.mark.parametrize(
    ("status", "content_range", "content_length", "message"),
    [
        (200, None, "1000", "HTTP 200"),  # the server ignored Range
        (206, "bytes 100-149/1000", "50", "got bytes 100-149"),  # short 206
        (206, "bytes 101-200/1000", "100", "got bytes 101-200"),  # shifted
        (206, "bytes 100-199/999", "100", "999"),  # another blob
        (206, None, "100", "without a Content-Range"),
        (206, "bytes 100-199/1000", "60", "announces 60"),
        (416, "bytes */1000", None, "HTTP 416"),
    ],
)
def test_check_partial_response_rejects_anything_else(
    status: int, content_range: str | None, content_length: str | None, message: str
) -> None:
    with pytest.raises(RangeViolation, match=message):
        check(status, content_range, content_length)


@st.composite
def blob_and_extents(draw: st.DrawFn) -> tuple[bytes, list[Extent], set[str]]:
    blob = draw(st.binary(min_size=1, max_size=600))
    extents: list[Extent] = []
    bad: set[str] = set()
    for index in range(draw(st.integers(0, 8))):
        offset = draw(st.integers(0, len(blob) - 1))
        size = draw(st.integers(1, len(blob) - offset))
        is_bad = draw(st.booleans())
        digest = md5(blob[offset : offset + size] + (b"x" if is_bad else b""))
        extents.append(Extent(f"f{index}", offset, size, digest))
        if is_bad:
            bad.add(f"f{index}")
    return blob, extents, bad


@given(blob_and_extents(), st.data())
def test_extent_checker_finds_exactly_the_bad_extents_whatever_the_blocks(
    case: tuple[bytes, list[Extent], set[str]], data: st.DataObject
) -> None:
    blob, extents, bad = case
    checker = ExtentChecker(extents)
    position = 0
    while position < len(blob):
        size = data.draw(st.integers(1, 97))
        checker.feed(position, memoryview(blob)[position : position + size])
        position = min(len(blob), position + size)
    found = {e.path for e in checker.finish()}
    # identical records are hashed once; a bad twin of a good record still shows up
    assert found == bad
    assert checker.is_done
    covered = {i for e in extents for i in range(e.offset, e.end)}
    outside = bytes(byte for i, byte in enumerate(blob) if i not in covered)
    assert checker.uncovered_md5 == md5(outside)


def test_extent_checker_reports_extents_the_bytes_never_reached() -> None:
    extent = Extent("tail", 5, 10, md5(b"0123456789"))
    checker = ExtentChecker([extent])
    checker.feed(0, b"abcdefgh")
    assert checker.finish() == [extent]
    with pytest.raises(ValueError):
        ExtentChecker([Extent("empty", 0, 0, md5(b""))])


def test_extent_checker_hashes_the_bytes_between_and_after_records() -> None:
    blob = b"HEAD" + b"file-a" + b"gap" + b"file-b" + b"tail"
    checker = ExtentChecker([Extent("a", 4, 6, md5(b"file-a")), Extent("b", 13, 6, md5(b"file-b"))])
    checker.feed(0, blob[:5])
    checker.feed(5, blob[5:])
    assert checker.finish() == []
    assert checker.uncovered_md5 == md5(b"HEAD" + b"gap" + b"tail")


def test_extent_checker_refuses_bytes_out_of_order() -> None:
    checker = ExtentChecker([])
    checker.feed(0, b"abc")
    with pytest.raises(ValueError):
        checker.feed(5, b"x")


def test_extents_end_is_the_highest_record_end() -> None:
    assert extents_end([Extent("a", 0, 5, "0" * 32), Extent("b", 100, 1, "0" * 32)]) == 101
    assert extents_end([]) == 0


@given(blob_and_extents(), st.integers(1, 97))
def test_extent_checkers_sharing_out_a_blob_agree_with_one(
    case: tuple[bytes, list[Extent], set[str]], block: int
) -> None:
    """Lanes: records shared between checkers; one hashes the bytes outside all of them."""
    blob, extents, bad = case
    first = ExtentChecker(extents[::2], coverage=extents)
    second = ExtentChecker(extents[1::2], hash_uncovered=False)
    for position in range(0, len(blob), block):
        for checker in (first, second):
            checker.feed(position, blob[position : position + block])
    assert {e.path for e in first.finish() + second.finish()} == bad
    covered = {i for e in extents for i in range(e.offset, e.end)}
    assert first.uncovered_md5 == md5(bytes(b for i, b in enumerate(blob) if i not in covered))
    with pytest.raises(ValueError):
        _ = second.uncovered_md5
