"""What every sync phase shares: its run's context, the parse check, chunk references.

The V2 game, V1, patches and dependencies are phases that each work through the run's
`SyncContext` (never the Syncer that runs them), so their objects are fetched, counted and
recorded alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import BinaryIO

from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import BuildListing, DepotManifest
from galaxy_archive.state.db import NewObject
from galaxy_archive.storage.interface import Check
from galaxy_archive.sync.context import SyncContext
from galaxy_archive.upstream.http_client import redact_url


class Phase:
    """A part of a sync run, working through its context (its parts are short names here)."""

    def __init__(self, context: SyncContext) -> None:
        self.context = context
        self.api = context.api
        self.db = context.db
        self.store = context.store
        self.options = context.options
        self.report = context.report
        self.clock = context.clock


def parse_check(read: Callable[[BinaryIO, str], object], what: str) -> Check:
    """A downloader check: the bytes must also parse (else they never reach the tree)."""

    def check(reader: BinaryIO) -> None:
        read(reader, what)

    return check


def chunk_references(
    manifest: DepotManifest, kind: ObjectKind, product_id: str | None = None
) -> list[tuple[str, NewObject]]:
    """Every chunk a depot manifest names, with its role: 'sfc' and 'chunk' are required;
    'sfc_member' chunks are fetched once, opportunistically (protocol.md 4.3). A chunk in
    several roles gets the strongest."""
    roles: dict[str, tuple[str, NewObject]] = {}
    for role, chunks in (
        ("sfc_member", manifest.sfc_member_chunks()),
        ("chunk", manifest.chunks()),
        ("sfc", manifest.sfc_chunks),
    ):
        for chunk in chunks:
            roles[chunk.compressed_md5] = (
                role,
                NewObject(
                    kind,
                    cas_path(kind, chunk.compressed_md5),
                    chunk.compressed_md5,
                    chunk.compressed_size,
                    chunk.md5,
                    chunk.size,
                    product_id,
                ),
            )
    return list(roles.values())


def build_row(listing: BuildListing) -> dict[str, object]:
    """The builds-table row of a listed (or made-up) builds-list item; its URL redacted."""
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
