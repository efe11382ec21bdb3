"""A build's install plan from the archive: the DB says which depots, the store gives their
manifests (hashed before they are parsed), models.install_plan plans. Read-only, no network.

Selection: the language-neutral depots plus one language (`en-US` when present, else the first
the build lists; `all` for every one), every DLC the archive holds for the build unless
narrowed, never the offline depot unless asked. The up-front check looks the objects the plan's
files read up in the objects table (a `build_needs` view would replace `missing_objects`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from galaxy_archive.errors import GalaxyArchiveError, IntegrityError
from galaxy_archive.models.build_files import DepotInfo
from galaxy_archive.models.decoding import decode_json, decode_meta, read_bounded
from galaxy_archive.models.install_plan import (
    FileToWrite,
    InstallPlan,
    install_plan,
    plan_v1_depot,
    plan_v2_depot,
)
from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import ChunkRef
from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.state.db import StateDB

NEUTRAL = ("*", "Neutral")  # generation 2, generation 1
DEFAULT_LANGUAGES = ("en-US", "English")
_STORED = (ObjectState.PRESENT, ObjectState.VERIFIED)


class ObjectReader(Protocol):
    """What planning needs of the store (`ObjectStore.open_read`)."""

    def open_read(self, relative: str) -> BinaryIO: ...


class NotRestorable(GalaxyArchiveError):
    """The archive has no such build, or cannot restore it (exit 1)."""


@dataclass(frozen=True)
class Selection:
    language: str | None = None  # None: the default; "all": every language
    dlcs: tuple[str, ...] | None = None  # None: every DLC the archive holds
    with_offline: bool = False
    with_dependencies: bool = False  # the dependency depots the build names (generation 2)


@dataclass(frozen=True)
class ChosenDepot:
    info: DepotInfo
    manifest_path: str


@dataclass(frozen=True)
class PlannedBuild:
    product_id: str
    build_id: str
    plan: InstallPlan
    depots: tuple[ChosenDepot, ...]
    language: str | None
    missing: dict[str, str] = field(default_factory=dict)  # object path -> why

    def selection_doc(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "depots": [
                {
                    "manifest": d.info.manifest,
                    "product_id": d.info.product_id,
                    "languages": list(d.info.languages),
                    "is_offline": d.info.is_offline,
                }
                for d in self.depots
            ],
        }


def plan_build(
    db: StateDB, store: ObjectReader, product_id: str, build_id: str, selection: Selection
) -> PlannedBuild:
    generation, os_name, legacy = _build_row(db, product_id, build_id)
    is_v1 = generation == 1
    depots = (_v1_depots if is_v1 else _v2_depots)(db, product_id, build_id)
    language = choose_language([d.info.languages for d in depots], selection.language)
    chosen = tuple(d for d in depots if _is_selected(d.info, product_id, language, selection))
    repository = _repository_doc(db, store, product_id, build_id, is_v1)
    parts = []
    for depot in chosen:
        doc = _read_manifest(db, store, depot.manifest_path, is_json=is_v1)
        if is_v1:
            parts.append(
                plan_v1_depot(
                    doc, depot.info, depot.manifest_path, os_name=os_name, legacy_build_id=legacy
                )
            )
        else:
            kind = ObjectKind.OFFLINE if depot.info.is_offline else ObjectKind.STORE
            parts.append(plan_v2_depot(doc, depot.info, depot.manifest_path, chunk_kind=kind))
    dependencies: list[ChosenDepot] = []
    if selection.with_dependencies and not is_v1:
        dependencies, problems = _dependency_depots(db, _dependency_names(repository))
        parts.append(([], [], [], problems))
        for depot in dependencies:
            doc = _read_manifest(db, store, depot.manifest_path, is_json=False)
            parts.append(
                plan_v2_depot(doc, depot.info, depot.manifest_path, chunk_kind=ObjectKind.DEP_STORE)
            )
    plan = install_plan(parts, _install_directory(repository, is_v1))
    chosen = chosen + tuple(dependencies)
    missing = missing_objects(db, (path for f in plan.files for path in object_paths(f)))
    return PlannedBuild(product_id, build_id, plan, chosen, language, missing)


def choose_language(depot_languages: Iterable[tuple[str, ...]], asked: str | None) -> str | None:
    """The one language to restore besides the neutral depots (None: the build has none)."""
    offered = [lang for langs in depot_languages for lang in langs if lang not in NEUTRAL]
    if asked is not None:
        return asked
    default = next((lang for lang in DEFAULT_LANGUAGES if lang in offered), None)
    return default or (offered[0] if offered else None)


def missing_objects(db: StateDB, paths: Iterable[str]) -> dict[str, str]:
    """path -> why, for each object the plan reads that the DB does not record as stored."""
    missing: dict[str, str] = {}
    for path in sorted(set(paths)):
        row = db.conn.execute("SELECT state FROM objects WHERE path = ?", (path,)).fetchone()
        state = ObjectState(row[0]) if row else None
        if state not in _STORED:
            missing[path] = "not in the archive" if state is None else f"recorded as {state}"
    return missing


def object_paths(file: FileToWrite) -> list[str]:
    """The stored objects `file` is read from."""
    if file.extent is not None:
        return [file.extent.blob_path]
    return [chunk_path(file, chunk) for chunk in file.sources]


def chunk_path(file: FileToWrite, chunk: ChunkRef) -> str:
    """Where the archive keeps a chunk `file` reads."""
    return cas_path(file.chunk_kind, chunk.compressed_md5)


def _is_selected(info: DepotInfo, product_id: str, language: str | None, sel: Selection) -> bool:
    if info.is_offline:
        return sel.with_offline
    if info.product_id != product_id and sel.dlcs is not None and info.product_id not in sel.dlcs:
        return False
    if any(lang in NEUTRAL for lang in info.languages) or sel.language == "all":
        return True
    return language in info.languages


def _build_row(db: StateDB, product_id: str, build_id: str) -> tuple[int, str, int]:
    """(generation, OS, legacy build id: 0 for generation 2) of an archived build."""
    row = db.conn.execute(
        "SELECT generation, os, legacy_build_id FROM builds WHERE product_id = ? AND build_id = ?",
        (product_id, build_id),
    ).fetchone()
    if row is None:
        raise NotRestorable(f"product {product_id} has no build {build_id} in the archive")
    return int(row[0]), str(row[1]), int(row[2] or 0)


def _v1_depots(db: StateDB, product_id: str, build_id: str) -> list[ChosenDepot]:
    rows = db.conn.execute(
        "SELECT o.path, d.depot_product_ids, d.languages FROM v1_depots d "
        "JOIN objects o ON o.id = d.manifest_object_id "
        "WHERE d.product_id = ? AND d.build_id = ? ORDER BY d.depot_product_ids, d.languages",
        (product_id, build_id),
    )
    depots = []
    for path, owners, langs in rows:
        ids = json.loads(owners)
        owner = ids[0] if ids else product_id  # V1DepotRef.owner: gameIDs[0]
        info = DepotInfo(path.rsplit("/", 1)[-1], owner, tuple(json.loads(langs)))
        depots.append(ChosenDepot(info, path))
    depots.sort(key=lambda d: d.info.product_id != product_id)  # the base game first
    return depots


def _v2_depots(db: StateDB, product_id: str, build_id: str) -> list[ChosenDepot]:
    rows = db.conn.execute(
        "SELECT o.path, o.md5, d.depot_product_id, d.languages, d.is_offline "
        "FROM build_depots d JOIN objects o ON o.id = d.manifest_object_id "
        "WHERE d.product_id = ? AND d.build_id = ? "
        "ORDER BY d.is_offline, d.depot_product_id != ?, d.depot_product_id, d.languages",
        (product_id, build_id, product_id),
    )
    return [
        ChosenDepot(DepotInfo(md5 or path, owner, tuple(json.loads(langs)), bool(off)), path)
        for path, md5, owner, langs, off in rows
    ]


def _repository_doc(
    db: StateDB, store: ObjectReader, product_id: str, build_id: str, is_v1: bool
) -> Any:
    row = db.conn.execute(
        "SELECT o.path FROM builds b JOIN objects o ON o.id = b.repository_object_id "
        "WHERE b.product_id = ? AND b.build_id = ?",
        (product_id, build_id),
    ).fetchone()
    if row is None:
        raise NotRestorable(f"build {build_id}: its repository manifest is not in the archive")
    return _read_manifest(db, store, row[0], is_json=is_v1)


def _dependency_names(repository: Any) -> list[str]:
    names = repository.get("dependencies") if isinstance(repository, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _dependency_depots(db: StateDB, names: list[str]) -> tuple[list[ChosenDepot], list[str]]:
    """The newest archived depot of each named dependency; a problem for each not archived.
    Their paths already say where they go (`__redist/<id>/...`, or the game folder)."""
    depots: list[ChosenDepot] = []
    problems: list[str] = []
    for name in names:
        row = db.conn.execute(
            "SELECT o.path, d.manifest_md5 FROM dependency_depots d "
            "JOIN dependency_repositories r ON r.id = d.repository_id "
            "JOIN objects o ON o.id = d.manifest_object_id "
            "WHERE d.dependency_id = ? AND o.state IN (?, ?) "
            "ORDER BY r.last_seen DESC, r.id DESC LIMIT 1",
            (name, *_STORED),
        ).fetchone()
        if row is None:
            problems.append(f"dependency {name}: its depot is not in the archive")
        else:
            depots.append(ChosenDepot(DepotInfo(row[1], name, (NEUTRAL[0],)), row[0]))
    return depots, problems


def _install_directory(repository: Any, is_v1: bool) -> str | None:
    """`installDirectory` (generation 1: under `product`)."""
    holder = repository.get("product") if is_v1 and isinstance(repository, dict) else repository
    value = holder.get("installDirectory") if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None


def _read_manifest(db: StateDB, store: ObjectReader, path: str, *, is_json: bool) -> Any:
    """A stored manifest decoded, once its bytes hash to what the DB recorded."""
    row = db.conn.execute(
        "SELECT md5, served_md5, state FROM objects WHERE path = ?", (path,)
    ).fetchone()
    if row is None or ObjectState(row[2]) not in _STORED:
        raise NotRestorable(f"{path}: manifest not stored in the archive")
    expected = row[1] or row[0]
    try:
        with store.open_read(path) as handle:
            body = read_bounded(handle, path)
    except OSError as exc:
        raise NotRestorable(f"{path}: manifest cannot be read ({exc})") from exc
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if expected is not None and md5 != expected:
        raise IntegrityError(f"{path}: corrupt manifest: MD5 {md5}, not {expected}")
    return decode_json(body, path) if is_json else decode_meta(body, path)
