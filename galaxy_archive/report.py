"""What a run did, for the summary line, --json and the exit code."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from galaxy_archive.errors import ExitCode

log = logging.getLogger(__name__)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


@dataclass
class ProductReport:
    product_id: str
    builds_seen: int = 0
    builds_selected: int = 0
    builds_complete: int = 0
    error: str | None = None
    planned_objects: int = 0
    planned_bytes: int = 0
    dlc_of: str | None = None  # a DLC: mirrored with this base product's builds

    def to_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "builds_seen": self.builds_seen,
            "builds_selected": self.builds_selected,
            "builds_complete": self.builds_complete,
            "planned_objects": self.planned_objects,
            "planned_bytes": self.planned_bytes,
            "error": self.error,
            "dlc_of": self.dlc_of,
        }


@dataclass
class SyncReport:
    fetched: int = 0
    already_present: int = 0
    failed: int = 0
    absent_upstream: int = 0  # required objects the CDN does not have (an error)
    absent_optional: int = 0  # SFC member chunks the CDN does not have (not an error)
    bytes_fetched: int = 0
    is_dry_run: bool = False
    is_interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    # Worth knowing but no problem (e.g. a meta file kept with bytes that do not hash to its id)
    warnings: list[str] = field(default_factory=list)
    products: dict[str, ProductReport] = field(default_factory=dict)
    # Patch pairs by outcome, plus "asked" (index queries) and "complete" (patch_sync).
    patches: dict[str, int] = field(default_factory=dict)
    # The dependency repository version seen and counts (dependency_sync).
    dependencies: dict[str, Any] = field(default_factory=dict)

    def count_patch(self, key: str) -> None:
        self.patches[key] = self.patches.get(key, 0) + 1

    def product(self, product_id: str) -> ProductReport:
        return self.products.setdefault(product_id, ProductReport(product_id))

    def problem(self, message: str) -> None:
        """Record a problem naming its object; it is logged at once, as an error: a failed or
        missing object is what `sync -q` from cron must still print (in order)."""
        self.problems.append(message)
        log.error("%s", message)

    def warning(self, message: str) -> None:
        """Record a warning naming its object; logged at once, the exit code unchanged."""
        self.warnings.append(message)
        log.warning("%s", message)

    @property
    def exit_code(self) -> ExitCode:
        if self.is_interrupted:
            return ExitCode.INTERRUPTED
        if self.problems or self.failed or self.absent_upstream:
            return ExitCode.PROBLEMS
        return ExitCode.OK

    def summary_line(self) -> str:
        """One line whose counts add up to the objects the progress display counted: every
        object planned is fetched, already present, failed or absent (required or optional)."""
        if self.is_dry_run:
            objects, size = self._planned()
            return f"dry run: {objects} objects to fetch, {human_bytes(size)}"
        prefix = "interrupted (the next run resumes): " if self.is_interrupted else ""
        optional = f", {self.absent_optional} optional members absent upstream"
        if not (self.fetched or self.failed or self.absent_upstream or self.problems):
            return (
                f"{prefix}nothing new needed: {self.already_present} objects already archived"
                + (optional if self.absent_optional else "")
            )
        return (
            f"{prefix}fetched {self.fetched} ({human_bytes(self.bytes_fetched)}), "
            f"already present {self.already_present}, failed {self.failed}, "
            f"absent upstream {self.absent_upstream}{optional}"
        )

    def dry_run_lines(self) -> list[str]:
        """What a dry run would fetch, per product and for the dependencies: the lines add up
        to the summary line's total, in its units."""
        lines = [
            f"  product {p.product_id}: {p.planned_objects} objects, {human_bytes(p.planned_bytes)}"
            for p in self.products.values()
        ]
        if self.dependencies.get("planned_objects"):
            objects = int(self.dependencies["planned_objects"])
            size = int(self.dependencies.get("planned_bytes", 0))
            lines.append(f"  dependencies: {objects} objects, {human_bytes(size)}")
        return lines

    def _planned(self) -> tuple[int, int]:
        objects = sum(p.planned_objects for p in self.products.values())
        size = sum(p.planned_bytes for p in self.products.values())
        objects += int(self.dependencies.get("planned_objects", 0))
        size += int(self.dependencies.get("planned_bytes", 0))
        return objects, size

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "sync",
            "exit_code": int(self.exit_code),
            "dry_run": self.is_dry_run,
            "interrupted": self.is_interrupted,
            "fetched": self.fetched,
            "already_present": self.already_present,
            "failed": self.failed,
            "absent_upstream": self.absent_upstream,
            "absent_optional": self.absent_optional,
            "bytes_fetched": self.bytes_fetched,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "products": [p.to_json() for p in self.products.values()],
            "patches": dict(self.patches),
            "dependencies": dict(self.dependencies),
        }
