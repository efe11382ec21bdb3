"""Reading a file's bytes back out of stored chunks, streamed and proven.

Each chunk is read through the store in blocks, inflated, and its inflated MD5 and size
checked (what proves the bytes a file gets; a flipped stored byte either fails zlib's own
Adler-32 or this MD5, so the compressed MD5 is not hashed a second time); a chunk failing is a
`BadObject` naming it, raised before the caller can make anything it fed final. Memory stays at
one block plus zlib's window.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
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


def inflated(store: ObjectReader, path: str, chunk: ChunkRef) -> Iterator[bytes]:
    """The chunk's inflated bytes in pieces; BadObject at the end when a check failed (the
    caller keeps what it received unpublished until the iteration finished)."""
    plain = hashlib.md5(usedforsecurity=False)
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
    plain.update(tail)
    size += len(tail)
    yield tail
    if not inflater.eof:
        raise BadObject(path, "corrupt: its zlib stream is truncated")
    if plain.hexdigest() != chunk.md5 or size != chunk.size:
        raise BadObject(path, "corrupt: inflates to other bytes than the manifest says")


def file_bytes(
    store: ObjectReader, file: FileToWrite, path_of: Callable[[ChunkRef], str]
) -> Iterator[bytes]:
    """The file's bytes: its own chunks in order, its slice of the small-files container, or
    (generation 1) its extent of a blob."""
    if file.extent is not None:
        yield from extent_bytes(store, file.extent)
        return
    if file.sfc is None:
        for chunk in file.chunks:
            yield from inflated(store, path_of(chunk), chunk)
        return
    start = 0
    end = file.sfc.offset + file.sfc.size
    for chunk in file.sfc.chunks:
        if start < end and start + chunk.size > file.sfc.offset:
            position = start
            for piece in inflated(store, path_of(chunk), chunk):
                low = max(file.sfc.offset - position, 0)
                high = min(end - position, len(piece))
                if high > low:
                    yield piece[low:high]
                position += len(piece)
        start += chunk.size


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
