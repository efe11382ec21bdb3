"""`verify --repair`: move corrupt files aside into quarantine/, fetch them again as sync does.

Evidence is never deleted: a corrupt file is moved aside by the store (`ObjectStore.quarantine`:
``<root>/quarantine/<relative path>.<UTC timestamp>`` locally) before anything is fetched.
Nothing is moved or written outside the root: an object whose recorded path could leave it, or
whose place is reached through a symlink or a file, is a failed repair naming it, and left as
it is.
The fetch uses the sync's own code (sources.sources_for + Downloader; V1 blobs
v1_sync.download_blob), so the bytes are streamed to a temp file, checked (MD5, size, and the
level's deeper checks; a V1 blob every file inside it) and renamed into place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import BinaryIO

from galaxy_archive.errors import IntegrityError, ManifestError, StorageError, UpstreamError
from galaxy_archive.fetch.downloader import Downloader
from galaxy_archive.fetch.sources import meta_sources, sibling_meta_urls, sources_for
from galaxy_archive.fetch.tasks import FetchResult, FetchTask, Outcome
from galaxy_archive.fetch.v1_download import download_blob
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.meta_flags import KEEPABLE_KINDS
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.models.verify_plan import VerifyLevel, checks_for
from galaxy_archive.state.meta_flags import record_served_md5
from galaxy_archive.state.verify_records import PlanRow, VerifyRecords
from galaxy_archive.storage.interface import Check, ObjectStore, md5_of_stream
from galaxy_archive.upstream.galaxy_api import GalaxyApi
from galaxy_archive.verify.object_checks import CheckItem, ObjectChecker, Verdict
from galaxy_archive.verify.report import ObjectProblem, RepairOutcome

log = logging.getLogger(__name__)


class Repairer:
    """Fetches problem objects again; results are written by the calling (DB) thread."""

    def __init__(
        self,
        *,
        api: GalaxyApi,
        downloader: Downloader,
        store: ObjectStore,
        records: VerifyRecords,
        checker: ObjectChecker,
        level: VerifyLevel,
        v1_range_size: int,
        clock: Callable[[], float],
    ) -> None:
        self.api = api
        self.downloader = downloader
        self.store = store
        self.records = records
        self.checker = checker
        self.level = level
        self.v1_range_size = v1_range_size
        self.clock = clock

    def repair(self, problems: Sequence[tuple[ObjectProblem, PlanRow]]) -> None:
        tasks: list[FetchTask] = []
        by_id: dict[int, ObjectProblem] = {}
        v1_blobs: list[tuple[ObjectProblem, PlanRow]] = []
        for problem, row in problems:
            if not self._is_writable(problem, row):
                continue  # its path leaves the tree or passes a symlink: nothing is touched
            if problem.verdict is Verdict.CORRUPT and not self._move_aside(problem, row):
                continue  # the evidence could not be kept: the file is left as it is
            if row.kind is ObjectKind.V1_BLOB:
                v1_blobs.append((problem, row))
                continue
            task = self._task(problem, row)
            if task is not None:
                by_id[row.object_id] = problem
                tasks.append(task)
        self.records.flush()
        self._repair_v1_blobs(v1_blobs)
        for result in self.downloader.run(tasks):
            self._apply(by_id[result.task.object_id], result)
        self.records.flush()

    def _is_writable(self, problem: ObjectProblem, row: PlanRow) -> bool:
        """The object's place is in the tree, reached through real directories only (they are
        made if missing) and open to writing; a V1 blob's partial file is no symlink.

        Checked before anything is moved or fetched, so that the evidence is not moved aside
        for an object whose repair could not be written back anyway.
        """
        try:
            self.store.check_writable(row.path)
        except StorageError as exc:
            self._failed(problem, exc)
            return False
        return True

    def _move_aside(self, problem: ObjectProblem, row: PlanRow) -> bool:
        try:
            problem.quarantined_to = self.store.quarantine(row.path, self.clock())
        except StorageError as exc:
            self._failed(problem, exc)
            return False
        self.records.record_problem(
            row.object_id,
            ObjectState.MISSING,
            f"corrupt, moved to {problem.quarantined_to}",
            self.clock(),
        )
        return True

    def _failed(self, problem: ObjectProblem, exc: StorageError) -> None:
        problem.repair = RepairOutcome.FAILED
        problem.repair_detail = str(exc)
        log.warning("repair failed: %s", exc)

    def _repair_v1_blobs(self, problems: Sequence[tuple[ObjectProblem, PlanRow]]) -> None:
        """V1 blobs come by parallel HTTP ranges, one blob at a time, as sync fetches them."""
        downloader = self.downloader
        for problem, row in problems:
            if downloader.stop.is_set():
                return
            try:
                result = download_blob(
                    self.records.db,
                    self.store,
                    downloader,
                    row.object_id,
                    range_size=self.v1_range_size,
                    clock=self.clock,
                )
            except (StorageError, UpstreamError, ManifestError) as exc:
                problem.repair = RepairOutcome.FAILED
                problem.repair_detail = str(exc)
                log.error("repair failed: %s: %s", problem.path, exc)
                continue
            self._apply(problem, result)
            self.records.flush()

    def _task(self, problem: ObjectProblem, row: PlanRow) -> FetchTask | None:
        if row.md5 is None:
            self._no_source(problem, "no recorded MD5 to fetch it by")
            return None
        if row.kind is ObjectKind.META:
            # As sync asks: the URLs the builds list named first, then the configured CDN.
            own, of_builds = self.records.manifest_links(row.object_id)
            siblings = sibling_meta_urls((*own, *of_builds), row.md5)
            sources = meta_sources(self.api, row.md5, *own, *siblings)
        else:  # V1 manifests are found by their path, not their MD5
            sources = sources_for(self.api, row.kind, row.md5, row.product_id, path=row.path)
        if not sources:
            why = f"no source known for kind {row.kind}"
            if row.product_id is None:
                why += " without a product to fetch it under"
            self._no_source(problem, why)
            return None
        return FetchTask(
            row.object_id,
            row.kind,
            row.path,
            row.md5,
            None if row.served_md5 else row.size,  # its id's bytes may have another size
            sources,
            f"{row.kind} {row.md5}",
            row.product_id,
            check=self._check_for(row),
        )

    def _no_source(self, problem: ObjectProblem, why: str) -> None:
        problem.repair = RepairOutcome.NO_SOURCE
        problem.repair_detail = f"cannot repair: {why}"
        log.warning("%s: cannot repair: %s", problem.path, why)

    def _check_for(self, row: PlanRow) -> Check | None:
        """At --deep, the fetched bytes get the deep checks too before they become visible
        (the store itself checks MD5 and size, which is all the other levels ask)."""
        if row.served_md5 is not None:
            return _same_bytes_check(row)
        if self.level is not VerifyLevel.DEEP:
            return None
        item = CheckItem(
            row.object_id,
            row.kind,
            row.path,
            row.md5,
            row.size,
            checks_for(row.kind, VerifyLevel.DEEP),
            row.inflated_md5,
            row.inflated_size,
        )

        def check(reader: BinaryIO) -> None:
            result = self.checker.check_reader(reader, item)
            if result.verdict is not Verdict.OK:
                # A manifest that does not parse is broken at the source (no retry helps);
                # a chunk that does not inflate may be served right by another endpoint.
                error = ManifestError if row.kind.is_manifest else IntegrityError
                raise error(f"{row.kind} {row.md5}: {result.detail}")

        return check

    def _apply(self, problem: ObjectProblem, result: FetchResult) -> None:
        now = self.clock()
        object_id = result.task.object_id
        if result.outcome in (Outcome.FETCHED, Outcome.ALREADY_PRESENT):
            if result.task.kind in KEEPABLE_KINDS:
                flag = record_served_md5(
                    self.records.conn, object_id, result.task.path, result.served_md5
                )
                if flag is not None:
                    log.warning("%s", flag)
            self.records.record_verified(object_id, now)
            problem.repair = RepairOutcome.REPAIRED
            log.info("repaired: %s", problem.path)
        elif result.outcome is Outcome.ABSENT:
            self.records.record_problem(
                object_id, ObjectState.ABSENT_UPSTREAM, result.error or "404 on every endpoint", now
            )
            problem.repair = RepairOutcome.UNRECOVERABLE
            problem.repair_detail = "the CDN no longer has it (404 on every endpoint)"
            log.error("unrecoverable: %s: the CDN no longer has it", problem.path)
        else:
            problem.repair = RepairOutcome.FAILED
            problem.repair_detail = result.error or str(result.outcome)
            log.error("repair failed: %s: %s", problem.path, problem.repair_detail)


def _same_bytes_check(row: PlanRow) -> Check:
    """A meta file kept with bytes that do not hash to its id (meta_flags) is repaired with
    those same bytes again, or with the bytes of its id: the check is what lets the downloader
    keep a body whose MD5 is not the id, and only a body proven before is kept."""

    def check(reader: BinaryIO) -> None:
        md5, _ = md5_of_stream(reader)
        if md5 not in (row.md5, row.served_md5):
            raise IntegrityError(
                f"{row.path}: MD5 {md5} is neither its id nor that of the bytes kept before "
                f"({row.served_md5})"
            )

    return check
