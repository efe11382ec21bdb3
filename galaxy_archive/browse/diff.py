"""`diff`: what changed between two archived builds of one product and OS, and what an update
costs. Read-only, offline.

Both builds' file lists are read from their stored depot manifests (browse.builds, each manifest
hashed before it is parsed) and compared by models.build_diff; V1 and V2 builds compare by
path. Where the archive holds the patch for the pair (the patches table), the document gives its
size and which changed files its delta items cover. The document is also the --json output
(schema in the README, "show and diff").
"""

from __future__ import annotations

from typing import Any

from galaxy_archive.errors import ConfigError, GalaxyArchiveError
from galaxy_archive.models.build_diff import BuildDiff, covered_by_patch, diff_builds
from galaxy_archive.models.decoding import decode_meta
from galaxy_archive.models.manifests import DepotDiff, parse_depot_manifest
from galaxy_archive.models.patches import PatchOutcome
from galaxy_archive.state.db import StateDB

from .builds import StoredBuild, file_doc, load_build
from .stored import ObjectReader, read_checked, row_by_id


def diff_document(
    db: StateDB, store: ObjectReader, product_id: str, old_build_id: str, new_build_id: str
) -> dict[str, Any]:
    """The diff of OLD -> NEW; NotInArchive naming a build or depot manifest not readable."""
    old = load_build(db, store, product_id, old_build_id)
    new = load_build(db, store, product_id, new_build_id)
    if old.row["os"] != new.row["os"]:
        raise ConfigError(
            f"build {old_build_id} is for {old.row['os']}, build {new_build_id} for "
            f"{new.row['os']}: diff compares builds of one OS"
        )
    old_files, new_files = old.files(), new.files()
    diff = diff_builds(old_files, new_files)
    return {
        "command": "diff",
        "product_id": product_id,
        "old": _build_doc(old, len(old_files.files), old_files.total_size),
        "new": _build_doc(new, len(new_files.files), new_files.total_size),
        "added": [file_doc(f) for f in diff.added],
        "removed": [file_doc(f) for f in diff.removed],
        "changed": [_pair_doc(a, b) for a, b in diff.changed],
        "moved": [_pair_doc(a, b) for a, b in diff.moved],
        "identical": diff.identical,
        "update": {
            "chunks": diff.update.chunks,
            "compressed_bytes": diff.update.compressed_bytes,
            "uncompressed_bytes": diff.update.uncompressed_bytes,
        },
        "patch": _patch_doc(db, store, product_id, old_build_id, new_build_id, diff),
    }


def _build_doc(build: StoredBuild, file_count: int, size: int) -> dict[str, Any]:
    row = build.row
    return {
        "build_id": row["build_id"],
        "generation": row["generation"],
        "os": row["os"],
        "branch": row["branch"],
        "version_name": row["version_name"],
        "file_count": file_count,
        "size": size,
    }


def _pair_doc(old: Any, new: Any) -> dict[str, Any]:
    return {"path": new.path, "old": file_doc(old), "new": file_doc(new)}


def _patch_doc(
    db: StateDB,
    store: ObjectReader,
    product_id: str,
    old_build_id: str,
    new_build_id: str,
    diff: BuildDiff,
) -> dict[str, Any] | None:
    """The patch the archive holds for exactly this pair (None: no patch recorded)."""
    found = db.conn.execute(
        "SELECT patch_id, state FROM patches WHERE product_id = ? AND from_build_id = ? "
        "AND to_build_id = ? AND outcome = ?",
        (product_id, old_build_id, new_build_id, PatchOutcome.PATCH),
    ).fetchone()
    if found is None:
        return None
    depots = db.conn.execute(
        "SELECT manifest_object_id, size, compressed_size FROM patch_depots "
        "WHERE product_id = ? AND from_build_id = ? AND to_build_id = ? "
        "ORDER BY manifest_object_id",
        (product_id, old_build_id, new_build_id),
    ).fetchall()
    deltas: list[DepotDiff] = []
    problems: list[str] = []
    for object_id, _size, _compressed in depots:
        try:
            deltas.extend(_patch_depot_diffs(db, store, object_id))
        except GalaxyArchiveError as exc:
            problems.append(str(exc))
    covers = covered_by_patch(diff.changed, deltas)
    return {
        "patch_id": found[0],
        "state": found[1],
        "size": sum(d[1] for d in depots),
        "compressed_size": sum(d[2] for d in depots),
        "covers": list(covers),
        "not_covered": sorted({new.path for _, new in diff.changed} - set(covers)),
        "problems": problems,
    }


def _patch_depot_diffs(db: StateDB, store: ObjectReader, object_id: int) -> tuple[DepotDiff, ...]:
    row = row_by_id(db, object_id)
    assert row is not None  # a foreign key of patch_depots
    body = read_checked(store, row)
    return parse_depot_manifest(decode_meta(body, row.path), row.path).diffs
