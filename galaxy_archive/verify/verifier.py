"""`verify`: prove that every stored byte is right, in time-boxed slices if need be.

The main thread plans (a snapshot of the objects due, oldest first), hands each object to a
pool of checker threads, and writes every result to the DB as it comes back, committing about
once a second: a killed verify keeps what it proved. Then, over the whole archive only, it walks
the tree for files the DB does not know and leftover temp files, and updates the state of the
builds whose objects changed. No network unless --repair (see repair.py): only --repair
imports the repair and HTTP stack, so a plain verify starts without loading requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from galaxy_archive.app import App
from galaxy_archive.errors import ConfigError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.models.v1_ranges import Extent
from galaxy_archive.models.verify_plan import Budget, Check, VerifyLevel, VerifyOptions, checks_for
from galaxy_archive.output import Progress
from galaxy_archive.runs import RecordedRun
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.state.verify_records import PlanRow, VerifyRecords
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.storage.tree_walk import Stray, WalkStopped, find_strays
from galaxy_archive.verify.object_checks import CheckItem, CheckResult, ObjectChecker, Verdict
from galaxy_archive.verify.report import ObjectProblem, VerifyReport

if TYPE_CHECKING:
    from galaxy_archive.upstream.galaxy_api import GalaxyApi
    from galaxy_archive.upstream.http_client import HttpClient

log = logging.getLogger(__name__)
COMMIT_EVERY_S = 1.0
IN_FLIGHT_PER_WORKER = 2  # enough to keep every worker busy while the main thread records
BATCH_OBJECTS = 64  # a batch ends at this many objects or this many bytes
BATCH_BYTES = 16 << 20

# The state an object is left in by a failed check.
_STATE_OF = {Verdict.MISSING: ObjectState.MISSING, Verdict.CORRUPT: ObjectState.CORRUPT}


class Verifier:
    def __init__(
        self,
        *,
        db: StateDB,
        store: ObjectStore,
        options: VerifyOptions,
        clock: Callable[[], float],
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.db = db
        self.records = VerifyRecords(db)
        self.checker = ObjectChecker(store)
        self.options = options
        self.clock = clock
        self.progress = progress or Progress(is_enabled=False)
        self.stop = stop or threading.Event()
        self.budget = Budget(clock, options.time_budget_s)
        self.report = VerifyReport(level=str(options.level), is_repair=options.is_repair)
        self.to_repair: list[tuple[ObjectProblem, PlanRow]] = []
        self._touched: dict[int, ObjectKind] = {}  # objects whose state changed
        self._last_flush = clock()

    # --- objects ---------------------------------------------------------------------------

    def check_objects(self) -> None:
        """Check every planned object until done, the budget is spent or the run is stopped."""
        report = self.report
        report.planned = self.records.make_plan(self.options, self.clock())
        report.absent_upstream = self.records.absent_upstream_count(self.options.product_ids)
        report.not_fetched = self.records.not_fetched_count(self.options.product_ids)
        self.progress.set_total(report.planned)
        try:
            if self.options.level is VerifyLevel.QUICK:
                self._check_serially(self._due_rows())
            else:
                self._check_in_parallel(self._due_rows())
        finally:
            report.left = report.planned - report.checked
            if self.budget.is_spent:
                report.is_budget_spent = True
            self.records.flush()

    def _due_rows(self) -> Iterator[PlanRow]:
        """Planned rows until the budget is spent or the run is asked to stop."""
        for row in self.records.plan_rows():
            if self.stop.is_set():
                self.report.is_interrupted = True
                return
            if self.budget.check():
                self.report.is_budget_spent = True
                return
            yield row

    def _check_serially(self, rows: Iterable[PlanRow]) -> None:
        """--quick: a stat per object is faster in one thread than handing it to another."""
        try:
            for row in rows:
                self._record(row, self.checker.check(self._item(row)))
        except KeyboardInterrupt:
            self.report.is_interrupted = True

    def _check_in_parallel(self, rows: Iterable[PlanRow]) -> None:
        """Batches of objects to a thread per core; results recorded here as they come back.

        Batching keeps the per-object cost low for the many small chunks (a future and a
        wake-up per batch, not per object) while a batch of big chunks still spreads well.
        """
        workers = self.options.worker_count
        in_flight: dict[Future[list[CheckResult]], list[PlanRow]] = {}
        with ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool:
            try:
                for batch in _batches(rows):
                    while len(in_flight) >= workers * IN_FLIGHT_PER_WORKER:
                        self._collect(in_flight, wait(in_flight, return_when=FIRST_COMPLETED)[0])
                    items = [self._item(row) for row in batch]
                    in_flight[pool.submit(self._check_batch, items)] = batch
            except KeyboardInterrupt:
                self.report.is_interrupted = True
                for future in in_flight:
                    future.cancel()
            # What was started is finished and recorded: it is proved work.
            self._collect(in_flight, [f for f in list(in_flight) if not f.cancelled()])

    def _check_batch(self, items: list[CheckItem]) -> list[CheckResult]:
        """The batch's results, up to the object at which the budget is spent or the run is
        stopped: a queued batch starts no object after that (the rest stays planned)."""
        results: list[CheckResult] = []
        for item in items:
            if self.stop.is_set() or self.budget.check():
                break
            results.append(self.checker.check(item))
        return results

    def _collect(
        self,
        in_flight: dict[Future[list[CheckResult]], list[PlanRow]],
        done: Iterable[Future[list[CheckResult]]],
    ) -> None:
        for future in done:
            # fewer results than rows: the batch stopped early (see _check_batch)
            for row, result in zip(in_flight.pop(future), future.result(), strict=False):
                self._record(row, result)

    def _item(self, row: PlanRow) -> CheckItem:
        checks = checks_for(row.kind, self.options.level)
        extents: tuple[Extent, ...] = ()
        uncovered_md5 = None
        if Check.EXTENTS in checks:
            extents, uncovered_md5 = self.records.blob_proof(row.object_id)
        return CheckItem(
            row.object_id,
            row.kind,
            row.path,
            row.served_md5 or row.md5,  # the bytes kept, for a flagged meta file
            row.size,
            checks,
            row.inflated_md5,
            row.inflated_size,
            extents,
            uncovered_md5,
        )

    def _record(self, row: PlanRow, result: CheckResult) -> None:
        """Write one result (the main thread owns the DB); commit about once a second."""
        now = self.clock()
        report = self.report
        report.checked += 1
        report.bytes_checked += result.bytes_read
        self.progress.add_bytes(result.bytes_read)
        if result.verdict is Verdict.OK:
            report.ok += 1
            # --quick proves presence and size, not the bytes: it never stamps verified_at.
            if self.options.level is not VerifyLevel.QUICK:
                self.records.record_verified(row.object_id, now)
                if row.state != ObjectState.VERIFIED:
                    self._touch(row)
        else:
            self._problem(row, result, now)
        if now - self._last_flush >= COMMIT_EVERY_S:
            self.records.flush()
            self._last_flush = now
        self.progress.add_object()

    def _touch(self, row: PlanRow) -> None:
        self._touched[row.object_id] = row.kind

    def _problem(self, row: PlanRow, result: CheckResult, now: float) -> None:
        detail = result.detail or str(result.verdict)
        if result.verdict in (Verdict.MISSING, Verdict.CORRUPT):
            self.records.record_problem(
                row.object_id, _STATE_OF[result.verdict], f"verify: {detail}", now, was=row.state
            )
            # Its builds are recomputed at the end (also when --repair brings it back).
            self._touch(row)
        problem = ObjectProblem(
            object_id=row.object_id,
            kind=str(row.kind),
            path=row.path,
            md5=row.md5,
            verdict=result.verdict,
            detail=detail,
            builds=self.records.builds_of(row.object_id),
            others=self._others_of(row),
            products=self.records.products_of(row.object_id),
            bad_files=result.bad_extents,
        )
        self.report.problem(problem)
        if result.verdict in (Verdict.MISSING, Verdict.CORRUPT):
            self.to_repair.append((problem, row))

    # --- the tree --------------------------------------------------------------------------

    def walk_tree(self, *, has_other_runs: bool = False) -> None:
        """Report files under v1/ and v2/ the DB does not know, and leftover temp files.

        Report only: nothing is deleted (the next sync sweeps temp files). While another run
        is alive (a sync beside a plain verify) temp files are its downloads in flight, not
        leftovers, and are not reported.
        """
        try:
            for path, stray in find_strays(
                self.checker.store, self.records.paths_under, self._is_walk_over
            ):
                if stray is Stray.UNKNOWN:
                    self.report.unknown_file(path)
                elif stray is Stray.TEMP and not has_other_runs:
                    self.report.temp_file(path)
                elif stray is Stray.PARTIAL:
                    self.report.partial_files.append(path)  # kept on purpose: resumable
                elif stray is Stray.UNREADABLE:
                    self.report.unreadable_dir(path)
        except WalkStopped:
            return
        self.report.is_tree_walked = True

    def _is_walk_over(self) -> bool:
        if self.budget.check():
            self.report.is_budget_spent = True
            return True
        return self.stop.is_set()

    # --- what needs the objects -------------------------------------------------------------

    def _others_of(self, row: PlanRow) -> list[str]:
        if row.kind in (ObjectKind.PATCH_META, ObjectKind.PATCH_STORE):
            return [pair.what for pair in self.records.patches_of(row.object_id)]
        if row.kind in (ObjectKind.DEP_META, ObjectKind.DEP_STORE):
            return self.records.dependencies_of(row.object_id)
        return []

    def update_builds(self) -> None:
        """Recompute the builds (patches, dependencies) whose objects changed state."""
        self.records.flush()
        if self._touched:
            # local: the V1, patch and dependency records load only when states changed
            from galaxy_archive.verify.build_states import update_owner_states

            update_owner_states(self.db, self.records, self.report, self._touched, self.clock)


def _batches(rows: Iterable[PlanRow]) -> Iterator[list[PlanRow]]:
    batch: list[PlanRow] = []
    size = 0
    for row in rows:
        batch.append(row)
        size += row.size or 0
        if len(batch) >= BATCH_OBJECTS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def run_verify(
    app: App, options: VerifyOptions, *, progress: Progress | None = None
) -> VerifyReport:
    """The `verify` use case: a run record, the checks, --repair, the tree walk, the builds.

    Plain verify uses no network and takes no lock: it only reads the tree and stamps rows, so
    it may run beside a sync. --repair writes the tree: it needs a login and the archive lock
    (a second run exits 4), both checked before anything else.
    """
    if not app.config.database_path.exists():
        raise ConfigError(f"no archive at {app.config.root} (no {app.config.database_path.name})")
    if not options.is_repair:
        return _verify(app, options, progress, None)
    with archive_lock(app.config.root, command="verify --repair", clock=app.clock):
        http = app.http(app.config.sync.workers)
        api = app.api(http)
        api.auth.access_token()  # not logged in: exit 3 before hours of checking
        return _verify(app, options, progress, (http, api))


def _verify(
    app: App,
    options: VerifyOptions,
    progress: Progress | None,
    network: tuple[HttpClient, GalaxyApi] | None,
) -> VerifyReport:
    progress = progress or Progress(is_enabled=False)
    started = time.monotonic()
    db = app.open_db()
    try:
        unknown = VerifyRecords(db).unknown_products(options.product_ids)
        if unknown:
            raise ConfigError(f"no product {', '.join(unknown)} in this archive")
        # Under the lock (--repair) runs that died are closed and their temp files swept, as
        # sync does; a plain verify must not delete files without the lock.
        run = RecordedRun.start(
            db,
            "verify",
            pid=app.pid,
            clock=app.clock,
            locked_store=app.store() if network is not None else None,
        )
        with run.ended_on_error(keeps_work=True):  # unlike a sync's, what was proved stays
            report = _verify_with(app, db, options, progress, network)
        report.elapsed_s = time.monotonic() - started
        run.end(int(report.exit_code), report.to_json(is_compact=True), report.summary_line())
        return report
    finally:
        progress.close()
        db.close()


def _verify_with(
    app: App,
    db: StateDB,
    options: VerifyOptions,
    progress: Progress,
    network: tuple[HttpClient, GalaxyApi] | None,
) -> VerifyReport:
    verifier = Verifier(
        db=db,
        store=app.store(),
        options=options,
        clock=app.clock,
        progress=progress,
        stop=app.stop,
    )
    report = verifier.report
    verifier.check_objects()
    if network is not None and verifier.to_repair and not report.is_interrupted:
        from galaxy_archive.verify.repair import Repairer  # local: see the module docstring

        http, api = network
        Repairer(
            api=api,
            downloader=app.downloader(http, api, app.config.sync.workers),
            store=app.store(),
            records=verifier.records,
            checker=verifier.checker,
            level=options.level,
            v1_range_size=app.config.sync.v1_range_size,
            clock=app.clock,
        ).repair(verifier.to_repair)
    if options.is_whole_archive and not report.is_interrupted and not report.is_budget_spent:
        verifier.walk_tree(has_other_runs=verifier.records.has_other_live_runs(app.pid))
    verifier.update_builds()
    return report
