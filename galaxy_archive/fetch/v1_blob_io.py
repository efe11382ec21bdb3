"""The partial file a V1 blob is downloaded into, and the buffers its ranges pass through.

The partial file is the store's staging file (`ObjectStore.staging_path`): always local, so
it is written and read back here by position. A stored blob is read back only through the
store (`StoredBlob` over `ObjectStore.open_read`).

Each range body is received into one of a fixed set of page-aligned buffers, written from
there at its offset and then hashed from the same memory: the blob is never read back. Writes
use O_DIRECT where the file system takes it. An archive is written once and read rarely, so
a multi-gigabyte blob has no business pushing the user's page cache out, and the page cache's
first touch of fresh memory costs more CPU than the copy into it (much more on virtual
machines). Where O_DIRECT is refused (tmpfs, some network file systems, an offset or length
that is not block-aligned) the write is buffered instead: the same bytes, made durable by the
same fdatasync.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from galaxy_archive.errors import PathRefused, StorageError

# O_DIRECT wants the memory address, the file offset and the length aligned to the device's
# logical block size; 4 KiB covers every common device (512-byte ones included).
DIRECT_ALIGNMENT = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere every write is buffered


class ReadBack(Protocol):
    """Bytes of a blob read back by offset, to be hashed (v1_blob_hash)."""

    @property
    def what(self) -> str: ...

    def read_into(self, view: memoryview, offset: int) -> int:
        """Fill `view` from `offset` (at least one byte); an OSError when the blob ends first."""
        ...


class StoredBlob:
    """A stored blob read back through the store's reader, in offset order (one lane reads
    it: v1_blob_hash), so a seek is needed only when an offset is skipped."""

    def __init__(self, reader: BinaryIO, what: str) -> None:
        self._reader = reader
        self._what = what
        self._position = 0

    @property
    def what(self) -> str:
        return self._what

    def read_into(self, view: memoryview, offset: int) -> int:
        if offset != self._position:
            self._reader.seek(offset)
        data = self._reader.read(len(view))  # BinaryIO has no readinto; adopting is rare
        count = len(data)
        view[:count] = data
        if not count:
            raise OSError(f"the file ends at {offset} bytes")
        self._position = offset + count
        return count


class BlobFile:
    """A blob's partial (staging) file, open twice: buffered, and O_DIRECT when the system
    allows (or open read-only, to be checked)."""

    def __init__(self, path: Path, what: str, *, writable: bool = True) -> None:
        self._what = what
        try:
            # never through a symlink (its directories are the store's to check)
            flags = (os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY) | os.O_NOFOLLOW
            self._fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink: this blob only fails
                raise PathRefused(
                    f"{what}: cannot open {path.name}: a symlink, not followed"
                ) from exc
            reason = exc.strerror or exc
            raise StorageError(f"{what}: cannot open {path.name} ({reason})") from exc
        self._direct_fd: int | None = None
        if writable and _O_DIRECT:
            try:
                self._direct_fd = os.open(path, os.O_WRONLY | _O_DIRECT | os.O_NOFOLLOW)
            except OSError:  # the file system does not do O_DIRECT: buffered writes it is
                self._direct_fd = None
        # One writer at a time: the kernel serialises writes to one file anyway, and writers
        # queued on its inode lock spin on the CPU; on this lock they sleep.
        self._write_lock = threading.Lock()

    @property
    def what(self) -> str:
        return self._what

    @property
    def is_direct(self) -> bool:
        return self._direct_fd is not None

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def set_size(self, total: int) -> None:
        self._disk(os.ftruncate, self._fd, total)

    def write(self, data: memoryview, offset: int) -> None:
        """Write `data` at `offset`: its block-aligned part directly when `data` starts on a
        page-aligned buffer (see BufferPool) and `offset` on a block, the rest buffered."""
        with self._write_lock:
            try:
                done = 0
                if self._direct_fd is not None and offset % DIRECT_ALIGNMENT == 0:
                    aligned = len(data) - len(data) % DIRECT_ALIGNMENT
                    if aligned:
                        done = self._write_direct(data[:aligned], offset)
                _pwrite_all(self._fd, data[done:], offset + done)
            except OSError as exc:
                raise StorageError(f"{self.what}: cannot write ({exc.strerror or exc})") from exc

    def read_into(self, view: memoryview, offset: int) -> int:
        """Fill `view` from `offset`; an error when the file ends first."""
        count = os.preadv(self._fd, [view], offset)
        if count <= 0:
            raise OSError(f"the file ends at {offset} bytes")
        return count

    def datasync(self) -> None:
        self._disk(os.fdatasync, self._fd)

    def sync(self) -> None:
        self._disk(os.fsync, self._fd)

    def close(self) -> None:
        for fd in (self._direct_fd, self._fd):
            if fd is not None:
                os.close(fd)
        self._direct_fd = None

    def _write_direct(self, data: memoryview, offset: int) -> int:
        """Bytes written directly: all of them, or none once the file system refuses."""
        assert self._direct_fd is not None
        try:
            _pwrite_all(self._direct_fd, data, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            os.close(self._direct_fd)  # accepted at open, refused at write: stop trying
            self._direct_fd = None
            return 0
        return len(data)

    def _disk(self, call: Callable[..., object], *args: object) -> None:
        """A failing disk (full, read-only, gone) is a StorageError naming the blob."""
        try:
            call(*args)
        except OSError as exc:
            raise StorageError(f"{self.what}: {exc.strerror or exc}") from exc


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


class BufferPool:
    """A fixed set of equal, page-aligned buffers (anonymous mmaps), so memory stays flat
    and O_DIRECT can write straight from them. `wakeup` is set whenever one comes back."""

    def __init__(self, count: int, size: int) -> None:
        self._free = [mmap.mmap(-1, size) for _ in range(count)]
        self._lock = threading.Lock()
        self.wakeup = threading.Event()

    def take(self) -> mmap.mmap | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def give_back(self, buffer: mmap.mmap) -> None:
        with self._lock:
            self._free.append(buffer)
        self.wakeup.set()
