"""Rounds over endpoints: the one retry loop of every fetcher (chunks, V1 sizes, V1 ranges).

A round turns a task's sources into candidate URLs (a Plain URL as given; a Signed source
through the run's LinkCache, one URL per endpoint of its link, in order) and makes one attempt
per candidate until one gives its value. An attempt that misses says why (`Miss`):

- a 401/403 on a signed URL (REJECTED) drops that link and starts the next round at once,
  which fetches it anew;
- a link GOG refused fails at once when no other source is left: asking again in this run
  changes nothing (the LinkCache does not ask GOG twice anyway);
- a 404 from every candidate, with every link at hand, is ABSENT: the CDN does not have it;
- anything else backs off (exponential, jittered, through the injected `sleep`) and tries
  again, `rounds` times in all, then fails with the last error seen.

An attempt that cannot succeed elsewhere (a hostile manifest, a refused path) returns its
final value instead of a Miss; one that was interrupted raises. `stopped` is asked before
every round and every attempt. The fetchers keep only what differs: one whole body
(downloader) or a size and byte ranges (v1_blobs).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from galaxy_archive.errors import ManifestError, UpstreamError
from galaxy_archive.fetch.tasks import Plain, Source
from galaxy_archive.models.links import Endpoint, Link
from galaxy_archive.upstream.galaxy_api import LinkRefused, LinkRequest
from galaxy_archive.upstream.link_cache import LinkCache

ROUNDS = 3  # passes over all endpoints before giving up

T = TypeVar("T")


class HttpStatus(Exception):
    """An answer with this status where the attempt needed another: how attempts say it."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Candidate:
    url: str
    endpoint: str  # its name, for messages and the provenance recorded
    signed: tuple[LinkRequest, Link] | None  # the link it came from, to renew on a 401/403


class MissKind(enum.Enum):
    NOT_FOUND = "404"
    REJECTED = "401/403: a signed URL's link is renewed"
    MISMATCH = "a whole body with another MD5"
    ERROR = "any other failure"


@dataclass(frozen=True)
class Miss:
    """Why one candidate did not deliver."""

    kind: MissKind
    error: str


class EndKind(enum.Enum):
    ABSENT = "404 on every endpoint"
    FAILED = "no round delivered"
    STOPPED = "the run is stopping"


@dataclass(frozen=True)
class Ended:
    """The rounds ended without a value; `error` names the object (empty when stopped)."""

    kind: EndKind
    error: str = ""


UrlFor = Callable[[Endpoint, str], str]  # (endpoint, a Signed source's suffix) -> URL


def _default_url(endpoint: Endpoint, suffix: str) -> str:
    return endpoint.build_url(suffix)


def _never() -> bool:
    return False


class Rounds:
    """The rounds of one run's fetchers: its link cache, sleep and backoff."""

    def __init__(
        self,
        links: LinkCache,
        *,
        sleep: Callable[[float], None],
        backoff_s: float,
        rounds: int = ROUNDS,
    ) -> None:
        self._links = links
        self._sleep = sleep
        self._backoff_s = backoff_s
        self._rounds = rounds

    def run(
        self,
        what: str,
        sources: Sequence[Source],
        attempt: Callable[[Candidate], T | Miss],
        *,
        url_for: UrlFor = _default_url,
        stopped: Callable[[], bool] = _never,
        keep_mismatch: Callable[[Candidate], T | None] | None = None,
        nothing_tried: str = "no source",
    ) -> T | Ended:
        """The first value an attempt gives, or how the rounds ended.

        :param keep_mismatch: asked with the first candidate that served a whole body with
            another MD5, once every candidate of a round answered 404 or such a body (or in
            the last round): a value ends the rounds, None lets them go on.
        """
        last_error = nothing_tried
        mismatched: Candidate | None = None
        for round_number in range(self._rounds):
            if stopped():
                return Ended(EndKind.STOPPED)
            candidates, link_error = self._candidates(sources, url_for)
            if link_error is not None:
                last_error = f"{what}: {link_error}"
                if not candidates and isinstance(link_error, LinkRefused):
                    return Ended(EndKind.FAILED, last_error)
            all_not_found = bool(candidates) and link_error is None
            rejected = False
            settled = 0  # candidates that answered 404 or a whole body with another MD5
            for candidate in candidates:
                if stopped():
                    return Ended(EndKind.STOPPED)
                outcome = attempt(candidate)
                if not isinstance(outcome, Miss):
                    return outcome
                if outcome.kind is not MissKind.NOT_FOUND:
                    all_not_found = False
                    last_error = outcome.error
                if outcome.kind in (MissKind.NOT_FOUND, MissKind.MISMATCH):
                    settled += 1
                if outcome.kind is MissKind.MISMATCH:
                    mismatched = mismatched or candidate
                if outcome.kind is MissKind.REJECTED and candidate.signed is not None:
                    self._links.invalidate(*candidate.signed)  # the link expired: renew it
                    rejected = True
                    break
            is_last = round_number + 1 == self._rounds
            is_settled = settled == len(candidates) and link_error is None and not rejected
            if mismatched is not None and keep_mismatch is not None and (is_settled or is_last):
                kept = keep_mismatch(mismatched)
                if kept is not None:
                    return kept
            if all_not_found:
                return Ended(EndKind.ABSENT, f"{what}: 404 on every endpoint")
            if not rejected and not is_last:
                self._sleep(self._backoff_s * 2**round_number * (1 + random.random()))
        return Ended(EndKind.FAILED, last_error)

    def _candidates(
        self, sources: Sequence[Source], url_for: UrlFor
    ) -> tuple[list[Candidate], UpstreamError | ManifestError | None]:
        """The URLs to try, in order, and why a link could not be had (if one could not)."""
        candidates: list[Candidate] = []
        error = None
        for source in sources:
            if isinstance(source, Plain):
                candidates.append(Candidate(source.url, source.endpoint, None))
                continue
            try:
                link = self._links.get(source.request)
            except (UpstreamError, ManifestError) as exc:
                error = exc
                continue
            for endpoint in link.endpoints:
                url = url_for(endpoint, source.suffix)
                candidates.append(Candidate(url, endpoint.name, (source.request, link)))
        return candidates, error


def status_miss(status: int, error: str) -> Miss:
    """The Miss for an HTTP status: 404 is NOT_FOUND, 401/403 REJECTED (which renews a signed
    candidate's link; an unsigned one just misses), anything else ERROR."""
    if status == 404:
        return Miss(MissKind.NOT_FOUND, error)
    if status in (401, 403):
        return Miss(MissKind.REJECTED, error)
    return Miss(MissKind.ERROR, error)
