"""verify_plan (budget, cut-off) and verify_records' plan order, on an in-memory-sized DB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.verify_plan import Budget, VerifyOptions, due_cutoff_s
from galaxy_archive.state.db import NewObject, iso, open_db
from galaxy_archive.state.verify_records import VerifyRecords
from galaxy_archive.storage.tree_walk import sorted_files
from galaxy_archive.verify.object_checks import Verdict
from galaxy_archive.verify.report import ObjectProblem, RepairOutcome, VerifyReport

DAY_S = 86400.0


def test_budget_is_spent_once_the_clock_passes_it() -> None:
    now = [100.0]
    budget = Budget(lambda: now[0], 10)
    assert not budget.check()
    now[0] = 109.9
    assert not budget.check()
    now[0] = 110.0
    assert budget.check()
    now[0] = 0.0  # a clock going back does not un-spend it
    assert budget.check() and budget.is_spent
    assert not Budget(lambda: 1e12, None).check()


def test_due_cutoff() -> None:
    assert due_cutoff_s(1000.0, None) is None
    assert due_cutoff_s(100 * DAY_S, 30 * DAY_S) == 70 * DAY_S


def make_db(tmp_path: Path, states: dict[str, tuple[str, float | None]]) -> VerifyRecords:
    """Objects named by a letter: (state, verified_at or None)."""
    db = open_db(tmp_path / "archive.db", now=0.0)
    objects = [
        NewObject(ObjectKind.STORE, cas_path(ObjectKind.STORE, name * 32), name * 32, 1)
        for name in states
    ]
    ids = db.ensure_objects(objects, 0.0)
    for obj in objects:
        state, verified_at = states[(obj.md5 or "")[0]]
        db.conn.execute(
            "UPDATE objects SET state = ?, verified_at = ?, fetched_at = ? WHERE id = ?",
            (state, None if verified_at is None else iso(verified_at), iso(0), ids[obj.path]),
        )
    db.conn.commit()
    return VerifyRecords(db)


def planned(records: VerifyRecords) -> list[str]:
    return [row.md5[0] for row in records.plan_rows(batch_rows=2) if row.md5]


def test_plan_order_problems_then_never_verified_then_oldest(tmp_path: Path) -> None:
    records = make_db(
        tmp_path,
        {
            "a": ("verified", 5 * DAY_S),
            "b": ("verified", 1 * DAY_S),
            "c": ("corrupt", 9 * DAY_S),
            "d": ("verified", None),
            "e": ("absent_upstream", None),
            "f": ("verified", 50 * DAY_S),
        },
    )
    assert records.make_plan(VerifyOptions(), now=60 * DAY_S) == 5
    assert planned(records) == ["c", "d", "b", "a", "f"]
    # --max-age 30d at day 60: f (day 50) is fresh; problems are checked again regardless.
    assert records.make_plan(VerifyOptions(max_age_s=30 * DAY_S), now=60 * DAY_S) == 4
    assert planned(records) == ["c", "d", "b", "a"]
    assert records.absent_upstream_count(()) == 1


def test_plan_is_a_snapshot_stamps_during_the_run_do_not_reorder_it(tmp_path: Path) -> None:
    records = make_db(tmp_path, {name: ("verified", float(i)) for i, name in enumerate("abcde")})
    records.make_plan(VerifyOptions(), now=DAY_S)
    seen = []
    for row in records.plan_rows(batch_rows=2):
        seen.append(row.md5[0] if row.md5 else "")
        records.record_verified(row.object_id, 1000.0 + len(seen))
        records.flush()
    assert seen == list("abcde")


def test_plan_leaves_out_objects_never_stored(tmp_path: Path) -> None:
    records = make_db(tmp_path, {"a": ("verified", 1.0), "b": ("missing", None)})
    records.conn.execute("UPDATE objects SET fetched_at = NULL WHERE md5 = ?", ("b" * 32,))
    assert records.make_plan(VerifyOptions(), now=DAY_S) == 1
    assert records.not_fetched_count(()) == 1


def test_report_exit_code_and_summary() -> None:
    report = VerifyReport(level="full", planned=3, checked=3, ok=3)
    assert report.exit_code == 0
    assert report.summary_line().startswith("verify full: checked 3 of 3 objects")
    problem = ObjectProblem(1, "store", "v2/store/x", "x", Verdict.MISSING, "file is missing")
    report.problems.append(problem)
    assert report.exit_code == 1
    problem.repair = RepairOutcome.REPAIRED
    assert report.exit_code == 0
    report.temp_files.append("v2/store/.x.galaxy-tmp")
    assert report.exit_code == 1
    report.is_interrupted = True
    assert report.exit_code == 130
    compact = report.to_json(is_compact=True)
    assert compact["problems"] == 1 and compact["temp_files"] == 1


@given(
    names=st.lists(
        st.lists(st.text(alphabet="a0.-_é", min_size=1, max_size=3), min_size=1, max_size=3),
        min_size=1,
        max_size=12,
    )
)
def test_tree_listing_comes_out_in_the_dbs_path_order(
    tmp_path_factory: pytest.TempPathFactory, names: list[list[str]]
) -> None:
    """The tree walk merges the listing with ORDER BY path: both orders must agree, also for
    names that sort around '/' ('.', '-') and non-ASCII ones."""
    root = tmp_path_factory.mktemp("tree")
    files = set()
    for parts in names:
        path = root.joinpath("v2", *parts)
        if any(p in (".", "..") for p in parts) or path.exists():
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        except (FileExistsError, NotADirectoryError):  # a file where a directory would go
            continue
        files.add("/".join(["v2", *parts]))
    listed = list(sorted_files(str(root), "v2", lambda: False))
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (path TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO t VALUES (?)", [(p,) for p in files])
    assert listed == [row[0] for row in conn.execute("SELECT path FROM t ORDER BY path")]
