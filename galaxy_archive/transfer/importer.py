"""`import FILE.tar.zst`: load an export into this archive, trusting nothing in the file.

The tar is read as one stream (never extracted): the first member must be the index; every
later member must be a regular file the index names, once, with the index's size, and lands
only through `store.write_verified` with the index's MD5, so a bad member never reaches a final
path. A member that fails is named and skipped, the rest goes on (exit 1). Bombs are bounded:
the decompressor's window is capped, the index and DB members are capped in size, the bytes
read through members may not exceed what the index lists (plus headers), and an import stops
after too many refused members.

Then the DB rows are merged (db_rows.merge_rows), the objects this import proved (or that were
already verified here) are marked verified, and the imported builds' states are recomputed.
A second import of the same file writes nothing; a killed one leaves no partial object and the
next run completes. Holds the archive lock and records a run like sync.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import zstandard

from galaxy_archive.app import App
from galaxy_archive.errors import (
    ConfigError,
    ExitCode,
    IntegrityError,
    StorageError,
    UnsafeReference,
)
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.output import Progress
from galaxy_archive.runs import RecordedRun
from galaxy_archive.state.db import StateDB, iso
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.state.needs import update_build_states, update_v1_build_states
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.transfer.db_rows import merge_rows
from galaxy_archive.transfer.members import (
    DB_KIND,
    INDEX_NAME,
    MAX_INDEX_BYTES,
    TABLES,
    Member,
    db_member_name,
    parse_index,
)

log = logging.getLogger(__name__)

MAX_WINDOW = 1 << 27  # 128 MiB: what `zstd` accepts without --long
MAX_REFUSED = 1000
UNLISTED_BYTES = 16 * 1024 * 1024
PIECE = 1 << 20


@dataclass
class ImportReport:
    source: str
    imported: int = 0
    already_present: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # member name -> why
    missing: list[str] = field(default_factory=list)  # listed in the index, not in the file
    bytes_imported: int = 0
    rows_added: int = 0
    index_md5: str = ""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PROBLEMS if self.refused or self.missing else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "index_md5": self.index_md5,
            "imported": self.imported,
            "already_present": self.already_present,
            "refused": [{"name": n, "reason": r} for n, r in sorted(self.refused.items())],
            "missing": sorted(self.missing),
            "bytes_imported": self.bytes_imported,
            "rows_added": self.rows_added,
            "exit_code": int(self.exit_code),
        }

    def summary_line(self) -> str:
        if not self.imported and not self.rows_added and self.exit_code is ExitCode.OK:
            return f"nothing to import: all {self.already_present} objects already present"
        problems = ""
        if self.refused:
            problems += f", {len(self.refused)} refused"
        if self.missing:
            problems += f", {len(self.missing)} listed but absent"
        return (
            f"imported {self.imported} objects ({self.bytes_imported} bytes), "
            f"{self.already_present} already present, {self.rows_added} DB rows added{problems}"
        )


def run_import(app: App, source: Path, *, progress: Progress | None = None) -> ImportReport:
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    progress = progress or Progress(is_enabled=False)
    with archive_lock(app.config.root, command="import", clock=app.clock):
        db = app.open_db()
        try:
            store = app.store()
            run = RecordedRun.start(db, "import", pid=app.pid, clock=app.clock, locked_store=store)
            with run.ended_on_error(keeps_work=True):  # what was verified stays verified
                report = _import(app, db, store, source, progress)
            db.conn.commit()
            run.end(int(report.exit_code), report.to_json(), report.summary_line())
            return report
        finally:
            progress.close()
            db.close()


def _import(
    app: App, db: StateDB, store: ObjectStore, source: Path, progress: Progress
) -> ImportReport:
    report = ImportReport(str(source))
    landed: dict[str, Member] = {}
    members: dict[str, Member] = {}
    with tempfile.TemporaryDirectory(prefix=".import-") as scratch, source.open("rb") as raw:
        reader = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_reader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                members = _read_index(tar, report)
                progress.set_total(len(members), sum(m.size for m in members.values()))
                _read_members(db, store, tar, members, Path(scratch), landed, report, progress)
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
            if isinstance(exc, StorageError):
                raise
            if not members:
                raise UnsafeReference(f"{source}: not an export ({exc})") from None
            # a truncated or damaged stream: what landed so far stays, the rest is missing
            report.refused["(stream)"] = f"unreadable from here on: {exc}"
        report.missing = [n for n in members if n not in landed and n not in report.refused]
        _merge(app, db, store, Path(scratch), landed, report)
    return report


def _read_index(tar: tarfile.TarFile, report: ImportReport) -> dict[str, Member]:
    first = tar.next()
    if first is None or first.name != INDEX_NAME or not first.isreg():
        raise UnsafeReference(f"not an export: the first member is not {INDEX_NAME}")
    if first.size > MAX_INDEX_BYTES:
        raise UnsafeReference(f"{INDEX_NAME} is over {MAX_INDEX_BYTES} bytes")
    handle = tar.extractfile(first)
    assert handle is not None  # a regular file
    data = handle.read()
    report.index_md5 = hashlib.md5(data).hexdigest()
    return parse_index(data)[1]


def _read_members(
    db: StateDB,
    store: ObjectStore,
    tar: tarfile.TarFile,
    members: dict[str, Member],
    scratch: Path,
    landed: dict[str, Member],
    report: ImportReport,
    progress: Progress,
) -> None:
    # Members may not hold more bytes than the index lists (plus a little for unlisted ones,
    # refused by name): a bomb stops the reading here; what landed before it is kept.
    budget = sum(m.size for m in members.values()) + UNLISTED_BYTES
    while (info := tar.next()) is not None:
        # tarfile keeps every header it read (`members`, not in its stubs): forgotten, memory
        # stays flat however many members the file has
        vars(tar)["members"].clear()
        budget -= info.size
        if budget < 0:
            report.refused[info.name] = "the file holds more than its index lists: stopped here"
            return
        reason = _refusal(info, members, landed, report)
        if reason is None:
            reason = _take(db, store, tar, info, members[info.name], scratch, landed, report)
        if reason is not None:
            report.refused[info.name] = reason
            log.warning("refused %s: %s", info.name, reason)
            if len(report.refused) > MAX_REFUSED:
                raise UnsafeReference(f"more than {MAX_REFUSED} members refused: not an export")
        progress.add_bytes(info.size)
        progress.add_object()


def _refusal(
    info: tarfile.TarInfo,
    members: dict[str, Member],
    landed: dict[str, Member],
    report: ImportReport,
) -> str | None:
    if not info.isreg():
        return "not a regular file (link, device or directory)"
    member = members.get(info.name)
    if member is None:
        return "not listed in the index"
    if info.name in landed or info.name in report.refused:
        return "appears twice"
    if info.size != member.size:
        return f"size {info.size}, the index says {member.size}"
    return None


def _take(
    db: StateDB,
    store: ObjectStore,
    tar: tarfile.TarFile,
    info: tarfile.TarInfo,
    member: Member,
    scratch: Path,
    landed: dict[str, Member],
    report: ImportReport,
) -> str | None:
    """Land one listed member (an object in the store, a DB member in scratch); the reason
    when it was refused."""
    handle = tar.extractfile(info)
    assert handle is not None  # a regular file
    if member.kind == DB_KIND:
        if _spool(handle, member, scratch / member.name.removeprefix("db/")):
            landed[member.name] = member
            return None
        return "bytes differ from the index's MD5"
    local = db.conn.execute(
        "SELECT coalesce(served_md5, md5), size, state FROM objects WHERE path = ?",
        (member.name,),
    ).fetchone()
    if local is not None and local[0] is not None and local[0] != member.md5:
        return "the index's MD5 differs from what this archive records for it"
    if local is not None and local[2] == ObjectState.VERIFIED and local[1] == member.size:
        report.already_present += 1
        landed[member.name] = member
        return None
    try:
        store.write_verified(
            member.name, _pieces(handle), expected_md5=member.md5, expected_size=member.size
        )
    except IntegrityError as exc:
        return f"bytes differ from the index: {exc}"
    report.imported += 1
    report.bytes_imported += member.size
    landed[member.name] = member
    return None


def _pieces(handle: IO[bytes]) -> Iterator[bytes]:
    while piece := handle.read(PIECE):
        yield piece


def _spool(handle: IO[bytes], member: Member, target: Path) -> bool:
    digest = hashlib.md5()
    with target.open("wb") as out:
        for piece in _pieces(handle):
            digest.update(piece)
            out.write(piece)
    if digest.hexdigest() == member.md5:
        return True
    os.unlink(target)
    return False


def _merge(
    app: App,
    db: StateDB,
    store: ObjectStore,
    scratch: Path,
    landed: dict[str, Member],
    report: ImportReport,
) -> None:
    now = app.clock()
    for table in TABLES:
        if db_member_name(table) not in landed:
            continue
        with (scratch / f"{table}.jsonl").open("rb") as lines:
            try:
                report.rows_added += merge_rows(
                    db, table, lines, iso(now), partial(_refuse_row, report, table)
                )
            except UnsafeReference as exc:
                report.refused[db_member_name(table)] = str(exc)
    for member in landed.values():
        if member.kind != DB_KIND:
            _mark_verified(db, store, member, report, now)
    _update_builds(db, now)


def _refuse_row(report: ImportReport, table: str, number: int, reason: str) -> None:
    name = f"{db_member_name(table)} row {number}"
    report.refused[name] = reason
    log.warning("refused %s: %s", name, reason)


def _mark_verified(
    db: StateDB, store: ObjectStore, member: Member, report: ImportReport, now: float
) -> None:
    """The object's row says verified only when its recorded hash is the one proved here; a
    landed object whose row (from the file) disagrees is removed again: it is not trusted."""
    row = db.conn.execute(
        "SELECT id, coalesce(served_md5, md5), size, state FROM objects WHERE path = ?",
        (member.name,),
    ).fetchone()
    if row is None:
        return  # no row describes it: verify reports it as an unknown file
    if row[1] is None and row[3] != ObjectState.VERIFIED:
        # A V1 blob: proved by its files' extents, which only `verify` checks; until then its
        # bytes are here but not called verified.
        db.conn.execute(
            "UPDATE objects SET state = ?, size = ? WHERE id = ?",
            (ObjectState.PRESENT, member.size, row[0]),
        )
        return
    if row[1] != member.md5 or row[2] not in (None, member.size):
        store.delete(member.name)
        report.refused[member.name] = "its DB row records another MD5 or size"
        return
    if row[3] != ObjectState.VERIFIED:
        db.mark_verified(row[0], size=member.size, now=now, fetched=False)


def _update_builds(db: StateDB, now: float) -> None:
    """Every build's state from what is verified now (imported builds and ones that shared
    objects with them alike)."""
    for generation, update in ((2, update_build_states), (1, update_v1_build_states)):
        by_product: dict[str, list[str]] = {}
        for product_id, build_id in db.conn.execute(
            "SELECT product_id, build_id FROM builds WHERE generation = ?", (generation,)
        ):
            by_product.setdefault(product_id, []).append(build_id)
        for product_id, build_ids in by_product.items():
            update(db, product_id, build_ids, now)
