"""v1_blob_io: the partial file (O_DIRECT where it can, buffered where it cannot) and the
page-aligned range buffers."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from galaxy_archive.errors import StorageError
from galaxy_archive.fetch.v1_blob_io import DIRECT_ALIGNMENT, BlobFile, BufferPool


def test_blob_file_writes_aligned_and_unaligned_pieces_exactly(tmp_path: Path) -> None:
    path = tmp_path / ".main.bin.galaxy-partial"
    blob = os.urandom(5 * DIRECT_ALIGNMENT + 123)
    file = BlobFile(path, "blob")
    try:
        file.set_size(len(blob))
        buffer = mmap.mmap(-1, len(blob))
        # a block-aligned piece with a ragged tail, then one at an unaligned offset
        first = 3 * DIRECT_ALIGNMENT + 7
        buffer[:first] = blob[:first]
        file.write(memoryview(buffer)[:first], 0)
        buffer[: len(blob) - first] = blob[first:]
        file.write(memoryview(buffer)[: len(blob) - first], first)
        file.datasync()
        assert file.size() == len(blob)
        view = memoryview(bytearray(len(blob)))
        assert file.read_into(view, 0) == len(blob)
        assert bytes(view) == blob
    finally:
        file.close()
    assert path.read_bytes() == blob


def test_blob_file_falls_back_to_buffered_writes_when_direct_is_refused(tmp_path: Path) -> None:
    file = BlobFile(tmp_path / "partial", "blob")
    if not file.is_direct:
        file.close()
        pytest.skip("no O_DIRECT on this file system")
    data = os.urandom(2 * DIRECT_ALIGNMENT + 1)
    page = mmap.mmap(-1, len(data) + 1)  # page-aligned, so one byte in is surely misaligned
    page[1:] = data
    unaligned = memoryview(page)[1:]
    try:
        file.write(unaligned, 0)  # O_DIRECT refuses the memory: the same bytes, buffered
        assert not file.is_direct
        file.write(unaligned, len(data))
    finally:
        file.close()
    assert (tmp_path / "partial").read_bytes() == data * 2


def test_blob_file_errors_name_the_blob(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="V1 blob x: cannot open"):
        BlobFile(tmp_path / "file" / "partial", "V1 blob x")  # its parent is a file
    (tmp_path / "link").symlink_to(tmp_path / "file")
    with pytest.raises(StorageError, match="V1 blob x: cannot open"):
        BlobFile(tmp_path / "link", "V1 blob x")  # a symlink is never opened
    with pytest.raises(StorageError, match="V1 blob x: cannot open"):
        BlobFile(tmp_path / "absent", "V1 blob x", writable=False)  # checking needs a file
    file = BlobFile(tmp_path / "partial", "V1 blob x")
    file.close()
    with pytest.raises(StorageError, match="V1 blob x"):
        file.datasync()  # closed: the descriptor is gone


def test_buffer_pool_hands_out_page_aligned_buffers_and_wakes_on_return() -> None:
    pool = BufferPool(2, 3 * DIRECT_ALIGNMENT)
    first, second = pool.take(), pool.take()
    assert first is not None and second is not None and pool.take() is None
    assert len(first) == 3 * DIRECT_ALIGNMENT
    pool.wakeup.clear()
    pool.give_back(first)
    assert pool.wakeup.is_set() and pool.take() is first
