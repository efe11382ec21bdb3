"""The file list of a build, from its parsed depot manifests (V2 or V1). Pure: JSON in, values out.

One shape for both generations, so that `show --files` lists them alike and `diff` compares a
V1 build with a V2 build by path: every path uses '/' (GOG's V2 backslashes and V1's leading
'/' are gone, as `layout.safe_relative_path` makes them), every file names the depot it comes
from. Directories, links and symlinks carry no bytes and are not files here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.layout import safe_relative_path
from galaxy_archive.models.manifests import ChunkRef, DepotFile, parse_depot_manifest
from galaxy_archive.models.v1_manifests import EMPTY_MD5, parse_depot_manifest_v1


@dataclass(frozen=True)
class DepotInfo:
    """Where a file comes from: its depot manifest (a V2 MD5 or a V1 `<uuid>.json` name) and the
    product and languages the build lists the depot under."""

    manifest: str
    product_id: str
    languages: tuple[str, ...]
    is_offline: bool = False


@dataclass(frozen=True)
class BuildFile:
    """One file of a build. `md5` is None only when the manifest gives no way to know it (a V2
    file of several chunks without `md5`, a V1 record without `hash`)."""

    path: str
    size: int
    md5: str | None
    depot: DepotInfo
    flags: tuple[str, ...]
    is_sfc_member: bool  # V2: its bytes are also in the depot's small-files container
    chunks: tuple[ChunkRef, ...]  # V2 only; a V1 file is a range of its blob


@dataclass(frozen=True)
class BuildFiles:
    """Every file of a build, ordered by path, then depot."""

    generation: int
    files: tuple[BuildFile, ...]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def v2_depot_files(doc: Any, depot: DepotInfo, what: str) -> tuple[BuildFile, ...]:
    """The files of a decoded V2 depot manifest (protocol.md §4)."""
    manifest = parse_depot_manifest(doc, what)
    flags = _v2_flags(doc, what)
    return tuple(
        BuildFile(
            path=file.path.as_posix(),
            size=_v2_size(file),
            md5=_v2_md5(file),
            depot=depot,
            flags=flags.get(file.path.as_posix(), ()),
            is_sfc_member=manifest.is_in_sfc(file),
            chunks=file.chunks,
        )
        for file in manifest.files
    )


def v1_depot_files(doc: Any, depot: DepotInfo, what: str) -> tuple[BuildFile, ...]:
    """The files of a decoded V1 depot manifest (protocol.md §6.2), empty files included."""
    manifest = parse_depot_manifest_v1(doc, what)
    return tuple(
        BuildFile(
            path=file.path.as_posix(),
            size=file.size,
            md5=file.md5,
            depot=depot,
            flags=file.flags,
            is_sfc_member=False,
            chunks=(),
        )
        for file in manifest.files
    )


def build_files(generation: int, depots: Iterable[Iterable[BuildFile]]) -> BuildFiles:
    """One build's file list from its depots' lists."""
    files = [file for depot in depots for file in depot]
    files.sort(key=lambda f: (f.path, f.depot.product_id, f.depot.languages, f.depot.manifest))
    return BuildFiles(generation=generation, files=tuple(files))


def _v2_size(file: DepotFile) -> int:
    if file.chunks:
        return sum(chunk.size for chunk in file.chunks)
    return file.sfc_ref[1] if file.sfc_ref is not None else 0


def _v2_md5(file: DepotFile) -> str | None:
    """The file's MD5; a file of one chunk without `md5` is that chunk (every client reads it
    so), a file without chunks or container bytes is empty."""
    if file.md5 is not None:
        return file.md5
    if len(file.chunks) == 1:
        return file.chunks[0].md5
    if not file.chunks and (file.sfc_ref is None or file.sfc_ref[1] == 0):
        return EMPTY_MD5
    return None


def _v2_flags(doc: Any, what: str) -> dict[str, tuple[str, ...]]:
    """path -> `flags` of the DepotFile items (models.manifests does not keep them: sync needs
    no flags). The manifest has been parsed already, so the shapes are known to be sound."""
    flags: dict[str, tuple[str, ...]] = {}
    for index, item in enumerate(doc["depot"].get("items") or []):
        raw = item.get("flags")
        if raw is None or item.get("type", "DepotFile") != "DepotFile":
            continue
        where = f"{what} items[{index}]"
        if not isinstance(raw, list) or not all(isinstance(flag, str) for flag in raw):
            raise ManifestError(f"{where}: field 'flags' should be a list of strings")
        flags[safe_relative_path(item["path"], where).as_posix()] = tuple(raw)
    return flags
