"""One stored object out as HTTP: conditional requests, a single Range, then the bytes.

`send_file` answers from a file the caller opened (through the store, so never through a
symlink) and sends it with `loop.sendfile`: zero-copy on plain TCP, asyncio's own read loop on
TLS. It replaces aiohttp's FileResponse, which stats and opens the path in the default
executor and closes it there too: two thread hand-offs per request, most of the CPU a 1 MiB
chunk cost `serve` (issue 14's benchmark: 0.71x nginx over 2,000 chunks). The open and fstat
run on the event loop instead, as nginx's are without aio threads: microseconds on a local
disk. aiohttp still parses every header (`http_range`, `if_match`, ...) and writes the
response; this module only decides what to answer.

The answer, as FileResponse gave it (RFC 9110 section 13.2.2 order): 412 on a failed If-Match
or If-Unmodified-Since; 304 on a matching If-None-Match or an unchanged If-Modified-Since;
206 with Content-Range for a satisfiable Range (unless an If-Range names another version),
416 with `bytes */size` for an unsatisfiable one; else 200. The ETag is the object's MD5 when
the DB has one (a strong validator the same on every server of the same archive), else the
file's mtime and size as aiohttp made it; Last-Modified and Accept-Ranges always.
"""

from __future__ import annotations

import asyncio
import os
from typing import BinaryIO

from aiohttp import web
from aiohttp.helpers import ETAG_ANY, ETag


def byte_span(wanted: slice, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single Range (`request.http_range`) within `size` bytes, or None
    when it cannot be satisfied."""
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return 0, size
    if start is not None and start < 0:  # a suffix range: the last -start bytes
        start, stop = max(0, size + start), size
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return None
    return start, stop


async def send_file(
    request: web.BaseRequest, handle: BinaryIO, stat: os.stat_result, md5: str | None
) -> web.StreamResponse:
    """Answer `request` with the regular file open on `handle` (`stat` its fstat); the caller
    closes `handle` once this returns."""
    etag = md5 or f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.etag = etag
    response.last_modified = stat.st_mtime
    response.headers["Accept-Ranges"] = "bytes"
    refused = _precondition_status(request, etag, stat.st_mtime)
    if refused is not None:
        response.set_status(refused)
        if refused != 304:  # a 304 has no body; a 412 has an empty one
            response.content_length = 0
        await response.prepare(request)
        return response
    span = _requested_span(request, etag, stat)
    if span is None:
        response.set_status(416)
        response.headers["Content-Range"] = f"bytes */{stat.st_size}"
        response.content_length = 0
        await response.prepare(request)
        return response
    start, stop, is_partial = span
    if is_partial:
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stat.st_size}"
    response.content_length = stop - start
    await response.prepare(request)
    if request.method != "HEAD" and stop > start:
        transport = request.transport
        if transport is None:  # the client went away between the request and the answer
            raise ConnectionResetError("connection lost")
        await asyncio.get_running_loop().sendfile(transport, handle, start, stop - start)
    await response.write_eof()
    return response


def _precondition_status(request: web.BaseRequest, etag: str, mtime: float) -> int | None:
    """412 or 304 when a conditional header says so, None to answer normally."""
    if_match = request.if_match
    if if_match is not None:
        if not _matches(etag, if_match, is_weak_ok=False):
            return 412
    elif (since := request.if_unmodified_since) is not None and mtime > since.timestamp():
        return 412
    if_none_match = request.if_none_match
    if if_none_match is not None:
        return 304 if _matches(etag, if_none_match, is_weak_ok=True) else None
    if (since := request.if_modified_since) is not None and mtime <= since.timestamp():
        return 304
    return None


def _requested_span(
    request: web.BaseRequest, etag: str, stat: os.stat_result
) -> tuple[int, int, bool] | None:
    """(start, stop, is_partial) of what to send, None for a Range that cannot be met."""
    size = stat.st_size
    if request.headers.get("Range") is None or not _if_range_holds(request, etag, stat):
        return 0, size, False
    try:
        wanted = request.http_range
    except ValueError:
        return None
    span = byte_span(wanted, size)
    return None if span is None else (*span, True)


def _if_range_holds(request: web.BaseRequest, etag: str, stat: os.stat_result) -> bool:
    """Whether the Range applies: no If-Range, or one naming this version (an ETag, compared
    strongly, or a date no older than the file). A client resuming a download sends it; a
    stale one gets the whole object (200), never a splice of two versions."""
    raw = request.headers.get("If-Range")
    if raw is None:
        return True
    raw = raw.strip()
    if raw.startswith(('"', "W/")):
        return raw == f'"{etag}"'
    since = request.if_range
    return since is not None and stat.st_mtime <= since.timestamp()


def _matches(etag: str, candidates: tuple[ETag, ...], *, is_weak_ok: bool) -> bool:
    return any(
        candidate.value in (etag, ETAG_ANY) and (is_weak_ok or not candidate.is_weak)
        for candidate in candidates
    )
