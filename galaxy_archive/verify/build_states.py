"""After a verify: the state of the builds, patches and dependencies whose objects changed.

A build (patch, dependency) with an object that is no longer verified is not complete; one
whose objects are all back (after --repair) may be complete again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import BuildState
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.dependency_records import DependencyRecords
from galaxy_archive.state.needs import update_build_states, update_v1_build_states
from galaxy_archive.state.patch_records import PatchRecords
from galaxy_archive.state.verify_records import VerifyRecords
from galaxy_archive.verify.report import VerifyReport

log = logging.getLogger(__name__)


def update_owner_states(
    db: StateDB,
    records: VerifyRecords,
    report: VerifyReport,
    touched: Mapping[int, ObjectKind],
    clock: Callable[[], float],
) -> None:
    """`touched`: every object whose state changed in this run, with its kind.

    Each build's state is recomputed by its generation's own rule (state/needs.py), in
    both directions: no longer complete, or complete again after --repair.
    """
    _update_patches_and_dependencies(db, records, report, touched, clock)
    builds = {build: None for object_id in touched for build in records.builds_of(object_id)}
    before = records.build_states(list(builds))
    now = clock()
    by_product: dict[tuple[str, int], list[str]] = {}
    for build in builds:
        by_product.setdefault((build.product_id, build.generation), []).append(build.build_id)
    for (product_id, generation), build_ids in by_product.items():
        if generation == 1:
            update_v1_build_states(db, product_id, build_ids, now)
        else:
            update_build_states(db, product_id, build_ids, now)
    db.conn.commit()
    after = records.build_states(list(builds))
    for build in builds:
        if before.get(build) == BuildState.COMPLETE and after.get(build) != BuildState.COMPLETE:
            report.builds_no_longer_complete.append(build)
            log.warning("build %s (generation %d) is no longer complete", build, build.generation)
        elif before.get(build) != BuildState.COMPLETE and after.get(build) == BuildState.COMPLETE:
            report.builds_complete_again.append(build)


def _update_patches_and_dependencies(
    db: StateDB,
    records: VerifyRecords,
    report: VerifyReport,
    touched: Mapping[int, ObjectKind],
    clock: Callable[[], float],
) -> None:
    """A complete patch with an object that is no longer verified is incomplete; dependency
    states are recomputed (DependencyRecords.update_states). Marking a patch complete again
    is the sync's call (it also knows whether the patch is usable)."""
    touched_kinds = set(touched.values())
    if touched_kinds & {ObjectKind.PATCH_META, ObjectKind.PATCH_STORE}:
        patches = PatchRecords(db)
        pairs = {pair for object_id in touched for pair in records.patches_of(object_id)}
        for pair in sorted(pairs, key=lambda p: p.what):
            is_complete = records.patch_state(pair) == BuildState.COMPLETE
            if is_complete and patches.missing_objects(pair):
                patches.set_state(pair, BuildState.INCOMPLETE, clock())
                _no_longer_complete(report, pair.what)
    if touched_kinds & {ObjectKind.DEP_META, ObjectKind.DEP_STORE}:
        before = records.dependency_states()
        DependencyRecords(db).update_states(clock())
        after = records.dependency_states()
        for dependency, state in sorted(before.items()):
            if state == BuildState.COMPLETE and after.get(dependency) != BuildState.COMPLETE:
                _no_longer_complete(report, f"dependency {dependency}")


def _no_longer_complete(report: VerifyReport, what: str) -> None:
    report.others_no_longer_complete.append(what)
    log.warning("%s is no longer complete", what)
