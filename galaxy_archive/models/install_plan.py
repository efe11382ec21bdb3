"""What a restore writes into DEST, planned from parsed depot manifests. Pure: JSON in, values out.

A plan is every file to write (with where its bytes come from: its own chunks, a slice of
its depot's inflated small-files container, or for generation 1 an extent of its blob), every
directory and every link, each at a DEST-relative POSIX path that cannot leave DEST:

- paths come through `layout.safe_relative_path` (backslashes become '/', absolute paths and
  '..' are refused); `support` files go under `support/<productId>/` as heroic-gogdl places
  them;
- a `DepotLink` whose target, resolved from the link's directory, would leave DEST is a
  problem, never a link;
- two items differing only in case are a problem (a case-insensitive destination would let one
  overwrite the other silently);
- a hostile `installDirectory` is a problem naming it.

Problems are collected, not raised: the use case refuses the whole restore up front, naming
each one. The file list itself is models.build_files' (one definition of a build's files).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.build_files import DepotInfo, v2_depot_files
from galaxy_archive.models.decoding import json_field
from galaxy_archive.models.layout import ObjectKind, safe_relative_path, v1_blob_path
from galaxy_archive.models.manifests import ChunkRef, parse_depot_manifest
from galaxy_archive.models.v1_manifests import (
    DEFAULT_BLOB_NAME,
    BlobRef,
    parse_depot_manifest_v1,
)

SUPPORT_DIR = "support"


@dataclass(frozen=True)
class SfcSlice:
    """A member's bytes: `size` bytes at `offset` of the inflated container `chunks` make."""

    chunks: tuple[ChunkRef, ...]
    offset: int
    size: int


@dataclass(frozen=True)
class V1Extent:
    """A generation-1 file's bytes: `size` bytes at `offset` of the stored blob `blob_path`."""

    blob_path: str
    offset: int
    size: int


@dataclass(frozen=True)
class FileToWrite:
    path: str  # DEST-relative, '/'
    size: int
    md5: str | None  # None only when the manifest gives no way to know it
    sha256: str | None
    is_executable: bool
    chunks: tuple[ChunkRef, ...]  # its own chunks, inflated in order (empty: see `sfc`)
    sfc: SfcSlice | None  # set for a member of a small-files container: cut from it
    depot: DepotInfo
    extent: V1Extent | None = None  # generation 1: cut from its blob
    chunk_kind: ObjectKind = ObjectKind.STORE  # where its chunks are kept (offline, dependency)

    @property
    def sources(self) -> tuple[ChunkRef, ...]:
        """The chunks this file is read from (what it needs from the archive, with `extent`)."""
        if self.sfc is not None:
            return tuple(_overlapping(self.sfc))
        return self.chunks


@dataclass(frozen=True)
class LinkToMake:
    path: str
    target: str  # as the link will hold it, '/'


@dataclass(frozen=True)
class InstallPlan:
    files: tuple[FileToWrite, ...]
    directories: tuple[str, ...]
    links: tuple[LinkToMake, ...]
    problems: tuple[str, ...]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


# One depot's share of a plan: files, directories, links, problems.
Part = tuple[list["FileToWrite"], list[str], list["LinkToMake"], list[str]]


def plan_v2_depot(
    doc: Any, depot: DepotInfo, what: str, *, chunk_kind: ObjectKind = ObjectKind.STORE
) -> Part:
    """Files, directories, links and problems of one decoded V2 depot manifest."""
    manifest = parse_depot_manifest(doc, what)
    sfc_chunks = manifest.sfc_chunks
    refs = _sfc_refs(doc, what)
    sha256 = _sha256s(doc, what)
    files = []
    for built in v2_depot_files(doc, depot, what):
        support = "support" in built.flags
        where = _placed(built.path, support, depot.product_id)
        ref = refs.get(built.path) if built.is_sfc_member else None
        files.append(
            FileToWrite(
                path=where,
                size=built.size,
                md5=built.md5,
                sha256=sha256.get(built.path),
                is_executable="executable" in built.flags,
                chunks=built.chunks,
                sfc=SfcSlice(sfc_chunks, *ref) if ref is not None else None,
                depot=depot,
                chunk_kind=chunk_kind,
            )
        )
    directories, links, problems = _dirs_and_links(doc, depot.product_id, what)
    # A skipped link is named below by _dirs_and_links, against DEST; every other skipped
    # entry (a file path, a chunk reference) is named here.
    unlinked = [m for m in manifest.skipped if ": link target " not in m]
    return files, directories, links, _skipped_problems(unlinked) + problems


def plan_v1_depot(
    doc: Any, depot: DepotInfo, what: str, *, os_name: str, legacy_build_id: int
) -> Part:
    """Files (each an extent of its blob; zero-size records are empty files), directories,
    symlinks and problems of one decoded V1 depot manifest (protocol.md 6.2)."""
    manifest = parse_depot_manifest_v1(doc, what)
    files = []
    for record in manifest.files:
        blob = record.blob or BlobRef(depot.product_id, DEFAULT_BLOB_NAME)
        blob_path = v1_blob_path(blob.product_id, os_name, legacy_build_id, blob.name)
        files.append(
            FileToWrite(
                path=_placed(record.path.as_posix(), "support" in record.flags, depot.product_id),
                size=record.size,
                md5=record.md5,
                sha256=None,
                is_executable="executable" in record.flags,
                chunks=(),
                sfc=None,
                depot=depot,
                extent=V1Extent(blob_path, record.offset, record.size) if record.size else None,
            )
        )
    directories = [i.path.as_posix() for i in manifest.items if i.kind == "directory"]
    links: list[LinkToMake] = []
    problems = _skipped_problems(manifest.skipped)
    for item in manifest.items:
        if item.kind == "symlink" and item.target is not None:
            _add_link(item.path.as_posix(), item.target, links, problems)
    return files, directories, links, problems


