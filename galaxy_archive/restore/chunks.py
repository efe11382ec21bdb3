"""Reading a file's bytes back out of stored chunks, streamed and proven.

Each chunk is read through the store in blocks and inflated; its inflated size is always
checked, its zlib stream must end (a flipped stored byte almost always fails zlib's own
Adler-32), and its inflated MD5 is checked unless the caller proves the same bytes with the
file's own MD5 (`are_chunks_hashed=False`): hashing every byte twice, once per chunk and once
per file, made restore a third slower than inflate + MD5 (issue 13). A file whose MD5 then
fails has its chunks checked one by one (`check_sources`) to name the bad one. A chunk
failing is a `BadObject` naming it, raised before the caller can make anything it fed final.
The compressed MD5 is not hashed either: the inflated bytes are what a file gets. Memory stays
at one block plus zlib's window.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO, Protocol

from galaxy_archive.errors import IntegrityError
from galaxy_archive.models.install_plan import FileToWrite, V1Extent
from galaxy_archive.models.manifests import ChunkRef

_BLOCK = 1 << 20


class ObjectReader(Protocol):
    def open_read(self, relative: str) -> BinaryIO: ...


class BadObject(IntegrityError):
    """A stored object a file needs is missing or its bytes are not what the manifest says."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def inflated(
    store: ObjectReader, path: str, chunk: ChunkRef, *, is_hashed: bool = True
) -> Iterator[bytes]:
    """The chunk's inflated bytes in pieces; BadObject at the end when a check failed (the
    caller keeps what it received unpublished until the iteration finished). `is_hashed`
    False: the inflated MD5 is left to the caller (see the module docstring)."""
    plain = hashlib.md5(usedforsecurity=False) if is_hashed else None
    size = 0
    inflater = zlib.decompressobj()
    try:
        with store.open_read(path) as handle:
            while block := handle.read(_BLOCK):
                # Bounded pieces, and never past the chunk's size: a corrupt (or hostile)
                # chunk cannot make memory grow or a file longer than the manifest says.
                while block and size <= chunk.size:
                    piece = inflater.decompress(block, _BLOCK)
                    block = inflater.unconsumed_tail
                    if plain is not None:
                        plain.update(piece)
                    size += len(piece)
                    yield piece
        tail = inflater.flush() if size <= chunk.size else b""
    except FileNotFoundError:
        raise BadObject(path, "not in the archive") from None
    except zlib.error as exc:
        raise BadObject(path, f"corrupt: does not inflate ({exc})") from None
    except OSError as exc:
        raise BadObject(path, f"cannot be read ({exc.strerror or exc})") from None
    if plain is not None:
        plain.update(tail)
    size += len(tail)
    yield tail
    if not inflater.eof:
        raise BadObject(path, "corrupt: its zlib stream is truncated")
    if size != chunk.size or (plain is not None and plain.hexdigest() != chunk.md5):
        raise BadObject(path, "corrupt: inflates to other bytes than the manifest says")


def file_bytes(
    store: ObjectReader,
    file: FileToWrite,
    path_of: Callable[[ChunkRef], str],
    *,
    are_chunks_hashed: bool = True,
) -> Generator[bytes, None, None]:
    """The file's bytes: its own chunks in order, its slice of the small-files container, or
    (generation 1) its extent of a blob. `are_chunks_hashed` False: only when the caller
    checks the file's MD5 (and then `check_sources` on a mismatch)."""
    if file.extent is not None:
        yield from extent_bytes(store, file.extent)
        return
    if file.sfc is None:
        for chunk in file.chunks:
            yield from inflated(store, path_of(chunk), chunk, is_hashed=are_chunks_hashed)
        return
    start = 0
    end = file.sfc.offset + file.sfc.size
    for chunk in file.sfc.chunks:
        if start < end and start + chunk.size > file.sfc.offset:
            position = start
            for piece in inflated(store, path_of(chunk), chunk, is_hashed=are_chunks_hashed):
                low = max(file.sfc.offset - position, 0)
                high = min(end - position, len(piece))
                if high > low:
                    yield piece[low:high]
                position += len(piece)
        start += chunk.size


def check_sources(
    store: ObjectReader, file: FileToWrite, path_of: Callable[[ChunkRef], str]
) -> None:
    """Inflate and hash each chunk the file is read from, for a file whose bytes failed its
    MD5: BadObject naming the first bad chunk; None when every chunk is as the manifest says
    (then the manifest contradicts itself, and the caller says so)."""
    for chunk in file.sources:
        for _piece in inflated(store, path_of(chunk), chunk):
            pass


def extent_bytes(store: ObjectReader, extent: V1Extent) -> Iterator[bytes]:
    """`size` bytes at `offset` of a stored blob, in blocks (a blob has no MD5 of its own: the
    file's MD5, checked by the caller, proves them); BadObject when the blob is too short."""
    left = extent.size
    try:
        with store.open_read(extent.blob_path) as handle:
            handle.seek(extent.offset)
            while left and (block := handle.read(min(left, _BLOCK))):
                left -= len(block)
                yield block
    except FileNotFoundError:
        raise BadObject(extent.blob_path, "not in the archive") from None
    except OSError as exc:
        raise BadObject(extent.blob_path, f"cannot be read ({exc.strerror or exc})") from None
    if left:
        raise BadObject(extent.blob_path, f"ends {left} bytes before the file at {extent.offset}")
