"""What `verify` checks and in which order: levels, the checks each kind gets at each level,
the incremental cut-off and the time budget. Pure: values in, values out (the clock is passed in).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass

from galaxy_archive.models.layout import ObjectKind


class VerifyLevel(enum.StrEnum):
    QUICK = "quick"  # presence and size: a stat, no reads
    # The default: MD5 of the stored bytes against the name or the recorded MD5; a V1 blob,
    # for which GOG publishes no MD5, by every file record's MD5 at its offset and the MD5 of
    # the bytes outside them recorded when it was stored (one read either way).
    FULL = "full"
    DEEP = "deep"  # also inflate chunks, parse manifests as JSON


class Check(enum.StrEnum):
    SIZE = "size"  # present, a regular file, of the recorded size
    MD5 = "md5"  # MD5 of the stored bytes == objects.md5
    INFLATE = "inflate"  # a complete zlib stream; inflated MD5 and size as recorded
    META_JSON = "meta_json"  # V2 meta: zlib (or plain) JSON that parses
    JSON = "json"  # V1 manifest: plain JSON that parses
    EXTENTS = "extents"  # V1 blob: every file's MD5 at its offset, the bytes between them


# Chunks are stored as the CDN serves them: zlib streams (patch chunks: zlib of xdelta3 data).
ZLIB_KINDS = frozenset(
    {ObjectKind.STORE, ObjectKind.OFFLINE, ObjectKind.PATCH_STORE, ObjectKind.DEP_STORE}
)
V2_META_KINDS = frozenset({ObjectKind.META, ObjectKind.PATCH_META, ObjectKind.DEP_META})


def checks_for(kind: ObjectKind, level: VerifyLevel) -> frozenset[Check]:
    """The checks an object of `kind` gets at `level` (each level includes the ones below)."""
    if level is VerifyLevel.QUICK:
        return frozenset({Check.SIZE})
    checks = {Check.SIZE, Check.MD5}
    if kind is ObjectKind.V1_BLOB:
        checks.add(Check.EXTENTS)
    if level is VerifyLevel.DEEP:
        if kind in ZLIB_KINDS:
            checks.add(Check.INFLATE)
        elif kind in V2_META_KINDS:
            checks.add(Check.META_JSON)
        elif kind is ObjectKind.V1_MANIFEST:
            checks.add(Check.JSON)
    return frozenset(checks)


@dataclass(frozen=True)
class VerifyOptions:
    """What one `verify` run does.

    :param max_age_s: None: every object; else only objects not verified within this many
        seconds (objects in a problem state are always checked again).
    :param time_budget_s: None: no limit; else no new object is started once it is spent.
    :param workers: 0: one per core.
    """

    level: VerifyLevel = VerifyLevel.FULL
    product_ids: tuple[str, ...] = ()
    max_age_s: float | None = None
    time_budget_s: float | None = None
    is_repair: bool = False
    workers: int = 0

    @property
    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        try:
            return len(os.sched_getaffinity(0))  # the cores this process may run on
        except AttributeError:  # not on Linux
            return os.cpu_count() or 2

    @property
    def is_whole_archive(self) -> bool:
        """The tree walk (unknown files, temp files) only makes sense over everything."""
        return not self.product_ids


def due_cutoff_s(now: float, max_age_s: float | None) -> float | None:
    """Objects verified before this instant are due again; None: all of them are."""
    return None if max_age_s is None else now - max_age_s


class Budget:
    """A time budget on an injected clock: spent once `budget_s` seconds have passed."""

    def __init__(self, clock: Callable[[], float], budget_s: float | None) -> None:
        self._clock = clock
        self._deadline = None if budget_s is None else clock() + budget_s
        self.is_spent = False

    def check(self) -> bool:
        """True (and from then on) once the budget is spent."""
        if not self.is_spent and self._deadline is not None:
            self.is_spent = self._clock() >= self._deadline
        return self.is_spent
