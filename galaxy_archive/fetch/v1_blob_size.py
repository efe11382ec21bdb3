"""A V1 blob's size, asked of the CDN before its ranges are planned (protocol.md 6.3).

A HEAD with ``Range: bytes=0-0`` (so either a Content-Range or a Content-Length answers it)
or, from a server that refuses HEAD or tells no total there, the same GET, its body left
unread. Over the endpoints of the blob's link by `rounds.Rounds`: a 404 from every endpoint
means the CDN does not have the blob; a 401/403 renews the link.
"""

from __future__ import annotations

from dataclasses import dataclass

from galaxy_archive.errors import UpstreamError
from galaxy_archive.fetch.rounds import Candidate, Ended, Miss, MissKind, Rounds, status_miss
from galaxy_archive.fetch.v1_blob_job import BlobJob
from galaxy_archive.models.v1_ranges import RangeViolation, parse_content_range
from galaxy_archive.upstream.http_client import HttpClient, redact_url


@dataclass(frozen=True)
class Probe:
    total: int
    endpoint: str
    source_url: str  # redacted


def probe_size(http: HttpClient, rounds: Rounds, job: BlobJob) -> Probe | Ended:
    """The blob's size from the first endpoint that tells it, or how the rounds ended
    (ABSENT: 404 everywhere; FAILED: the last error, naming the blob)."""

    def attempt(candidate: Candidate) -> Probe | Miss:
        try:
            status, size = _size_at(http, candidate.url, job.what)
        except (UpstreamError, RangeViolation) as exc:
            return Miss(MissKind.ERROR, f"{exc} (endpoint {candidate.endpoint})")
        if size is not None:
            return Probe(size, candidate.endpoint, redact_url(candidate.url))
        return status_miss(
            status, f"{job.what}: no size in the answer (HTTP {status} from {candidate.endpoint})"
        )

    return rounds.run(
        job.what,
        (job.source,),
        attempt,
        url_for=job.url_for,
        nothing_tried=f"{job.what}: no endpoint",
    )


def _size_at(http: HttpClient, url: str, what: str) -> tuple[int, int | None]:
    """The HTTP status and the blob's size (None: not told), from a HEAD or, when that tells
    no size, a GET: servers that refuse HEAD answer 405, 501, or even 404 or 403 (a link
    signed for GET only), and some give no total on a HEAD."""
    status, size = _ask_size(http, url, what, "HEAD")
    if size is None:
        status, size = _ask_size(http, url, what, "GET")
    return status, size


def _ask_size(http: HttpClient, url: str, what: str, method: str) -> tuple[int, int | None]:
    # Range 0-0: a server that honours it answers with the size in the Content-Range, one
    # that ignores it with the Content-Length of the whole blob (a GET's body is then left
    # unread: closing the response drops the connection).
    with http.stream(url, what=what, headers={"Range": "bytes=0-0"}, method=method) as r:
        if r.status_code == 206:
            return 206, parse_content_range(r.headers.get("Content-Range")).total
        length = r.headers.get("Content-Length", "")
        if r.status_code == 200 and length.isdigit():
            return 200, int(length)
        return r.status_code, None
