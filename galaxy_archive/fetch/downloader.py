"""Fetch objects in parallel: stream, hash, verify, rename into place.

Workers only download and write files; every result goes back to the calling thread, which
owns the DB. A task names its object's expected MD5 and size and where it can be fetched
(signed links with several CDN endpoints, or plain URLs). Endpoints are tried in order; a 404
on every endpoint means the CDN does not have the object; a 401/403 renews the link (the
rounds over endpoints are `rounds.Rounds`; this module fetches one whole body per attempt).

A store that fails to keep an object (an S3 server gone, a spool that cannot be written) costs
that object, recorded as failed with the store's message: no endpoint changes that, so the
rounds end there. After `STORE_FAILURES_IN_A_ROW` such failures the tasks not yet started are
dropped (each would wait out the store's retries in turn), and a batch with any store failure
ends by raising a StorageError: the caller's product stops there, since its later objects need
these, and the run ends with problems (exit 1), not as interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from galaxy_archive.errors import (
    DigestMismatch,
    GalaxyArchiveError,
    IntegrityError,
    Interrupted,
    ManifestError,
    PathRefused,
    StorageError,
    UpstreamError,
)
from galaxy_archive.fetch.rounds import (
    Candidate,
    Ended,
    EndKind,
    HttpStatus,
    Miss,
    MissKind,
    Rounds,
    status_miss,
)
from galaxy_archive.fetch.tasks import FetchResult, FetchTask, Outcome
from galaxy_archive.models.meta_flags import may_keep_mismatch
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.upstream.http_client import HttpClient, redact_url
from galaxy_archive.upstream.link_cache import LinkCache

# A store failing this many objects in a row is taken to be down for the rest of the batch.
STORE_FAILURES_IN_A_ROW = 5

# How the rounds ended, as the result of the task.
_OUTCOME_OF_END = {
    EndKind.ABSENT: Outcome.ABSENT,
    EndKind.FAILED: Outcome.FAILED,
    EndKind.STOPPED: Outcome.STOPPED,
}


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
        self._rounds = Rounds(links, sleep=sleep, backoff_s=backoff_s)
        self._store_health = _StoreHealth()

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
        A batch in which the store failed an object raises a StorageError once its results are
        yielded, without stopping the run (see the module docstring).
        """
        health = self._store_health = _StoreHealth()
        pending: set[Future[FetchResult]] = set()
        task_iter = iter(tasks)
        with ThreadPoolExecutor(self._workers, thread_name_prefix="fetch") as pool:
            try:
                while True:
                    while len(pending) < self._workers * 4 and not self._is_stopping(health):
                        task = next(task_iter, None)
                        if task is None:
                            break
                        pending.add(pool.submit(self._fetch, task))
                    if health.is_down:
                        pending = {future for future in pending if not future.cancel()}
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            except BaseException:
                self._stop.set()
                for future in pending:
                    future.cancel()
                raise
        if health.error is not None:
            raise health.error

    def _is_stopping(self, health: _StoreHealth) -> bool:
        return self._stop.is_set() or health.is_down

    # --- one object, in a worker thread ----------------------------------------------------

    def _fetch(self, task: FetchTask) -> FetchResult:
        if self._stop.is_set():
            return FetchResult(task, Outcome.STOPPED)
        present = self._already_present(task)
        if present is not None:
            return present
        outcome = self._rounds.run(
            task.what,
            task.sources,
            lambda candidate: self._attempt(task, candidate),
            stopped=self._stop.is_set,
            keep_mismatch=lambda candidate: self._keep_mismatch(task, candidate),
        )
        if isinstance(outcome, Ended):
            return FetchResult(task, _OUTCOME_OF_END[outcome.kind], error=outcome.error or None)
        return outcome

    def _attempt(self, task: FetchTask, candidate: Candidate) -> FetchResult | Miss:
        """One download from one endpoint: the object's result, or why this endpoint missed."""
        where = f"(endpoint {candidate.endpoint})"
        try:
            size, md5 = self._download(task, candidate.url)
        except HttpStatus as status:
            return status_miss(
                status.status, f"{task.what}: HTTP {status.status} from {candidate.endpoint}"
            )
        except ManifestError as exc:
            # The bytes match their hash but are not a valid manifest: hostile or broken at
            # the source, and no other endpoint will serve anything else.
            return FetchResult(task, Outcome.FAILED, error=str(exc))
        except UpstreamError as exc:  # its message already names the object
            return Miss(MissKind.ERROR, f"{exc} {where}")
        except DigestMismatch as exc:
            return Miss(MissKind.MISMATCH, f"{task.what}: {exc} {where}")
        except IntegrityError as exc:
            return Miss(MissKind.ERROR, f"{task.what}: {exc} {where}")
        except PathRefused as exc:  # no endpoint changes where the object goes
            return FetchResult(task, Outcome.FAILED, error=f"{task.what}: {exc}")
        except StorageError as exc:  # nor does it mend the store
            return self._not_stored(task, exc)
        except Interrupted:  # aborted mid-body; storage has dropped the temp file
            return FetchResult(task, Outcome.STOPPED)
        self._store_health.stored()
        return _fetched(task, candidate, size, md5)

    def _not_stored(self, task: FetchTask, exc: StorageError) -> FetchResult:
        self._store_health.failed(exc)
        return FetchResult(task, Outcome.FAILED, error=f"{task.what}: {exc}")

    def _keep_mismatch(self, task: FetchTask, candidate: Candidate) -> FetchResult | None:
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
        except PathRefused:
            return None  # the first answer's error stands
        except StorageError as exc:
            return self._not_stored(task, exc)
        except (HttpStatus, UpstreamError, IntegrityError, ManifestError):
            return None  # the first answer's error stands; a corrupt body is never kept
        except Interrupted:
            return FetchResult(task, Outcome.STOPPED)
        self._store_health.stored()
        return _fetched(task, candidate, size, md5, served_md5=md5 if md5 != task.md5 else None)

    def _download(
        self, task: FetchTask, url: str, *, is_md5_checked: bool = True
    ) -> tuple[int, str]:
        with self._http.stream(url, what=task.what) as response:
            if response.status_code != 200:
                raise HttpStatus(response.status_code)
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


class _StoreHealth:
    """How the store fared in one batch, updated by the workers, read by the calling thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._failures = 0
        self._last: StorageError | None = None

    def stored(self) -> None:
        with self._lock:
            self._in_a_row = 0

    def failed(self, exc: StorageError) -> None:
        with self._lock:
            self._in_a_row += 1
            self._failures += 1
            self._last = exc

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._in_a_row >= STORE_FAILURES_IN_A_ROW

    @property
    def error(self) -> StorageError | None:
        """The batch's outcome for its caller: None when the store kept every object it got."""
        with self._lock:
            if self._last is None:
                return None
            dropped = (
                "; the objects not yet tried were left for the next run"
                if (self._in_a_row >= STORE_FAILURES_IN_A_ROW)
                else ""
            )
            return StorageError(
                f"{self._failures} object(s) could not be stored{dropped}; the last: {self._last}"
            )


def _fetched(
    task: FetchTask, candidate: Candidate, size: int, md5: str, *, served_md5: str | None = None
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
