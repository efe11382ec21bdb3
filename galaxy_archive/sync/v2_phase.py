"""The generation-2 game phase of `sync` (protocol.md §3-4): manifests, then chunks.

Per product, for its selected gen-2 builds, each step a parallel batch: every build's
repository manifest; every depot manifest those list (DLC depots unless --no-dlc, and the
offline depot); their chunks and small-files members recorded in the DB once, when a depot
manifest is first stored; then every chunk the DB says is not verified yet. A later sync plans
from SQL alone, so a no-op sync is cheap. Build states are the Syncer's to update, after the
V1 phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from galaxy_archive.errors import ManifestError
from galaxy_archive.fetch.sources import chunk_sources, meta_sources, sibling_meta_urls
from galaxy_archive.fetch.tasks import FetchTask
from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import (
    BuildListing,
    DepotManifest,
    DepotRef,
    RepositoryV2,
    read_depot,
    read_repository,
)
from galaxy_archive.state.db import NewObject, ObjectRow
from galaxy_archive.state.needs import pending_depot_objects
from galaxy_archive.sync.phase import Phase, chunk_references, parse_check


class V2Phase(Phase):
    """Mirror one product's generation-2 builds: their manifests and chunks."""

    def run(self, product_id: str, builds: Sequence[BuildListing]) -> dict[str, RepositoryV2]:
        """Fetch what the builds need; return build id -> repository manifest (those had)."""
        repositories = self._fetch_repositories(product_id, builds)
        depots = self._fetch_depot_manifests(product_id, builds, repositories)
        self._index_depots(product_id, depots)
        self.context.check_stop()
        self._fetch_chunks(product_id, [b.build_id for b in builds if b.build_id in repositories])
        return repositories

    # --- repository manifests --------------------------------------------------------------

    def _fetch_repositories(
        self, product_id: str, builds: Sequence[BuildListing]
    ) -> dict[str, RepositoryV2]:
        """Fetch (or find) each build's repository manifest; build id -> parsed manifest."""
        wanted: dict[str, tuple[BuildListing, str]] = {}
        for build in builds:
            try:
                md5 = build.repository_md5
            except ManifestError as exc:
                self.context.build_problem(product_id, build.build_id, str(exc))
                continue
            wanted[build.build_id] = (build, md5)
        paths = {md5: cas_path(ObjectKind.META, md5) for _, md5 in wanted.values()}
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.META, path, md5, product_id=product_id)
                for md5, path in paths.items()
            ],
            self.clock(),
        )
        tasks: dict[str, FetchTask | None] = {}
        for build, md5 in wanted.values():
            self.db.set_repository(product_id, build.build_id, ids[paths[md5]])
            if md5 not in tasks:
                what = f"repository manifest {md5} (build {build.build_id})"
                sources = meta_sources(self.api, md5, *build.manifest_urls)
                check = parse_check(read_repository, what)
                row = self.context.recorded(paths[md5])
                tasks[md5] = self.context.task_unless_verified(
                    row, sources, what, product_id, check=check
                )
        self.context.fetch(tasks.values())
        self.context.check_stop()  # manifests not fetched because we stop are no problem
        repositories: dict[str, RepositoryV2] = {}
        for build, md5 in wanted.values():
            repository = self._read_repository(product_id, build, md5, paths[md5])
            if repository is not None:
                self.context.report_skipped(repository.skipped, [(product_id, build.build_id)])
                repositories[build.build_id] = repository
                self.context.name_products(product_id, repository.product_ids)
        return repositories

    def _read_repository(
        self, product_id: str, build: BuildListing, md5: str, path: str
    ) -> RepositoryV2 | None:
        """The stored repository manifest of `build`, or None (the build's problem, recorded)."""
        what = f"repository manifest {md5} (build {build.build_id})"
        if not self.context.is_verified(path):
            self.context.build_problem(product_id, build.build_id, f"{what} is not available")
            return None
        return self.context.read_stored(
            path,
            read_repository,
            what,
            partial(self.context.build_problem, product_id, build.build_id),
        )

    # --- depot manifests -------------------------------------------------------------------

    def _selected_depots(self, product_id: str, repository: RepositoryV2) -> list[DepotRef]:
        depots = [
            d for d in repository.depots if self.options.include_dlc or d.product_id == product_id
        ]
        if repository.offline_depot is not None:
            depots.append(repository.offline_depot)
        return depots

    def _fetch_depot_manifests(
        self,
        product_id: str,
        builds: Sequence[BuildListing],
        repositories: dict[str, RepositoryV2],
    ) -> dict[int, DepotRef]:
        """Fetch every depot manifest the builds use; manifest object id -> depot."""
        per_build = {
            build.build_id: self._selected_depots(product_id, repositories[build.build_id])
            for build in builds
            if build.build_id in repositories
        }
        refs = [d for depots in per_build.values() for d in depots]
        paths = {d.manifest: cas_path(ObjectKind.META, d.manifest) for d in refs}
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.META, paths[d.manifest], d.manifest, product_id=d.product_id)
                for d in refs
            ],
            self.clock(),
        )
        by_object: dict[int, DepotRef] = {}
        tasks: dict[int, FetchTask | None] = {}
        links = {build.build_id: build.manifest_urls for build in builds}
        for build_id, depots in per_build.items():
            for depot in depots:
                object_id = ids[paths[depot.manifest]]
                by_object.setdefault(object_id, depot)
                self.db.record_build_depot(product_id, build_id, object_id, _depot_row(depot))
                if object_id not in tasks:
                    row = self.context.recorded(paths[depot.manifest])
                    tasks[object_id] = self._depot_manifest_task(row, depot, links[build_id])
        self.context.fetch(tasks.values())
        return by_object

    def _depot_manifest_task(
        self, row: ObjectRow, depot: DepotRef, build_links: tuple[str, ...]
    ) -> FetchTask | None:
        what = f"depot manifest {depot.manifest} (product {depot.product_id})"
        siblings = sibling_meta_urls(build_links, depot.manifest)
        sources = meta_sources(self.api, depot.manifest, *siblings)
        check = parse_check(read_depot, what)
        return self.context.task_unless_verified(row, sources, what, depot.product_id, check=check)

    def _index_depots(self, product_id: str, depots: dict[int, DepotRef]) -> None:
        """Record each newly fetched depot manifest's chunks and SFC members in the DB."""
        for object_id, depot in depots.items():
            if self.db.is_indexed(object_id):
                continue
            path = cas_path(ObjectKind.META, depot.manifest)
            if not self.context.is_verified(path):
                continue
            what = f"depot manifest {depot.manifest} (product {depot.product_id})"
            manifest = self.context.read_stored(path, read_depot, what)
            if manifest is None:
                continue
            self.context.report_skipped(manifest.skipped, self._builds_using(object_id))
            self._index_depot(object_id, depot, manifest)
        self.db.link_depot_products(product_id)
        self.db.conn.commit()

    def _builds_using(self, manifest_object_id: int) -> list[tuple[str, str]]:
        return self.db.conn.execute(
            "SELECT DISTINCT product_id, build_id FROM build_depots WHERE manifest_object_id = ?",
            (manifest_object_id,),
        ).fetchall()

    def _index_depot(self, object_id: int, depot: DepotRef, manifest: DepotManifest) -> None:
        kind = ObjectKind.OFFLINE if depot.is_offline else ObjectKind.STORE
        roles = chunk_references(manifest, kind, depot.product_id)
        ids = self.db.ensure_objects([obj for _, obj in roles], self.clock())
        references = [(ids[obj.path], role) for role, obj in roles]
        members = [
            (str(f.path), f.sfc_ref[0], f.sfc_ref[1], f.md5)
            for f in manifest.files
            if f.sfc_ref is not None
        ]
        self.db.index_manifest(object_id, references, members, self.clock())

    # --- chunks ----------------------------------------------------------------------------

    def _fetch_chunks(self, product_id: str, build_ids: Sequence[str]) -> None:
        pending = pending_depot_objects(self.db, product_id, build_ids)
        product = self.report.product(product_id)
        if self.options.is_dry_run:
            product.planned_objects += len(pending)
            product.planned_bytes += sum(row.size or 0 for row, _, _ in pending)
            return
        if not self.context.has_room_for(product_id, sum(row.size or 0 for row, _, _ in pending)):
            return
        optional = {row.id for row, role, _ in pending if role == "sfc_member"}
        tasks = (
            self.context.task_unless_verified(
                row,
                chunk_sources(self.api, row.kind, row.md5 or "", *products),
                f"chunk {row.md5} (product {'/'.join(products)})",
                products[0],
            )
            for row, _role, products in pending
        )
        self.context.fetch(tasks, optional=optional)


def _depot_row(depot: DepotRef) -> dict[str, object]:
    return {
        "product_id": depot.product_id,
        "languages": list(depot.languages),
        "size": depot.size,
        "compressed_size": depot.compressed_size,
        "is_offline": depot.is_offline,
        "is_gog_depot": depot.is_gog_depot,
    }
