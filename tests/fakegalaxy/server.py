"""``FakeGalaxy``: a real HTTP server on 127.0.0.1 that plays every GOG host a client talks to.

One port, several "hosts" told apart by a path prefix, so a client that sends a request to the
wrong endpoint fails exactly as it would against GOG:

=================  ==================  ==========================================
role               prefix              plays
=================  ==================  ==========================================
``auth``           ``/auth-host``      auth.gog.com
``embed``          ``/embed-host``     embed.gog.com
``content_system`` ``/cs-host``        content-system.gog.com
``cdn``            ``/cdn-host``       gog-cdn-fastly.gog.com (secure-link endpoint 1)
``cdn2``           ``/cdn2-host``      gog-cdn.gcdn.co (secure-link endpoint 2, fallback)
``collector``      ``/collector-host`` downloadable-manifests-collector.gog.com
``dead``           ``/dead-host``      a CDN that answers 503 to everything
=================  ==================  ==========================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

from . import api, cdn
from .content import JsonDict
from .faults import BODY_KINDS, RANGE_KINDS, STATUS_KINDS, Fault, FaultPlan
from .messages import UNSATISFIABLE, Request, Response, error_response, parse_range, text_response
from .world import World

ROLE_PREFIXES = {
    "auth-host": "auth",
    "embed-host": "embed",
    "cs-host": "content_system",
    "cdn-host": "cdn",
    "cdn2-host": "cdn2",
    "collector-host": "collector",
    "dead-host": "dead",
}
WRITE_PIECE_BYTES = 256 * 1024
THROTTLED_WRITE_BYTES = 32 * 1024
USER_ID = "48628349957132247"

BearerState = Literal["none", "valid", "invalid"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw and answered it.

    ``path`` is relative to the role prefix (for a fastly-signed URL it still starts with the
    ``/token=…`` segment); ``bytes_sent`` counts body bytes written; ``fault`` is the fault kind
    injected into the answer, if any.
    """

    method: str
    role: str | None
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    bytes_sent: int
    fault: str | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up on a kept-alive connection (or mid-body, after a fault) is
        # normal here; anything else is a bug in the fake and is shown.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def __init__(self, galaxy: FakeGalaxy, port: int) -> None:
        self.galaxy = galaxy
        super().__init__(("127.0.0.1", port), _Handler)


