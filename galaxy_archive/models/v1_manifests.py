"""Pure parsing of generation-1 manifests: repository.json and ``<uuid>.json`` (protocol.md §6).

Shapes follow gog-samples 4 and 5. Any field may be missing (GOGDB's defaults: offset 0, no
url); `size` is a string in repository depots; file paths start with "/"; directory records
and osx symlinks carry no data; redist entries have no manifest. Every parse_* function takes
decoded JSON and `what` (the object's name for error messages) and returns frozen dataclasses
or raises ManifestError naming the object and the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, NamedTuple

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.decoding import decode_json, parse_entries, read_bounded
from galaxy_archive.models.layout import (
    check_id,
    check_md5,
    check_v1_name,
    safe_link_target,
    safe_relative_path,
)

REPOSITORY_NAME = "repository.json"
DEFAULT_BLOB_NAME = "main.bin"  # HGD ignores `url` and always uses it (protocol.md 6.3)
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
FILE_FLAGS = ("executable", "hidden", "support")


# --- small typed accessors -----------------------------------------------------------------


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(obj: dict[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{what}: field {key!r} should be a list")
    return value


def _text(obj: dict[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{what}: field {key!r} should be a string")
    return value


def _strings(obj: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    values = _list(obj, key, what)
    if not all(isinstance(v, str) for v in values):
        raise ManifestError(f"{what}: field {key!r} should be a list of strings")
    return tuple(values)


def _count(obj: dict[str, Any], key: str, what: str) -> int | None:
    """A byte count or offset: an int, or a string of digits (repository sizes are strings)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ManifestError(f"{what}: field {key!r} is not a byte count ({value!r:.40})")


# --- repository.json -----------------------------------------------------------------------


@dataclass(frozen=True)
class V1DepotRef:
    """A content depot of a repository: its manifest file and the products it belongs to."""

    manifest: str
    product_ids: tuple[str, ...]  # `gameIDs`
    languages: tuple[str, ...]
    systems: tuple[str, ...]
    size: int | None  # a string upstream, sometimes missing

    def owner(self, root_product_id: str) -> str:
        """The product the depot belongs to: `gameIDs[0]`, else the repository's product."""
        return self.product_ids[0] if self.product_ids else root_product_id


@dataclass(frozen=True)
class V1Redist:
    """A redist entry: an installer to run, no manifest (issue 4 maps it to a V2 dependency)."""

    redist: str
    executable: str | None
    argument: str | None
    size: str | None  # kept as GOG wrote it ("0")
    target_dir: str | None


@dataclass(frozen=True)
class RepositoryV1:
    timestamp: int | None  # = legacy_build_id
    root_product_id: str | None
    install_directory: str | None
    project_name: str | None
    product_ids: tuple[str, ...]  # every `gameIDs[].gameID`
    depots: tuple[V1DepotRef, ...]
    redists: tuple[V1Redist, ...]
    skipped: tuple[str, ...] = ()  # entries left out, each named (models/manifests.py)


def parse_repository_v1(doc: Any, what: str) -> RepositoryV1:
    product = _object(_object(doc, what).get("product"), f"{what} product")
    skipped: list[str] = []
    entries = parse_entries(_list(product, "depots", what), _depot_entry, f"{what} depots", skipped)
    game_ids = parse_entries(_list(product, "gameIDs", what), _game_id, f"{what} gameIDs", skipped)
    root = product.get("rootGameID")
    return RepositoryV1(
        timestamp=_count(product, "timestamp", what),
        root_product_id=check_id(root, f"{what} rootGameID") if root is not None else None,
        install_directory=_text(product, "installDirectory", what),
        project_name=_text(product, "projectName", what),
        product_ids=tuple(game_ids),
        depots=tuple(e for e in entries if isinstance(e, V1DepotRef)),
        redists=tuple(e for e in entries if isinstance(e, V1Redist)),
        skipped=tuple(skipped),
    )


def _depot_entry(raw: Any, what: str) -> V1DepotRef | V1Redist:
    entry = _object(raw, what)
    if entry.get("redist") is not None:
        return _parse_redist(entry, what)
    if entry.get("manifest") is not None:
        return _parse_depot(entry, what)
    raise ManifestError(f"{what}: neither a 'manifest' nor a 'redist'")


def _game_id(raw: Any, what: str) -> str:
    return check_id(_object(raw, what).get("gameID"), f"{what} gameID")


def _parse_depot(entry: dict[str, Any], what: str) -> V1DepotRef:
    game_ids = _list(entry, "gameIDs", what)
    return V1DepotRef(
        manifest=check_v1_name(entry.get("manifest"), f"{what} manifest"),
        product_ids=tuple(check_id(g, f"{what} gameIDs") for g in game_ids),
        languages=_strings(entry, "languages", what),
        systems=_strings(entry, "systems", what),
        size=_count(entry, "size", what),
    )


