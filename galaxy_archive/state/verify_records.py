"""The state-DB side of `verify`: the plan, results written as it goes, owners of an object.

Only the main thread uses this (workers never touch the DB). The plan is a snapshot in a temp
table, so objects stamped during the run are not visited twice and memory stays flat whatever
the number of objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.models.patches import PatchPair
from galaxy_archive.models.v1_ranges import Extent
from galaxy_archive.models.verify_plan import VerifyOptions, due_cutoff_s
from galaxy_archive.state.db import StateDB, object_kind
from galaxy_archive.state.lock import process_is_alive
from galaxy_archive.state.stamps import iso

PLAN_BATCH_ROWS = 2000
# Known to the DB but never stored (sync's todo list, e.g. after a failed fetch): there are no
# bytes to verify yet. Once stored, an object has a verified_at for good.
_NEVER_STORED = "o.state = 'missing' AND o.verified_at IS NULL AND o.fetched_at IS NULL"


@dataclass(frozen=True)
class PlanRow:
    object_id: int
    kind: ObjectKind
    path: str
    md5: str | None
    size: int | None
    inflated_md5: str | None
    inflated_size: int | None
    state: ObjectState
    product_id: str | None  # the product it is fetched under (repair)
    served_md5: str | None = None  # a meta file kept with other bytes: their MD5 (meta_flags)


@dataclass(frozen=True)
class BuildRef:
    product_id: str
    build_id: str
    generation: int

    def __str__(self) -> str:
        return f"{self.product_id}/{self.build_id}"


class VerifyRecords:
    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.conn = db.conn
        self._pending_ok: list[tuple[str, str, int]] = []

    def add_run(self, command: str, pid: int, now: float) -> int:
        """A run record that, unlike StateDB.start_run, leaves runs that died as they are."""
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO runs (command, pid, started_at) VALUES (?, ?, ?)",
                (command, pid, iso(now)),
            )
        return int(cursor.lastrowid or 0)

    def has_other_live_runs(self, own_pid: int) -> bool:
        """Whether another galaxy-archive run (e.g. a sync) is under way right now."""
        rows = self.conn.execute("SELECT pid FROM runs WHERE ended_at IS NULL").fetchall()
        return any(pid != own_pid and process_is_alive(pid) for (pid,) in rows)

    # --- the plan --------------------------------------------------------------------------

    def make_plan(self, options: VerifyOptions, now: float) -> int:
        """Snapshot the objects to check, in order; return how many.

        Order: objects in a problem state, then never verified, then verified longest ago.
        Objects absent upstream are not on disk by design and are left out.
        """
        scope, params = self._scope(options.product_ids)
        cutoff = due_cutoff_s(now, options.max_age_s)
        due = ""
        if cutoff is not None:
            due = "AND (o.state != 'verified' OR o.verified_at IS NULL OR o.verified_at < ?)"
            params.append(iso(cutoff))
        self.conn.execute("DROP TABLE IF EXISTS temp.verify_plan")
        self.conn.execute(
            "CREATE TEMP TABLE verify_plan (seq INTEGER PRIMARY KEY, object_id INTEGER NOT NULL)"
        )
        with self.conn:
            self.conn.execute(
                "INSERT INTO temp.verify_plan (object_id) SELECT o.id FROM objects o "
                f"WHERE o.state != 'absent_upstream' AND NOT ({_NEVER_STORED}) {scope} {due} "
                "ORDER BY o.state = 'verified', o.verified_at, o.id",
                params,
            )
        return int(self.conn.execute("SELECT count(*) FROM temp.verify_plan").fetchone()[0])

    def plan_rows(self, batch_rows: int = PLAN_BATCH_ROWS) -> Iterator[PlanRow]:
        """The planned objects in order, read in batches (the current row of each object)."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT p.seq, o.id, o.kind, o.path, o.md5, o.size, o.inflated_md5, "
                "o.inflated_size, o.state, coalesce(o.product_id, (SELECT min(op.product_id) "
                "FROM object_products op WHERE op.object_id = o.id)), o.served_md5 "
                "FROM temp.verify_plan p JOIN objects o ON o.id = p.object_id "
                "WHERE p.seq > ? ORDER BY p.seq LIMIT ?",
                (last, batch_rows),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for row in rows:
                kind = object_kind(row[1], row[3], row[2])
                _, object_id, _, path, md5, size, inflated_md5, inflated_size = row[:8]
                yield PlanRow(
                    object_id,
                    kind,
                    path,
                    md5,
                    size,
                    inflated_md5,
                    inflated_size,
                    ObjectState(row[8]),
                    product_id=row[9],
                    served_md5=row[10],
                )

    def absent_upstream_count(self, product_ids: Sequence[str]) -> int:
        scope, params = self._scope(product_ids)
        return int(
            self.conn.execute(
                f"SELECT count(*) FROM objects o WHERE o.state = 'absent_upstream' {scope}",
                params,
            ).fetchone()[0]
        )

    def not_fetched_count(self, product_ids: Sequence[str]) -> int:
        scope, params = self._scope(product_ids)
        return int(
            self.conn.execute(
                f"SELECT count(*) FROM objects o WHERE {_NEVER_STORED} {scope}", params
            ).fetchone()[0]
        )

    def _scope(self, product_ids: Sequence[str]) -> tuple[str, list[Any]]:
        """SQL restricting objects to those of the products: their own, their builds'
        manifests, and what their builds' depots reference (DLC included): V2 chunks, V1
        blobs."""
        if not product_ids:
            return "", []
        marks = ",".join("?" * len(product_ids))
        sql = (
            f"AND (o.product_id IN ({marks}) "
            f"OR o.id IN (SELECT object_id FROM object_products WHERE product_id IN ({marks})) "
            f"OR o.id IN (SELECT repository_object_id FROM builds WHERE product_id IN ({marks})) "
            "OR o.id IN (SELECT manifest_object_id FROM build_depots "
            f"WHERE product_id IN ({marks})) "
            "OR o.id IN (SELECT mo.object_id FROM build_depots bd JOIN manifest_objects mo "
            "ON mo.manifest_object_id = bd.manifest_object_id "
            f"WHERE bd.product_id IN ({marks})) "
            f"OR o.id IN (SELECT manifest_object_id FROM v1_depots WHERE product_id IN ({marks})) "
            "OR o.id IN (SELECT e.blob_object_id FROM v1_depots d JOIN v1_extents e "
            f"ON e.manifest_object_id = d.manifest_object_id WHERE d.product_id IN ({marks})))"
        )
        return sql, list(product_ids) * 7

    def unknown_products(self, product_ids: Sequence[str]) -> list[str]:
        """The ids that name no product of this archive (a typo in a cron line must not
        verify nothing and exit 0)."""
        return [
            product_id
            for product_id in product_ids
            if self.conn.execute(
                "SELECT 1 FROM products WHERE product_id = ? UNION ALL "
                "SELECT 1 FROM object_products WHERE product_id = ? UNION ALL "
                "SELECT 1 FROM builds WHERE product_id = ? UNION ALL "
                "SELECT 1 FROM v1_blobs WHERE product_id = ? LIMIT 1",
                (product_id,) * 4,
            ).fetchone()
            is None
        ]

    def blob_proof(self, blob_object_id: int) -> tuple[tuple[Extent, ...], str | None]:
        """What proves a V1 blob: the files inside it (table v1_extents, from the V1 sync), by
        offset, and the MD5 of its bytes outside them, recorded when it was stored."""
        rows = self.conn.execute(
            'SELECT DISTINCT path, "offset", size, md5 FROM v1_extents '
            'WHERE blob_object_id = ? ORDER BY "offset"',
            (blob_object_id,),
        ).fetchall()
        uncovered = self.conn.execute(
            "SELECT uncovered_md5 FROM v1_blobs WHERE object_id = ?", (blob_object_id,)
        ).fetchone()
        extents = tuple(Extent(path, offset, size, md5) for path, offset, size, md5 in rows)
        return extents, uncovered[0] if uncovered else None

    # --- results ---------------------------------------------------------------------------

    def record_verified(self, object_id: int, now: float) -> None:
        """Queue 'verified at now' for an object; written by the next flush()."""
        stamp = iso(now)
        self._pending_ok.append((stamp, stamp, object_id))

    def record_problem(
        self,
        object_id: int,
        state: ObjectState,
        error: str,
        now: float,
        *,
        was: ObjectState | None = None,
    ) -> None:
        """A missing or corrupt object: its state and error, with verified_at left as it was.

        `was`: the state the check started from; a sync running beside a plain verify may have
        stored the object since, and its newer word stands.
        """
        self.conn.execute(
            "UPDATE objects SET state = ?, error = ?, updated_at = ? "
            "WHERE id = ? AND (? IS NULL OR state = ?)",
            (state, error, iso(now), object_id, was, was),
        )

    def flush(self) -> None:
        """Write the queued stamps and commit: what was proved so far survives a kill."""
        if self._pending_ok:
            self.conn.executemany(
                "UPDATE objects SET state = 'verified', error = NULL, verified_at = ?, "
                "updated_at = ? WHERE id = ?",
                self._pending_ok,
            )
            self._pending_ok.clear()
        self.conn.commit()

    # --- who an object belongs to ----------------------------------------------------------

    def builds_of(self, object_id: int) -> list[BuildRef]:
        """Builds that need the object: V2 through their repository, depots and the chunks
        those reference; V1 through repository.json, v1_depots and the blobs v1_extents
        point into."""
        rows = self.conn.execute(
            "SELECT product_id, build_id, generation FROM builds WHERE repository_object_id = :o "
            "UNION SELECT b.product_id, b.build_id, b.generation FROM build_depots bd "
            "JOIN builds b ON b.product_id = bd.product_id AND b.build_id = bd.build_id "
            "WHERE bd.manifest_object_id = :o "
            "UNION SELECT b.product_id, b.build_id, b.generation FROM manifest_objects mo "
            "JOIN build_depots bd ON bd.manifest_object_id = mo.manifest_object_id "
            "JOIN builds b ON b.product_id = bd.product_id AND b.build_id = bd.build_id "
            "WHERE mo.object_id = :o AND mo.role != 'sfc_member' "
            "UNION SELECT b.product_id, b.build_id, b.generation FROM v1_depots d "
            "JOIN builds b ON b.product_id = d.product_id AND b.build_id = d.build_id "
            "WHERE d.manifest_object_id = :o OR d.manifest_object_id IN "
            " (SELECT manifest_object_id FROM v1_extents WHERE blob_object_id = :o) "
            "ORDER BY 1, 2",
            {"o": object_id},
        ).fetchall()
        return [BuildRef(*row) for row in rows]

    def manifest_links(self, object_id: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Builds-list links (stored without query strings) for a V2 manifest: those naming it
        (it is their repository manifest) and those of the builds using it as a depot."""

        def links(sql: str) -> tuple[str, ...]:
            rows = self.conn.execute(sql, {"o": object_id}).fetchall()
            # A link with a secret in its path was stored redacted and cannot be used.
            return tuple(sorted({r[0] for r in rows if r[0] and "<redacted>" not in r[0]}))

        return (
            links("SELECT manifest_url FROM builds WHERE repository_object_id = :o"),
            links(
                "SELECT b.manifest_url FROM build_depots bd JOIN builds b "
                "ON b.product_id = bd.product_id AND b.build_id = bd.build_id "
                "WHERE bd.manifest_object_id = :o"
            ),
        )

    def patches_of(self, object_id: int) -> list[PatchPair]:
        """Patches (pairs of builds) that need the object: root, depot manifest or chunk."""
        rows = self.conn.execute(
            "SELECT p.product_id, p.os, p.branch, p.from_build_id, p.to_build_id FROM patches p "
            "WHERE p.root_object_id = :o OR EXISTS (SELECT 1 FROM patch_depots pd "
            " WHERE pd.product_id = p.product_id AND pd.from_build_id = p.from_build_id "
            " AND pd.to_build_id = p.to_build_id AND (pd.manifest_object_id = :o "
            " OR pd.manifest_object_id IN (SELECT manifest_object_id FROM manifest_objects "
            "  WHERE object_id = :o))) ORDER BY 1, 4, 5",
            {"o": object_id},
        ).fetchall()
        return [PatchPair(*row) for row in rows]

    def patch_state(self, pair: PatchPair) -> str | None:
        row = self.conn.execute(
            "SELECT state FROM patches WHERE product_id = ? AND from_build_id = ? "
            "AND to_build_id = ?",
            (pair.product_id, pair.from_build_id, pair.to_build_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def dependencies_of(self, object_id: int) -> list[str]:
        """Dependencies (by id) whose depot needs the object; repository versions by build."""
        rows = self.conn.execute(
            "SELECT 'dependency ' || dependency_id FROM dependency_depots "
            "WHERE manifest_object_id = :o OR manifest_object_id IN "
            " (SELECT manifest_object_id FROM manifest_objects WHERE object_id = :o) "
            "UNION SELECT 'dependency repository ' || build_id FROM dependency_repositories "
            "WHERE manifest_object_id = :o ORDER BY 1",
            {"o": object_id},
        ).fetchall()
        return [str(row[0]) for row in rows]

    def dependency_states(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT dependency_id, state FROM dependency_depots").fetchall()
        return {str(dependency): str(state) for dependency, state in rows}

    def products_of(self, object_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT product_id FROM object_products WHERE object_id = :o "
            "UNION SELECT product_id FROM objects WHERE id = :o AND product_id IS NOT NULL "
            "ORDER BY 1",
            {"o": object_id},
        ).fetchall()
        return [row[0] for row in rows]

    def build_states(self, builds: Sequence[BuildRef]) -> dict[BuildRef, str]:
        states = {}
        for build in builds:
            row = self.conn.execute(
                "SELECT state FROM builds WHERE product_id = ? AND build_id = ?",
                (build.product_id, build.build_id),
            ).fetchone()
            if row is not None:
                states[build] = row[0]
        return states

    # --- the tree --------------------------------------------------------------------------

    def paths_under(self, top: str) -> Iterator[str]:
        """Every recorded path below directory `top`, in path order (the UNIQUE index's)."""
        # '0' is the character after '/': the range is every path starting with "top/".
        for (path,) in self.conn.execute(
            "SELECT path FROM objects WHERE path >= ? AND path < ? ORDER BY path",
            (top + "/", top + "0"),
        ):
            yield path
