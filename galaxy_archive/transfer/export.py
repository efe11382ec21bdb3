"""`export PRODUCT_ID`: the product's closure (its builds' objects, its DLC's, the patches
between its builds) and its DB rows as one zstandard-compressed tar (members.py has the format).

Objects are read only through the ObjectStore and streamed: memory stays flat whatever the size.
Each object's bytes are hashed as they go out and must match what the archive recorded; one that
does not (a corrupt file verify has not seen yet) stops the export, which then leaves no file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from galaxy_archive.app import App
from galaxy_archive.errors import ConfigError, ExitCode, IntegrityError
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.output import Progress
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.needs import closure_object_ids
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.transfer.db_rows import export_rows, write_jsonl
from galaxy_archive.transfer.members import (
    DB_KIND,
    FORMAT,
    INDEX_NAME,
    TABLES,
    Member,
    db_member_name,
)

COMPRESSION_LEVEL = 3


@dataclass
class ExportReport:
    product_id: str
    output: str
    objects: int = 0
    object_bytes: int = 0
    db_rows: int = 0
    not_stored: int = 0  # needed objects the archive does not hold (verified): not exported
    index_md5: str = ""
    exit_code: ExitCode = ExitCode.OK
    builds: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "output": self.output,
            "builds": self.builds,
            "objects": self.objects,
            "object_bytes": self.object_bytes,
            "db_rows": self.db_rows,
            "not_stored": self.not_stored,
            "index_md5": self.index_md5,
            "exit_code": int(self.exit_code),
        }

    def summary_line(self) -> str:
        missing = f", {self.not_stored} needed objects not stored" if self.not_stored else ""
        return (
            f"exported {self.objects} objects ({self.object_bytes} bytes), {self.db_rows} DB "
            f"rows{missing} to {self.output}; index MD5 {self.index_md5}"
        )


def run_export(
    app: App,
    product_id: str,
    build_ids: Sequence[str],
    output: Path,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the export to `output` (replaced only once complete)."""
    if not app.config.database_path.exists():
        raise ConfigError(f"no archive at {app.config.root} (no {app.config.database_path.name})")
    progress = progress or Progress(is_enabled=False)
    db = app.open_db()
    try:
        return _export(app, db, product_id, build_ids, output, progress)
    finally:
        progress.close()
        db.close()


def _export(
    app: App,
    db: StateDB,
    product_id: str,
    build_ids: Sequence[str],
    output: Path,
    progress: Progress,
) -> ExportReport:
    products = _products(db, product_id)
    builds = _builds(db, products, build_ids)
    report = ExportReport(product_id, str(output), builds=builds)
    object_ids = set(closure_object_ids(db, products, builds))
    objects = _stored_objects(db, app.store(), object_ids)
    report.not_stored = _count_not_held(db, object_ids)
    progress.set_total(len(objects), sum(m.size for m in objects))
    with tempfile.TemporaryDirectory(prefix=".export-", dir=output.parent) as scratch:
        db_members = _db_members(db, products, builds, object_ids, Path(scratch), report)
        index = _index_bytes(product_id, builds, db_members + objects)
        report.index_md5 = hashlib.md5(index).hexdigest()
        partial = Path(scratch) / "export.tar.zst"
        with partial.open("wb") as raw:
            _write_tar(app, raw, index, db_members, objects, Path(scratch), progress)
        os.replace(partial, output)
    report.objects = len(objects)
    report.object_bytes = sum(m.size for m in objects)
    return report


def _products(db: StateDB, product_id: str) -> list[str]:
    known = db.conn.execute("SELECT 1 FROM products WHERE product_id = ?", (product_id,))
    if known.fetchone() is None:
        raise ConfigError(f"no product {product_id} in this archive")
    dlcs = db.conn.execute("SELECT product_id FROM products WHERE dlc_of = ?", (product_id,))
    return [product_id, *sorted(row[0] for row in dlcs)]


def _builds(db: StateDB, products: list[str], wanted: Sequence[str]) -> list[str]:
    marks = ",".join("?" * len(products))
    known = [
        row[0]
        for row in db.conn.execute(
            f"SELECT DISTINCT build_id FROM builds WHERE product_id IN ({marks}) ORDER BY 1",
            products,
        )
    ]
    unknown = [b for b in wanted if b not in known]
    if unknown:
        raise ConfigError(f"no build {', '.join(unknown)} of product {products[0]}")
    return list(dict.fromkeys(wanted)) if wanted else known