def _parse_redist(entry: dict[str, Any], what: str) -> V1Redist:
    name = entry.get("redist")
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{what}: 'redist' should be a non-empty string")
    size = entry.get("size")
    return V1Redist(
        redist=name,
        executable=_text(entry, "executable", what),
        argument=_text(entry, "argument", what),
        size=str(size) if isinstance(size, str | int) and not isinstance(size, bool) else None,
        target_dir=_text(entry, "targetDir", what),
    )


# --- depot manifest ------------------------------------------------------------------------


class BlobRef(NamedTuple):
    """A blob as a file record's `url` names it: ``"<product_id>/<name>"``."""

    product_id: str
    name: str


@dataclass(frozen=True)
class V1File:
    """A file record: `size` bytes at `offset` in its blob, whose MD5 is `md5`."""

    path: PurePosixPath
    size: int
    md5: str | None  # None: no `hash` (protocol.md 6.2: any field can be missing)
    offset: int
    blob: BlobRef | None  # None: no `url`; the depot's product's main.bin
    flags: tuple[str, ...]


@dataclass(frozen=True)
class V1Item:
    """A record without data: a directory, or an osx symlink."""

    path: PurePosixPath
    kind: str  # "directory" | "symlink"
    target: str | None = None
    symlink_type: str | None = None


@dataclass(frozen=True)
class DepotManifestV1:
    name: str | None
    files: tuple[V1File, ...]
    items: tuple[V1Item, ...]
    skipped: tuple[str, ...] = ()  # records left out, each named (models/manifests.py)


def parse_depot_manifest_v1(doc: Any, what: str) -> DepotManifestV1:
    depot = _object(_object(doc, what).get("depot"), f"{what} depot")
    skipped: list[str] = []
    records = parse_entries(_list(depot, "files", what), _record, f"{what} files", skipped)
    return DepotManifestV1(
        name=_text(depot, "name", what),
        files=tuple(r for r in records if isinstance(r, V1File)),
        items=tuple(r for r in records if isinstance(r, V1Item)),
        skipped=tuple(skipped),
    )


def _record(raw: Any, what: str) -> V1File | V1Item | None:
    record = _object(raw, what)
    if record.get("directory") is True:
        return _directory(record, what)
    if "symlinkType" in record or "target" in record:
        return _symlink(record, what)
    return _file(record, what)


def _record_path(record: dict[str, Any], what: str) -> PurePosixPath:
    """V1 paths start with "/" (protocol.md 6.2): one is dropped, the rest must be safe."""
    raw = record.get("path")
    if not isinstance(raw, str):
        raise ManifestError(f"{what}: path {raw!r} is not a string")
    return safe_relative_path(raw.removeprefix("/"), what)


def _directory(record: dict[str, Any], what: str) -> V1Item | None:
    if record.get("path") in ("/", ""):
        return None  # the depot's root itself: nothing to create
    return V1Item(_record_path(record, what), "directory")


def _symlink(record: dict[str, Any], what: str) -> V1Item:
    target = _text(record, "target", what)
    if not target:
        raise ManifestError(f"{what}: symlink without a target")
    path = _record_path(record, what)
    return V1Item(
        path,
        "symlink",
        target=safe_link_target(path, target, what),
        symlink_type=_text(record, "symlinkType", what),
    )


def _file(record: dict[str, Any], what: str) -> V1File:
    path = _record_path(record, what)
    what = f"{what} ({path})"
    size = _count(record, "size", what) or 0
    raw_hash = record.get("hash") or None
    md5 = check_md5(raw_hash, f"{what} hash") if raw_hash is not None else None
    if size == 0:
        md5 = md5 or EMPTY_MD5
    url = _text(record, "url", what)
    return V1File(
        path=path,
        size=size,
        md5=md5,
        offset=_count(record, "offset", what) or 0,
        blob=parse_blob_url(url, what) if url else None,
        flags=tuple(flag for flag in FILE_FLAGS if record.get(flag) is True),
    )


def parse_blob_url(url: str, what: str) -> BlobRef:
    """``"1207658930/main.bin"`` -> BlobRef; anything that is not "<id>/<file name>" is refused."""
    product_id, slash, name = url.partition("/")
    if not slash:
        raise ManifestError(f"{what}: url {url!r} is not '<product>/<blob>'")
    return BlobRef(check_id(product_id, f"{what} url"), check_v1_name(name, f"{what} url"))


# --- bytes in ------------------------------------------------------------------------------


def read_repository_v1(body: bytes, what: str) -> RepositoryV1:
    """repository.json as served (plain JSON, protocol.md 6.1)."""
    return parse_repository_v1(decode_json(body, what), what)


def read_depot_manifest_v1(body: bytes, what: str) -> DepotManifestV1:
    return parse_depot_manifest_v1(decode_json(body, what), what)


def read_stored_repository_v1(reader: BinaryIO, what: str) -> RepositoryV1:
    """repository.json read from `reader` (a stored or just downloaded one), bounded."""
    return read_repository_v1(read_bounded(reader, what), what)


def read_stored_depot_manifest_v1(reader: BinaryIO, what: str) -> DepotManifestV1:
    """A V1 depot manifest read from `reader`, bounded."""
    return read_depot_manifest_v1(read_bounded(reader, what), what)
