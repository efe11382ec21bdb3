"""What a `verify` run found, for the problem lines, the summary line, --json and the exit code."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from galaxy_archive.errors import ExitCode
from galaxy_archive.output import escape_name
from galaxy_archive.report import human_bytes
from galaxy_archive.state.verify_records import BuildRef
from galaxy_archive.verify.object_checks import Verdict

log = logging.getLogger(__name__)
MAX_BUILDS_PER_LINE = 5


class RepairOutcome(enum.StrEnum):
    REPAIRED = "repaired"  # fetched again, checked, in place
    UNRECOVERABLE = "unrecoverable"  # every CDN endpoint answered 404
    FAILED = "failed"  # the fetch failed (network, wrong bytes); a later run may succeed
    NO_SOURCE = "no_source"  # no known way to fetch this kind yet


@dataclass
class ObjectProblem:
    object_id: int
    kind: str
    path: str
    md5: str | None
    verdict: Verdict
    detail: str
    builds: list[BuildRef] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # patches and dependencies that need it
    products: list[str] = field(default_factory=list)
    bad_files: tuple[str, ...] = ()
    repair: RepairOutcome | None = None
    repair_detail: str | None = None
    quarantined_to: str | None = None  # relative to the archive root

    @property
    def is_resolved(self) -> bool:
        return self.repair is RepairOutcome.REPAIRED

    def owners(self) -> str:
        if self.builds or self.others:
            names = [f"build {b}" for b in self.builds] + self.others
            shown = ", ".join(names[:MAX_BUILDS_PER_LINE])
            more = len(names) - MAX_BUILDS_PER_LINE
            return f"needed by {shown}" + (f" and {more} more" if more > 0 else "")
        if self.products:
            return f"no recorded build; products {', '.join(self.products)}"
        return "no recorded build or product"

    def line(self) -> str:
        text = (
            f"{self.verdict}: {self.kind} {escape_name(self.path)} (md5 {self.md5 or '?'}): "
            f"{self.detail}; "
            f"{self.owners()}"
        )
        if self.quarantined_to:
            text += f"; moved to {self.quarantined_to}"
        if self.repair is not None:
            text += f"; repair: {self.repair}"
            if self.repair_detail:
                text += f" ({self.repair_detail})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "kind": self.kind,
            "path": escape_name(self.path),
            "md5": self.md5,
            "state": str(self.verdict),
            "detail": self.detail,
            "files": list(self.bad_files),
            "builds": [_build_json(b) for b in self.builds],
            "needed_by": list(self.others),
            "products": list(self.products),
            "repair": None if self.repair is None else str(self.repair),
            "repair_detail": self.repair_detail,
            "quarantined_to": self.quarantined_to,
        }


@dataclass
class VerifyReport:
    level: str
    is_repair: bool = False
    planned: int = 0  # objects selected for this run
    checked: int = 0
    ok: int = 0
    bytes_checked: int = 0
    left: int = 0  # selected but not started (time budget spent, or interrupted)
    absent_upstream: int = 0  # in scope, not on disk by design, not checked
    not_fetched: int = 0  # in scope, never stored yet (sync's todo), nothing to check
    is_budget_spent: bool = False
    is_interrupted: bool = False
    is_tree_walked: bool = False
    elapsed_s: float = 0.0
    problems: list[ObjectProblem] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)  # resumable V1 downloads: not problems
    unreadable_dirs: list[str] = field(default_factory=list)  # the tree walk could not list them
    builds_no_longer_complete: list[BuildRef] = field(default_factory=list)
    builds_complete_again: list[BuildRef] = field(default_factory=list)
    others_no_longer_complete: list[str] = field(default_factory=list)  # patches, dependencies

    def problem(self, problem: ObjectProblem) -> None:
        """Record a problem; it is logged at once, as an error: wrong or lost bytes are what
        `verify -q` from cron must still print."""
        self.problems.append(problem)
        log.error("%s", problem.line())

    # Unknown and temp files and unreadable directories make the exit code 1, like a corrupt
    # object: they are errors too, so `verify -q` (cron) prints why it exits 1.

    def unknown_file(self, path: str) -> None:
        self.unknown_files.append(path)
        log.error("unknown file: %s is not recorded in the DB (left in place)", escape_name(path))

    def temp_file(self, path: str) -> None:
        self.temp_files.append(path)
        log.error("temp file: %s was left by an interrupted run", escape_name(path))

    def unreadable_dir(self, path: str) -> None:
        self.unreadable_dirs.append(path)
        log.error(
            "unreadable directory: %s could not be listed (permissions, an I/O error or a path "
            "too long); nothing below it was checked for unknown files",
            escape_name(path),
        )

    def count(self, verdict: Verdict) -> int:
        return sum(1 for p in self.problems if p.verdict is verdict)

    def count_repair(self, outcome: RepairOutcome) -> int:
        return sum(1 for p in self.problems if p.repair is outcome)

    @property
    def unresolved(self) -> list[ObjectProblem]:
        return [p for p in self.problems if not p.is_resolved]

    @property
    def exit_code(self) -> ExitCode:
        if self.is_interrupted:
            return ExitCode.INTERRUPTED
        if self.unresolved or self.unknown_files or self.temp_files or self.unreadable_dirs:
            return ExitCode.PROBLEMS
        if self.builds_no_longer_complete or self.others_no_longer_complete:
            return ExitCode.PROBLEMS
        return ExitCode.OK

    def summary_line(self) -> str:
        rate = self.bytes_checked / self.elapsed_s if self.elapsed_s > 0 else 0.0
        parts = [
            f"verify {self.level}: checked {self.checked} of {self.planned} objects "
            f"({human_bytes(self.bytes_checked)}, {human_bytes(rate)}/s)",
            f"{self.ok} ok, {self.count(Verdict.MISSING)} missing, "
            f"{self.count(Verdict.CORRUPT)} corrupt"
            + (
                f", {self.count(Verdict.UNPROVEN)} unproven" if self.count(Verdict.UNPROVEN) else ""
            ),
        ]
        if self.is_repair:
            parts.append(
                f"{self.count_repair(RepairOutcome.REPAIRED)} repaired, "
                f"{self.count_repair(RepairOutcome.UNRECOVERABLE)} unrecoverable, "
                f"{self.count_repair(RepairOutcome.FAILED)} failed, "
                f"{self.count_repair(RepairOutcome.NO_SOURCE)} without a source"
            )
        parts.append(f"{self.absent_upstream} absent upstream (not checked)")
        if self.not_fetched:
            parts.append(f"{self.not_fetched} never fetched (run sync)")
        if self.left or self.is_budget_spent or self.is_interrupted:
            why = "interrupted" if self.is_interrupted else "time budget spent"
            parts.append(f"{self.left} left for the next run ({why})")
        if self.is_tree_walked:
            parts.append(
                f"{len(self.unknown_files)} unknown files, {len(self.temp_files)} temp files"
                + (
                    f", {len(self.unreadable_dirs)} unreadable directories"
                    if self.unreadable_dirs
                    else ""
                )
            )
        if self.builds_no_longer_complete:
            parts.append(f"{len(self.builds_no_longer_complete)} builds no longer complete")
        if self.builds_complete_again:
            parts.append(f"{len(self.builds_complete_again)} builds complete again")
        if self.others_no_longer_complete:
            parts.append(
                f"{len(self.others_no_longer_complete)} patches or dependencies no longer complete"
            )
        return "; ".join(parts)

    def to_json(self, *, is_compact: bool = False) -> dict[str, Any]:
        """The --json document; compact (for the runs table): lists replaced by their lengths."""
        document = {
            "command": "verify",
            "exit_code": int(self.exit_code),
            "level": self.level,
            "repair": self.is_repair,
            "interrupted": self.is_interrupted,
            "time_budget_spent": self.is_budget_spent,
            "planned": self.planned,
            "checked": self.checked,
            "ok": self.ok,
            "left": self.left,
            "bytes_checked": self.bytes_checked,
            "elapsed_s": round(self.elapsed_s, 3),
            "absent_upstream": self.absent_upstream,
            "not_fetched": self.not_fetched,
            "missing": self.count(Verdict.MISSING),
            "corrupt": self.count(Verdict.CORRUPT),
            "unproven": self.count(Verdict.UNPROVEN),
            "repaired": self.count_repair(RepairOutcome.REPAIRED),
            "unrecoverable": self.count_repair(RepairOutcome.UNRECOVERABLE),
            "problems": [p.to_json() for p in self.problems],
            "tree_walked": self.is_tree_walked,
            "unknown_files": [escape_name(p) for p in self.unknown_files],
            "temp_files": [escape_name(p) for p in self.temp_files],
            "partial_files": [escape_name(p) for p in self.partial_files],
            "unreadable_dirs": [escape_name(p) for p in self.unreadable_dirs],
            "builds_no_longer_complete": [_build_json(b) for b in self.builds_no_longer_complete],
            "builds_complete_again": [_build_json(b) for b in self.builds_complete_again],
            "others_no_longer_complete": list(self.others_no_longer_complete),
        }
        if is_compact:
            for key, value in document.items():
                if isinstance(value, list):
                    document[key] = len(value)
        return document


def _build_json(build: BuildRef) -> dict[str, Any]:
    return {
        "product_id": build.product_id,
        "build_id": build.build_id,
        "generation": build.generation,
    }
