"""State DB records of dependencies (migration 0003): repository versions and their depots.

Used by the dependency phase of `sync` and by `status`. Only the thread that owns the DB calls
it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from galaxy_archive.models.dependencies import DependencyDepot, RepositoryAnswer
from galaxy_archive.models.object_state import BuildState
from galaxy_archive.redact import redact_url
from galaxy_archive.state.db import ObjectRow, StateDB, object_row
from galaxy_archive.state.needs import pending_dependency_chunks, unverified_dependency_objects
from galaxy_archive.state.stamps import iso


class DependencyRecords:
    """The dependency_repositories and dependency_depots tables (migration 0003)."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.conn = db.conn

    def v1_redists(
        self, product_ids: Collection[str], os_names: Collection[str], build_ids: Collection[str]
    ) -> list[str]:
        """Redist ids of the products' generation-1 builds (the V1 phase's v1_redists table).

        That table comes with the V1 phase; without it there is nothing to map.
        """
        has_table = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'v1_redists'"
        ).fetchone()
        if has_table is None or not product_ids:
            return []
        products = ",".join("?" * len(product_ids))
        oses = ",".join("?" * len(os_names))
        sql = (
            "SELECT DISTINCT r.redist FROM v1_redists r JOIN builds b "
            "ON b.product_id = r.product_id AND b.build_id = r.build_id "
            f"WHERE r.product_id IN ({products}) AND b.os IN ({oses})"
        )
        params = [*product_ids, *os_names]
        if build_ids:
            sql += f" AND b.build_id IN ({','.join('?' * len(build_ids))})"
            params += list(build_ids)
        return sorted(row[0] for row in self.conn.execute(sql, params) if isinstance(row[0], str))

    def record_repository(
        self, answer: RepositoryAnswer, body: bytes, manifest_object_id: int, now: float
    ) -> int:
        """Record a repository version (first/last seen kept) and its raw answer; its id."""
        body_md5 = self.db.save_json_body(body)
        self.conn.execute(
            "INSERT INTO dependency_repositories (build_id, generation, manifest_md5, "
            "manifest_object_id, manifest_url, body_md5, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (build_id, manifest_md5) DO UPDATE SET "
            "last_seen = excluded.last_seen, body_md5 = excluded.body_md5, "
            "manifest_url = excluded.manifest_url",
            (
                answer.build_id,
                answer.generation,
                answer.manifest_md5,
                manifest_object_id,
                redact_url(answer.manifest_url),
                body_md5,
                iso(now),
                iso(now),
            ),
        )
        row = self.conn.execute(
            "SELECT id FROM dependency_repositories WHERE build_id = ? AND manifest_md5 = ?",
            (answer.build_id, answer.manifest_md5),
        ).fetchone()
        return int(row[0])

    def record_depots(self, repository_id: int, depots: Sequence[DependencyDepot]) -> None:
        """Every dependency the version lists, archived or not."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO dependency_depots (repository_id, dependency_id, "
            "manifest_md5, readable_name, executable_path, executable_arguments, is_internal, "
            "languages, size, compressed_size, signature, item) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    repository_id,
                    d.dependency_id,
                    d.manifest,
                    d.readable_name,
                    d.executable_path,
                    d.executable_arguments,
                    int(d.is_internal),
                    json.dumps(list(d.languages)),
                    d.size,
                    d.compressed_size,
                    d.signature,
                    json.dumps(d.item, sort_keys=True),
                )
                for d in depots
            ],
        )

    def mark_wanted(self, repository_id: int, depot: DependencyDepot, object_id: int) -> None:
        self.conn.execute(
            "UPDATE dependency_depots SET manifest_object_id = ?, "
            "state = CASE WHEN state = 'listed' THEN 'pending' ELSE state END "
            "WHERE repository_id = ? AND dependency_id = ? AND manifest_md5 = ?",
            (object_id, repository_id, depot.dependency_id, depot.manifest),
        )

    def wanted_manifests(self) -> list[tuple[ObjectRow, str]]:
        """Depot manifests of every dependency to archive, in any version: (row, dep id)."""
        rows = self.conn.execute(
            "SELECT DISTINCT o.id, o.kind, o.path, o.md5, o.size, o.state, o.product_id, "
            "d.dependency_id FROM dependency_depots d JOIN objects o "
            "ON o.id = d.manifest_object_id ORDER BY o.id"
        ).fetchall()
        seen: dict[int, tuple[ObjectRow, str]] = {}
        for row in rows:
            seen.setdefault(row[0], (object_row(row[:7]), row[7]))
        return list(seen.values())

    def pending_chunks(self) -> list[tuple[ObjectRow, bool]]:
        """Chunks of the wanted dependency depots not verified: (row, is_optional)."""
        return pending_dependency_chunks(self.db)

    def summary(self) -> dict[str, Any]:
        """For `status`: repository versions, the newest, dependencies known and archived."""
        versions, latest = self.conn.execute(
            "SELECT count(*), (SELECT build_id FROM dependency_repositories "
            "ORDER BY last_seen DESC, id DESC LIMIT 1) FROM dependency_repositories"
        ).fetchone()
        known, archived = self.conn.execute(
            "SELECT count(DISTINCT dependency_id), count(DISTINCT CASE WHEN state = 'complete' "
            "THEN manifest_object_id END) FROM dependency_depots"
        ).fetchone()
        return {
            "repository_versions": versions,
            "latest_build_id": latest,
            "dependencies": known,
            "depots_archived": archived,
        }

    def update_states(self, now: float) -> int:
        """complete = the depot manifest is indexed and it and its chunks are verified."""
        complete = 0
        for manifest_id in [
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT manifest_object_id FROM dependency_depots "
                "WHERE manifest_object_id IS NOT NULL"
            )
        ]:
            missing = unverified_dependency_objects(self.db, manifest_id)
            is_complete = missing == 0 and self.db.is_indexed(manifest_id)
            complete += is_complete
            self.conn.execute(
                "UPDATE dependency_depots SET state = ?, "
                "completed_at = CASE WHEN ? THEN coalesce(completed_at, ?) END "
                "WHERE manifest_object_id = ?",
                (
                    BuildState.COMPLETE if is_complete else BuildState.INCOMPLETE,
                    is_complete,
                    iso(now),
                    manifest_id,
                ),
            )
        return complete
