"""HTTP transport: the one Retry policy, timeouts, streaming, rate limit (redaction: redact.py).

Nothing Galaxy-specific lives here. URLs may carry secrets (signed CDN links, passwords), so no
URL and no library exception text that could contain one ever leaves this module: errors name
the object being fetched (`what`) and a redacted host/path at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from galaxy_archive import __version__
from galaxy_archive.config import is_loopback_host
from galaxy_archive.errors import UpstreamError

# Re-exported: redaction lives in redact.py (no requests import) but is part of this API.
from galaxy_archive.redact import redact_url as redact_url
from galaxy_archive.redact import scrub as scrub

USER_AGENT = f"galaxy-archive/{__version__} (+offline GOG Galaxy mirror)"
PIECE_SIZE_BYTES = 1024 * 1024
MAX_RETRY_AFTER_S = 300.0
MAX_SMALL_BODY_BYTES = 64 * 1024 * 1024


class GalaxyRetry(Retry):
    """urllib3's Retry with Retry-After capped: a hostile server must not park us for days."""

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER_S)


def build_retry(retries: int, *, backoff_factor: float = 0.5) -> Retry:
    """The single retry policy of the tool, applied to every request.

    Status codes retried: 429 (rate limited; Retry-After honoured), 500/502/504 (transient
    CDN or API faults), 503 (overloaded; Retry-After honoured). 401/403/404 are answers, not
    faults: the caller renews links or records the object as absent. Only GET and HEAD are
    sent. Backoff is exponential with jitter so parallel workers do not retry in lockstep.
    """
    return GalaxyRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=retries,
        backoff_factor=backoff_factor,
        backoff_max=60.0,
        backoff_jitter=backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def build_session(*, workers: int, retry: Retry, proxy: str = "") -> requests.Session:
    """One session per run; its connection pool is sized to the worker count."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(workers, 1) + 4, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # Bodies are stored byte for byte as served: never ask for a transfer encoding.
    session.headers["Accept-Encoding"] = "identity"
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    return session


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {scrub(str(exc))}"[:300]


class RateLimiter:
    """A token bucket shared by every worker: at most `rate` bytes per second overall."""

    def __init__(
        self,
        rate: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = clock()

    def take(self, count: int) -> None:
        """Block until `count` bytes may pass."""
        if self._rate <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(self._next_free, now - 1.0)  # allow a one-second burst
            self._next_free = start + count / self._rate
            delay = self._next_free - now - 1.0
        if delay > 0:
            self._sleep(delay)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


class HttpClient:
    """GETs with timeouts, the plain-http policy and redacted errors."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout_s: float,
        plain_http_hosts: frozenset[str] = frozenset(),
        limiter: RateLimiter | None = None,
    ) -> None:
        self.session = session
        self._timeout = (timeout_s, timeout_s)
        self._plain_http_hosts = plain_http_hosts
        self._limiter = limiter or RateLimiter(0)

    def _check_transport(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        host = parts.hostname or ""
        if parts.scheme == "http" and (is_loopback_host(host) or host in self._plain_http_hosts):
            return
        raise UpstreamError(f"{what}: refusing {parts.scheme}:// to {host or '?'} (not https)")

    def get(
        self,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_SMALL_BODY_BYTES,
    ) -> Reply:
        """A whole small body (API answers, manifests). Any status is returned, not raised."""
        with self.stream(url, what=what, headers=headers) as response:
            pieces: list[bytes] = []
            total = 0
            for piece in self.iter_body(response, what=what):
                total += len(piece)
                if total > max_bytes:
                    raise UpstreamError(f"{what}: answer larger than {max_bytes} bytes")
                pieces.append(piece)
            return Reply(response.status_code, b"".join(pieces), dict(response.headers))

    @contextmanager
    def stream(
        self, url: str, *, what: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> Iterator[requests.Response]:
        """Open a streamed response; the caller reads it with iter_body and checks the status."""
        self._check_transport(url, what)
        try:
            response = self.session.request(
                method,
                url,
                headers=headers,
                stream=True,
                timeout=self._timeout,
                allow_redirects=True,
            )
        except requests.RequestException as exc:
            raise UpstreamError(f"{what}: {describe_exception(exc)}") from None
        try:
            yield response
        finally:
            response.close()

    def iter_body(
        self, response: requests.Response, *, what: str, piece_size: int = PIECE_SIZE_BYTES
    ) -> Iterator[bytes]:
        """The raw bytes exactly as served (no content decoding), rate-limited."""
        try:
            for piece in response.raw.stream(piece_size, decode_content=False):
                self._limiter.take(len(piece))
                yield piece
        except Exception as exc:  # urllib3 and socket errors: a broken body, never data
            raise UpstreamError(f"{what}: body broken off ({describe_exception(exc)})") from None


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