def _stored_objects(db: StateDB, store: ObjectStore, object_ids: set[int]) -> list[Member]:
    """The closure's verified objects: only bytes the archive proved are exported. A V1 blob
    is proved by its files' extents and may have no whole-file MD5 recorded: it is read once
    more here for the index."""
    members = []
    for object_id, kind, path, recorded_md5, recorded_size in db.conn.execute(
        "SELECT id, kind, path, coalesce(served_md5, md5), size FROM objects "
        "WHERE state = ? ORDER BY path",
        (ObjectState.VERIFIED,),
    ):
        if object_id not in object_ids or recorded_size is None:
            continue
        md5, size = recorded_md5, recorded_size
        if md5 is None:
            md5, size = store.md5_of(path)
        members.append(Member(path, kind, path, size, md5))
    return members


def _count_not_held(db: StateDB, object_ids: set[int]) -> int:
    """Needed objects this archive does not hold verified, not counting those the CDN was found
    not to have (optional SFC members): the export carries their rows, not their bytes."""
    held = {
        row[0]
        for row in db.conn.execute(
            "SELECT id FROM objects WHERE state IN (?, ?)",
            (ObjectState.VERIFIED, ObjectState.ABSENT_UPSTREAM),
        )
    }
    return len(object_ids - held)


def _db_members(
    db: StateDB,
    products: list[str],
    builds: list[str],
    object_ids: set[int],
    scratch: Path,
    report: ExportReport,
) -> list[Member]:
    members = []
    for table in TABLES:
        spooled = scratch / f"{table}.jsonl"
        with spooled.open("wb") as out:
            report.db_rows += write_jsonl(export_rows(db, table, products, builds, object_ids), out)
        with spooled.open("rb") as handle:
            md5, size = _md5_of(handle)
        members.append(Member(db_member_name(table), DB_KIND, None, size, md5))
    return members


def _md5_of(handle: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.md5(), 0
    while piece := handle.read(1 << 20):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size


def _index_bytes(product_id: str, builds: list[str], members: list[Member]) -> bytes:
    document = {
        "format": FORMAT,
        "product_id": product_id,
        "build_ids": builds,
        "members": [m.to_json() for m in members],
    }
    return json.dumps(document, indent=0, separators=(",", ":")).encode()


def _write_tar(
    app: App,
    raw: IO[bytes],
    index: bytes,
    db_members: list[Member],
    objects: list[Member],
    scratch: Path,
    progress: Progress,
) -> None:
    compressor = zstandard.ZstdCompressor(
        level=COMPRESSION_LEVEL, write_checksum=True, threads=min(os.cpu_count() or 1, 4)
    )
    store = app.store()  # the run's one store: App caches it
    with (
        compressor.stream_writer(raw, closefd=False) as zstd_out,
        tarfile.open(fileobj=zstd_out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(_info(INDEX_NAME, len(index)), io.BytesIO(index))
        for member in db_members:
            with (scratch / f"{member.name.removeprefix('db/')}").open("rb") as handle:
                tar.addfile(_info(member.name, member.size), handle)
        for member in objects:
            with store.open_read(member.name) as handle:
                checked = _CheckedReader(handle, member)
                tar.addfile(_info(member.name, member.size), checked)
                checked.finish()
            progress.add_bytes(member.size)
            progress.add_object()


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info


class _CheckedReader(io.RawIOBase):
    """The object's bytes as tarfile reads them, hashed on the way: `finish` raises when they
    are not what the archive recorded (tarfile itself raises when the file is short)."""

    def __init__(self, handle: BinaryIO, member: Member) -> None:
        self._handle = handle
        self._member = member
        self._digest = hashlib.md5()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        piece = self._handle.read(size)
        self._digest.update(piece)
        self._size += len(piece)
        return piece

    def finish(self) -> None:
        if self._size != self._member.size or self._digest.hexdigest() != self._member.md5:
            raise IntegrityError(
                f"{self._member.name}: stored bytes differ from the recorded MD5; "
                "run `galaxy-archive verify` first"
            )
