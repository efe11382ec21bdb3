"""`gc`: remove what nothing needs, never what something does.

What goes (a plan made first, then carried out unless --dry-run):
- objects no recorded build (listed, delisted or added by id), patch or dependency needs:
  "needed" is state.needs' one definition, nothing else;
- files under v1/ and v2/ the DB does not record (what verify reports as unknown), temp files
  dead runs left, and V1 partial files no recorded blob resumes (a recorded one has a row);
- with --quarantine-older-than, files verify moved to quarantine/ longer ago than that (the
  age is the UTC stamp the store put in the name).

Safety: the run holds the archive lock and records a run; it deletes only through the store.
It refuses (exit 2, nothing deleted) a plan deleting more objects than --max-delete, or by
default more than 1 % of the recorded objects. An object goes in three durable steps (see
state.gc_records): marked unstored, file deleted, row forgotten, so a kill at any point leaves
`verify` clean and the next gc finishes the job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from galaxy_archive.app import App
from galaxy_archive.errors import ConfigError, ExitCode, StorageError
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.output import Progress
from galaxy_archive.runs import RecordedRun
from galaxy_archive.state import gc_records
from galaxy_archive.state.db import StateDB, iso
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.state.needs import unneeded_objects
from galaxy_archive.state.verify_records import VerifyRecords
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.storage.names import PARTIAL_SUFFIX, QUARANTINE_DIR
from galaxy_archive.storage.tree_walk import Stray, find_strays

DEFAULT_MAX_SHARE = 0.01  # without --max-delete: at most 1 % of the recorded objects
DELETE_BATCH = 256  # objects marked, deleted and forgotten per commit
# Rows whose file the store holds (or held): the bytes a deletion frees. A missing or
# absent-upstream row frees nothing.
_STORED = (ObjectState.PRESENT, ObjectState.VERIFIED, ObjectState.CORRUPT)
_QUARANTINE_STAMP = re.compile(r"\.(\d{8}T\d{6}Z)(?:\.\d+)?$")


@dataclass(frozen=True)
class GcOptions:
    is_dry_run: bool = False
    max_delete: int | None = None  # None: the 1 % default
    quarantine_older_than_s: float | None = None  # None: quarantine is kept


@dataclass(frozen=True)
class Doomed:
    """One thing the plan deletes: a recorded object (object_id set) or a stray file."""

    path: str
    size: int
    why: str  # 'unneeded', 'unknown', 'temp', 'partial', 'quarantine'
    object_id: int | None = None


@dataclass
class GcReport:
    is_dry_run: bool
    planned: list[Doomed] = field(default_factory=list)
    deleted_objects: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    refused: str | None = None  # why nothing was deleted (the valve)
    would_refuse: str | None = None  # --dry-run: why a real run would refuse
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        if self.refused is not None:
            return ExitCode.USAGE
        return ExitCode.PROBLEMS if self.failures else ExitCode.OK

    @property
    def planned_objects(self) -> int:
        return sum(1 for doomed in self.planned if doomed.object_id is not None)

    @property
    def planned_bytes(self) -> int:
        return sum(doomed.size for doomed in self.planned)

    def summary_line(self) -> str:
        if self.refused is not None:
            return f"gc: nothing deleted: {self.refused}"
        if self.is_dry_run:
            line = (
                f"gc --dry-run: would delete {self.planned_objects} objects and "
                f"{len(self.planned) - self.planned_objects} other files, "
                f"{self.planned_bytes} bytes"
            )
            if self.would_refuse is not None:
                line += f"; a run would refuse: {self.would_refuse}"
            return line
        line = (
            f"gc: deleted {self.deleted_objects} objects and {self.deleted_files} other files, "
            f"{self.deleted_bytes} bytes"
        )
        if self.failures:
            line += f"; {len(self.failures)} could not be deleted"
        return line

    def to_json(self, *, is_compact: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dry_run": self.is_dry_run,
            "refused": self.refused,
            "would_refuse": self.would_refuse,
            "planned_objects": self.planned_objects,
            "planned_files": len(self.planned) - self.planned_objects,
            "planned_bytes": self.planned_bytes,
            "deleted_objects": self.deleted_objects,
            "deleted_files": self.deleted_files,
            "deleted_bytes": self.deleted_bytes,
            "failures": self.failures,
            "elapsed_s": round(self.elapsed_s, 3),
        }
        if not is_compact:
            data["planned"] = [
                {"path": d.path, "bytes": d.size, "why": d.why} for d in self.planned
            ]
        return data


def run_gc(app: App, options: GcOptions, *, progress: Progress | None = None) -> GcReport:
    """The `gc` use case, under the archive lock and a recorded run."""
    if not app.config.database_path.exists():
        raise ConfigError(f"no archive at {app.config.root} (no {app.config.database_path.name})")
    progress = progress or Progress(is_enabled=False)
    started = time.monotonic()
    with archive_lock(app.config.root, command="gc", clock=app.clock):
        db = app.open_db()
        try:
            store = app.store()
            run = RecordedRun.start(db, "gc", pid=app.pid, clock=app.clock, locked_store=store)
            with run.ended_on_error(keeps_work=True):  # what was deleted is deleted
                report = _collect(db, store, options, app.clock, progress)
            report.elapsed_s = time.monotonic() - started
            run.end(int(report.exit_code), report.to_json(is_compact=True), report.summary_line())
            return report
        finally:
            progress.close()
            db.close()


def _collect(
    db: StateDB,
    store: ObjectStore,
    options: GcOptions,
    clock: Callable[[], float],
    progress: Progress,
) -> GcReport:
    report = GcReport(is_dry_run=options.is_dry_run)
    report.planned = plan(db, store, options, clock())
    refusal = _valve(report.planned_objects, gc_records.object_count(db), options)
    if options.is_dry_run:
        report.would_refuse = refusal  # a dry run lists the plan all the same
    elif refusal is not None:
        report.refused = refusal
    else:
        _delete(db, store, report, clock, progress)
    return report


def plan(db: StateDB, store: ObjectStore, options: GcOptions, now: float) -> list[Doomed]:
    """Everything this gc would delete, recorded objects first (in path order)."""
    doomed = [Doomed(row.path, row.size or 0, "unneeded", row.id) for row in unneeded_objects(db)]
    for path, stray in find_strays(store, VerifyRecords(db).paths_under, lambda: False):
        if stray is Stray.UNREADABLE:  # nothing below it is known: never guessed at
            continue
        if stray is Stray.PARTIAL and _is_resumable(db, path):
            continue
        doomed.append(Doomed(path, store.size_of(path) or 0, str(stray)))
    if options.quarantine_older_than_s is not None:
        doomed.extend(_old_quarantine(store, now - options.quarantine_older_than_s))
    return doomed


def _is_resumable(db: StateDB, partial: str) -> bool:
    """A V1 partial file (`dir/.<name>.galaxy-partial`) is kept while the blob it assembles
    (`dir/<name>`) is recorded and not verified yet: the next sync resumes it."""
    directory, _, name = partial.rpartition("/")
    blob = f"{directory}/{name[1 : -len(PARTIAL_SUFFIX)]}"
    state = gc_records.state_of(db, blob)
    return state is not None and state != ObjectState.VERIFIED


def _old_quarantine(store: ObjectStore, cutoff: float) -> list[Doomed]:
    old = []
    for entry in store.list_files(QUARANTINE_DIR, lambda: False):
        match = _QUARANTINE_STAMP.search(entry.path)
        if not entry.is_listed or match is None:
            continue  # not a file quarantine() named: not gc's to judge
        moved = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if moved.timestamp() <= cutoff:
            old.append(Doomed(entry.path, store.size_of(entry.path) or 0, "quarantine"))
    return old


def _valve(count: int, total: int, options: GcOptions) -> str | None:
    """Why the plan is refused (rsync's --max-delete), or None."""
    if options.max_delete is not None:
        if count > options.max_delete:
            return f"{count} objects to delete, more than --max-delete {options.max_delete}"
        return None
    if count > total * DEFAULT_MAX_SHARE:
        return (
            f"{count} of {total} objects to delete, more than 1 %; "
            f"see them with gc --dry-run, then run gc --max-delete {count}"
        )
    return None


def _delete(
    db: StateDB,
    store: ObjectStore,
    report: GcReport,
    clock: Callable[[], float],
    progress: Progress,
) -> None:
    progress.set_total(len(report.planned), report.planned_bytes)
    objects = [doomed for doomed in report.planned if doomed.object_id is not None]
    for start in range(0, len(objects), DELETE_BATCH):
        batch = objects[start : start + DELETE_BATCH]
        ids = [doomed.object_id for doomed in batch if doomed.object_id is not None]
        # Marked first (committed), then the files, then the rows: see state.gc_records.
        gc_records.mark_unstored(db, ids, iso(clock()))
        gone = [doomed for doomed in batch if _delete_file(store, doomed, report, progress)]
        gc_records.forget(db, [d.object_id for d in gone if d.object_id is not None])
        report.deleted_objects += len(gone)
    for doomed in report.planned:
        if doomed.object_id is None and _delete_file(store, doomed, report, progress):
            report.deleted_files += 1


def _delete_file(store: ObjectStore, doomed: Doomed, report: GcReport, progress: Progress) -> bool:
    try:
        store.delete(doomed.path)
    except StorageError as exc:
        report.failures.append(f"{doomed.path}: {exc}")
        return False
    report.deleted_bytes += doomed.size
    progress.add_bytes(doomed.size)
    progress.add_object()
    return True
