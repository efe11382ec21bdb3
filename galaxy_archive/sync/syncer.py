"""`sync`: mirror each product's builds (protocol.md §2-5), phase after phase.

Per product: its builds lists (each OS, both generations) refreshed and recorded; the builds
to mirror selected; then the phases in order: V2 game (manifests, chunks), V1, the V2 build
states, patches. Every phase works through the run's `SyncContext`, not through the Syncer.
A problem with one product (hostile manifest, CDN failure) is reported and the run goes on;
the dependency phase runs once, after every product.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from galaxy_archive.errors import (
    ManifestError,
    StorageError,
    UpstreamError,
)
from galaxy_archive.fetch.downloader import Downloader
from galaxy_archive.fetch.tasks import FetchResult
from galaxy_archive.models.manifests import (
    BuildListing,
    BuildsList,
    decode_builds_list,
    parse_builds_list,
)
from galaxy_archive.models.object_state import BuildState
from galaxy_archive.report import SyncReport
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.needs import update_build_states
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.sync.by_id import ByIdPhase
from galaxy_archive.sync.by_id_v1 import ByLocationPhase
from galaxy_archive.sync.context import Stopping, SyncContext, SyncOptions
from galaxy_archive.sync.dependency_phase import DependencyPhase
from galaxy_archive.sync.patch_phase import PatchPhase
from galaxy_archive.sync.phase import build_row
from galaxy_archive.sync.v1_phase import V1Phases
from galaxy_archive.sync.v2_phase import V2Phase
from galaxy_archive.upstream.galaxy_api import GalaxyApi

log = logging.getLogger(__name__)


class Syncer:
    """The product loop: per product its builds lists and selection, then the phases in
    order, each given the run's context; a product's failure is reported and the next goes."""

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
        self.context = SyncContext(
            api=api,
            db=db,
            store=store,
            downloader=downloader,
            options=options,
            report=SyncReport(is_dry_run=options.is_dry_run),
            clock=clock,
            stop=stop or threading.Event(),
            disk_free=disk_free,
            free_space_at=free_space_at,
        )
        self.api, self.db, self.options, self.clock = api, db, options, clock
        self.stop, self.report = self.context.stop, self.context.report
        # For the dependency phase (once per run, after every product): the products synced
        # and the dependency ids their generation-2 builds name (repository manifests).
        self.synced_products: list[str] = []
        # product id -> builds added by repository manifest id this run (sync --manifest).
        self.added_by_id: dict[str, list[BuildListing]] | None = None
        self.referenced_dependencies: set[str] = set()

    @property
    def named_products(self) -> dict[str, set[str]]:
        """product id -> the other product ids its repository manifests list (its DLC)."""
        return self.context.named_products

    @property
    def on_result(self) -> Callable[[FetchResult], None]:
        """Called with every result recorded (the progress display counts objects with it)."""
        return self.context.on_result

    @on_result.setter
    def on_result(self, callback: Callable[[FetchResult], None]) -> None:
        self.context.on_result = callback

    def sync_products(self, product_ids: Iterable[str]) -> SyncReport:
        product_ids = list(product_ids)
        if self.added_by_id is None:  # once per run: the products named first (not the DLC)
            self.added_by_id = self._builds_by_id(product_ids)
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
            except Stopping:
                log.info("product %s: stopped; the next run resumes it", product_id)
            else:
                done = self.report.product(product_id)
                log.info(
                    "product %s: done, %d of %d builds complete",
                    product_id,
                    done.builds_complete,
                    done.builds_selected,
                )
            self.db.conn.commit()
            self.db.touch_product(product_id, self.clock(), error)
        if self.stop.is_set():
            self.report.is_interrupted = True
        return self.report

    def _builds_by_id(self, product_ids: list[str]) -> dict[str, list[BuildListing]]:
        if not self.options.manifest_ids or 2 not in self.options.generations:
            return {}
        return ByIdPhase(self.context).run(self.options.manifest_ids, product_ids)

    def _v1_builds_by_location(self, product_id: str, chosen: set[str]) -> list[BuildListing]:
        """The generation-1 builds asked for by location (--v1; the CLI allows one product),
        mirrored whatever --os, --branch or --build select."""
        if not self.options.v1_locations:
            return []
        if 1 not in self.options.generations:  # asked for, so not skipped silently
            self.report.problem(
                f"product {product_id}: --v1 given but generation 1 is not synced "
                "(--generation, sync.generations)"
            )
            return []
        found = ByLocationPhase(self.context).run(product_id, self.options.v1_locations)
        return [b for b in found if b.build_id not in chosen]

    def sync_dependencies(self) -> None:
        """The dependency repository is global: once per run, after every product."""
        if self.stop.is_set():
            return
        try:
            DependencyPhase(self.context).run(self.synced_products, self.referenced_dependencies)
        except (ManifestError, UpstreamError) as exc:
            self.report.problem(f"dependencies: {exc}")
        self.db.conn.commit()

    # --- one product -----------------------------------------------------------------------

    def _sync_product(self, product_id: str) -> None:
        product = self.report.product(product_id)
        listings = self._refresh_builds(product_id)
        product.builds_seen = len(listings)
        builds = self._select_builds(product_id, listings)
        # Asked for by id: mirrored whatever --os, --branch or --build select.
        chosen = {b.build_id for b in builds}
        added = (self.added_by_id or {}).get(product_id, [])
        builds += [b for b in added if b.build_id not in chosen]
        v1_builds = self._select_builds(product_id, listings, generation=1)
        v1_builds += self._v1_builds_by_location(product_id, {b.build_id for b in v1_builds})
        product.builds_selected = len(builds) + len(v1_builds)
        options = self.options
        if listings and not product.builds_selected and (options.build_ids or options.branch):
            # asked for by id or branch and none matches: say so rather than sync nothing
            wanted = [f"--build {b}" for b in options.build_ids]
            wanted += [f"--branch {options.branch}"] if options.branch else []
            self.report.problem(f"product {product_id}: no build matches {' '.join(wanted)}")
        log.info(
            "product %s: %d builds listed, %d to mirror",
            product_id,
            len(listings),
            product.builds_selected,
        )
        self.db.conn.commit()
        repositories = V2Phase(self.context).run(product_id, builds)
        if v1_builds:
            self.context.check_stop()
            V1Phases(self.context).mirror(product_id, v1_builds)
        if not self.options.is_dry_run:
            self._update_build_states(product_id, builds, v1_builds)
        for repository in repositories.values():
            self.referenced_dependencies.update(repository.dependencies)
        if self.options.include_patches and 2 in self.options.generations:
            self.context.check_stop()
            PatchPhase(self.context).run(product_id)

    def _update_build_states(
        self, product_id: str, builds: Sequence[BuildListing], v1_builds: Sequence[BuildListing]
    ) -> None:
        """The V2 builds' states (V1 ones are the V1 phase's), then count the complete ones."""
        update_build_states(self.db, product_id, [b.build_id for b in builds], self.clock())
        for (flawed_product, build_id), skipped in self.context.flawed_builds.items():
            if flawed_product == product_id:  # everything else stored, but not the whole build
                self.db.set_build_error(product_id, build_id, "; ".join(skipped))
        self.db.conn.commit()
        selected = {x.build_id for x in [*builds, *v1_builds]}
        self.report.product(product_id).builds_complete = sum(
            1
            for b in self.db.builds(product_id)
            if b["build_id"] in selected and b["state"] == BuildState.COMPLETE
        )

    def _refresh_builds(self, product_id: str) -> dict[str, BuildListing]:
        """Query every builds list (each OS, both generations), record it, merge by build id."""
        merged: dict[str, BuildListing] = {}
        now = self.clock()
        for os_name in self.options.os:
            self.context.check_stop()
            listed, is_complete = self._builds_of_os(product_id, os_name, now)
            for listing in listed.values():
                if merged.setdefault(listing.build_id, listing) is listing:
                    self.db.upsert_build(build_row(listing), now)
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
            if row["build_id"] not in candidates and row["state"] != BuildState.COMPLETE:
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
