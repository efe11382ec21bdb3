"""Generation-1 builds GOG no longer lists, archived from their location alone (`--v1`).

A location is an OS and a legacy build id (`windows/37794096`): with the product id it names
the build's repository.json on the CDN (protocol.md 6.1), fetched through the same sources
the V1 phase uses and checked to parse. A location the CDN does not have is a problem and
records nothing. Otherwise the build is recorded as not listed, added by id (a builds-list item
made up from the location; its `added_by` names the source) and the V1 phase then mirrors it
like any listed one: depot manifests, blobs, state.

repository.json carries no build id, only the legacy one, so the legacy build id is the
build_id of a build added this way. A build of that product, OS and legacy id recorded already
(listed earlier, with its real build id) is used as it is instead; one listed only later gets a
second row under its real build id (a known limit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from galaxy_archive.errors import ManifestError
from galaxy_archive.fetch.sources import v1_manifest_sources
from galaxy_archive.models.layout import ObjectKind, v1_manifest_path
from galaxy_archive.models.manifests import BuildListing, parse_builds_list
from galaxy_archive.models.v1_manifests import REPOSITORY_NAME, read_stored_repository_v1
from galaxy_archive.state.db import NewObject
from galaxy_archive.sync.phase import Phase, build_row, parse_check

ADDED_BY = "generation-1 location (sync --v1)"


class ByLocationPhase(Phase):
    """Turn `(os, legacy build id)` locations into recorded generation-1 builds of a product."""

    def run(self, product_id: str, locations: Iterable[tuple[str, int]]) -> list[BuildListing]:
        """The builds found (each recorded in the DB); the others are reported as problems."""
        found: list[BuildListing] = []
        for os_name, legacy_id in dict.fromkeys(locations):
            listing = self._build_at(product_id, os_name, legacy_id)
            if listing is not None:
                found.append(listing)
        self.db.conn.commit()
        return found

    def _build_at(self, product_id: str, os_name: str, legacy_id: int) -> BuildListing | None:
        what = f"V1 repository {product_id}/{os_name}/{legacy_id} (--v1 {os_name}/{legacy_id})"
        if not self._fetch_repository(product_id, os_name, legacy_id, what):
            return None
        recorded = self._recorded_item(product_id, os_name, legacy_id)
        item = recorded or self._made_up_item(product_id, os_name, legacy_id)
        try:
            (listing,) = parse_builds_list({"items": [item]}, what).items
        except (ManifestError, ValueError) as exc:
            self.report.problem(f"{what}: {exc}")
            return None
        if recorded is None:
            self.db.add_build_by_id(build_row(listing), self.clock())
        return listing

    def _fetch_repository(self, product_id: str, os_name: str, legacy_id: int, what: str) -> bool:
        """Fetch (or find) the repository.json; whether it is now verified in the archive."""
        path = v1_manifest_path(product_id, os_name, legacy_id, REPOSITORY_NAME)
        new = NewObject(ObjectKind.V1_MANIFEST, path, None, product_id=product_id)
        self.db.ensure_objects([new], self.clock())
        sources = v1_manifest_sources(self.api, product_id, os_name, legacy_id, REPOSITORY_NAME)
        check = parse_check(read_stored_repository_v1, what)
        row = self.context.recorded(path)
        self.context.fetch(
            [self.context.task_unless_verified(row, sources, what, product_id, check=check)]
        )
        if not self.context.is_verified(path):
            self.report.problem(f"{what}: not available from the CDN")
            return False
        return True

    def _recorded_item(self, product_id: str, os_name: str, legacy_id: int) -> object | None:
        """The builds-list item of this build if the archive knows it already (by any id)."""
        row = self.db.conn.execute(
            "SELECT item FROM builds WHERE product_id = ? AND os = ? AND generation = 1 "
            "AND legacy_build_id = ? ORDER BY is_listed DESC, first_seen LIMIT 1",
            (product_id, os_name, legacy_id),
        ).fetchone()
        return json.loads(row[0]) if row is not None and row[0] else None

    def _made_up_item(self, product_id: str, os_name: str, legacy_id: int) -> dict[str, object]:
        return {
            "build_id": str(legacy_id),  # repository.json names no other (module docstring)
            "product_id": product_id,
            "os": os_name,
            "generation": 1,
            "legacy_build_id": legacy_id,
            "branch": None,
            "version_name": "",
            "date_published": "",
            "tags": [],
            "public": True,
            "link": self.api.v1_manifest_url(product_id, os_name, legacy_id, REPOSITORY_NAME),
            "added_by": ADDED_BY,
        }
