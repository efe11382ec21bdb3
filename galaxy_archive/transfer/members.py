"""The export file's format, shared by export and import: pure, no I/O.

An export is a zstandard-compressed tar (frame checksums on). Its first member is `index.json`,
written first so that an import can check every later member against it while that member
streams (a last index would leave nothing to check against until the end):

    {"format": 1, "product_id": "...", "build_ids": [...],
     "members": [{"name": ..., "kind": ..., "path": ..., "size": ..., "md5": ...}, ...]}

An object member's name is its tree path and its kind an ObjectKind; a DB member is named
`db/<table>.jsonl` (kind "db", path null): one JSON object per row, object ids replaced by the
object's tree path (ids are local to an archive, paths are not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from galaxy_archive.errors import UnsafeReference
from galaxy_archive.models.layout import ObjectKind, cas_path, split_v1_path

FORMAT = 1
INDEX_NAME = "index.json"
DB_KIND = "db"
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_DB_MEMBER_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 10_000_000

# The tables an export carries, in the order an import merges them (referenced rows first).
TABLES = (
    "products",
    "objects",
    "object_products",
    "builds",
    "build_depots",
    "manifest_objects",
    "sfc_members",
    "indexed_manifests",
    "v1_depots",
    "v1_redists",
    "v1_blobs",
    "v1_blob_ranges",
    "v1_extents",
    "v1_items",
    "patches",
    "patch_depots",
)


@dataclass(frozen=True)
class Member:
    """One index entry."""

    name: str
    kind: str
    path: str | None
    size: int
    md5: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "size": self.size,
            "md5": self.md5,
        }


def db_member_name(table: str) -> str:
    return f"db/{table}.jsonl"


def is_object_id_column(column: str) -> bool:
    """A column holding an object's local id (translated to its path in the file)."""
    return column == "object_id" or column.endswith("_object_id")


def check_tree_path(kind: str, path: object) -> str:
    """`path` if it is the tree path layout makes for an object of `kind`, else UnsafeReference.

    Built from layout's own functions, so `..`, absolute names and anything layout would never
    write are refused whatever they claim to be.
    """
    if not isinstance(path, str):
        raise UnsafeReference(f"{path!r} is not a tree path")
    try:
        object_kind = ObjectKind(kind)
    except ValueError:
        raise UnsafeReference(f"{path}: unknown kind {kind!r}") from None
    if object_kind in (ObjectKind.V1_MANIFEST, ObjectKind.V1_BLOB):
        location = split_v1_path(path)
        expected_top = "manifests" if object_kind is ObjectKind.V1_MANIFEST else "depots"
        if location is not None and location.top == expected_top and ".." not in location.name:
            return path
        raise UnsafeReference(f"{path}: not a {kind} tree path")
    if cas_path(object_kind, path.rsplit("/", 1)[-1]) != path:
        raise UnsafeReference(f"{path}: not a {kind} tree path")
    return path


def parse_index(data: bytes) -> tuple[dict[str, Any], dict[str, Member]]:
    """The index's header fields and its members by name; UnsafeReference when malformed."""
    try:
        document = json.loads(data)
        members: dict[str, Member] = {}
        for entry in document["members"]:
            member = _member(entry)
            if member.name in members:
                raise UnsafeReference(f"{member.name}: listed twice")
            members[member.name] = member
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsafeReference(f"{INDEX_NAME} is not a valid index: {exc}") from None
    if document.get("format") != FORMAT or len(members) > MAX_MEMBERS:
        raise UnsafeReference(f"{INDEX_NAME}: unsupported format or too many members")
    return document, members


def _member(entry: dict[str, Any]) -> Member:
    name, kind, size, md5 = entry["name"], entry["kind"], entry["size"], entry["md5"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UnsafeReference(f"{name!r}: bad size {size!r}")
    if not isinstance(md5, str) or len(md5) != 32 or not all(c in "0123456789abcdef" for c in md5):
        raise UnsafeReference(f"{name!r}: bad md5 {md5!r}")
    if kind == DB_KIND:
        table = name.removeprefix("db/").removesuffix(".jsonl") if isinstance(name, str) else ""
        if table not in TABLES or name != db_member_name(table) or size > MAX_DB_MEMBER_BYTES:
            raise UnsafeReference(f"{name!r}: not a DB member this version reads")
        return Member(name, kind, None, size, md5)
    if name != check_tree_path(kind, name) or entry.get("path") != name:
        raise UnsafeReference(f"{name!r}: name and path differ")
    return Member(name, kind, name, size, md5)
