"""`restore PRODUCT_ID BUILD_ID DEST`: plan, refuse up front, then write every file, proven.

Order: plan (restore.planner); refuse, before anything is written, a plan with problems
(hostile paths, links leaving DEST, case clashes) or objects the archive lacks, naming the
objects and the files they feed, unless `partial` (then those files are skipped and the run
exits 1); make the directories; write the files on a thread pool (zlib and hashlib release
the GIL, so both cores work); make the links. A file already in DEST with the right size and
MD5 is left as it is (a killed restore resumes); `verify_only` only checks. Only the store's
`open_read` is used: no network, no tree path.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galaxy_archive.errors import GalaxyArchiveError, PathRefused
from galaxy_archive.models.install_plan import FileToWrite
from galaxy_archive.state.db import StateDB

from .chunks import BadObject, ObjectReader, check_sources, file_bytes
from .dest import Destination
from .planner import (
    NotRestorable,
    PlannedBuild,
    Selection,
    chunk_path,
    object_paths,
    plan_build,
)
from .read_ahead import read_ahead

READ_AHEAD_MIN_BYTES = 8 << 20  # files from this size inflate on a thread of their own
WRITTEN, CORRECT, FAILED, WRONG = "written", "already_correct", "failed", "missing_or_wrong"


@dataclass(frozen=True)
class Options:
    selection: Selection = field(default_factory=Selection)
    partial: bool = False
    verify_only: bool = False
    workers: int = max(os.cpu_count() or 1, 2)
    on_file: Callable[[int], None] | None = None  # called with each file's bytes once done
    on_start: Callable[[int, int], None] | None = None  # called with the files and bytes to do


@dataclass
class RestoreResult:
    planned: PlannedBuild
    outcomes: dict[str, str] = field(default_factory=dict)  # path -> WRITTEN / CORRECT / ...
    problems: list[str] = field(default_factory=list)
    bytes_written: int = 0
    unnamed: list[str] = field(default_factory=list)  # in DEST, not in the build: left alone

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)

    @property
    def is_ok(self) -> bool:
        return not self.problems and not self.count(FAILED) and not self.count(WRONG)

    def document(self) -> dict[str, Any]:
        return {
            "command": "restore",
            "product_id": self.planned.product_id,
            "build_id": self.planned.build_id,
            "selection": self.planned.selection_doc(),
            "files": len(self.planned.plan.files),
            "written": self.count(WRITTEN),
            "already_correct": self.count(CORRECT),
            "missing_or_wrong": self.count(WRONG),
            "failed": self.count(FAILED),
            "bytes_written": self.bytes_written,
            "bytes_total": self.planned.plan.total_size,
            "problems": self.problems,
            "not_in_build": self.unnamed,
        }


def restore(
    db: StateDB, store: ObjectReader, product_id: str, build_id: str, dest: Path, options: Options
) -> RestoreResult:
    planned = plan_build(db, store, product_id, build_id, options.selection)
    result = RestoreResult(planned)
    skipped = _refuse_or_skip(planned, options.partial, result)
    files = [f for f in planned.plan.files if f.path not in skipped]
    if options.on_start is not None:
        options.on_start(len(files), sum(f.size for f in files))
    if options.verify_only and not dest.is_dir():
        result.outcomes.update(dict.fromkeys((f.path for f in files), WRONG))
        return result
    target = Destination(dest)
    try:
        if not options.verify_only:
            for directory in planned.plan.directories:
                _guarded(result, directory, functools.partial(target.make_dir, directory))
        with ThreadPoolExecutor(options.workers) as pool:
            for path, outcome, size in pool.map(
                lambda f: _one_file(store, target, f, options.verify_only), files
            ):
                result.outcomes[path] = outcome if isinstance(outcome, str) else FAILED
                if not isinstance(outcome, str):
                    result.problems.append(str(outcome))
                result.bytes_written += size
                if options.on_file is not None:
                    options.on_file(size)
        if not options.verify_only:
            for link in planned.plan.links:
                _guarded(result, link.path, functools.partial(target.link, link.path, link.target))
        named = {f.path for f in planned.plan.files} | {k.path for k in planned.plan.links}
        result.unnamed = target.unnamed_files(named)
    finally:
        target.close()
    return result


def _refuse_or_skip(planned: PlannedBuild, partial: bool, result: RestoreResult) -> set[str]:
    """The files that cannot be restored (they read a missing object); NotRestorable naming
    every problem and object with its files, unless `partial`."""
    fed: dict[str, list[str]] = {}
    for file in planned.plan.files:
        for path in object_paths(file):
            if path in planned.missing:
                fed.setdefault(path, []).append(file.path)
    lines = list(planned.plan.problems) + [
        f"{path}: {planned.missing[path]}; it feeds {', '.join(sorted(set(files)))}"
        for path, files in sorted(fed.items())
    ]
    if lines and not partial:
        raise NotRestorable(
            f"build {planned.build_id} cannot be fully restored (--partial restores the rest):\n"
            + "\n".join(lines)
        )
    result.problems.extend(lines)
    skipped = {name for files in fed.values() for name in files}
    result.outcomes.update(dict.fromkeys(skipped, FAILED))
    return skipped


def _guarded(result: RestoreResult, path: str, action: Callable[[], object]) -> None:
    try:
        action()
    except (GalaxyArchiveError, OSError) as exc:
        result.problems.append(str(exc) if isinstance(exc, PathRefused) else f"{path}: {exc}")


def _one_file(
    store: ObjectReader, target: Destination, file: FileToWrite, verify_only: bool
) -> tuple[str, str | Exception, int]:
    """(path, outcome or the problem, bytes written) of one file."""
    try:
        with target.parent(file.path, create=not verify_only) as found:
            if found is None:
                return file.path, WRONG, 0
            fd, name = found
            if _is_correct(target, fd, name, file):
                if file.is_executable and not target.is_executable(fd, name) and not verify_only:
                    target.set_executable(fd, name)
                return file.path, CORRECT, 0
            if verify_only:
                return file.path, WRONG, 0
            _write(store, target, fd, name, file)
            return file.path, WRITTEN, file.size
    except BadObject as exc:
        return file.path, BadObject(exc.path, f"{exc.why}; {file.path} not written"), 0
    except (GalaxyArchiveError, OSError) as exc:
        return file.path, exc if isinstance(exc, GalaxyArchiveError) else _os_problem(file, exc), 0


def _is_correct(target: Destination, fd: int, name: str, file: FileToWrite) -> bool:
    if target.kind_of(fd, name, file.path) is None:
        return False
    md5, size = target.md5_and_size(fd, name)
    return size == file.size and (file.md5 is None or md5 == file.md5)


def _write(store: ObjectReader, target: Destination, fd: int, name: str, file: FileToWrite) -> None:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256() if file.sha256 else None
    size = 0
    path_of = functools.partial(chunk_path, file)
    # With a file MD5 to check, hashing each chunk as well would hash every byte twice
    is_file_hashed = file.md5 is not None
    pieces = file_bytes(store, file, path_of, are_chunks_hashed=not is_file_hashed)
    if file.size >= READ_AHEAD_MIN_BYTES:  # a thread per small file would cost more than it wins
        pieces = read_ahead(pieces)
    # closing: a file that fails half-way stops its read-ahead thread now, not at collection
    with target.temp_file(fd, name) as out, contextlib.closing(pieces):
        for piece in pieces:
            md5.update(piece)
            if sha256 is not None:
                sha256.update(piece)
            size += len(piece)
            view = memoryview(piece)
            while view:
                view = view[os.write(out, view) :]
        if is_file_hashed and md5.hexdigest() != file.md5:
            check_sources(store, file, path_of)  # names the bad chunk, if one is
        _check(file, md5.hexdigest(), size, sha256.hexdigest() if sha256 else None)
        target.publish(fd, name, out, is_executable=file.is_executable)


def _check(file: FileToWrite, md5: str, size: int, sha256: str | None) -> None:
    if size != file.size or (file.md5 is not None and md5 != file.md5):
        raise GalaxyArchiveError(
            f"{file.path}: restored bytes have MD5 {md5} ({size} bytes), not {file.md5} "
            f"({file.size} bytes); read from {_sources(file)}, corrupt; not written"
        )
    if sha256 is not None and sha256 != file.sha256:
        raise GalaxyArchiveError(
            f"{file.path}: restored bytes have another SHA-256; read from {_sources(file)}; "
            "not written"
        )


def _sources(file: FileToWrite) -> str:
    """The stored objects a file was read from, for a message (a V1 blob proves itself only
    through the files cut from it)."""
    return ", ".join(object_paths(file))


def _os_problem(file: FileToWrite, exc: OSError) -> GalaxyArchiveError:
    return GalaxyArchiveError(f"{file.path}: cannot be written ({exc.strerror or exc})")
