"""`sync`: mirror each product's builds (protocol.md §2-5). Wires api -> manifests -> DB -> fetch.

Per product, in phases, each a parallel batch: builds lists; repository manifests; depot
manifests; then every chunk the DB says is not verified yet. Manifests are parsed once and
their references recorded, so a later sync plans from SQL alone and a no-op sync is cheap.
A problem with one product (hostile manifest, CDN failure) is reported and the run goes on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from galaxy_archive.errors import (
    ManifestError,
    StorageError,
    UpstreamError,
)
from galaxy_archive.fetch.downloader import Downloader
from galaxy_archive.fetch.sources import chunk_sources, meta_sources, sibling_meta_urls
from galaxy_archive.fetch.tasks import FetchResult, FetchTask, Outcome
from galaxy_archive.models.dependencies import DependencyMode
from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import (
    BuildListing,
    BuildsList,
    DepotManifest,
    DepotRef,
    RepositoryV2,
    decode_builds_list,
    parse_builds_list,
    read_depot,
    read_repository,
)
from galaxy_archive.models.meta_flags import KEEPABLE_KINDS
from galaxy_archive.report import SyncReport, human_bytes
from galaxy_archive.state.db import NewObject, StateDB
from galaxy_archive.state.meta_flags import record_served_md5
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.sync.dependency_phase import DependencyPhase
from galaxy_archive.sync.patch_phase import PatchPhase
from galaxy_archive.sync.phase import chunk_references, parse_check
from galaxy_archive.sync.v1_phase import V1Phases
from galaxy_archive.upstream.galaxy_api import GalaxyApi
from galaxy_archive.upstream.http_client import redact_url

log = logging.getLogger(__name__)
COMMIT_EVERY_S = 1.0
# Room kept free beyond the bytes a product still needs: the DB, its WAL and the temp files of
# the objects in flight grow too, and a full disk is the one failure a NAS owner hates most.
FREE_SPACE_MARGIN_BYTES = 256 * 1024 * 1024


class _Stopping(Exception):
    """The run was asked to stop (SIGINT/SIGTERM): leave the product, commit, report 130."""


@dataclass(frozen=True)
class SyncOptions:
    os: tuple[str, ...] = ("windows", "osx")
    generations: tuple[int, ...] = (1, 2)
    build_ids: tuple[str, ...] = ()
    branch: str | None = None
    password: str | None = None
    include_dlc: bool = True
    is_dry_run: bool = False
    include_patches: bool = True
    patch_recheck_s: float = 7 * 86400
    dependencies: DependencyMode = DependencyMode.REFERENCED
    v1_range_size: int = 8 * 1024 * 1024


class Syncer:
    def __init__(
        self,
        *,
        api: GalaxyApi,
        db: StateDB,
        store: ObjectStore,
        downloader: Downloader,
        options: SyncOptions,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        disk_free: Callable[[Path], int] | None = None,
        free_space_at: Path | None = None,
    ) -> None:
        self.api = api
        self.db = db
        self.store = store
        self.downloader = downloader
        self.options = options
        self.clock = clock
        self.stop = stop or threading.Event()
        self.disk_free = disk_free
        self.free_space_at = free_space_at  # where the bytes land on local disk
        self.report = SyncReport(is_dry_run=options.is_dry_run)
        # product id -> the other product ids its repository manifests list (its DLC).
        self.named_products: dict[str, set[str]] = {}
        # For the dependency phase (once per run, after every product): the products synced
        # and the dependency ids their generation-2 builds name (repository manifests).
        self.synced_products: list[str] = []
        self.referenced_dependencies: set[str] = set()
        self.on_result: Callable[[FetchResult], None] = lambda _result: None

    def sync_products(self, product_ids: Iterable[str]) -> SyncReport:
        for product_id in product_ids:
            if self.stop.is_set():
                break
            self.synced_products.append(product_id)
            error = None
            try:
                self._sync_product(product_id)
            except (ManifestError, UpstreamError, StorageError) as exc:
                error = str(exc)
                self.report.problem(f"product {product_id}: {exc}")
                self.report.product(product_id).error = error
            except _Stopping:
                log.info("product %s: stopped; the next run resumes it", product_id)
            self.db.conn.commit()
            self.db.touch_product(product_id, self.clock(), error)
        if self.stop.is_set():
            self.report.is_interrupted = True
        return self.report

    def sync_dependencies(self) -> None:
        """The dependency repository is global: once per run, after every product."""
        if self.stop.is_set():
            return
        try:
            DependencyPhase(self).run(self.synced_products, self.referenced_dependencies)
        except (ManifestError, UpstreamError) as exc:
            self.report.problem(f"dependencies: {exc}")
        self.db.conn.commit()

    def _check_stop(self) -> None:
        """Leave the product if the run is stopping: between steps, so that what is committed
        is consistent (the DB is the todo list: the next run resumes from it)."""
        if self.stop.is_set():
            self.db.conn.commit()
            raise _Stopping

    # --- one product -----------------------------------------------------------------------

    def _sync_product(self, product_id: str) -> None:
        product = self.report.product(product_id)
        listings = self._refresh_builds(product_id)
        product.builds_seen = len(listings)
        builds = self._select_builds(product_id, listings)
        v1_builds = self._select_builds(product_id, listings, generation=1)
        product.builds_selected = len(builds) + len(v1_builds)
        log.info(
            "product %s: %d builds listed, %d to mirror",
            product_id,
            len(listings),
            product.builds_selected,
        )
        self.db.conn.commit()
        repositories = self._fetch_repositories(product_id, builds)
        depots = self._fetch_depot_manifests(product_id, builds, repositories)
        self._index_depots(product_id, depots)
        self._check_stop()
        build_ids = [b.build_id for b in builds if b.build_id in repositories]
        self._fetch_chunks(product_id, build_ids)
        if v1_builds:
            self._check_stop()
            V1Phases(self).mirror(product_id, v1_builds)
        if not self.options.is_dry_run:
            self.db.update_build_states(product_id, [b.build_id for b in builds], self.clock())
            self.db.conn.commit()
            selected = {x.build_id for x in [*builds, *v1_builds]}
            product.builds_complete = sum(
                1
                for b in self.db.builds(product_id)
                if b["build_id"] in selected and b["state"] == "complete"
            )
        for repository in repositories.values():
            self.referenced_dependencies.update(repository.dependencies)
        if self.options.include_patches and 2 in self.options.generations:
            self._check_stop()
            PatchPhase(self).run(product_id)

    def _refresh_builds(self, product_id: str) -> dict[str, BuildListing]:
        """Query every builds list (each OS, both generations), record it, merge by build id."""
        merged: dict[str, BuildListing] = {}
        now = self.clock()
        for os_name in self.options.os:
            self._check_stop()
            listed, is_complete = self._builds_of_os(product_id, os_name, now)
            for listing in listed.values():
                if merged.setdefault(listing.build_id, listing) is listing:
                    self.db.upsert_build(_build_row(listing), now)
            if is_complete:  # a truncated list proves nothing about what GOG still lists
                self.db.mark_unlisted(product_id, os_name, set(listed))
        return merged

    def _builds_of_os(
        self, product_id: str, os_name: str, now: float
    ) -> tuple[dict[str, BuildListing], bool]:
        """Both generations' lists of one OS merged by build id, and whether both were whole.

        generation=2 also lists gen-1 builds, but both are asked because some sources say a
        build can appear in one answer only (protocol.md 2.1). An item that cannot be used is
        left out and reported (unless the other answer lists the build well); the rest stay.
        A list that cannot be had is reported and proves nothing (not "whole").
        """
        listed: dict[str, BuildListing] = {}
        skipped: dict[str, str] = {}  # build id (or the reason, if the id is bad) -> reason
        is_complete = True
        for generation in (2, 1):
            try:
                builds_list = self._builds_list(product_id, os_name, generation, now)
            except (UpstreamError, ManifestError) as exc:
                # One list that cannot be had (after the retries) costs only its own builds:
                # the other lists, and builds recorded before, are still mirrored.
                self.report.problem(str(exc))
                is_complete = False
                continue
            if builds_list is None:
                continue
            is_complete = is_complete and not builds_list.is_truncated
            for listing in builds_list.items:
                if listing.product_id != product_id or listing.os != os_name:
                    skipped[listing.build_id] = (
                        f"builds list {product_id}/{os_name}/gen{generation}: build "
                        f"{listing.build_id} is for {listing.product_id}/{listing.os}"
                    )
                    continue
                listed.setdefault(listing.build_id, listing)
            for item in builds_list.skipped:
                skipped.setdefault(item.build_id or item.reason, item.reason)
        for key, reason in skipped.items():
            if key not in listed:
                self.report.problem(f"{reason} (item skipped)")
        return listed, is_complete

    def _builds_list(
        self, product_id: str, os_name: str, generation: int, now: float
    ) -> BuildsList | None:
        """One builds list, recorded as served; None when GOG has none (404)."""
        reply = self.api.builds_list(product_id, os_name, generation, self.options.password)
        self.db.record_builds_list(
            product_id,
            os_name,
            generation,
            with_password=bool(self.options.password),
            status=reply.status,
            body=reply.body,
            now=now,
        )
        what = f"builds list {product_id}/{os_name}/gen{generation}"
        if reply.status == 404:  # unknown product or OS: no builds (NEXUS)
            return None
        if reply.status != 200:
            raise UpstreamError(f"{what}: HTTP {reply.status}", reply.status)
        return decode_builds_list(reply.body, what, cdn=self.api.endpoints.cdn)

    def _select_builds(
        self, product_id: str, listings: dict[str, BuildListing], generation: int = 2
    ) -> list[BuildListing]:
        """Builds of `generation` to mirror: those listed now, and delisted ones not complete."""
        candidates = dict(listings)
        for row in self.db.builds(product_id):
            if row["build_id"] not in candidates and row["state"] != "complete":
                what = f"recorded build {row['build_id']}"
                doc = {"items": [json.loads(row["item"])]}
                recorded = parse_builds_list(doc, what, cdn=self.api.endpoints.cdn)
                for item in recorded.skipped:  # recorded once it parsed, so not expected
                    self.report.problem(item.reason)
                candidates.update((b.build_id, b) for b in recorded.items)
        options = self.options
        return [
            b
            for b in candidates.values()
            if b.generation == generation
            and generation in options.generations
            and b.os in options.os
            and (not options.build_ids or b.build_id in options.build_ids)
            and (options.branch is None or b.branch == options.branch)
        ]

    # --- manifests -------------------------------------------------------------------------

    def _fetch_repositories(
        self, product_id: str, builds: Sequence[BuildListing]
    ) -> dict[str, RepositoryV2]:
        """Fetch (or find) each build's repository manifest; build id -> parsed manifest."""
        wanted: dict[str, tuple[BuildListing, str]] = {}
        for build in builds:
            try:
                md5 = build.repository_md5
            except ManifestError as exc:
                self._build_problem(product_id, build.build_id, str(exc))
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
        tasks: dict[str, FetchTask] = {}
        for build, md5 in wanted.values():
            object_id = ids[paths[md5]]
            self.db.set_repository(product_id, build.build_id, object_id)
            if md5 in tasks:
                continue
            row = self.db.object_by_path(paths[md5])
            if row is not None and row.state == "verified":
                continue
            what = f"repository manifest {md5} (build {build.build_id})"
            tasks[md5] = FetchTask(
                object_id,
                ObjectKind.META,
                paths[md5],
                md5,
                None,
                meta_sources(self.api, md5, *build.manifest_urls),
                what,
                product_id,
                check=parse_check(read_repository, what),
            )
        self._run(list(tasks.values()))
        self._check_stop()  # manifests not fetched because we stop are no problem to report
        repositories: dict[str, RepositoryV2] = {}
        for build, md5 in wanted.values():
            what = f"repository manifest {md5} (build {build.build_id})"
            row = self.db.object_by_path(paths[md5])
            if row is None or row.state != "verified":
                self._build_problem(product_id, build.build_id, f"{what} is not available")
                continue
            try:
                with self.store.open_read(paths[md5]) as reader:
                    repository = read_repository(reader, what)
            except (ManifestError, StorageError, OSError) as exc:
                self._build_problem(product_id, build.build_id, f"{what}: {exc}")
                continue
            repositories[build.build_id] = repository
            named = self.named_products.setdefault(product_id, set())
            named.update(p for p in repository.product_ids if p != product_id)
        return repositories

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
        now = self.clock()
        per_build = {
            build.build_id: self._selected_depots(product_id, repositories[build.build_id])
            for build in builds
            if build.build_id in repositories
        }
        refs = [d for depots in per_build.values() for d in depots]
        paths = {d.manifest: cas_path(ObjectKind.META, d.manifest) for d in refs}
        ids = self.db.ensure_objects(
            [
                NewObject(
                    ObjectKind.META,
                    cas_path(ObjectKind.META, d.manifest),
                    d.manifest,
                    product_id=d.product_id,
                )
                for d in refs
            ],
            now,
        )
        by_object: dict[int, DepotRef] = {}
        tasks: dict[int, FetchTask] = {}
        links = {build.build_id: build.manifest_urls for build in builds}
        for build_id, depots in per_build.items():
            for depot in depots:
                object_id = ids[paths[depot.manifest]]
                by_object.setdefault(object_id, depot)
                self.db.record_build_depot(product_id, build_id, object_id, _depot_row(depot))
                if object_id in tasks:
                    continue
                row = self.db.object_by_path(paths[depot.manifest])
                if row is not None and row.state == "verified":
                    continue
                what = f"depot manifest {depot.manifest} (product {depot.product_id})"
                tasks[object_id] = FetchTask(
                    object_id,
                    ObjectKind.META,
                    paths[depot.manifest],
                    depot.manifest,
                    None,
                    meta_sources(
                        self.api,
                        depot.manifest,
                        *sibling_meta_urls(links[build_id], depot.manifest),
                    ),
                    what,
                    depot.product_id,
                    check=parse_check(read_depot, what),
                )
        self._run(list(tasks.values()))
        return by_object

    def _index_depots(self, product_id: str, depots: dict[int, DepotRef]) -> None:
        """Record each newly fetched depot manifest's chunks and SFC members in the DB."""
        for object_id, depot in depots.items():
            if self.db.is_indexed(object_id):
                continue
            path = cas_path(ObjectKind.META, depot.manifest)
            row = self.db.object_by_path(path)
            if row is None or row.state != "verified":
                continue
            what = f"depot manifest {depot.manifest} (product {depot.product_id})"
            try:
                with self.store.open_read(path) as reader:
                    manifest = read_depot(reader, what)
            except (ManifestError, StorageError, OSError) as exc:
                self.report.problem(f"{what}: {exc}")
                continue
            self._index_depot(object_id, depot, manifest)
        self.db.link_depot_products(product_id)
        self.db.conn.commit()

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
        pending = self.db.pending_depot_objects(product_id, build_ids)
        product = self.report.product(product_id)
        if self.options.is_dry_run:
            product.planned_objects += len(pending)
            product.planned_bytes += sum(row.size or 0 for row, _, _ in pending)
            return
        if not self._has_room_for(product_id, sum(row.size or 0 for row, _, _ in pending)):
            return
        optional = {row.id for row, role, _ in pending if role == "sfc_member"}
        tasks = [
            FetchTask(
                row.id,
                row.kind,
                row.path,
                row.md5,
                row.size,
                chunk_sources(self.api, row.kind, row.md5 or "", *products),
                f"chunk {row.md5} (product {'/'.join(products)})",
                products[0],
            )
            for row, _role, products in pending
        ]
        self._run(tasks, optional=optional)

    def _has_room_for(self, product_id: str, needed: int) -> bool:
        """Compare the bytes still to fetch with the free space; refuse (a problem) if short."""
        root = self.free_space_at
        if self.disk_free is None or root is None or needed == 0:
            return True
        try:
            free = self.disk_free(root)
        except OSError as exc:
            log.warning("cannot tell the free space of %s (%s); downloading anyway", root, exc)
            return True
        if needed + FREE_SPACE_MARGIN_BYTES <= free:
            return True
        message = (
            f"not enough free space on {root}: {human_bytes(needed)} ({needed} bytes) still to "
            f"download plus a {human_bytes(FREE_SPACE_MARGIN_BYTES)} margin, but only "
            f"{human_bytes(free)} ({free} bytes) free; nothing downloaded for this product"
        )
        self.report.problem(f"product {product_id}: {message}")
        self.report.product(product_id).error = message
        return False

    # --- results ---------------------------------------------------------------------------

    def fetch(self, tasks: Sequence[FetchTask], *, optional: set[int] | None = None) -> None:
        """Fetch and record a batch (for the patch and dependency phases)."""
        self._run(tasks, optional=optional)

    def record(self, result: FetchResult) -> None:
        """Record one result fetched another way (V1 blobs, by ranges) like any other."""
        self._apply(result, is_optional=False)
        self.on_result(result)

    def _run(self, tasks: Sequence[FetchTask], *, optional: set[int] | None = None) -> None:
        """Fetch tasks and record every result (once stopping, only those already in flight)."""
        optional = optional or set()
        if tasks:
            size = sum(task.size or 0 for task in tasks)
            log.info("fetching %d objects (%s)", len(tasks), human_bytes(size))
        last_commit = time.monotonic()
        for result in self.downloader.run(tasks):
            self._apply(result, is_optional=result.task.object_id in optional)
            self.on_result(result)
            if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                self.db.conn.commit()
                last_commit = time.monotonic()
        self.db.conn.commit()

    def _apply(self, result: FetchResult, *, is_optional: bool) -> None:
        task, now, report = result.task, self.clock(), self.report
        if result.outcome in (Outcome.FETCHED, Outcome.ALREADY_PRESENT):
            fetched = result.outcome is Outcome.FETCHED
            self.db.mark_verified(
                task.object_id,
                size=result.size,
                now=now,
                md5=result.md5,
                product_id=task.product_id,
                endpoint=result.endpoint,
                source_url=result.source_url,
                fetched=fetched,
            )
            if fetched:
                report.fetched += 1
                report.bytes_fetched += result.size
            else:
                report.already_present += 1
            if task.kind in KEEPABLE_KINDS:
                self._record_served_md5(result)
        elif result.outcome is Outcome.ABSENT:
            self.db.mark_problem(
                task.object_id, state="absent_upstream", error=result.error or "", now=now
            )
            if is_optional:
                report.absent_optional += 1
            else:
                report.absent_upstream += 1
                report.problem(f"{task.what}: not on the CDN (404 on every endpoint)")
        elif result.outcome is Outcome.FAILED:
            self.db.mark_problem(task.object_id, state="missing", error=result.error or "", now=now)
            report.failed += 1
            report.problem(result.error or f"{task.what}: failed")
        else:
            report.is_interrupted = True

    def _record_served_md5(self, result: FetchResult) -> None:
        """A meta file kept with bytes that do not hash to its id is flagged (a warning, not a
        problem: it parses, its builds complete); one stored as named is unflagged."""
        task = result.task
        warning = record_served_md5(self.db.conn, task.object_id, task.path, result.served_md5)
        if warning is not None:
            self.report.warning(warning)

    def _build_problem(self, product_id: str, build_id: str, message: str) -> None:
        self.report.problem(f"build {build_id} of product {product_id}: {message}")
        self.db.set_build_error(product_id, build_id, message)


def _build_row(listing: BuildListing) -> dict[str, object]:
    return {
        "product_id": listing.product_id,
        "build_id": listing.build_id,
        "os": listing.os,
        "generation": listing.generation,
        "branch": listing.branch,
        "version_name": listing.version_name,
        "date_published": listing.date_published,
        "legacy_build_id": listing.legacy_build_id,
        "manifest_url": redact_url(listing.manifest_urls[0]) if listing.manifest_urls else None,
        "item": json.dumps(listing.item, sort_keys=True),
    }


def _depot_row(depot: DepotRef) -> dict[str, object]:
    return {
        "product_id": depot.product_id,
        "languages": list(depot.languages),
        "size": depot.size,
        "compressed_size": depot.compressed_size,
        "is_offline": depot.is_offline,
        "is_gog_depot": depot.is_gog_depot,
    }
