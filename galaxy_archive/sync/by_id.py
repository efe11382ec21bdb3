"""Builds GOG no longer lists, archived from their repository manifest id alone (`--manifest`).

GOG drops old builds from the builds lists while their manifests often stay on the CDN (gogdb
records the ids it saw). For each id, the repository manifest is fetched from the configured
CDN (verified against its id, parsed); the build it describes (`buildId`, `platform`,
`baseProductId`) is recorded as not listed, added by id, with a builds-list item made up from
the manifest (its `added_by` names the source), and is then mirrored like any other build:
depots, chunks, patches to its neighbours (placed among them by build id: it has no
publication date). An id the CDN does not have, or whose manifest names no build, is a problem.
"""

from __future__ import annotations

from collections.abc import Iterable

from galaxy_archive.errors import ManifestError, StorageError
from galaxy_archive.fetch.sources import meta_sources
from galaxy_archive.models.layout import ObjectKind, cas_path, check_md5
from galaxy_archive.models.manifests import (
    BuildListing,
    RepositoryV2,
    added_build_item,
    parse_builds_list,
    read_repository,
)
from galaxy_archive.state.db import NewObject
from galaxy_archive.sync.phase import Phase, build_row, parse_check

ADDED_BY = "repository manifest id (sync --manifest)"


class ByIdPhase(Phase):
    """Turn repository manifest ids into recorded builds of the products being synced."""

    def run(
        self, manifest_ids: Iterable[str], product_ids: Iterable[str]
    ) -> dict[str, list[BuildListing]]:
        """product id -> the builds added by id (each also recorded in the DB)."""
        wanted = set(product_ids)
        added: dict[str, list[BuildListing]] = {}
        for raw_id in dict.fromkeys(manifest_ids):
            listing = self._build_of(raw_id, wanted)
            if listing is not None:
                added.setdefault(listing.product_id, []).append(listing)
        self.db.conn.commit()
        return added

    def _build_of(self, raw_id: str, wanted: set[str]) -> BuildListing | None:
        what = f"repository manifest {raw_id!r} (--manifest)"
        try:
            md5 = check_md5(raw_id.strip(), what)
        except ManifestError as exc:
            self.report.problem(str(exc))
            return None
        what = f"repository manifest {md5} (--manifest)"
        repository = self._fetch(md5, what)
        if repository is None:
            return None
        product_id = repository.base_product_id
        if product_id not in wanted:
            self.report.problem(f"{what}: is a build of product {product_id}, not of one synced")
            return None
        if repository.build_id is None or not repository.build_id.isdigit():
            self.report.problem(f"{what}: names no build id (buildId); cannot be placed")
            return None
        url = self.api.cdn_url("v2/meta", md5)
        item = added_build_item(repository, url, ADDED_BY)
        try:
            (listing,) = parse_builds_list({"items": [item]}, what).items
        except (ManifestError, ValueError) as exc:
            self.report.problem(f"{what}: {exc}")
            return None
        self.db.add_build_by_id(build_row(listing), self.clock())
        return listing

    def _fetch(self, md5: str, what: str) -> RepositoryV2 | None:
        path = cas_path(ObjectKind.META, md5)
        self.db.ensure_objects([NewObject(ObjectKind.META, path, md5)], self.clock())
        row = self.context.recorded(path)
        sources = meta_sources(self.api, md5)
        check = parse_check(read_repository, what)
        self.context.fetch([self.context.task_unless_verified(row, sources, what, check=check)])
        if not self.context.is_verified(path):
            self.report.problem(f"{what}: not available from the CDN")
            return None
        try:
            with self.store.open_read(path) as reader:
                return read_repository(reader, what)
        except (ManifestError, StorageError, OSError) as exc:
            self.report.problem(f"{what}: {exc}")
            return None
