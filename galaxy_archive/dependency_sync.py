"""The dependency phase of `sync` (protocol.md §8): once per run, after every product.

The repository is global: `/dependencies/repository` is asked once per run and every version
seen is kept with its build id. Its manifest and the depot manifests of the dependencies to
archive go to v2/dependencies/meta, their chunks to v2/dependencies/store through open_link
(unsigned, no product segment).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from galaxy_archive.dependencies import (
    DependencyDepot,
    DependencyMode,
    RepositoryAnswer,
    parse_dependency_manifest,
    parse_repository_answer,
    select_dependencies,
)
from galaxy_archive.downloader import FetchTask
from galaxy_archive.errors import ManifestError, UpstreamError
from galaxy_archive.http_client import redact_url
from galaxy_archive.layout import ObjectKind, cas_path
from galaxy_archive.manifests import DepotManifest, decode_json, decode_meta, parse_depot_manifest
from galaxy_archive.sources import dependency_chunk_sources, dependency_meta_sources
from galaxy_archive.statedb import NewObject, ObjectRow, StateDB, iso

if TYPE_CHECKING:
    from galaxy_archive.sync import Syncer

log = logging.getLogger(__name__)
WHAT = "dependencies repository"


def read_dependency_manifest(path: Path, what: str) -> tuple[DependencyDepot, ...]:
    return parse_dependency_manifest(decode_meta(path.read_bytes(), what), what)


def read_dependency_depot(path: Path, what: str) -> DepotManifest:
    return parse_depot_manifest(decode_meta(path.read_bytes(), what), what)


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
        body_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self.conn.execute(
            "INSERT OR IGNORE INTO json_bodies (md5, body) VALUES (?, ?)",
            (body_md5, body.decode("utf-8", "replace")),
        )
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
            seen.setdefault(row[0], (_object_row(row[:7]), row[7]))
        return list(seen.values())

    def pending_chunks(self) -> list[tuple[ObjectRow, bool]]:
        """Chunks of the wanted dependency depots not verified: (row, is_optional).

        A small-files member chunk the CDN did not have is not asked for again (4.3).
        """
        pending: dict[int, tuple[ObjectRow, bool]] = {}
        for row in self.conn.execute(
            "SELECT o.id, o.kind, o.path, o.md5, o.size, o.state, o.product_id, mo.role "
            "FROM dependency_depots d "
            "JOIN manifest_objects mo ON mo.manifest_object_id = d.manifest_object_id "
            "JOIN objects o ON o.id = mo.object_id WHERE o.state != 'verified' "
            "AND NOT (mo.role = 'sfc_member' AND o.state = 'absent_upstream')"
        ):
            is_optional = row[7] == "sfc_member" and pending.get(row[0], (None, True))[1]
            pending[row[0]] = (_object_row(row[:7]), is_optional)
        return list(pending.values())

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
            missing = self.conn.execute(
                "SELECT count(*) FROM (SELECT :m AS id UNION SELECT object_id "
                " FROM manifest_objects WHERE manifest_object_id = :m AND role != 'sfc_member'"
                ") needed "
                "LEFT JOIN objects o ON o.id = needed.id "
                "WHERE o.id IS NULL OR o.state != 'verified'",
                {"m": manifest_id},
            ).fetchone()[0]
            is_complete = missing == 0 and self.db.is_indexed(manifest_id)
            complete += is_complete
            self.conn.execute(
                "UPDATE dependency_depots SET state = ?, "
                "completed_at = CASE WHEN ? THEN coalesce(completed_at, ?) END "
                "WHERE manifest_object_id = ?",
                (
                    "complete" if is_complete else "incomplete",
                    is_complete,
                    iso(now),
                    manifest_id,
                ),
            )
        return complete


def _checker(reader: Callable[[Path, str], object], what: str) -> Callable[[Path], None]:
    """A downloader check: the bytes must parse (else they never reach the tree)."""

    def check(path: Path) -> None:
        reader(path, what)

    return check


def _object_row(row: Sequence[object]) -> ObjectRow:
    object_id, kind, path, md5, size, state, product_id = row
    assert isinstance(object_id, int) and isinstance(path, str) and isinstance(state, str)
    return ObjectRow(
        id=object_id,
        kind=ObjectKind(str(kind)),
        path=path,
        md5=md5 if isinstance(md5, str) else None,
        size=size if isinstance(size, int) else None,
        state=state,
        product_id=product_id if isinstance(product_id, str) else None,
    )


class DependencyPhase:
    """Archive the dependency repository and the dependencies to keep; once per run."""

    def __init__(self, syncer: Syncer) -> None:
        self.syncer = syncer
        self.api = syncer.api
        self.db = syncer.db
        self.store = syncer.store
        self.options = syncer.options
        self.report = syncer.report
        self.records = DependencyRecords(syncer.db)

    def run(self, product_ids: Sequence[str], v2_names: Collection[str]) -> None:
        """:param v2_names: the dependencies the generation-2 builds of this run name."""
        mode = self.options.dependencies
        if mode is DependencyMode.NONE:
            return
        v1_redists: list[str] = []
        if 1 in self.options.generations:
            v1_redists = self.records.v1_redists(
                product_ids, self.options.os, self.options.build_ids
            )
        if mode is DependencyMode.REFERENCED and not v2_names and not v1_redists:
            log.info("no build names a dependency; dependency repository not asked")
            return
        repository = self._repository()
        if repository is not None:
            repository_id, depots = repository
            selection = select_dependencies(depots, mode, v2_names, v1_redists)
            for name in selection.unknown:
                log.warning("dependency %s is named by a build but not in the repository", name)
            self._want(repository_id, selection.depots)
            self.report.dependencies["selected"] = len(selection.depots)
        self._fetch_depot_manifests()
        self._index_depots()
        self._fetch_chunks()
        if not self.options.is_dry_run:
            self.report.dependencies["complete"] = self.records.update_states(self.syncer.clock())
        self.db.conn.commit()

    def _repository(self) -> tuple[int, tuple[DependencyDepot, ...]] | None:
        """Ask for the current repository, record it, fetch and parse its manifest."""
        try:
            reply = self.api.dependencies_repository()
        except UpstreamError as exc:
            self.report.problem(str(exc))
            return None
        if reply.status == 404:
            # GOG always has one; a mirror or a test world may not. Nothing to archive.
            log.warning("%s: none upstream (HTTP 404)", WHAT)
            return None
        if reply.status != 200:
            self.report.problem(f"{WHAT}: HTTP {reply.status}")
            return None
        try:
            answer = parse_repository_answer(decode_json(reply.body, WHAT), WHAT)
        except ManifestError as exc:
            self.report.problem(str(exc))
            return None
        self.report.dependencies["repository_build_id"] = answer.build_id
        path = cas_path(ObjectKind.DEP_META, answer.manifest_md5)
        now = self.syncer.clock()
        object_id = self.db.ensure_objects(
            [NewObject(ObjectKind.DEP_META, path, answer.manifest_md5)], now
        )[path]
        repository_id = self.records.record_repository(answer, reply.body, object_id, now)
        self.db.conn.commit()
        what = f"dependency repository manifest {answer.manifest_md5} (build {answer.build_id})"
        row = self.db.object_by_path(path)
        if row is None or row.state != "verified":
            self.syncer.fetch(
                [
                    FetchTask(
                        object_id,
                        ObjectKind.DEP_META,
                        path,
                        answer.manifest_md5,
                        None,
                        dependency_meta_sources(self.api, answer.manifest_md5, answer.manifest_url),
                        what,
                        check=_checker(read_dependency_manifest, what),
                    )
                ]
            )
            row = self.db.object_by_path(path)
        if row is None or row.state != "verified":
            return None  # the downloader reported why
        try:
            depots = read_dependency_manifest(self.store.path(path), what)
        except (ManifestError, OSError) as exc:
            self.report.problem(f"{what}: {exc}")
            return None
        self.records.record_depots(repository_id, depots)
        return repository_id, depots

    def _want(self, repository_id: int, depots: Sequence[DependencyDepot]) -> None:
        paths = {d.manifest: cas_path(ObjectKind.DEP_META, d.manifest) for d in depots}
        ids = self.db.ensure_objects(
            [NewObject(ObjectKind.DEP_META, path, md5) for md5, path in paths.items()],
            self.syncer.clock(),
        )
        for depot in depots:
            self.records.mark_wanted(repository_id, depot, ids[paths[depot.manifest]])
        self.db.conn.commit()

    def _fetch_depot_manifests(self) -> None:
        tasks = []
        for row, dependency_id in self.records.wanted_manifests():
            if row.state == "verified" or row.md5 is None:
                continue
            what = f"dependency depot manifest {row.md5} ({dependency_id})"
            tasks.append(
                FetchTask(
                    row.id,
                    ObjectKind.DEP_META,
                    row.path,
                    row.md5,
                    None,
                    dependency_meta_sources(self.api, row.md5),
                    what,
                    check=_checker(read_dependency_depot, what),
                )
            )
        self.syncer.fetch(tasks)

    def _index_depots(self) -> None:
        """Record each newly fetched dependency depot manifest's chunks."""
        now = self.syncer.clock()
        for row, dependency_id in self.records.wanted_manifests():
            if row.state != "verified" or self.db.is_indexed(row.id):
                continue
            what = f"dependency depot manifest {row.md5} ({dependency_id})"
            try:
                manifest = read_dependency_depot(self.store.path(row.path), what)
            except (ManifestError, OSError) as exc:
                self.report.problem(f"{what}: {exc}")
                continue
            # The same roles as game depots: small-files members are optional (4.3).
            roles: dict[str, tuple[str, NewObject]] = {}
            for role, refs in (
                ("sfc_member", manifest.sfc_member_chunks()),
                ("chunk", manifest.chunks()),
                ("sfc", manifest.sfc_chunks),
            ):
                for c in refs:
                    roles[c.compressed_md5] = (
                        role,
                        NewObject(
                            ObjectKind.DEP_STORE,
                            cas_path(ObjectKind.DEP_STORE, c.compressed_md5),
                            c.compressed_md5,
                            c.compressed_size,
                            c.md5,
                            c.size,
                        ),
                    )
            ids = self.db.ensure_objects([obj for _, obj in roles.values()], now)
            references = [(ids[obj.path], role) for role, obj in roles.values()]
            self.db.index_manifest(row.id, references, [], now)
        self.db.conn.commit()

    def _fetch_chunks(self) -> None:
        pending = self.records.pending_chunks()
        if self.options.is_dry_run:
            self.report.dependencies["planned_objects"] = len(pending)
            self.report.dependencies["planned_bytes"] = sum(row.size or 0 for row, _ in pending)
            return
        self.syncer.fetch(
            [
                FetchTask(
                    row.id,
                    row.kind,
                    row.path,
                    row.md5,
                    row.size,
                    dependency_chunk_sources(row.md5 or ""),
                    f"dependency chunk {row.md5}",
                )
                for row, _ in pending
            ],
            optional={row.id for row, is_optional in pending if is_optional},
        )
