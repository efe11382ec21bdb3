"""What every sync phase shares: the Syncer's wiring, the parse check, chunk references.

The V2 game phases live in `sync`; V1, patches and dependencies are phases of their own that
use the Syncer's API, DB, store and report, so their objects are fetched, counted and
recorded exactly like the game's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import DepotManifest
from galaxy_archive.state.db import NewObject
from galaxy_archive.storage.interface import Check

if TYPE_CHECKING:  # the Syncer runs the phases; only its type is needed here
    from galaxy_archive.sync.syncer import Syncer


class Phase:
    """A part of a sync run, working through its Syncer."""

    def __init__(self, syncer: Syncer) -> None:
        self.syncer = syncer
        self.api = syncer.api
        self.db = syncer.db
        self.store = syncer.store
        self.options = syncer.options
        self.report = syncer.report
        self.clock = syncer.clock


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