def install_plan(
    parts: Iterable[Part],
    install_directory: str | None = None,
) -> InstallPlan:
    """One plan from its depots' parts, with the checks that need them all."""
    files: list[FileToWrite] = []
    directories: set[str] = set()
    links: list[LinkToMake] = []
    problems: list[str] = []
    for part_files, part_dirs, part_links, part_problems in parts:
        files.extend(part_files)
        directories.update(part_dirs)
        links.extend(part_links)
        problems.extend(part_problems)
    problems.extend(install_directory_problems(install_directory))
    problems.extend(case_clashes([f.path for f in files] + [link.path for link in links]))
    # The same path in two depots (a DLC shipping a base file again): the later depot wins.
    unique = sorted({f.path: f for f in files}.values(), key=lambda f: f.path)
    return InstallPlan(tuple(unique), tuple(sorted(directories)), tuple(links), tuple(problems))


def _skipped_problems(skipped: Iterable[str]) -> list[str]:
    """An entry the manifest parser had to leave out (an unsafe path or reference) is a file
    the build names that cannot be restored: a problem, never a silent gap in DEST."""
    return [f"refused: {message}" for message in skipped]


def install_directory_problems(install_directory: str | None) -> list[str]:
    """A hostile `installDirectory` (absolute, `..`) named; none and a plain one are fine."""
    if not install_directory:
        return []
    try:
        safe_relative_path(install_directory, "installDirectory")
    except ManifestError as exc:
        return [f"refused: {exc}"]
    return []


def case_clashes(paths: Iterable[str]) -> list[str]:
    """Paths that differ only in case (one problem per group), but the same path twice is a
    DLC shipping a file of the base game again: the later depot wins, as the clients do."""
    seen: dict[str, set[str]] = {}
    for path in paths:
        seen.setdefault(path.casefold(), set()).add(path)
    return [
        "refused: paths differing only in case would overwrite each other on a "
        f"case-insensitive destination: {', '.join(sorted(group))}"
        for group in seen.values()
        if len(group) > 1
    ]


def link_target_inside(link_path: str, target: str) -> str | None:
    """The target as the link will hold it when, resolved from the link's directory, it stays
    inside DEST; None when it would leave it (absolute, or too many '..')."""
    text = target.replace("\\", "/")
    if not text or "\x00" in text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), text))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        return None
    return text


def _placed(path: str, is_support: bool, product_id: str) -> str:
    return f"{SUPPORT_DIR}/{product_id}/{path}" if is_support else path


def _dirs_and_links(
    doc: Any, product_id: str, what: str
) -> tuple[list[str], list[LinkToMake], list[str]]:
    directories: list[str] = []
    links: list[LinkToMake] = []
    problems: list[str] = []
    for index, item in enumerate(doc["depot"].get("items") or []):
        kind = item.get("type", "DepotFile")
        where = f"{what} items[{index}]"
        if kind == "DepotDirectory":
            directories.append(safe_relative_path(item["path"], where).as_posix())
        elif kind == "DepotLink":
            path = safe_relative_path(item["path"], where).as_posix()
            _add_link(path, json_field(item, "target", str, where), links, problems)
    return directories, links, problems


def _add_link(path: str, raw_target: str, links: list[LinkToMake], problems: list[str]) -> None:
    target = link_target_inside(path, raw_target)
    if target is None:
        problems.append(f"refused: link {path} -> {raw_target!r} would leave DEST")
    else:
        links.append(LinkToMake(path, target))


def _sfc_refs(doc: Any, what: str) -> dict[str, tuple[int, int]]:
    """path -> (offset, size) of the DepotFile items with an sfcRef (parsed already)."""
    refs: dict[str, tuple[int, int]] = {}
    for index, item in enumerate(doc["depot"].get("items") or []):
        ref = item.get("sfcRef")
        if ref is not None and item.get("type", "DepotFile") == "DepotFile":
            path = safe_relative_path(item["path"], f"{what} items[{index}]").as_posix()
            refs[path] = (int(ref["offset"]), int(ref["size"]))
    return refs


def _sha256s(doc: Any, what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, item in enumerate(doc["depot"].get("items") or []):
        value = item.get("sha256")
        if isinstance(value, str) and item.get("type", "DepotFile") == "DepotFile":
            path = safe_relative_path(item["path"], f"{what} items[{index}]").as_posix()
            found[path] = value.lower()
    return found


def _overlapping(sfc: SfcSlice) -> list[ChunkRef]:
    """The container chunks holding bytes of [offset, offset + size)."""
    found = []
    start = 0
    end = sfc.offset + sfc.size
    for chunk in sfc.chunks:
        if start < end and start + chunk.size > sfc.offset:
            found.append(chunk)
        start += chunk.size
    return found
