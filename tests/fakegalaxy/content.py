"""Byte-level helpers for the fake Galaxy: hashing, chunking, zlib and test data.

Everything here is pure (no sockets, no files). The world builder uses it to turn file contents
into GOG-shaped chunk records, and tests use it to check what the server sends.
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHUNK_SIZE_BYTES = 10 * 1024 * 1024
ZLIB_LEVEL = 6  # level 6 gives the usual "78 9C" header seen on GOG chunks
# Below this much input, compressing in a thread pool costs more than it saves.
_PARALLEL_THRESHOLD_BYTES = 8 * 1024 * 1024
# random_bytes draws its data from a random pool of at most this size.
_POOL_BYTES = 4 * 1024 * 1024

JsonDict = dict[str, Any]


def md5_hex(data: bytes | memoryview) -> str:
    """Hex MD5 of ``data``."""
    return hashlib.md5(data).hexdigest()


def galaxy_path(h: str) -> str:
    """``h[0:2]/h[2:4]/h``: how GOG spreads content-addressed objects over directories."""
    return f"{h[0:2]}/{h[2:4]}/{h}"


def encode_json(obj: object) -> bytes:
    """Serialise a manifest the way GOG's bodies look: UTF-8 JSON with sorted keys."""
    return json.dumps(obj, sort_keys=True).encode("utf-8")


def zlib_json(obj: object, level: int = ZLIB_LEVEL) -> bytes:
    """A zlib (RFC 1950, window 15) stream of the JSON of ``obj``: a V2 meta body."""
    return zlib.compress(encode_json(obj), level)


def parent_dirs(paths: Iterable[str], sep: str) -> list[str]:
    """Every directory that contains one of ``paths``, sorted (parents before children)."""
    dirs: set[str] = set()
    for path in paths:
        parts = path.strip(sep).split(sep)[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add(sep.join(parts[:i]))
    return sorted(dirs)


def inflate(data: bytes) -> bytes:
    """Inflate a zlib stream (window bits 15), as clients do for meta and chunks."""
    return zlib.decompress(data, 15)


def random_bytes(n: int, seed: int = 0) -> bytes:
    """``n`` pseudo-random bytes that deflate to roughly half their size, fast.

    Every 32 KiB block is a 16 KiB slice of a random pool, at a random offset, followed by the
    same slice again. The repeat sits inside deflate's 32 KiB window, so zlib finds it; the first
    half does not compress (deflate cannot see back to an earlier use of the pool). Only slicing
    and one join per call, so 1 GiB takes a second or two; different seeds and offsets give
    different data, so chunks of different files do not collide.
    """
    rng = random.Random(seed)
    half = 16 * 1024
    pool = rng.randbytes(min(_POOL_BYTES, max(n, 2 * half)))
    view = memoryview(pool)
    pieces: list[memoryview] = []
    size = 0
    while size < n:
        start = rng.randrange(len(pool) - half + 1) if len(pool) > half else 0
        piece = view[start : start + half]
        pieces += (piece, piece)
        size += 2 * len(piece)
    out = b"".join(pieces)
    return out if len(out) == n else out[:n]


@dataclass(frozen=True)
class FileSpec:
    """A file to put in a depot, when plain ``bytes`` is not enough.

    :param chunk_sizes: explicit uncompressed chunk sizes (must add up to ``len(data)``); lets a
        test build GOG's "last chunk larger than 10 MiB" case. None: split by the build's size.
    :param flags: depot item flags, e.g. ``("executable",)``, ``("hidden",)``, ``("support",)``.
    """

    data: bytes
    chunk_sizes: tuple[int, ...] | None = None
    flags: tuple[str, ...] = ()

    @classmethod
    def big_last_chunk(
        cls, data: bytes, chunk_size: int, *, flags: tuple[str, ...] = ()
    ) -> FileSpec:
        """Chunks of ``chunk_size``; the last one also takes the remainder (so it is bigger)."""
        count = max(1, len(data) // chunk_size)
        sizes = [chunk_size] * (count - 1)
        sizes.append(len(data) - chunk_size * (count - 1))
        return cls(data, tuple(sizes) if data else (), flags)


FileInput = bytes | FileSpec


def as_spec(value: FileInput) -> FileSpec:
    """Normalise a files-dict value to a :class:`FileSpec`."""
    return value if isinstance(value, FileSpec) else FileSpec(value)


@dataclass(frozen=True)
class Chunk:
    """One stored chunk: its record as it appears in manifests, and the bytes the CDN serves."""

    compressed_md5: str
    compressed_size: int
    md5: str
    size: int
    body: bytes = field(repr=False)

    def record(self) -> JsonDict:
        """The manifest form of this chunk."""
        return {
            "compressedMd5": self.compressed_md5,
            "compressedSize": self.compressed_size,
            "md5": self.md5,
            "size": self.size,
        }


def split_sizes(length: int, chunk_size: int) -> list[int]:
    """Chunk sizes for ``length`` bytes: full ``chunk_size`` pieces, the last one shorter."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    sizes = [chunk_size] * (length // chunk_size)
    if length % chunk_size:
        sizes.append(length % chunk_size)
    return sizes


class Chunker:
    """Compresses file pieces into :class:`Chunk` objects, reusing identical pieces.

    A cache keyed by (md5, size, level) of the uncompressed piece means a file that two builds
    share is compressed once; because compression is deterministic the result is byte-identical
    anyway, so this is only a speed-up. Large batches are compressed in a thread pool: zlib and
    hashlib release the GIL on big buffers.
    """

    def __init__(self, level: int = ZLIB_LEVEL, workers: int = 4) -> None:
        self.level = level
        self.workers = workers
        self._cache: dict[tuple[str, int], Chunk] = {}

    def _compress(self, piece: memoryview) -> Chunk:
        raw_md5 = md5_hex(piece)
        cached = self._cache.get((raw_md5, len(piece)))
        if cached is not None:
            return cached
        body = zlib.compress(piece, self.level)
        chunk = Chunk(md5_hex(body), len(body), raw_md5, len(piece), body)
        self._cache[(raw_md5, len(piece))] = chunk
        return chunk

    def chunk_many(self, pieces: Sequence[memoryview]) -> list[Chunk]:
        """Compress every piece, in order; parallel when the batch is big."""
        total = sum(len(p) for p in pieces)
        if total < _PARALLEL_THRESHOLD_BYTES or len(pieces) < 2 or self.workers < 2:
            return [self._compress(p) for p in pieces]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._compress, pieces))

    def chunk_files(self, specs: Sequence[FileSpec], chunk_size: int) -> list[list[Chunk]]:
        """Chunk several files at once (one batch, so big depots compress in parallel)."""
        pieces: list[memoryview] = []
        counts: list[int] = []
        for spec in specs:
            sizes = (
                list(spec.chunk_sizes)
                if spec.chunk_sizes is not None
                else split_sizes(len(spec.data), chunk_size)
            )
            if sum(sizes) != len(spec.data):
                raise ValueError("chunk_sizes must add up to the file length")
            view = memoryview(spec.data)
            offset = 0
            for size in sizes:
                pieces.append(view[offset : offset + size])
                offset += size
            counts.append(len(sizes))
        chunks = self.chunk_many(pieces)
        out: list[list[Chunk]] = []
        index = 0
        for count in counts:
            out.append(chunks[index : index + count])
            index += count
        return out
