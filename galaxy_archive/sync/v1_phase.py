"""`sync` of generation-1 builds (protocol.md §6): repository.json, depot manifests, blobs.

Per product, after the V2 phases, in phases like them: every selected gen-1 build's
repository.json; every depot manifest it lists (tried beside repository.json, then under the
depot's `gameIDs[0]`), stored verbatim beside repository.json; their file records, directory
and symlink records recorded in the DB; then every blob (`main.bin`) those records point
into, fetched by parallel ranges (v1_blobs) and checked record by record before the rename.
Manifests are plain JSON of unknown MD5: the MD5 measured while storing is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from galaxy_archive.errors import ManifestError, StorageError
from galaxy_archive.fetch.sources import v1_manifest_sources
from galaxy_archive.fetch.tasks import FetchTask, Outcome
from galaxy_archive.fetch.v1_download import download_blob
from galaxy_archive.models.decoding import read_bounded
from galaxy_archive.models.layout import ObjectKind, v1_blob_path, v1_manifest_path
from galaxy_archive.models.manifests import BuildListing
from galaxy_archive.models.v1_manifests import (
    DEFAULT_BLOB_NAME,
    REPOSITORY_NAME,
    BlobRef,
    DepotManifestV1,
    RepositoryV1,
    V1DepotRef,
    V1File,
    read_depot_manifest_v1,
    read_stored_depot_manifest_v1,
    read_stored_repository_v1,
)
from galaxy_archive.models.v1_ranges import RangeSet
from galaxy_archive.report import human_bytes
from galaxy_archive.state.db import NewObject
from galaxy_archive.state.needs import update_v1_build_states
from galaxy_archive.state.v1_state import (
    NewBlob,
    ensure_blobs,
    index_v1_manifest,
    mark_indexed,
    pending_v1_blobs,
    record_v1_depot,
    record_v1_redists,
)
from galaxy_archive.sync.phase import Phase, parse_check

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _DepotManifest:
    object_id: int
    path: str
    build: BuildListing
    depot: V1DepotRef


class V1Phases(Phase):
    """The generation-1 phases of one product's sync, run by the Syncer after the V2 ones.

    Uses the run's context (API, DB, store, downloader, report) and records results through
    it, so V1 objects are counted, reported and marked exactly like V2 ones.
    """

    def mirror(self, product_id: str, builds: Sequence[BuildListing]) -> None:
        """Mirror the builds, then record their states (stopping cleanly between steps)."""
        repositories = self._fetch_repositories(product_id, builds)
        manifests = self._fetch_depot_manifests(product_id, repositories)
        self._index_depot_manifests(product_id, manifests)
        # Only the blobs of the depots selected now (--no-dlc is honoured even for depots an
        # earlier run recorded); a build is complete once all it has recorded are here.
        if not self.context.stop.is_set():
            self._fetch_blobs(product_id, [m.object_id for m in manifests])
        if not self.options.is_dry_run:
            update_v1_build_states(self.db, product_id, [b.build_id for b in builds], self.clock())
        self.db.conn.commit()

    # --- repository.json -------------------------------------------------------------------

    def _fetch_repositories(
        self, product_id: str, builds: Sequence[BuildListing]
    ) -> dict[str, tuple[BuildListing, RepositoryV1]]:
        """Fetch (or find) each build's repository.json; build id -> (build, parsed)."""
        paths: dict[str, str] = {}
        for build in builds:
            try:
                paths[build.build_id] = v1_manifest_path(
                    product_id, build.os, _legacy(build), REPOSITORY_NAME
                )
            except ManifestError as exc:
                self.context.build_problem(product_id, build.build_id, str(exc))
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.V1_MANIFEST, p, None, product_id=product_id)
                for p in paths.values()
            ],
            self.clock(),
        )
        tasks: list[FetchTask | None] = []
        for build in builds:
            if build.build_id not in paths:
                continue
            path = paths[build.build_id]
            self.db.set_repository(product_id, build.build_id, ids[path])
            tasks.append(self._repository_task(product_id, build, path))
        self.context.fetch(tasks)
        repositories: dict[str, tuple[BuildListing, RepositoryV1]] = {}
        for build in builds:
            if build.build_id not in paths:
                continue
            path = paths[build.build_id]
            what = f"V1 repository {path} (build {build.build_id})"
            if not self.context.is_verified(path):
                self.context.build_problem(product_id, build.build_id, f"{what} is not available")
                continue
            repository = self.context.read_stored(
                path,
                read_stored_repository_v1,
                what,
                partial(self.context.build_problem, product_id, build.build_id),
            )
            if repository is None:
                continue
            self.context.report_skipped(repository.skipped, [(product_id, build.build_id)])
            record_v1_redists(self.db, product_id, build.build_id, repository.redists)
            repositories[build.build_id] = (build, repository)
            self.context.name_products(product_id, repository.product_ids)
        return repositories

    def _repository_task(self, product_id: str, build: BuildListing, path: str) -> FetchTask | None:
        what = f"V1 repository {path} (build {build.build_id})"
        sources = v1_manifest_sources(
            self.api,
            product_id,
            build.os,
            _legacy(build),
            REPOSITORY_NAME,
            repository_urls=build.manifest_urls,
        )
        check = parse_check(read_stored_repository_v1, what)
        row = self.context.recorded(path)
        return self.context.task_unless_verified(row, sources, what, product_id, check=check)

    # --- depot manifests -------------------------------------------------------------------

    def _fetch_depot_manifests(
        self, product_id: str, repositories: dict[str, tuple[BuildListing, RepositoryV1]]
    ) -> list[_DepotManifest]:
        """Fetch the depot manifests of every repository, stored beside its repository.json
        even when found under the DLC's directory."""
        wanted: list[tuple[BuildListing, V1DepotRef, str]] = []
        for build, repository in repositories.values():
            for depot in repository.depots:
                if self.options.include_dlc or depot.owner(product_id) == product_id:
                    path = v1_manifest_path(product_id, build.os, _legacy(build), depot.manifest)
                    wanted.append((build, depot, path))
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.V1_MANIFEST, path, None, product_id=depot.owner(product_id))
                for _, depot, path in wanted
            ],
            self.clock(),
        )
        manifests: dict[int, _DepotManifest] = {}
        tasks: list[FetchTask | None] = []
        for build, depot, path in wanted:
            object_id = ids[path]
            record_v1_depot(self.db, product_id, build.build_id, object_id, depot)
            if object_id not in manifests:
                manifests[object_id] = _DepotManifest(object_id, path, build, depot)
                tasks.append(self._depot_manifest_task(product_id, build, depot, path))
        for build, _ in repositories.values():  # its depots are recorded: builds can complete
            row = self.db.object_by_path(
                v1_manifest_path(product_id, build.os, _legacy(build), REPOSITORY_NAME)
            )
            if row is not None:
                mark_indexed(self.db, row.id, self.clock())
        self.context.fetch(tasks)
        return list(manifests.values())

    def _depot_manifest_task(
        self, product_id: str, build: BuildListing, depot: V1DepotRef, path: str
    ) -> FetchTask | None:
        owner = depot.owner(product_id)
        what = f"V1 depot manifest {path} (product {owner})"
        sources = v1_manifest_sources(
            self.api,
            product_id,
            build.os,
            _legacy(build),
            depot.manifest,
            depot_product_id=owner,
            repository_urls=build.manifest_urls,
        )
        check = parse_check(read_stored_depot_manifest_v1, what)
        row = self.context.recorded(path)
        return self.context.task_unless_verified(row, sources, what, owner, check=check)

    def _index_depot_manifests(self, product_id: str, manifests: Sequence[_DepotManifest]) -> None:
        """Record each newly fetched depot manifest's files, blobs and other records."""
        for manifest in manifests:
            if self.db.is_indexed(manifest.object_id) or not self.context.is_verified(
                manifest.path
            ):
                continue
            what = f"V1 depot manifest {manifest.path}"
            try:
                with self.store.open_read(manifest.path) as reader:
                    raw = read_bounded(reader, what)
                parsed = read_depot_manifest_v1(raw, what)
                build = (product_id, manifest.build.build_id)
                self.context.report_skipped(parsed.skipped, [build])
                self._index(product_id, manifest, parsed)
            except (ManifestError, StorageError, OSError) as exc:
                self.context.build_problem(product_id, manifest.build.build_id, f"{what}: {exc}")
        self.db.conn.commit()

    def _index(self, product_id: str, manifest: _DepotManifest, parsed: DepotManifestV1) -> None:
        build = manifest.build
        default_blob = BlobRef(manifest.depot.owner(product_id), DEFAULT_BLOB_NAME)
        with_data = [f for f in parsed.files if f.size > 0]
        blob_paths: dict[V1File, str] = {}
        needs: dict[str, tuple[BlobRef, int]] = {}
        for file in with_data:
            blob = file.blob or default_blob
            path = v1_blob_path(blob.product_id, build.os, _legacy(build), blob.name)
            blob_paths[file] = path
            needed = max(needs.get(path, (blob, 0))[1], file.offset + file.size)
            needs[path] = (blob, needed)
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.V1_BLOB, path, None, product_id=blob.product_id)
                for path, (blob, _) in needs.items()
            ],
            self.clock(),
        )
        ensure_blobs(
            self.db,
            [
                NewBlob(ids[path], blob.product_id, build.os, _legacy(build), blob.name, needed)
                for path, (blob, needed) in needs.items()
            ],
            self.clock(),
        )
        for file in with_data:
            if file.md5 is None:
                log.warning(
                    "V1 depot manifest %s: %s has no hash; its bytes are kept in %s, proven only "
                    "by the digest of the blob's bytes outside the hashed files",
                    manifest.path,
                    file.path,
                    blob_paths[file],
                )
        index_v1_manifest(
            self.db,
            manifest.object_id,
            [(file, ids[blob_paths[file]]) for file in with_data if file.md5 is not None],
            parsed.items,
            [f for f in parsed.files if f.size == 0],
            self.clock(),
        )

    # --- blobs -----------------------------------------------------------------------------

    def _fetch_blobs(self, product_id: str, manifest_ids: Sequence[int]) -> None:
        pending = pending_v1_blobs(self.db, manifest_ids)
        if self.options.is_dry_run:
            product = self.report.product(product_id)
            product.planned_objects += len(pending)
            product.planned_bytes += sum(b.total_size or b.min_size for b in pending)
            return
        missing = sum((b.total_size or b.min_size) - RangeSet(b.done).covered for b in pending)
        if not self.context.has_room_for(product_id, missing):
            return
        self.context.on_planned(len(pending), missing, 0)
        downloader = self.context.downloader
        for blob in pending:
            if self.context.stop.is_set():
                return
            log.info(
                "fetching %s (%s) by ranges",
                blob.path,
                human_bytes(blob.total_size or blob.min_size),
            )
            result = download_blob(
                self.db,
                self.store,
                downloader,
                blob.object_id,
                range_size=self.options.v1_range_size,
                clock=self.clock,
            )
            self.context.record(result)
            self.db.conn.commit()
            if result.outcome is Outcome.STOPPED:
                return


def _legacy(build: BuildListing) -> int:
    if build.legacy_build_id is None:  # the builds-list parser requires it for generation 1
        raise ManifestError(f"build {build.build_id}: generation 1 without legacy_build_id")
    return build.legacy_build_id
