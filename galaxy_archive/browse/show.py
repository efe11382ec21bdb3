"""`show`: one stored manifest decoded, or one archived build summarised. Read-only, offline.

`show_manifest` finds a manifest by its id (V2 repository, depot, patch and dependency
manifests) or by its tree path (V1 `v1/manifests/...`), says what kind it is and what
references it, and decodes it; its bytes are hashed first (browse.stored), so a corrupt file is
named, never shown. `show_build` is the build's summary document; both documents are also the
`--json` output (schemas in the README, "show and diff").
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from galaxy_archive.errors import ConfigError, GalaxyArchiveError
from galaxy_archive.models.decoding import decode_json, decode_meta
from galaxy_archive.models.layout import ObjectKind, cas_path, split_v1_path
from galaxy_archive.models.manifests import parse_repository_v2
from galaxy_archive.models.v1_manifests import REPOSITORY_NAME
from galaxy_archive.state.db import StateDB

from .builds import StoredBuild, StoredDepot, file_doc, load_build, read_repository
from .stored import NotInArchive, ObjectReader, StoredRow, read_checked, row_by_path

_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_CAS_MANIFEST_KINDS = (ObjectKind.META, ObjectKind.PATCH_META, ObjectKind.DEP_META)


class ManifestKind(enum.StrEnum):
    REPOSITORY = "repository"
    DEPOT = "depot"
    OFFLINE_DEPOT = "offline_depot"
    PATCH_ROOT = "patch_root"
    PATCH_DEPOT = "patch_depot"
    DEPENDENCY_REPOSITORY = "dependency_repository"
    DEPENDENCY_DEPOT = "dependency_depot"
    V1_REPOSITORY = "v1_repository"
    V1_DEPOT = "v1_depot"
    UNREFERENCED = "unreferenced"  # stored, but no recorded build, patch or dependency names it


@dataclass(frozen=True)
class ShownManifest:
    row: StoredRow
    body: bytes  # the stored bytes, checked against the recorded MD5
    kind: ManifestKind
    referenced_by: tuple[dict[str, str], ...]

    def document(self) -> dict[str, Any]:
        """The --json document: what the manifest is, and its decoded JSON."""
        decode = decode_json if self.row.kind is ObjectKind.V1_MANIFEST else decode_meta
        return {
            "command": "show",
            "path": self.row.path,
            "id": self.row.md5 if self.row.kind is not ObjectKind.V1_MANIFEST else None,
            "kind": str(self.kind),
            "state": str(self.row.state),
            "size": len(self.body),
            "referenced_by": list(self.referenced_by),
            "manifest": decode(self.body, self.row.path),
        }


def find_manifest(db: StateDB, target: str) -> StoredRow:
    """The manifest a user names: a 32-hex id or a V1 manifest's tree path."""
    location = split_v1_path(target)
    if location is not None and location.top == "manifests":
        row = row_by_path(db, target)
    elif _MD5_RE.match(target):
        rows = (row_by_path(db, cas_path(kind, target.lower())) for kind in _CAS_MANIFEST_KINDS)
        row = next((r for r in rows if r is not None), None)
    else:
        raise ConfigError(
            f"{target!r} is neither a manifest id (32 hex digits) nor a V1 manifest path "
            "(v1/manifests/<product>/<os>/<legacy build>/<name>.json)"
        )
    if row is None or not row.kind.is_manifest:
        raise NotInArchive(f"{target}: no such manifest is stored in the archive")
    return row


def show_manifest(db: StateDB, store: ObjectReader, target: str) -> ShownManifest:
    """The named manifest, checked; NotInArchive or IntegrityError (exit 1) naming it."""
    row = find_manifest(db, target)
    body = read_checked(store, row)
    kind, referenced_by = _references(db, row)
    return ShownManifest(row, body, kind, referenced_by)


