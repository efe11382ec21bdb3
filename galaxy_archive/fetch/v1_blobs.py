"""Fetch one V1 blob (`main.bin`) by parallel HTTP Range requests, resumably (protocol.md 6.3).

The size comes first (v1_blob_size; the job is v1_blob_job). The missing ranges are spread
over the workers; every 206 is checked against the range asked for and its body length
counted; each range is received into a buffer and written from it, as it arrives (every
`WRITE_EVERY_BYTES`), at its offset into ``.<blob>.galaxy-partial`` beside the final path
(v1_blob_io). About twice a second the partial file is fdatasync'ed and then the ranges done,
with the written prefix of every range in flight, are handed to `save`: a killed run loses at
most the last half second of each range in flight and resumes asking for the missing bytes only.
Each range goes over the endpoints by `rounds.Rounds`, as every fetch does.

From the same buffers, in offset order, a thread checks every file record's MD5
(v1_blob_hash; GOG publishes no MD5 of a whole blob). The bytes no record covers are hashed in
the same pass; that digest is recorded with the blob, so verify can prove every byte of it
later. A bad record makes its bytes "not done" again; they are fetched again (a few times)
before the blob fails naming the file. Only a blob whose every record matches is fsynced and
renamed into place.
"""

from __future__ import annotations

import logging
import mmap
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

from galaxy_archive.errors import PathRefused, UpstreamError
from galaxy_archive.fetch.rounds import (
    Candidate,
    Ended,
    EndKind,
    HttpStatus,
    Miss,
    MissKind,
    Rounds,
)
from galaxy_archive.fetch.tasks import FetchResult, Outcome
from galaxy_archive.fetch.v1_blob_hash import InOrderHasher
from galaxy_archive.fetch.v1_blob_io import BlobFile, BufferPool, StoredBlob
from galaxy_archive.fetch.v1_blob_job import BlobJob
from galaxy_archive.fetch.v1_blob_size import Probe, probe_size
from galaxy_archive.models.v1_ranges import (
    ByteRange,
    Extent,
    RangeSet,
    RangeViolation,
    check_partial_response,
    plan_ranges,
)
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.upstream.http_client import HttpClient
from galaxy_archive.upstream.link_cache import LinkCache

log = logging.getLogger(__name__)

DEFAULT_RANGE_SIZE_BYTES = 8 * 1024 * 1024
CHECK_ATTEMPTS = 3  # downloads of a bad file record's bytes before the blob fails
# Twice a second: a kill loses at most about this long of every range in flight.
COMMIT_EVERY_S = 0.5
# A range's bytes are written once this many have arrived (a multiple of the O_DIRECT block,
# so the written prefix, and a resumed range's first offset, stay block-aligned).
WRITE_EVERY_BYTES = 256 * 1024  # also the size of the body reads: none waits for more
# Range buffers (see v1_blob_io): a buffer per worker plus two, at most this much in all.
BUFFER_BUDGET_BYTES = 96 * 1024 * 1024
BACKOFF_S = 0.25  # between rounds (rounds.Rounds) of a range or the size probe
MAX_NAMED_FILES = 3

SaveProgress = Callable[[int | None, int | None, Sequence[ByteRange]], None]
BlobStored = Callable[[int, str], None]


class _BlobFailed(Exception):
    """The blob cannot be completed in this run; the message names it."""


class _Stopped(Exception):
    """The run is stopping; what is done is kept."""


class _Cancelled(Exception):
    """A range given up because another one failed (or the run stops)."""


class _InFlight:
    """The written prefix of every range in flight, by its start (set by the workers, read
    by the committing thread)."""

    def __init__(self) -> None:
        self._written: dict[int, int] = {}
        self._lock = threading.Lock()

    def wrote(self, piece: ByteRange, length: int) -> None:
        with self._lock:
            self._written[piece.start] = max(length, self._written.get(piece.start, 0))

    def settled(self, piece: ByteRange) -> ByteRange | None:
        """`piece` is out of flight: its written prefix, if any."""
        with self._lock:
            written = self._written.pop(piece.start, 0)
        return ByteRange(piece.start, piece.start + written) if written else None

    def prefixes(self) -> list[ByteRange]:
        with self._lock:
            return [ByteRange(start, start + n) for start, n in self._written.items() if n]


