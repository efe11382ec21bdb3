"""An archived build read back: its DB row, its depots and their files. Read-only.

The file lists come from the depot manifests stored in the tree (hashed, then parsed by
models.build_files); what is stored and verified comes from the DB. A depot whose manifest is
not stored, or is corrupt, has no file list and says why (`problem`); `diff` refuses such a
build, `show` shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from galaxy_archive.errors import GalaxyArchiveError
from galaxy_archive.models.build_files import (
    BuildFile,
    BuildFiles,
    DepotInfo,
    build_files,
    v1_depot_files,
    v2_depot_files,
)
from galaxy_archive.models.decoding import decode_json, decode_meta
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import StateDB

from .stored import NotInArchive, ObjectReader, StoredRow, read_checked, row_by_id

_BUILD_COLUMNS = (
    "product_id, build_id, os, generation, branch, version_name, date_published, "
    "legacy_build_id, first_seen, last_seen, is_listed, state, completed_at, error, "
    "repository_object_id, item"
)
# What one depot of a build needs, its manifest included, read from the one definition
# (migration 0009's build_needs view; state.needs): the counts `show` gives agree with the
# build states by construction.
_DEPOT_NEEDS = (
    "SELECT DISTINCT object_id AS id FROM build_needs WHERE product_id = :p AND build_id = :b "
    "AND depot_manifest_id = :m AND is_required"
)
_V2_DEPOTS = (
    "SELECT manifest_object_id, depot_product_id, languages, size, is_offline FROM build_depots "
    "WHERE product_id = ? AND build_id = ? ORDER BY is_offline, depot_product_id, languages"
)
_V1_DEPOTS = (
    "SELECT manifest_object_id, depot_product_ids, languages, size, 0 FROM v1_depots "
    "WHERE product_id = ? AND build_id = ? ORDER BY depot_product_ids, languages"
)


@dataclass(frozen=True)
class StoredDepot:
    info: DepotInfo
    manifest_path: str
    size: int | None  # as the repository manifest lists it
    files: tuple[BuildFile, ...] | None  # None: the manifest could not be read (see problem)
    problem: str | None
    objects_needed: int  # the manifest and what it needs
    objects_stored: int
    objects_verified: int

    @property
    def is_complete(self) -> bool:
        return self.objects_stored == self.objects_needed

    @property
    def is_verified(self) -> bool:
        return self.objects_verified == self.objects_needed


@dataclass(frozen=True)
class StoredBuild:
    row: dict[str, Any]  # the builds row (the columns of _BUILD_COLUMNS)
    depots: tuple[StoredDepot, ...]

    @property
    def generation(self) -> int:
        return int(self.row["generation"])

    def files(self) -> BuildFiles:
        """Every file of the build; NotInArchive naming a depot whose manifest is not readable."""
        for depot in self.depots:
            if depot.files is None:
                raise NotInArchive(
                    f"build {self.row['build_id']}: {depot.problem}; its file list is incomplete"
                )
        return build_files(self.generation, (d.files or () for d in self.depots))


def load_build(db: StateDB, store: ObjectReader, product_id: str, build_id: str) -> StoredBuild:
    """The build as archived; NotInArchive when the archive has no such build."""
    row = db.conn.execute(
        f"SELECT {_BUILD_COLUMNS} FROM builds WHERE product_id = ? AND build_id = ?",
        (product_id, build_id),
    ).fetchone()
    if row is None:
        raise NotInArchive(f"product {product_id} has no build {build_id} in the archive")
    build = dict(zip(_BUILD_COLUMNS.split(", "), row, strict=True))
    is_v1 = int(build["generation"]) == 1
    depots = tuple(
        _load_depot(db, store, is_v1, (product_id, build_id), depot)
        for depot in db.conn.execute(_V1_DEPOTS if is_v1 else _V2_DEPOTS, (product_id, build_id))
    )
    return StoredBuild(row=build, depots=depots)


def read_repository(store: ObjectReader, db: StateDB, build: StoredBuild) -> bytes | None:
    """The build's stored repository manifest, None when it is not readable."""
    object_id = build.row["repository_object_id"]
    row = row_by_id(db, object_id) if object_id is not None else None
    if row is None:
        return None
    try:
        return read_checked(store, row)
    except GalaxyArchiveError:
        return None


def _load_depot(
    db: StateDB,
    store: ObjectReader,
    is_v1: bool,
    build_key: tuple[str, str],
    depot: tuple[Any, ...],
) -> StoredDepot:
    product_id = build_key[0]
    object_id, products, languages, size, is_offline = depot
    row = row_by_id(db, object_id)
    assert row is not None  # a foreign key of build_depots / v1_depots
    if is_v1:
        owners = json.loads(products)
        owner = owners[0] if owners else product_id  # V1DepotRef.owner: gameIDs[0]
        manifest = row.path.rsplit("/", 1)[-1]
    else:
        owner, manifest = products, row.md5 or row.path.rsplit("/", 1)[-1]
    info = DepotInfo(manifest, owner, tuple(json.loads(languages)), bool(is_offline))
    files, problem = _depot_files(store, row, info, is_v1)
    needed, stored, verified = _object_counts(db, build_key, object_id)
    return StoredDepot(info, row.path, size, files, problem, needed, stored, verified)


def _depot_files(
    store: ObjectReader, row: StoredRow, info: DepotInfo, is_v1: bool
) -> tuple[tuple[BuildFile, ...] | None, str | None]:
    try:
        body = read_checked(store, row)
        if is_v1:
            return v1_depot_files(decode_json(body, row.path), info, row.path), None
        return v2_depot_files(decode_meta(body, row.path), info, row.path), None
    except GalaxyArchiveError as exc:
        return None, str(exc)


def _object_counts(
    db: StateDB, build_key: tuple[str, str], manifest_object_id: int
) -> tuple[int, int, int]:
    product_id, build_id = build_key
    needed, stored, verified = db.conn.execute(
        "SELECT count(*), coalesce(sum(o.state IN (:present, :verified)), 0), "
        "coalesce(sum(o.state = :verified), 0) "
        f"FROM ({_DEPOT_NEEDS}) needed LEFT JOIN objects o ON o.id = needed.id",
        {
            "p": product_id,
            "b": build_id,
            "m": manifest_object_id,
            "present": ObjectState.PRESENT,
            "verified": ObjectState.VERIFIED,
        },
    ).fetchone()
    return int(needed), int(stored), int(verified)


def file_doc(file: BuildFile) -> dict[str, Any]:
    """A file as the --json documents of `show --files` and `diff` give it."""
    return {
        "path": file.path,
        "size": file.size,
        "md5": file.md5,
        "depot": file.depot.manifest,
        "depot_product_id": file.depot.product_id,
        "languages": list(file.depot.languages),
        "flags": list(file.flags),
        "is_sfc_member": file.is_sfc_member,
    }
