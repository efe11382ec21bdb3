"""Fetch objects in parallel: stream, hash, verify, rename into place.

Workers only download and write files; every result goes back to the calling thread, which
owns the DB. A task names its object's expected MD5 and size and where it can be fetched
(signed links with several CDN endpoints, or plain URLs). Endpoints are tried in order; a 404
on every endpoint means the CDN does not have the object; a 401/403 renews the link.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from galaxy_archive.errors import (
    DigestMismatch,
    GalaxyArchiveError,
    IntegrityError,
    Interrupted,
    ManifestError,
    PathRefused,
    UpstreamError,
)
from galaxy_archive.fetch.tasks import FetchResult, FetchTask, Outcome, Plain
from galaxy_archive.models.links import Link
from galaxy_archive.models.meta_flags import may_keep_mismatch
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.upstream.galaxy_api import LinkRefused, LinkRequest
from galaxy_archive.upstream.http_client import HttpClient, redact_url
from galaxy_archive.upstream.link_cache import LinkCache

ROUNDS = 3  # passes over all endpoints before giving up on an object


@dataclass(frozen=True)
class _Candidate:
    url: str
    endpoint: str
    signed: tuple[LinkRequest, Link] | None


class _MissKind(enum.Enum):
    NOT_FOUND = "404"
    REJECTED = "401/403 on a signed URL: the link is renewed"
    MISMATCH = "a whole body with another MD5"
    ERROR = "any other failure"


@dataclass(frozen=True)
class _Miss:
    """Why one endpoint did not deliver the object."""

    kind: _MissKind
    error: str


class _HttpStatus(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class Downloader:
    def __init__(
        self,
        http: HttpClient,
        store: ObjectStore,
        links: LinkCache,
        *,
        workers: int,
        stop: threading.Event | None = None,
        abort: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_bytes: Callable[[int], None] | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        self._http = http
        self._store = store
        self._links = links
        self._workers = max(1, workers)
        self._stop = stop or threading.Event()
        self._abort = abort or threading.Event()
        self._sleep = sleep
        self._on_bytes = on_bytes
        self._backoff_s = backoff_s

    # The run's transport, for fetchers of other shapes (V1 blobs by ranges) to share.
    @property
    def http(self) -> HttpClient:
        return self._http

    @property
    def links(self) -> LinkCache:
        return self._links

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def stop(self) -> threading.Event:
        return self._stop

    @property
    def sleep(self) -> Callable[[float], None]:
        return self._sleep

    @property
    def on_bytes(self) -> Callable[[int], None] | None:
        return self._on_bytes

    def run(self, tasks: Iterable[FetchTask]) -> Iterator[FetchResult]:
        """Yield one result per task, in completion order, in the calling thread.

        A GalaxyArchiveError that is not about one object (for example the login could not be
        refreshed) stops the run and is raised here. Once `stop` is set no further task is
        started: the tasks in flight still yield their result, the others yield nothing.
        """
        pending: set[Future[FetchResult]] = set()
        task_iter = iter(tasks)
        with ThreadPoolExecutor(self._workers, thread_name_prefix="fetch") as pool:
            try:
                while True:
                    while len(pending) < self._workers * 4 and not self._stop.is_set():
                        task = next(task_iter, None)
                        if task is None:
                            break
                        pending.add(pool.submit(self._fetch, task))
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            except BaseException:
                self._stop.set()
                for future in pending:
                    future.cancel()
                raise

    # --- one object, in a worker thread ----------------------------------------------------

    def _fetch(self, task: FetchTask) -> FetchResult:
        if self._stop.is_set():
            return FetchResult(task, Outcome.STOPPED)
        present = self._already_present(task)
        if present is not None:
            return present
        last_error = "no source"
        mismatched: _Candidate | None = None  # the first endpoint that served other bytes
        for round_number in range(ROUNDS):
            candidates, link_error = self._candidates(task)
            if link_error is not None:
                last_error = f"{task.what}: {link_error}"
                if not candidates and isinstance(link_error, LinkRefused):
                    # GOG refused the link (not owned?): asking again in this run changes
                    # nothing, so the object fails now, without backing off.
                    return FetchResult(task, Outcome.FAILED, error=last_error)
            all_not_found = bool(candidates) and link_error is None
            rejected = False
            settled = 0  # endpoints that answered 404 or a whole body with another MD5
            for candidate in candidates:
                if self._stop.is_set():
                    return FetchResult(task, Outcome.STOPPED)
                miss = self._attempt(task, candidate)
                if isinstance(miss, FetchResult):
                    return miss
                if miss.kind is not _MissKind.NOT_FOUND:
                    all_not_found = False
                    last_error = miss.error
                if miss.kind in (_MissKind.NOT_FOUND, _MissKind.MISMATCH):
                    settled += 1
                if miss.kind is _MissKind.MISMATCH:
                    mismatched = mismatched or candidate
                if miss.kind is _MissKind.REJECTED and candidate.signed is not None:
                    self._links.invalidate(*candidate.signed)  # the link expired: renew it
                    rejected = True
                    break
            is_settled = settled == len(candidates) and link_error is None and not rejected
            if mismatched is not None and (is_settled or round_number + 1 == ROUNDS):
                kept = self._keep_mismatch(task, mismatched)
                if kept is not None:
                    return kept
            if all_not_found:
                return FetchResult(
                    task, Outcome.ABSENT, error=f"{task.what}: 404 on every endpoint"
                )
            if not rejected and round_number + 1 < ROUNDS:
                self._sleep(self._backoff_s * 2**round_number * (1 + random.random()))
        return FetchResult(task, Outcome.FAILED, error=last_error)

    def _attempt(self, task: FetchTask, candidate: _Candidate) -> FetchResult | _Miss:
        """One download from one endpoint: the object's result, or why this endpoint missed."""
        where = f"(endpoint {candidate.endpoint})"
        try:
            size, md5 = self._download(task, candidate.url)
        except _HttpStatus as status:
            if status.status == 404:
                return _Miss(_MissKind.NOT_FOUND, f"{task.what}: 404 {where}")
            error = f"{task.what}: HTTP {status.status} from {candidate.endpoint}"
            is_rejected = status.status in (401, 403) and candidate.signed is not None
            return _Miss(_MissKind.REJECTED if is_rejected else _MissKind.ERROR, error)
        except ManifestError as exc:
            # The bytes match their hash but are not a valid manifest: hostile or broken at
            # the source, and no other endpoint will serve anything else.
            return FetchResult(task, Outcome.FAILED, error=str(exc))
        except UpstreamError as exc:  # its message already names the object
            return _Miss(_MissKind.ERROR, f"{exc} {where}")
        except DigestMismatch as exc:
            return _Miss(_MissKind.MISMATCH, f"{task.what}: {exc} {where}")
        except IntegrityError as exc:
            return _Miss(_MissKind.ERROR, f"{task.what}: {exc} {where}")
        except PathRefused as exc:  # no endpoint changes where the object goes
            return FetchResult(task, Outcome.FAILED, error=f"{task.what}: {exc}")
        except Interrupted:  # aborted mid-body; storage has dropped the temp file
            return FetchResult(task, Outcome.STOPPED)
        return _fetched(task, candidate, size, md5)

    def _candidates(
        self, task: FetchTask
    ) -> tuple[list[_Candidate], UpstreamError | ManifestError | None]:
        """The URLs to try, in order, and why a link could not be had (if one could not)."""
        candidates: list[_Candidate] = []
        error = None
        for source in task.sources:
            if isinstance(source, Plain):
                candidates.append(_Candidate(source.url, source.endpoint, None))
                continue
            try:
                link = self._links.get(source.request)
            except (UpstreamError, ManifestError) as exc:
                error = exc
                continue
            for endpoint in link.endpoints:
                url = endpoint.build_url(source.suffix)
                candidates.append(_Candidate(url, endpoint.name, (source.request, link)))
        return candidates, error

    def _keep_mismatch(self, task: FetchTask, candidate: _Candidate) -> FetchResult | None:
        """Every endpoint was asked and none served the bytes that hash to the id: fetch the
        first other body again, without the MD5 check, and keep it if it parses (protocol.md
        3.2, module meta_flags). None when it may not be kept or fails again: the rounds go on.

        Fetched again rather than kept from the first try: the store never keeps a body that
        fails a check, so a mismatch leaves nothing behind, and such files are rare and small.
        """
        if not may_keep_mismatch(task.kind, task.md5, task.check):
            return None
        try:
            size, md5 = self._download(task, candidate.url, is_md5_checked=False)
        except (_HttpStatus, UpstreamError, IntegrityError, ManifestError):
            return None  # the first answer's error stands; a corrupt body is never kept
        except Interrupted:
            return FetchResult(task, Outcome.STOPPED)
        return _fetched(task, candidate, size, md5, served_md5=md5 if md5 != task.md5 else None)

    def _download(
        self, task: FetchTask, url: str, *, is_md5_checked: bool = True
    ) -> tuple[int, str]:
        with self._http.stream(url, what=task.what) as response:
            if response.status_code != 200:
                raise _HttpStatus(response.status_code)
            announced = response.headers.get("Content-Length", "")
            if task.size is not None and announced.isdigit() and int(announced) != task.size:
                raise IntegrityError(
                    f"{task.what}: server announces {announced} bytes, expected {task.size}"
                )
            stored = self._store.write_verified(
                task.path,
                self._counted(self._http.iter_body(response, what=task.what)),
                expected_md5=task.md5 if is_md5_checked else None,
                expected_size=task.size,
                check=task.check,
            )
        return stored.size, stored.md5

    def _counted(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            if self._abort.is_set():
                raise Interrupted("download abandoned: the run is aborting")
            if self._on_bytes is not None:
                self._on_bytes(len(piece))
            yield piece

    def _already_present(self, task: FetchTask) -> FetchResult | None:
        """A file already at the final path with the right bytes (e.g. renamed just before a
        kill -9, when the DB had not recorded it yet) is adopted, not downloaded again."""
        if task.md5 is None:
            return None
        size = self._store.size_of(task.path)
        if size is None or (task.size is not None and size != task.size):
            return None
        try:
            md5, _ = self._store.md5_of(task.path)
            if md5 != task.md5:
                return None
            if task.check is not None:
                with self._store.open_read(task.path) as reader:
                    task.check(reader)
        except (OSError, GalaxyArchiveError):
            return None
        return FetchResult(task, Outcome.ALREADY_PRESENT, size=size, md5=md5)


def _fetched(
    task: FetchTask, candidate: _Candidate, size: int, md5: str, *, served_md5: str | None = None
) -> FetchResult:
    return FetchResult(
        task,
        Outcome.FETCHED,
        size=size,
        md5=md5,
        endpoint=candidate.endpoint,
        source_url=redact_url(candidate.url),
        served_md5=served_md5,
    )