def _references(db: StateDB, row: StoredRow) -> tuple[ManifestKind, tuple[dict[str, str], ...]]:
    """What kind of manifest the DB records the object as, and what names it."""
    for kind, sql in _REFERENCE_QUERIES[row.kind]:
        cursor = db.conn.execute(sql, (row.id,))
        names = [column[0] for column in cursor.description]
        found = [dict(zip(names, map(str, r), strict=True)) for r in cursor.fetchall()]
        if found:
            is_offline = [ref.pop("is_offline", "0") == "1" for ref in found]
            # An offline depot is a depot the repository lists apart (offlineDepot).
            shown = ManifestKind.OFFLINE_DEPOT if all(is_offline) else kind
            return shown, tuple(found)
    if row.kind is ObjectKind.V1_MANIFEST and row.path.endswith("/" + REPOSITORY_NAME):
        return ManifestKind.V1_REPOSITORY, ()
    return ManifestKind.UNREFERENCED, ()


_BUILDS_BY_REPOSITORY = (
    "SELECT product_id, build_id FROM builds WHERE repository_object_id = ? "
    "ORDER BY product_id, build_id"
)
_REFERENCE_QUERIES: dict[ObjectKind, tuple[tuple[ManifestKind, str], ...]] = {
    ObjectKind.META: (
        (ManifestKind.REPOSITORY, _BUILDS_BY_REPOSITORY),
        (
            ManifestKind.DEPOT,
            "SELECT product_id, build_id, is_offline FROM build_depots "
            "WHERE manifest_object_id = ? ORDER BY product_id, build_id",
        ),
    ),
    ObjectKind.PATCH_META: (
        (
            ManifestKind.PATCH_ROOT,
            "SELECT product_id, from_build_id, to_build_id FROM patches "
            "WHERE root_object_id = ? ORDER BY product_id, from_build_id, to_build_id",
        ),
        (
            ManifestKind.PATCH_DEPOT,
            "SELECT product_id, from_build_id, to_build_id FROM patch_depots "
            "WHERE manifest_object_id = ? ORDER BY product_id, from_build_id, to_build_id",
        ),
    ),
    ObjectKind.DEP_META: (
        (
            ManifestKind.DEPENDENCY_REPOSITORY,
            "SELECT build_id AS repository_build_id FROM dependency_repositories "
            "WHERE manifest_object_id = ? ORDER BY build_id",
        ),
        (
            ManifestKind.DEPENDENCY_DEPOT,
            "SELECT DISTINCT d.dependency_id, r.build_id AS repository_build_id "
            "FROM dependency_depots d JOIN dependency_repositories r ON r.id = d.repository_id "
            "WHERE d.manifest_object_id = ? ORDER BY d.dependency_id, r.build_id",
        ),
    ),
    ObjectKind.V1_MANIFEST: (
        (ManifestKind.V1_REPOSITORY, _BUILDS_BY_REPOSITORY),
        (
            ManifestKind.V1_DEPOT,
            "SELECT DISTINCT product_id, build_id FROM v1_depots WHERE manifest_object_id = ? "
            "ORDER BY product_id, build_id",
        ),
    ),
}


# --- a build ------------------------------------------------------------------------------


