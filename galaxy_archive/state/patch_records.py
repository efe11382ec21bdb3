"""State DB records of patches (migration 0003): index answers, pairs, patch depots.

Used by the patch phase of `sync` and by `status`. Only the thread that owns the DB calls it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from galaxy_archive.models.manifests import DepotRef
from galaxy_archive.models.object_state import BuildState
from galaxy_archive.models.patches import PatchIndexAnswer, PatchOutcome, PatchPair
from galaxy_archive.redact import redact_url
from galaxy_archive.state.db import ObjectRow, StateDB
from galaxy_archive.state.needs import pending_patch_chunks, unverified_patch_objects
from galaxy_archive.state.stamps import iso

PairKey = tuple[str, str]  # (from build, to build) within one product


@dataclass(frozen=True)
class PatchRow:
    """What the DB knows about one pair."""

    outcome: PatchOutcome
    asked_at_s: float
    patch_id: str | None
    link: str | None
    state: str


def pair_key(pair: PatchPair) -> PairKey:
    return (pair.from_build_id, pair.to_build_id)


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class PatchRecords:
    """The patches, patch_queries and patch_depots tables (migration 0003)."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.conn = db.conn

    def rows(self, product_id: str) -> dict[PairKey, PatchRow]:
        return {
            (row[0], row[1]): PatchRow(PatchOutcome(row[2]), _seconds(row[3]), *row[4:])
            for row in self.conn.execute(
                "SELECT from_build_id, to_build_id, outcome, asked_at, patch_id, link, state "
                "FROM patches WHERE product_id = ?",
                (product_id,),
            )
        }

    def record_answer(
        self,
        pair: PatchPair,
        status: int | None,
        body: bytes,
        answer: PatchIndexAnswer,
        now: float,
    ) -> PatchRow:
        """Record one index answer (raw body kept) and make it the pair's current state."""
        body_md5 = self.db.save_json_body(body)
        keys = (pair.product_id, pair.from_build_id, pair.to_build_id)
        self.conn.execute(
            "INSERT INTO patch_queries (product_id, from_build_id, to_build_id, asked_at, "
            "status, body_md5, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*keys, iso(now), status, body_md5, str(answer.outcome), answer.error),
        )
        previous = self.conn.execute(
            "SELECT patch_id FROM patches WHERE product_id = ? AND from_build_id = ? "
            "AND to_build_id = ?",
            keys,
        ).fetchone()
        if previous is not None and previous[0] != answer.patch_id:
            # A different patch (or none) now: what the old one used is no longer this pair's.
            self.conn.execute(
                "DELETE FROM patch_depots WHERE product_id = ? AND from_build_id = ? "
                "AND to_build_id = ?",
                keys,
            )
        # 'none' is a patch's own state: there is no patch to keep (migration 0003).
        state = "none" if answer.outcome is PatchOutcome.NO_PATCH else BuildState.PENDING
        if answer.outcome is PatchOutcome.ERROR:
            state = BuildState.INCOMPLETE
        link = redact_url(answer.link) if answer.link else None
        self.conn.execute(
            "INSERT INTO patches (product_id, from_build_id, to_build_id, os, branch, outcome, "
            "asked_at, status, body_md5, patch_id, link, state, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (product_id, from_build_id, to_build_id) DO UPDATE SET "
            "outcome = excluded.outcome, asked_at = excluded.asked_at, status = excluded.status, "
            "body_md5 = excluded.body_md5, patch_id = excluded.patch_id, link = excluded.link, "
            "state = excluded.state, error = excluded.error, completed_at = NULL, "
            "root_object_id = CASE WHEN patches.patch_id IS excluded.patch_id "
            "THEN patches.root_object_id END, "
            "algorithm = CASE WHEN patches.patch_id IS excluded.patch_id "
            "THEN patches.algorithm END",
            (
                *keys,
                pair.os,
                pair.branch,
                str(answer.outcome),
                iso(now),
                status,
                body_md5,
                answer.patch_id,
                link,
                state,
                answer.error,
            ),
        )
        return PatchRow(answer.outcome, now, answer.patch_id, link, state)

    def set_root(self, pair: PatchPair, object_id: int) -> None:
        self._update(pair, "root_object_id = ?", object_id)

    def set_result(
        self, pair: PatchPair, outcome: PatchOutcome, algorithm: str | None, error: str | None
    ) -> None:
        """What the root manifest turned out to be."""
        self._update(pair, "outcome = ?, algorithm = ?, error = ?", outcome, algorithm, error)

    def _update(self, pair: PatchPair, assignments: str, *values: object) -> None:
        self.conn.execute(
            f"UPDATE patches SET {assignments} WHERE product_id = ? AND from_build_id = ? "
            "AND to_build_id = ?",
            (*values, pair.product_id, pair.from_build_id, pair.to_build_id),
        )

    def record_depot(self, pair: PatchPair, manifest_object_id: int, depot: DepotRef) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO patch_depots (product_id, from_build_id, to_build_id, "
            "manifest_object_id, depot_product_id, languages, size, compressed_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pair.product_id,
                pair.from_build_id,
                pair.to_build_id,
                manifest_object_id,
                depot.product_id,
                json.dumps(list(depot.languages)),
                depot.size,
                depot.compressed_size,
            ),
        )

    def pending_chunks(
        self, product_id: str, pairs: Sequence[PatchPair]
    ) -> list[tuple[ObjectRow, str]]:
        """Delta chunks of the pairs' patch depots not verified yet: (row, depot product)."""
        result: list[tuple[ObjectRow, str]] = []
        seen: set[int] = set()
        for pair in pairs:
            for row, depot_product in pending_patch_chunks(
                self.db, product_id, pair.from_build_id, pair.to_build_id
            ):
                if row.id not in seen:
                    seen.add(row.id)
                    result.append((row, depot_product))
        return result

    def missing_objects(self, pair: PatchPair) -> int:
        """Objects the pair's patch needs (root, depot manifests, chunks) not verified."""
        return unverified_patch_objects(
            self.db, pair.product_id, pair.from_build_id, pair.to_build_id
        )

    def summary(self, product_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """For `status`: pairs recorded, complete patches, pairs by outcome."""
        where, params = "", list(product_ids or ())
        if product_ids:
            where = f"WHERE product_id IN ({','.join('?' * len(product_ids))})"
        by_outcome = dict(
            self.conn.execute(
                f"SELECT outcome, count(*) FROM patches {where} GROUP BY outcome ORDER BY outcome",
                params,
            ).fetchall()
        )
        complete = self.conn.execute(
            f"SELECT count(*) FROM patches {where} {'AND' if where else 'WHERE'} "
            "outcome = 'patch' AND state = 'complete'",
            params,
        ).fetchone()[0]
        return {"pairs": sum(by_outcome.values()), "complete": complete, "by_outcome": by_outcome}

    def set_state(self, pair: PatchPair, state: str, now: float) -> None:
        self._update(
            pair,
            "state = ?, completed_at = CASE WHEN ? = 'complete' THEN coalesce(completed_at, ?) END",
            state,
            state,
            iso(now),
        )
