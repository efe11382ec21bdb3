"""The dependency phase of `sync` (protocol.md §8): once per run, after every product.

The repository is global: `/dependencies/repository` is asked once per run and every version
seen is kept with its build id. Its manifest and the depot manifests of the dependencies to
archive go to v2/dependencies/meta, their chunks to v2/dependencies/store through open_link
(unsigned, no product segment).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import BinaryIO

from galaxy_archive.errors import ManifestError, UpstreamError
from galaxy_archive.fetch.sources import dependency_chunk_sources, dependency_meta_sources
from galaxy_archive.models.decoding import decode_json, decode_meta, read_bounded
from galaxy_archive.models.dependencies import (
    DependencyDepot,
    DependencyManifest,
    DependencyMode,
    parse_dependency_manifest,
    parse_repository_answer,
    select_dependencies,
)
from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import DepotManifest, parse_depot_manifest
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import NewObject
from galaxy_archive.state.dependency_records import DependencyRecords
from galaxy_archive.sync.context import SyncContext
from galaxy_archive.sync.phase import Phase, chunk_references, parse_check

log = logging.getLogger(__name__)
WHAT = "dependencies repository"


def read_dependency_manifest(reader: BinaryIO, what: str) -> DependencyManifest:
    return parse_dependency_manifest(decode_meta(read_bounded(reader, what), what), what)


def read_dependency_depot(reader: BinaryIO, what: str) -> DepotManifest:
    return parse_depot_manifest(decode_meta(read_bounded(reader, what), what), what)


class DependencyPhase(Phase):
    """Archive the dependency repository and the dependencies to keep; once per run."""

    def __init__(self, context: SyncContext) -> None:
        super().__init__(context)
        self.records = DependencyRecords(context.db)

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
            self.report.dependencies["complete"] = self.records.update_states(self.clock())
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
        now = self.clock()
        object_id = self.db.ensure_objects(
            [NewObject(ObjectKind.DEP_META, path, answer.manifest_md5)], now
        )[path]
        repository_id = self.records.record_repository(answer, reply.body, object_id, now)
        self.db.conn.commit()
        what = f"dependency repository manifest {answer.manifest_md5} (build {answer.build_id})"
        sources = dependency_meta_sources(self.api, answer.manifest_md5, answer.manifest_url)
        check = parse_check(read_dependency_manifest, what)
        row = self.context.recorded(path)
        self.context.fetch([self.context.task_unless_verified(row, sources, what, check=check)])
        if not self.context.is_verified(path):
            return None  # the downloader reported why
        manifest = self.context.read_stored(path, read_dependency_manifest, what)
        if manifest is None:
            return None
        self.context.report_skipped(manifest.skipped)
        depots = manifest.depots
        self.records.record_depots(repository_id, depots)
        return repository_id, depots

    def _want(self, repository_id: int, depots: Sequence[DependencyDepot]) -> None:
        paths = {d.manifest: cas_path(ObjectKind.DEP_META, d.manifest) for d in depots}
        ids = self.db.ensure_objects(
            [NewObject(ObjectKind.DEP_META, path, md5) for md5, path in paths.items()],
            self.clock(),
        )
        for depot in depots:
            self.records.mark_wanted(repository_id, depot, ids[paths[depot.manifest]])
        self.db.conn.commit()

    def _fetch_depot_manifests(self) -> None:
        tasks = []
        for row, dependency_id in self.records.wanted_manifests():
            if row.md5 is None:
                continue
            what = f"dependency depot manifest {row.md5} ({dependency_id})"
            sources = dependency_meta_sources(self.api, row.md5)
            check = parse_check(read_dependency_depot, what)
            tasks.append(self.context.task_unless_verified(row, sources, what, check=check))
        self.context.fetch(tasks)

    def _index_depots(self) -> None:
        """Record each newly fetched dependency depot manifest's chunks."""
        now = self.clock()
        for row, dependency_id in self.records.wanted_manifests():
            if row.state != ObjectState.VERIFIED or self.db.is_indexed(row.id):
                continue
            what = f"dependency depot manifest {row.md5} ({dependency_id})"
            manifest = self.context.read_stored(row.path, read_dependency_depot, what)
            if manifest is None:
                continue
            self.context.report_skipped(manifest.skipped)
            # The same roles as game depots: small-files members are optional (4.3).
            roles = chunk_references(manifest, ObjectKind.DEP_STORE)
            ids = self.db.ensure_objects([obj for _, obj in roles], now)
            references = [(ids[obj.path], role) for role, obj in roles]
            self.db.index_manifest(row.id, references, [], now)
        self.db.conn.commit()

    def _fetch_chunks(self) -> None:
        pending = self.records.pending_chunks()
        if self.options.is_dry_run:
            self.report.dependencies["planned_objects"] = len(pending)
            self.report.dependencies["planned_bytes"] = sum(row.size or 0 for row, _ in pending)
            return
        self.context.fetch(
            (
                self.context.task_unless_verified(
                    row,
                    dependency_chunk_sources(self.api, row.md5 or ""),
                    f"dependency chunk {row.md5}",
                )
                for row, _ in pending
            ),
            optional={row.id for row, is_optional in pending if is_optional},
        )