def show_build(
    db: StateDB, store: ObjectReader, product_id: str, build_id: str, *, with_files: bool
) -> dict[str, Any]:
    """The build's summary document (`show PRODUCT_ID BUILD_ID`, its --json output)."""
    build = load_build(db, store, product_id, build_id)
    row = build.row
    doc: dict[str, Any] = {
        "command": "show",
        "product_id": row["product_id"],
        "build_id": row["build_id"],
        "generation": row["generation"],
        "os": row["os"],
        "branch": row["branch"],
        "version_name": row["version_name"],
        "legacy_build_id": row["legacy_build_id"],
        "date_published": row["date_published"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "is_listed": bool(row["is_listed"]),
        "added_by": _added_by(row["item"]),
        "state": row["state"],
        "completed_at": row["completed_at"],
        "depots": [_depot_doc(depot) for depot in build.depots],
        "dependencies": _dependencies(db, store, build),
        "patches": _patches(db, product_id, build_id),
    }
    if with_files:
        doc["files"] = [file_doc(f) for d in build.depots for f in d.files or ()]
        doc["files"].sort(key=lambda f: (f["path"], f["depot_product_id"], f["languages"]))
    return doc


def _added_by(item: str | None) -> str | None:
    """The source of a build added by id (sync --manifest/--v1); None for a listed one."""
    try:
        doc = json.loads(item) if item else None
    except ValueError:  # the DB is ours, but a damaged row must not stop `show`
        return None
    value = doc.get("added_by") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _depot_doc(depot: StoredDepot) -> dict[str, Any]:
    return {
        "manifest": depot.info.manifest,
        "path": depot.manifest_path,
        "product_id": depot.info.product_id,
        "languages": list(depot.info.languages),
        "is_offline": depot.info.is_offline,
        "size": depot.size,
        "file_count": len(depot.files) if depot.files is not None else None,
        "files_size": sum(f.size for f in depot.files) if depot.files is not None else None,
        "objects_needed": depot.objects_needed,
        "objects_stored": depot.objects_stored,
        "objects_verified": depot.objects_verified,
        "is_complete": depot.is_complete,
        "is_verified": depot.is_verified,
        "problem": depot.problem,
    }


def _dependencies(db: StateDB, store: ObjectReader, build: StoredBuild) -> list[dict[str, Any]]:
    """V2: the dependencies the repository manifest names, with what the archive holds of
    each (its newest recorded state); V1: the repository's redist entries."""
    if build.generation == 1:
        rows = db.conn.execute(
            "SELECT redist, executable, argument FROM v1_redists WHERE product_id = ? "
            "AND build_id = ? ORDER BY redist",
            (build.row["product_id"], build.row["build_id"]),
        )
        return [{"id": r[0], "executable": r[1], "argument": r[2]} for r in rows]
    body = read_repository(store, db, build)
    if body is None:
        return []
    try:
        names = parse_repository_v2(decode_meta(body, "repository"), "repository").dependencies
    except GalaxyArchiveError:
        return []
    return [{"id": name, "state": _dependency_state(db, name)} for name in names]


def _dependency_state(db: StateDB, dependency_id: str) -> str | None:
    found = db.conn.execute(
        "SELECT d.state FROM dependency_depots d JOIN dependency_repositories r "
        "ON r.id = d.repository_id WHERE d.dependency_id = ? "
        "ORDER BY r.last_seen DESC, r.id DESC LIMIT 1",
        (dependency_id,),
    ).fetchone()
    return found[0] if found else None


def _patches(db: StateDB, product_id: str, build_id: str) -> list[dict[str, Any]]:
    """Recorded pairs that start or end at the build."""
    rows = db.db.query(
        "SELECT p.from_build_id, p.to_build_id, p.outcome, p.state, p.patch_id, "
        "(SELECT coalesce(sum(size), 0) FROM patch_depots d WHERE d.product_id = p.product_id "
        " AND d.from_build_id = p.from_build_id AND d.to_build_id = p.to_build_id) AS size, "
        "(SELECT coalesce(sum(compressed_size), 0) FROM patch_depots d "
        " WHERE d.product_id = p.product_id AND d.from_build_id = p.from_build_id "
        " AND d.to_build_id = p.to_build_id) AS compressed_size "
        "FROM patches p WHERE p.product_id = ? AND (p.from_build_id = ? OR p.to_build_id = ?) "
        "ORDER BY p.from_build_id, p.to_build_id",
        [product_id, build_id, build_id],
    )
    return list(rows)


def require_ids(*ids: str) -> None:
    """Product and build ids are digits (as GOG gives them); anything else is a usage error."""
    for value in ids:
        if not value.isascii() or not value.isdigit():
            raise ConfigError(f"{value!r} is not a product or build id")