class BlobFetcher:
    """Fetches blobs by ranges with the run's HTTP client and link cache.

    `save(total, range_size, done)` is called from the calling thread whenever ranges are
    durable on disk; `stored(total, uncovered_md5)` once the blob is in place, with the MD5 of
    its bytes outside every file record.
    """

    def __init__(
        self,
        http: HttpClient,
        links: LinkCache,
        store: ObjectStore,
        *,
        workers: int,
        range_size: int = DEFAULT_RANGE_SIZE_BYTES,
        save: SaveProgress | None = None,
        stored: BlobStored | None = None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self._http = http
        self._links = links
        self._store = store
        self._workers = max(1, workers)
        self._range_size = range_size
        self._save = save or (lambda _total, _range_size, _done: None)
        self._stored = stored or (lambda _total, _uncovered_md5: None)
        self._stop = stop or threading.Event()
        self._rounds = Rounds(links, sleep=sleep, backoff_s=BACKOFF_S)
        self._on_bytes = on_bytes
        self._in_flight = _InFlight()

    def fetch(
        self,
        job: BlobJob,
        *,
        known_total: int | None = None,
        done: Sequence[ByteRange] = (),
        recorded_uncovered_md5: str | None = None,
    ) -> FetchResult:
        """Fetch, resume or adopt `job`'s blob.

        :param known_total: the blob size a previous run saw, and `done` the ranges it wrote;
            they are resumed when the CDN still announces that size.
        :param recorded_uncovered_md5: recorded when the blob was last stored, if it was: a
            file found at the final path is adopted only if its bytes outside every file
            record still have it (those bytes have no hash from GOG).
        """
        task = job.task()
        try:
            probe = self._probe(job)
            if probe is None:
                return FetchResult(task, Outcome.ABSENT, error=f"{job.what}: 404 on every endpoint")
            if probe.total < job.min_size:
                raise _BlobFailed(
                    f"{job.what}: the CDN's blob is {probe.total} bytes, shorter than its file "
                    f"records need ({job.min_size})"
                )
            adopted = self._adopt(job, probe.total, recorded_uncovered_md5)
            if adopted is not None:
                self._stored(probe.total, adopted)
                return FetchResult(task, Outcome.ALREADY_PRESENT, size=probe.total)
            resumed = RangeSet(done) if known_total == probe.total else RangeSet()
            self._fetch_into_place(job, probe.total, resumed)
        except _Stopped:
            return FetchResult(task, Outcome.STOPPED)
        except _BlobFailed as exc:
            return FetchResult(task, Outcome.FAILED, error=str(exc))
        except PathRefused as exc:
            return FetchResult(task, Outcome.FAILED, error=f"{job.what}: {exc}")
        return FetchResult(
            task,
            Outcome.FETCHED,
            size=probe.total,
            endpoint=probe.endpoint,
            source_url=probe.source_url,
        )

    # --- size ------------------------------------------------------------------------------

    def _probe(self, job: BlobJob) -> Probe | None:
        """The blob's size from the first endpoint that tells it; None: 404 everywhere."""
        outcome = probe_size(self._http, self._rounds, job)
        if isinstance(outcome, Ended):
            if outcome.kind is EndKind.ABSENT:
                return None
            raise _BlobFailed(outcome.error)
        return outcome

    # --- an existing final file ------------------------------------------------------------

    def _adopt(self, job: BlobJob, total: int, recorded_uncovered: str | None) -> str | None:
        """A file already at the final path with the right size, every record matching and
        the recorded digest of the rest if there is one (e.g. renamed just before a kill -9):
        the MD5 of its bytes outside every record."""
        if self._store.size_of(job.path) != total:  # none, not reached safely, or resized
            return None
        try:
            reader = self._store.open_read(job.path)
        except (OSError, PathRefused):  # gone or swapped for a symlink since: fetched afresh
            return None
        with reader:
            whole = [ByteRange(0, total)] if total else []
            stored = StoredBlob(reader, job.path)
            hasher = InOrderHasher(stored, total, job.extents, whole, lambda _buffer: None)
            uncovered, bad = hasher.start().finish()
        if bad or recorded_uncovered not in (None, uncovered):
            return None
        # an older download's leftovers are not needed now
        self._store.staging_path(job.path).unlink(missing_ok=True)
        return uncovered

    # --- download, check, rename -----------------------------------------------------------

    def _fetch_into_place(self, job: BlobJob, total: int, done: RangeSet) -> None:
        partial = self._store.staging_path(job.path)  # PathRefused: never outside or via links
        file = BlobFile(partial, job.path)
        try:
            if file.size() != total:
                # A new download, or the blob changed size upstream: nothing on disk counts.
                file.set_size(total)
                done = RangeSet()
            elif done.covered:
                log.info("%s: resuming, %d of %d bytes already here", job.what, done.covered, total)
            uncovered = self._fetch_and_check(job, file, total, done)
            file.sync()
        finally:
            file.close()
        self._store.publish(job.path, partial, size=total)
        self._stored(total, uncovered)

    def _fetch_and_check(self, job: BlobJob, file: BlobFile, total: int, done: RangeSet) -> str:
        """Fetch until every record matches; the MD5 of the bytes outside them."""
        bad: list[Extent] = []
        for attempt in range(1, CHECK_ATTEMPTS + 1):
            uncovered, bad = self._pass(job, file, total, done)
            if not bad:
                return uncovered
            for extent in bad:
                done.remove(extent.span)
            self._commit(file, total, done)
            log.warning(
                "%s: %s do not match their MD5 (download %d of %d)",
                job.what,
                _describe(bad),
                attempt,
                CHECK_ATTEMPTS,
            )
        raise _BlobFailed(
            f"{job.what}: {_describe(bad)} do not match their MD5 after {CHECK_ATTEMPTS} "
            "downloads; the blob is not stored"
        )

    def _pass(
        self, job: BlobJob, file: BlobFile, total: int, done: RangeSet
    ) -> tuple[str, list[Extent]]:
        """Fetch every missing range, hashed in order as they arrive; (MD5 outside the
        records, bad records)."""
        todo = plan_ranges(total, self._range_size, done)
        buffer_size = max((piece.length for piece in todo), default=0)
        pool = BufferPool(self._buffer_count(buffer_size), buffer_size)
        hasher = InOrderHasher(file, total, job.extents, done.ranges, pool.give_back).start()
        try:
            self._fetch_ranges(job, file, total, todo, done, pool, hasher)
        except BaseException:
            hasher.cancel()
            raise
        return hasher.finish()

    def _buffer_count(self, buffer_size: int) -> int:
        """A buffer per worker and two for the hasher to hold, within the memory budget
        (none when every range is on disk already)."""
        if not buffer_size:
            return 0
        return max(2, min(self._workers + 2, BUFFER_BUDGET_BYTES // buffer_size))

    def _fetch_ranges(
        self,
        job: BlobJob,
        file: BlobFile,
        total: int,
        todo: Sequence[ByteRange],
        done: RangeSet,
        pool: BufferPool,
        hasher: InOrderHasher,
    ) -> None:
        """Start ranges in offset order, each with a free buffer (so the range the hasher
        waits for always has one), until all are done, one fails or the run stops."""
        cancel = threading.Event()
        queue = iter(todo)
        piece = next(queue, None)
        pending: dict[Future[None], tuple[ByteRange, mmap.mmap]] = {}
        failure: BaseException | None = None
        last_commit = time.monotonic()
        with ThreadPoolExecutor(self._workers, thread_name_prefix="range") as pool_of_workers:
            try:
                while True:
                    pool.wakeup.clear()
                    while failure is None and piece is not None and len(pending) < self._workers:
                        buffer = pool.take()
                        if buffer is None:
                            break
                        future = pool_of_workers.submit(
                            self._fetch_range, job, file, total, piece, buffer, cancel, hasher
                        )
                        pending[future] = (piece, buffer)
                        future.add_done_callback(lambda _future: pool.wakeup.set())
                        piece = next(queue, None)
                    if not pending and (piece is None or failure is not None):
                        break
                    error = _settle_finished(pending, done, pool, self._in_flight)
                    if error is not None and failure is None:
                        failure = error  # raised once the ranges in flight settle
                        cancel.set()
                    if failure is None and self._stop.is_set():
                        # The run is stopping: the ranges in flight are finished and kept,
                        # none is started (a second signal interrupts and drops them).
                        failure = _Stopped()
                        for future in pending:
                            future.cancel()
                    if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                        self._commit(file, total, done)
                        last_commit = time.monotonic()
                    pool.wakeup.wait(COMMIT_EVERY_S)
                if failure is not None:
                    raise failure
            except BaseException:
                cancel.set()
                for future in pending:
                    future.cancel()
                raise
            finally:
                self._commit(file, total, done)

    def _commit(self, file: BlobFile, total: int, done: RangeSet) -> None:
        """Make the ranges done and the written prefixes of those in flight durable, then
        record them: a crash never leaves a byte recorded that is not on disk. (The snapshot
        is taken first: every byte it names was written before the fdatasync.)"""
        snapshot = RangeSet([*done.ranges, *self._in_flight.prefixes()]).ranges
        file.datasync()
        self._save(total, self._range_size, snapshot)

    # --- one range, in a worker thread -----------------------------------------------------

    def _fetch_range(
        self,
        job: BlobJob,
        file: BlobFile,
        total: int,
        piece: ByteRange,
        buffer: mmap.mmap,
        cancel: threading.Event,
        hasher: InOrderHasher,
    ) -> None:
        """Fetch `piece` into `buffer`, write it and hand it to the hasher (which gives the
        buffer back); on any error the buffer stays the caller's."""
        outcome = self._rounds.run(
            job.what,
            (job.source,),
            lambda candidate: self._range_at(job, file, candidate, total, piece, buffer, cancel),
            url_for=job.url_for,
            stopped=cancel.is_set,
            nothing_tried=f"{job.what} (bytes {piece}): no endpoint",
        )
        if isinstance(outcome, Ended):
            if outcome.kind is EndKind.STOPPED:
                raise _Cancelled
            raise _BlobFailed(outcome.error)  # never ABSENT: a range's 404 is an ERROR
        hasher.hand_over(piece.start, outcome, buffer)

    def _range_at(
        self,
        job: BlobJob,
        file: BlobFile,
        candidate: Candidate,
        total: int,
        piece: ByteRange,
        buffer: mmap.mmap,
        cancel: threading.Event,
    ) -> memoryview | Miss:
        try:
            return self._get_range(job, file, candidate.url, total, piece, buffer, cancel)
        except HttpStatus as status:
            error = f"{job.what} (bytes {piece}): HTTP {status.status} from {candidate.endpoint}"
            if status.status in (401, 403):  # the link expired: the rounds renew it
                return Miss(MissKind.REJECTED, error)
            # A range's 404 proves nothing (the size probe found the blob): tried again.
            return Miss(MissKind.ERROR, error)
        except (UpstreamError, RangeViolation) as exc:
            return Miss(MissKind.ERROR, f"{exc} (endpoint {candidate.endpoint})")

    def _get_range(
        self,
        job: BlobJob,
        file: BlobFile,
        url: str,
        total: int,
        piece: ByteRange,
        buffer: mmap.mmap,
        cancel: threading.Event,
    ) -> memoryview:
        """The range's body, checked against what was asked for, in `buffer` and written at
        its offset as it arrives (`WRITE_EVERY_BYTES` at a time, the rest at the end)."""
        what = f"{job.what} (bytes {piece})"
        view = memoryview(buffer)[: piece.length]
        with self._http.stream(url, what=what, headers={"Range": piece.header()}) as response:
            if response.status_code in (401, 403, 404):
                raise HttpStatus(response.status_code)
            try:
                check_partial_response(
                    piece,
                    total,
                    status=response.status_code,
                    content_range=response.headers.get("Content-Range"),
                    content_length=response.headers.get("Content-Length"),
                )
            except RangeViolation as exc:
                raise RangeViolation(f"{what}: {exc}") from None
            received = written = 0
            body = self._http.iter_body(response, what=what, piece_size=WRITE_EVERY_BYTES)
            for data in body:
                if cancel.is_set():
                    raise _Cancelled
                if received + len(data) > piece.length:
                    raise RangeViolation(f"{what}: the body is longer than the range")
                view[received : received + len(data)] = data
                received += len(data)
                if self._on_bytes is not None:
                    self._on_bytes(len(data))
                if received - written >= WRITE_EVERY_BYTES:
                    written = self._write_prefix(file, piece, view, written, received)
            if received != piece.length:
                raise RangeViolation(
                    f"{what}: the body ended after {received} of {piece.length} bytes"
                )
            self._write_prefix(file, piece, view, written, received, whole=True)
        return view

    def _write_prefix(
        self,
        file: BlobFile,
        piece: ByteRange,
        view: memoryview,
        written: int,
        received: int,
        *,
        whole: bool = False,
    ) -> int:
        """Write the bytes received since `written` (whole blocks of them unless `whole`);
        the new length of the written prefix, which the next commit records."""
        end = received if whole else received - received % WRITE_EVERY_BYTES
        file.write(view[written:end], piece.start + written)
        self._in_flight.wrote(piece, end)
        return end


# --- small helpers -------------------------------------------------------------------------


def _settle_finished(
    pending: dict[Future[None], tuple[ByteRange, mmap.mmap]],
    done: RangeSet,
    pool: BufferPool,
    in_flight: _InFlight,
) -> BaseException | None:
    """Take the finished ranges out of `pending`: one fetched is done (its worker handed the
    buffer to the hasher), one failed or cancelled gives its buffer back. The first failure."""
    failure: BaseException | None = None
    for future in [f for f in pending if f.done()]:
        piece, buffer = pending.pop(future)
        prefix = in_flight.settled(piece)
        try:
            future.result()
            done.add(piece)
            continue
        except (_Cancelled, CancelledError):
            pool.give_back(buffer)
        except BaseException as exc:
            pool.give_back(buffer)
            failure = failure or exc
        if prefix is not None:  # its bytes are on disk: kept for the next run (the pass ends)
            done.add(prefix)
    return failure


def _describe(bad: Sequence[Extent]) -> str:
    named = ", ".join(
        f"{e.path} (offset {e.offset}, {e.size} bytes)" for e in bad[:MAX_NAMED_FILES]
    )
    more = len(bad) - MAX_NAMED_FILES
    return f"file {named}" + (f" and {more} more" if more > 0 else "")