class FakeGalaxy:
    """The fake GOG Galaxy, serving a :class:`World` over real HTTP.

    Use as a context manager (or :meth:`start` / :meth:`stop`). Knobs are plain attributes and
    may be changed while it runs:

    * ``builds_page_limit``: cut builds lists to this many items (``count < total_count``);
    * ``builds_rewrite``: ``(product_id, os, generation, doc) -> bytes | None``, the body to
      answer a builds list with instead of ``doc`` (None: ``doc`` as usual), for odd answers;
    * ``endpoints``: secure-link / ``urls`` endpoints to hand out, in order (``"fastly"``,
      ``"gcore"``); ``dead_endpoints``: those whose base URL is dead, per ``dead_mode``
      (``"refused"``: a closed port; ``"503"``: a host answering 503);
    * ``patch_index_keys``: ``"build_id"`` (``from_build_id``/``to_build_id``) or ``"from_to"``;
    * ``require_ownership``: secure links only for products in ``world.owned``;
    * ``collector_manifests_on_cdn``: also serve collector-linked repository manifests under
      the CDN's ``v2/meta`` (unknown on GOG; protocol.md 2.3);
    * ``single_use_codes``: an authorization code works once;
    * ``head_status``: answer every HEAD with this status (405, 501, ...: servers without HEAD);
    * ``meta_bodies``: meta id -> the bytes to serve for that V2 meta, patch meta or dependency
      meta file instead of the world's (e.g. its plain JSON, protocol.md 3.1, or any bytes
      whose MD5 is not the id), on every endpoint and the collector;
    * ``link_ttl_s``, ``token_ttl_s``, ``rotate_refresh_tokens``, ``cdn_base_url``,
      ``builds_version_2_urls`` (False: ignore ``_version=2`` and always send ``link``).

    :param port: 0 (the default) picks a free port; the demo may ask for a fixed one.
    """

    def __init__(
        self,
        world: World,
        *,
        link_ttl_s: float = 3600,
        token_ttl_s: int = 3600,
        rotate_refresh_tokens: bool = True,
        cdn_base_url: str | None = None,
        builds_version_2_urls: bool = True,
        fault_seed: int = 0,
        port: int = 0,
    ) -> None:
        self.world = world
        self.link_ttl_s = link_ttl_s
        self.token_ttl_s = token_ttl_s
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.cdn_base_url = cdn_base_url.rstrip("/") if cdn_base_url else None
        self.builds_version_2_urls = builds_version_2_urls
        self.builds_page_limit: int | None = None
        self.builds_rewrite: Callable[[str, str, int, JsonDict], bytes | None] | None = None
        self.endpoints: list[str] = ["fastly", "gcore"]
        self.dead_endpoints: set[str] = set()
        self.dead_mode: Literal["refused", "503"] = "refused"
        self.patch_index_keys: Literal["build_id", "from_to"] = "build_id"
        self.require_ownership = True
        self.collector_manifests_on_cdn = True
        self.single_use_codes = True
        self.head_status: int | None = None
        # Bodies go out at most this fast, per connection (bytes/s); None: as fast as it can.
        self.throttle_bytes_per_s: int | None = None
        self.meta_bodies: dict[str, bytes] = {}
        self.faults = FaultPlan(fault_seed)
        self.requests: list[RecordedRequest] = []

        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._clock_offset_s = 0.0
        self._access_tokens: dict[str, float] = {}  # token -> expiry (server clock)
        self._refresh_tokens: set[str] = set()
        self._used_codes: set[str] = set()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed_port = 0
        self._port = port

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGalaxy:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _HTTPServer(self, self._port)
        # A port that was free a moment ago and is now closed: "connection refused".
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self._closed_port = probe.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGalaxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("FakeGalaxy is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def auth_url(self) -> str:
        return self.url + "/auth-host"

    @property
    def embed_url(self) -> str:
        return self.url + "/embed-host"

    @property
    def content_system_url(self) -> str:
        return self.url + "/cs-host"

    @property
    def cdn_url(self) -> str:
        return self.url + "/cdn-host"

    @property
    def cdn2_url(self) -> str:
        return self.url + "/cdn2-host"

    @property
    def collector_url(self) -> str:
        return self.url + "/collector-host"

    @property
    def dead_url(self) -> str:
        """Where a dead endpoint points: a closed port, or the 503 host."""
        if self.dead_mode == "503":
            return self.url + "/dead-host"
        return f"http://127.0.0.1:{self._closed_port}"

    def endpoint_base(self, name: str, *, apply_dead: bool = True) -> str:
        """Base URL of CDN endpoint ``name`` (``"fastly"`` -> cdn, ``"gcore"`` -> cdn2)."""
        if apply_dead and name in self.dead_endpoints:
            return self.dead_url
        if name == "fastly":
            return self.cdn_base_url or self.cdn_url
        if name == "gcore":
            return self.cdn2_url
        raise ValueError(f"unknown endpoint {name!r}")

    # ------------------------------------------------------------------ clock and signing

    def now(self) -> float:
        """The server's clock: wall time plus :meth:`advance_clock` offsets."""
        return time.time() + self._clock_offset_s

    def advance_clock(self, seconds: float) -> None:
        """Move the server clock forward (expires links and tokens without sleeping)."""
        with self._lock:
            self._clock_offset_s += seconds

    def sign(self, path: str, expires_at: int) -> str:
        """The secure-link token for a signed path prefix and expiry."""
        message = f"{path}|{expires_at}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ tokens

    def consume_code(self, code: str) -> bool:
        """Accept a login code: any non-empty code but ``"bad"``, once if single-use."""
        with self._lock:
            if code == "bad" or (self.single_use_codes and code in self._used_codes):
                return False
            self._used_codes.add(code)
            return True

    def issue_tokens(self) -> JsonDict:
        """A fresh token set, as the token endpoint returns it (also handy in tests)."""
        with self._lock:
            access = secrets.token_hex(32)
            refresh = secrets.token_hex(32)
            self._access_tokens[access] = self.now() + self.token_ttl_s
            self._refresh_tokens.add(refresh)
        return self._token_body(access, refresh)

    def refresh_tokens(self, refresh_token: str, *, keep_refresh: bool = False) -> JsonDict | None:
        """Answer a refresh grant; None if the refresh token is unknown or was rotated away."""
        with self._lock:
            if refresh_token not in self._refresh_tokens:
                return None
            access = secrets.token_hex(32)
            self._access_tokens[access] = self.now() + self.token_ttl_s
            refresh = refresh_token
            if self.rotate_refresh_tokens and not keep_refresh:
                self._refresh_tokens.discard(refresh_token)
                refresh = secrets.token_hex(32)
                self._refresh_tokens.add(refresh)
        return self._token_body(access, refresh)

    def _token_body(self, access: str, refresh: str) -> JsonDict:
        return {
            "access_token": access,
            "expires_in": self.token_ttl_s,
            "token_type": "bearer",
            "refresh_token": refresh,
            "scope": "",
            "session_id": str(secrets.randbelow(10**19)),
            "user_id": USER_ID,
        }

    def revoke_all_tokens(self) -> None:
        """Forget every access and refresh token (a logged-out session)."""
        with self._lock:
            self._access_tokens.clear()
            self._refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Make every access token expired; refresh tokens stay valid."""
        with self._lock:
            for token in self._access_tokens:
                self._access_tokens[token] = 0.0

    def bearer_state(self, req: Request) -> BearerState:
        """Whether the request has no bearer, a valid one, or an unknown/expired one."""
        token = req.bearer()
        if token is None:
            return "none"
        with self._lock:
            expiry = self._access_tokens.get(token)
        return "valid" if expiry is not None and expiry > self.now() else "invalid"

    # ------------------------------------------------------------------ request log

    def record(self, entry: RecordedRequest) -> RecordedRequest:
        """Append to the request log."""
        with self._lock:
            self.requests.append(entry)
        return entry

    def bytes_served(self, path_suffix: str, *, method: str = "GET") -> int:
        """Body bytes written for the requests whose path ends with `path_suffix` (a body is
        counted once it is written or its connection is gone)."""
        with self._lock:
            return sum(
                r.bytes_sent
                for r in self.requests
                if r.method == method and r.path.endswith(path_suffix)
            )

    def set_bytes_sent(self, entry: RecordedRequest, sent: int) -> None:
        """Fill in the body bytes of a logged request (gone if clear_requests() ran since)."""
        with self._lock:
            for index in range(len(self.requests) - 1, -1, -1):
                if self.requests[index] is entry:
                    self.requests[index] = dataclasses.replace(entry, bytes_sent=sent)
                    return

    def count(
        self,
        path_substring: str = "",
        *,
        role: str | None = None,
        method: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many recorded requests match (path substring, and optionally role/method/status)."""
        with self._lock:
            entries = list(self.requests)
        return sum(
            1
            for r in entries
            if path_substring in r.path
            and (role is None or r.role == role)
            and (method is None or r.method == method)
            and (status is None or r.status == status)
        )

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self.requests.clear()

    @property
    def fault_count(self) -> int:
        """How many faults were injected so far."""
        return self.faults.count

    # ------------------------------------------------------------------ routing

    def dispatch(self, req: Request) -> Response:
        """Route a request to its host role."""
        if req.role == "auth":
            return api.handle_auth(self, req)
        if req.role == "embed":
            return api.handle_embed(self, req)
        if req.role == "content_system":
            return api.handle_content_system(self, req)
        if req.role in ("cdn", "cdn2"):
            return cdn.handle_cdn(self, req)
        if req.role == "collector":
            return cdn.handle_collector(self, req)
        if req.role == "dead":
            return text_response(503, "Service Unavailable")
        return text_response(404, "Unknown host")


def _status_fault_response(kind: str) -> Response:
    if kind == "429":
        response = error_response(429, "too_many_requests", "Slow down")
        response.headers["Retry-After"] = "1"
        return response
    if kind == "503":
        return text_response(503, "Service Unavailable")
    if kind == "401":
        return error_response(401, "access_denied", "OAuth2 authentication required")
    return text_response(500, "Internal Server Error")


def _shift_range(start: int, end: int, total: int) -> tuple[int, int]:
    """A range other than the one asked for, for the ``wrong_content_range`` fault."""
    if end < total:
        return start + 1, end + 1
    if start > 0:
        return start - 1, end - 1
    return start, end - 1


class _Handler(BaseHTTPRequestHandler):
    """Parses requests, applies faults and Range, writes responses in pieces."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeGalaxy/1.0"

    @property
    def _galaxy(self) -> FakeGalaxy:
        return cast(_HTTPServer, self.server).galaxy

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        galaxy = self._galaxy
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        prefix, _, rest = split.path.lstrip("/").partition("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(
            method=self.command,
            role=ROLE_PREFIXES.get(prefix),
            path="/" + rest,
            raw_path=split.path,
            query=query,
            headers=dict(self.headers.items()),
            body=body,
        )
        fault = galaxy.faults.pick(split.path)

        def record(status: int, applied: str | None) -> RecordedRequest:
            # Recorded before the body goes out, so a client that has read its answer always
            # finds the request in the log; bytes_sent is filled in once the body is written.
            entry = RecordedRequest(
                req.method, req.role, req.path, query, req.headers, status, 0, applied
            )
            return galaxy.record(entry)

        if fault is not None and fault.kind in STATUS_KINDS:
            # Answered instead of the request, so no side effects (no token rotated, ...).
            galaxy.faults.commit(fault)
            response = _status_fault_response(fault.kind)
            entry, sent = self._send(req, response, None, record, status_fault=fault.kind)
        elif req.method == "HEAD" and galaxy.head_status is not None:
            response = text_response(galaxy.head_status, "HEAD is not supported here")
            entry, sent = self._send(req, response, None, record)
        else:
            try:
                response = galaxy.dispatch(req)
            except Exception:  # a bug in the fake: answer 500 and show it
                response = text_response(500, traceback.format_exc())
            entry, sent = self._send(req, response, fault, record)
        galaxy.set_bytes_sent(entry, sent)

    def _send(
        self,
        req: Request,
        resp: Response,
        fault: Fault | None,
        record: Callable[[int, str | None], RecordedRequest],
        *,
        status_fault: str | None = None,
    ) -> tuple[RecordedRequest, int]:
        """Write ``resp`` (with Range and any body/range fault), recording the request just
        before the body; returns (its log entry, body bytes written)."""
        body = resp.body if isinstance(resp.body, memoryview) else memoryview(resp.body)
        total = len(body)
        status = resp.status
        headers = {"Content-Type": resp.content_type, **resp.headers}
        kind = fault.kind if fault is not None else None
        applied: str | None = None
        start, end = 0, total

        if resp.etag is not None:
            headers["ETag"] = f'"{resp.etag}"'
            if status == 200 and req.header("If-None-Match") == headers["ETag"]:
                status, start, end = 304, 0, 0
        if status == 200 and resp.is_rangeable:
            headers["Accept-Ranges"] = "bytes"
            range_header = req.header("Range")
            if_range = req.header("If-Range")
            if range_header and (if_range is None or if_range == headers.get("ETag")):
                parsed = parse_range(range_header, total)
                if parsed == UNSATISFIABLE:
                    status, start, end = 416, 0, 0
                    headers["Content-Range"] = f"bytes */{total}"
                elif isinstance(parsed, tuple):
                    status, (start, end) = 206, parsed

        if status == 206 and kind in RANGE_KINDS:
            if kind == "range_as_200":
                status, start, end, applied = 200, 0, total, kind
            elif kind == "short_206" and end - start >= 2:
                end, applied = start + (end - start) // 2, kind
            elif kind == "wrong_content_range" and total >= 2:
                (start, end), applied = _shift_range(start, end, total), kind
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"

        piece = body[start:end]
        pieces: Sequence[bytes | memoryview] = [piece]
        declared = len(piece)
        close_mode: str | None = None
        if kind in BODY_KINDS and status in (200, 206) and req.method == "GET" and len(piece) >= 2:
            half = len(piece) // 2
            applied = kind
            if kind == "corrupt":
                pieces = [piece[:half], bytes([piece[half] ^ 0xFF]), piece[half + 1 :]]
            elif kind == "short":
                pieces, declared = [piece[:half]], half
            else:  # "truncate" and "reset": promise everything, send half, hang up
                pieces, close_mode = [piece[:half]], kind
        if fault is not None:
            if applied is not None:
                self._galaxy.faults.commit(fault)
            else:
                self._galaxy.faults.release(fault)

        if status_fault is not None:
            applied = status_fault
        entry = record(status, applied)
        sent = 0
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(declared))
            if close_mode is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if req.method != "HEAD" and status != 304:
                began = time.monotonic()
                # throttled, in small writes: what is written and not yet due stays small
                step = (
                    THROTTLED_WRITE_BYTES
                    if self._galaxy.throttle_bytes_per_s
                    else WRITE_PIECE_BYTES
                )
                for part in pieces:
                    view = memoryview(part)
                    for offset in range(0, len(view), step):
                        chunk = view[offset : offset + step]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        self._throttle(sent, began)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return entry, sent
        if close_mode is not None:
            self.close_connection = True
            if close_mode == "reset":
                self._reset_connection()
        return entry, sent

    def _throttle(self, sent: int, began: float) -> None:
        """Sleep until `sent` bytes are due at the server's throttle, if it has one."""
        rate = self._galaxy.throttle_bytes_per_s
        if rate:
            ahead = sent / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)

    def _reset_connection(self) -> None:
        """Close the socket with SO_LINGER 0, so the peer gets a TCP RST, not a FIN."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        except OSError:
            pass
