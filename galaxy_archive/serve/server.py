"""The HTTP(S) server: every GOG role on one port, only proven bytes out.

aiohttp does the HTTP: keep-alive, HEAD, single Range (206/416), ETag and Content-Length,
sendfile for files (`FileResponse`), and one event loop for many clients, so a stalled
client costs a socket and a little memory, not a thread. An object is served only when the
DB has it `verified` and the store's size matches the recorded one; an object recorded
absent upstream answers 404 as the CDN did; anything else 404 in the CDN's JSON shape.
Objects are read through the store (`local_path` for sendfile when the backend has one,
else streamed from `open_read`); the DB is opened read-only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from galaxy_archive import __version__
from galaxy_archive.errors import ConfigError, StorageError
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.serve import answers, files
from galaxy_archive.serve.routes import (
    ApiRoute,
    Heartbeat,
    ObjectRoute,
    V1ManifestRoute,
    redact_path,
    route,
)
from galaxy_archive.state.serve_reads import ServedObject, ServeReads
from galaxy_archive.storage.interface import ObjectStore

log = logging.getLogger(__name__)
SERVER_NAME = f"galaxy-archive/{__version__}"
STREAM_BLOCK_BYTES = 256 * 1024
_OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # the base URL handed out; None: the request's own
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hide_delisted: bool = False


class RedactedAccessLog(AbstractAccessLogger):
    """One line per request: never a token segment or a query string (gcore signs there)."""

    @property
    def enabled(self) -> bool:
        # aiohttp asks once per connection: no line is built for a logger that would drop it
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %s %.3fs',
            request.remote,
            request.method,
            redact_path(request.path),
            response.status,
            response.body_length,
            time,
        )


class Answers:
    """The request handler: routes, then answers from the DB and the store."""

    def __init__(
        self,
        store: ObjectStore,
        reads: ServeReads,
        options: ServeOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.reads = reads
        self.options = options
        self.clock = clock

    def base_url(self, request: web.Request) -> str:
        if self.options.public_url:
            return self.options.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = route(request.path)
        if isinstance(target, Heartbeat):
            return web.Response(status=204, headers={"X-Galaxy-Archive": SERVER_NAME})
        if isinstance(target, ApiRoute):
            return await self._api(request, target)
        if isinstance(target, V1ManifestRoute):
            return await self._object(request, self._v1_manifest_path(target), None)
        if isinstance(target, ObjectRoute):
            return await self._object(request, target.relative, target.owner)
        return _json(404, answers.not_found("Unknown endpoint"))

    def _v1_manifest_path(self, target: V1ManifestRoute) -> str:
        if self.reads.object(target.relative) is not None:
            return target.relative
        found = self.reads.dlc_v1_manifest(
            target.product_id, target.os, target.legacy_build_id, target.name
        )
        return found or target.relative

    async def _api(self, request: web.Request, target: ApiRoute) -> web.StreamResponse:
        query = dict(request.query)
        if target.name == "token" and request.method == "POST":
            query.update({k: str(v) for k, v in (await request.post()).items()})
        base = self.base_url(request)
        if target.name == "token":
            return _json(200, answers.token())
        if target.name == "owned":
            return _json(200, answers.owned(self.reads.products()))
        if target.name == "account":
            return _json(200, {"isLoggedIn": True, "userId": answers.ANONYMOUS_USER_ID})
        if target.name == "deps":
            deps = self.reads.newest_dependencies()
            if deps is None:
                return _json(404, answers.not_found())
            doc = answers.dependencies_repository(
                base, deps.build_id, deps.generation, deps.manifest_path
            )
            return _json(200, doc)
        if target.name == "open_link":
            return _json(200, answers.open_link(base, query))
        assert target.product_id is not None
        return self._product_api(base, target, query)

    def _product_api(
        self, base: str, target: ApiRoute, query: dict[str, str]
    ) -> web.StreamResponse:
        pid = target.product_id
        assert pid is not None
        if pid not in self.reads.products():
            return _json(404, answers.not_found("Product not found"))
        if target.name == "product":
            return _json(200, answers.product(pid))
        if target.name == "secure_link":
            return _json(200, answers.secure_link(base, pid, query, self.clock()))
        if target.name == "patches":
            return self._patches(base, pid, query)
        return self._builds(base, target, query)

    def _builds(self, base: str, target: ApiRoute, query: dict[str, str]) -> web.StreamResponse:
        assert target.product_id is not None and target.os is not None
        try:
            generation = int(query.get("generation", "1"))
        except ValueError:
            generation = 0
        if generation not in (1, 2):
            return _json(400, {"error": "invalid_request", "error_description": "generation"})
        doc = answers.builds_list(
            base,
            self.reads.builds(target.product_id, target.os),
            generation=generation,
            use_urls=query.get("_version") == "2",
            with_private="password" in query,
            with_delisted=not self.options.hide_delisted,
        )
        return _json(200, doc)

    def _patches(self, base: str, pid: str, query: dict[str, str]) -> web.StreamResponse:
        from_build = query.get("from_build_id", "")
        to_build = query.get("to_build_id", "")
        patch = self.reads.patch(pid, from_build, to_build)
        if patch is None or patch.outcome != "patch" or not patch.patch_id:
            return _json(404, answers.not_found())
        return _json(200, answers.patch_index(base, patch.patch_id, from_build, to_build))

    async def _object(
        self, request: web.Request, relative: str, owner: str | None
    ) -> web.StreamResponse:
        found = self.reads.object_under(relative, owner)
        if found is None:
            return _json(404, answers.not_found())
        row, is_owned = found
        if row.state == ObjectState.ABSENT_UPSTREAM:
            return web.Response(status=404, text="Not Found")
        if row.state != ObjectState.VERIFIED or row.size is None or not is_owned:
            return _json(404, answers.not_found())
        try:
            size = self.store.stat(relative)
        except (FileNotFoundError, StorageError):
            return _json(404, answers.not_found())
        if size != row.size:
            return _json(404, answers.not_found())
        if self.store.local_path(relative) is not None:
            return await self._send_local(request, relative, row)
        headers = {"Content-Type": _OCTETS}
        return await self._stream(request, relative, size, row.md5, headers)

    async def _send_local(
        self, request: web.Request, relative: str, row: ServedObject
    ) -> web.StreamResponse:
        """A local file, opened on the loop without following a symlink, sent with sendfile
        (see files); the size checked again on the open file, in case it was swapped."""
        try:
            handle = self.store.open_read(relative)
        except (FileNotFoundError, StorageError):
            return _json(404, answers.not_found())
        with handle:
            stat = os.fstat(handle.fileno())
            if not S_ISREG(stat.st_mode) or stat.st_size != row.size:
                return _json(404, answers.not_found())
            return await files.send_file(request, handle, stat, row.md5)

    async def _stream(
        self,
        request: web.Request,
        relative: str,
        size: int,
        md5: str | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """A backend without local files: the bytes from `open_read`, one block at a time."""
        try:
            wanted = request.http_range
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        span = files.byte_span(wanted, size)
        if span is None:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, stop = span
        is_partial = (start, stop) != (0, size) and request.headers.get("Range") is not None
        response = web.StreamResponse(status=206 if is_partial else 200, headers=headers)
        if md5:
            response.etag = md5
        if is_partial:
            response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        response.content_length = stop - start
        response.headers["Accept-Ranges"] = "bytes"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        loop = asyncio.get_running_loop()
        with self.store.open_read(relative) as handle:
            await loop.run_in_executor(None, handle.seek, start)
            left = stop - start
            while left > 0:
                block = await loop.run_in_executor(None, handle.read, min(STREAM_BLOCK_BYTES, left))
                if not block:
                    break
                await response.write(block)
                left -= len(block)
        await response.write_eof()
        return response


def _json(status: int, doc: Any) -> web.Response:
    return web.json_response(doc, status=status)


def build_app(answers_handler: Answers) -> web.Application:
    app = web.Application()
    for method in ("GET", "HEAD", "POST"):  # POST: /token takes a form too
        app.router.add_route(method, "/{tail:.*}", answers_handler.handle)
    return app


def _ssl_context(options: ServeOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ConfigError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from exc
    return context


def serve_until_signal(answers_handler: Answers, on_ready: Callable[[str], None]) -> None:
    """Listen until SIGINT or SIGTERM, then close the listener and the open connections."""
    asyncio.run(_serve(answers_handler, on_ready))


async def _serve(answers_handler: Answers, on_ready: Callable[[str], None]) -> None:
    options = answers_handler.options
    context = _ssl_context(options)
    runner = web.AppRunner(
        build_app(answers_handler),
        access_log_class=RedactedAccessLog,
        access_log=logging.getLogger("galaxy_archive.serve.access"),
        handle_signals=False,
        shutdown_timeout=2.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, ssl_context=context, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {options.host}:{options.port}: {exc}") from exc
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    port = runner.addresses[0][1] if runner.addresses else options.port
    scheme = "https" if context else "http"
    on_ready(f"{scheme}://{options.host}:{port}")
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
