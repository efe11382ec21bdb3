"""What every sync phase works through: the run's wiring and the few acts all phases share.

A `SyncContext` is built once per run by the `Syncer` and handed to each phase (V2 game, V1,
patches, dependencies) instead of the Syncer itself, so a phase can fetch, record, check the
free space and report a build's problem, and nothing more. Every object any phase fetches
goes through `fetch` or `record`, so it is marked in the DB, counted in the report and shown
in the progress exactly like the others. Leaving a product when the run stops is
`check_stop`, which raises `Stopping` for the Syncer to catch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from galaxy_archive.errors import ManifestError, StorageError
from galaxy_archive.fetch.downloader import Downloader
from galaxy_archive.fetch.tasks import FetchResult, FetchTask, Outcome, Source
from galaxy_archive.models.dependencies import DependencyMode
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.meta_flags import KEEPABLE_KINDS
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.report import SyncReport, human_bytes
from galaxy_archive.state.db import ObjectRow, StateDB
from galaxy_archive.state.meta_flags import record_served_md5
from galaxy_archive.storage.interface import Check, ObjectStore
from galaxy_archive.upstream.galaxy_api import GalaxyApi

log = logging.getLogger(__name__)
T = TypeVar("T")
COMMIT_EVERY_S = 1.0
# Room kept free beyond the bytes a product still needs: the DB, its WAL and the temp files of
# the objects in flight grow too, and a full disk is the one failure a NAS owner hates most.
FREE_SPACE_MARGIN_BYTES = 256 * 1024 * 1024


class Stopping(Exception):
    """The run was asked to stop (SIGINT/SIGTERM): leave the product, commit, report 130."""


@dataclass(frozen=True)
class SyncOptions:
    os: tuple[str, ...] = ("windows", "osx")
    generations: tuple[int, ...] = (1, 2)
    build_ids: tuple[str, ...] = ()
    branch: str | None = None
    password: str | None = None
    include_dlc: bool = True
    is_dry_run: bool = False
    include_patches: bool = True
    patch_recheck_s: float = 7 * 86400
    dependencies: DependencyMode = DependencyMode.REFERENCED
    v1_range_size: int = 8 * 1024 * 1024
    manifest_ids: tuple[str, ...] = ()  # builds to add by repository manifest id (--manifest)
    # generation-1 builds to add by (os, legacy build id) of the one product synced (--v1)
    v1_locations: tuple[tuple[str, int], ...] = ()


@dataclass
class SyncContext:
    """One sync run's API, DB, store, downloader, options and report, shared by its phases."""

    api: GalaxyApi
    db: StateDB
    store: ObjectStore
    downloader: Downloader
    options: SyncOptions
    report: SyncReport
    clock: Callable[[], float] = time.time
    stop: threading.Event = field(default_factory=threading.Event)
    disk_free: Callable[[Path], int] | None = None
    free_space_at: Path | None = None  # where the bytes land on local disk
    on_result: Callable[[FetchResult], None] = lambda _result: None
    # (objects planned, their bytes, how many of them are archived already): the progress total
    on_planned: Callable[[int, int, int], None] = lambda _objects, _size, _done: None
    # product id -> the other product ids its repository manifests list (its DLC), V1 and V2.
    named_products: dict[str, set[str]] = field(default_factory=dict)
    # (product id, build id) -> the entries left out of that build's manifests this run.
    flawed_builds: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def name_products(self, product_id: str, listed: Iterable[str]) -> None:
        """Remember the products a repository of `product_id` lists (the owned-library logic
        needs them: a DLC is listed in its base game's repository)."""
        named = self.named_products.setdefault(product_id, set())
        named.update(p for p in listed if p != product_id)

    # --- planning --------------------------------------------------------------------------

    def is_verified(self, path: str) -> bool:
        row = self.db.object_by_path(path)
        return row is not None and row.state == ObjectState.VERIFIED

    def task_unless_verified(
        self,
        row: ObjectRow,
        sources: tuple[Source, ...],
        what: str,
        product_id: str | None = None,
        *,
        check: Check | None = None,
    ) -> FetchTask | None:
        """The task that fetches the object of `row`, or None when it is verified already.

        A manifest's recorded size (and a V1 manifest's MD5) was measured when it was last
        stored, not named by what refers to it, so it does not bind the next fetch: a meta
        file may be served with other bytes than its id (protocol.md 3.2), a V1 manifest has
        no id that is its MD5. A chunk's size and MD5 are what its manifest names.
        """
        if row.state == ObjectState.VERIFIED:
            return None
        is_manifest = row.kind.is_manifest
        md5 = None if row.kind is ObjectKind.V1_MANIFEST else row.md5
        size = None if is_manifest else row.size
        return FetchTask(row.id, row.kind, row.path, md5, size, sources, what, product_id, check)

    def recorded(self, path: str) -> ObjectRow:
        """The row of an object recorded before (by `StateDB.ensure_objects`)."""
        row = self.db.object_by_path(path)
        if row is None:  # ensure_objects inserts every path it is given: a bug, not the CDN
            raise LookupError(f"{path}: not recorded in the DB")
        return row

    def has_room_for(self, product_id: str, needed: int) -> bool:
        """Compare the bytes still to fetch with the free space; refuse (a problem) if short."""
        root = self.free_space_at
        if self.disk_free is None or root is None or needed == 0:
            return True
        try:
            free = self.disk_free(root)
        except OSError as exc:
            log.warning("cannot tell the free space of %s (%s); downloading anyway", root, exc)
            return True
        if needed + FREE_SPACE_MARGIN_BYTES <= free:
            return True
        message = (
            f"not enough free space on {root}: {human_bytes(needed)} ({needed} bytes) still to "
            f"download plus a {human_bytes(FREE_SPACE_MARGIN_BYTES)} margin, but only "
            f"{human_bytes(free)} ({free} bytes) free; nothing downloaded for this product"
        )
        self.report.problem(f"product {product_id}: {message}")
        self.report.product(product_id).error = message
        return False

    def check_stop(self) -> None:
        """Leave the product if the run is stopping: between steps, so that what is committed
        is consistent (the DB is the todo list: the next run resumes from it)."""
        if self.stop.is_set():
            self.db.conn.commit()
            raise Stopping

    def report_skipped(
        self, skipped: Iterable[str], builds: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Name each entry a stored manifest had to leave out (a problem: the run exits 1); the
        `builds` (product id, build id) it belongs to end the run incomplete, saying why."""
        keys = list(builds)
        for message in skipped:
            self.report.problem(message)
            for key in keys:
                self.flawed_builds.setdefault(key, []).append(message)

    def read_stored(
        self,
        path: str,
        parse: Callable[[BinaryIO, str], T],
        what: str,
        on_problem: Callable[[str], None] | None = None,
    ) -> T | None:
        """The stored object at `path` parsed, or None once its problem is reported (through
        `on_problem`, else as a run problem): an unreadable or malformed stored manifest costs
        that manifest, and the phase goes on with the rest."""
        try:
            with self.store.open_read(path) as reader:
                return parse(reader, what)
        except (ManifestError, StorageError, OSError) as exc:
            (on_problem or self.report.problem)(f"{what}: {exc}")
            return None

    def build_problem(self, product_id: str, build_id: str, message: str) -> None:
        self.report.problem(f"build {build_id} of product {product_id}: {message}")
        self.db.set_build_error(product_id, build_id, message)

    # --- fetching and recording ------------------------------------------------------------

    def fetch(
        self, planned: Iterable[FetchTask | None], *, optional: set[int] | None = None
    ) -> None:
        """Fetch tasks and record every result (once stopping, only those already in flight).

        :param planned: tasks; None stands for an object verified already (nothing to do).
        :param optional: object ids the CDN may lack (small-files members, protocol.md 4.3).
        """
        planned = list(planned)
        tasks = [task for task in planned if task is not None]
        # verified already: archived, so counted as present (a second sync says how much is)
        self.report.already_present += len(planned) - len(tasks)
        optional = optional or set()
        size = sum(task.size or 0 for task in tasks)
        self.on_planned(len(planned), size, len(planned) - len(tasks))
        if tasks:
            log.info("fetching %d objects (%s)", len(tasks), human_bytes(size))
        last_commit = time.monotonic()
        for result in self.downloader.run(tasks):
            self._apply(result, is_optional=result.task.object_id in optional)
            self.on_result(result)
            if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                self.db.conn.commit()
                last_commit = time.monotonic()
        self.db.conn.commit()

    def record(self, result: FetchResult) -> None:
        """Record one result fetched another way (V1 blobs, by ranges) like any other."""
        self._apply(result, is_optional=False)
        self.on_result(result)

    def _apply(self, result: FetchResult, *, is_optional: bool) -> None:
        task, now, report = result.task, self.clock(), self.report
        if result.outcome in (Outcome.FETCHED, Outcome.ALREADY_PRESENT):
            fetched = result.outcome is Outcome.FETCHED
            self.db.mark_verified(
                task.object_id,
                size=result.size,
                now=now,
                md5=result.md5,
                product_id=task.product_id,
                endpoint=result.endpoint,
                source_url=result.source_url,
                fetched=fetched,
            )
            if fetched:
                report.fetched += 1
                report.bytes_fetched += result.size
            else:
                report.already_present += 1
            if task.kind in KEEPABLE_KINDS:
                self._record_served_md5(result)
        elif result.outcome is Outcome.ABSENT:
            self.db.mark_problem(
                task.object_id, state=ObjectState.ABSENT_UPSTREAM, error=result.error or "", now=now
            )
            if is_optional:
                report.absent_optional += 1
            else:
                report.absent_upstream += 1
                report.problem(f"{task.what}: not on the CDN (404 on every endpoint)")
        elif result.outcome is Outcome.FAILED:
            self.db.mark_problem(
                task.object_id, state=ObjectState.MISSING, error=result.error or "", now=now
            )
            report.failed += 1
            report.problem(result.error or f"{task.what}: failed")
        else:
            report.is_interrupted = True

    def _record_served_md5(self, result: FetchResult) -> None:
        """A meta file kept with bytes that do not hash to its id is flagged (a warning, not a
        problem: it parses, its builds complete); one stored as named is unflagged."""
        task = result.task
        warning = record_served_md5(self.db.conn, task.object_id, task.path, result.served_md5)
        if warning is not None:
            self.report.warning(warning)
