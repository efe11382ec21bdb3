"""Pure parsing of content-system JSON: builds lists and V2 manifests (protocol.md §2-4, §7).

Every parse_* function takes bytes or decoded JSON plus `what`, a name for the object used in
error messages, and returns frozen dataclasses or raises ManifestError naming the object and
the field. Nothing here touches the network or the disk.

A manifest whose shape is wrong (wrong types, missing required keys, not zlib/JSON) is
rejected whole. An entry of one of its lists whose values have the right types but an unsafe
or malformed form (`UnsafeReference`: an id that is not an MD5, a path leaving its directory,
a link target outside the install directory) is left out and named in the result's `skipped`,
so one odd entry from GOG costs that entry, not the build (README, "Bad input").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from galaxy_archive.errors import ManifestError, UnsafeReference
from galaxy_archive.models.decoding import (
    decode_json,
    decode_meta,
    json_count,
    json_field,
    json_size,
    json_strings,
    parse_entries,
    read_bounded,
)
from galaxy_archive.models.layout import (
    check_id,
    check_md5,
    safe_link_target,
    safe_relative_path,
)
from galaxy_archive.models.links import fill_url_format

_LINK_HASH_RE = re.compile(r"/([0-9a-fA-F]{32})/?$")
_V1_LINK_RE = re.compile(
    r"/content-system/v1/manifests/([0-9]{1,24})/([^/]+)/([0-9]{1,24})/repository\.json$"
)


# --- builds lists (protocol.md §2) ---------------------------------------------------------


@dataclass(frozen=True)
class BuildListing:
    """One item of a builds list."""

    build_id: str
    product_id: str
    os: str
    generation: int
    branch: str | None
    version_name: str
    date_published: str
    public: bool
    tags: tuple[str, ...]
    manifest_urls: tuple[str, ...]  # `link`, or every `urls[].url` in preferred order
    legacy_build_id: int | None
    item: dict[str, Any]

    @property
    def repository_md5(self) -> str:
        """Gen 2: the repository manifest id, the last path segment of its URL."""
        for url in self.manifest_urls:
            match = _LINK_HASH_RE.search(urlsplit(url).path)
            if match:
                return match.group(1).lower()
        raise ManifestError(f"build {self.build_id}: no manifest hash in its link")


@dataclass(frozen=True)
class SkippedItem:
    """A builds list item that could not be used; `reason` names the list and the build."""

    build_id: str | None  # None when the item's own build_id is unusable
    reason: str


@dataclass(frozen=True)
class BuildsList:
    total_count: int
    items: tuple[BuildListing, ...]
    has_private_branches: bool
    skipped: tuple[SkippedItem, ...] = ()

    @property
    def is_truncated(self) -> bool:
        """GOG may list fewer items than it has (protocol.md 2.2: count < total_count).

        A list with skipped items counts as truncated too: it proves nothing about them.
        """
        return self.total_count > len(self.items)


def is_blank(body: bytes) -> bool:
    """An empty (or whitespace-only) answer: GOG's "no builds for this OS" (protocol.md 2.1)."""
    return not body.strip()


def decode_builds_list(body: bytes, what: str, *, cdn: str | None = None) -> BuildsList:
    """A builds list answer as served; a blank body lists no builds (protocol.md 2.1)."""
    if is_blank(body):
        return BuildsList(total_count=0, items=(), has_private_branches=False)
    return parse_builds_list(decode_json(body, what), what, cdn=cdn)


def parse_builds_list(doc: Any, what: str, *, cdn: str | None = None) -> BuildsList:
    """A decoded builds list; `[]` or `{}` (no items) lists no builds (protocol.md 2.1).

    One unusable item does not spoil the others: it is left out and named in `skipped`.

    :param cdn: the configured CDN base, to rebuild a generation-1 item's missing link from
        its legacy_build_id (protocol.md 6.1); None: such an item is skipped.
    """
    if doc == []:
        return BuildsList(total_count=0, items=(), has_private_branches=False)
    items_raw = json_field(doc, "items", list, what, [])
    items: list[BuildListing] = []
    skipped: list[SkippedItem] = []
    for index, raw in enumerate(items_raw):
        try:
            items.append(_parse_build_item(raw, f"{what} items[{index}]", cdn))
        except ManifestError as exc:
            skipped.append(SkippedItem(_raw_build_id(raw), str(exc)))
    return BuildsList(
        total_count=json_count(doc, "total_count", what, len(items_raw)),
        items=tuple(items),
        has_private_branches=bool(json_field(doc, "has_private_branches", bool, what, False)),
        skipped=tuple(skipped),
    )


def _raw_build_id(item: Any) -> str | None:
    value = item.get("build_id") if isinstance(item, dict) else None
    try:
        return check_id(value, "build_id")
    except ManifestError:
        return None


def _parse_build_item(item: Any, what: str, cdn: str | None) -> BuildListing:
    build_id = check_id(json_field(item, "build_id", (str, int), what), f"{what} build_id")
    what = f"{what} (build {build_id})"
    generation = json_count(item, "generation", what)
    if generation not in (1, 2):
        raise ManifestError(f"{what}: unknown generation {generation!r}")
    product_id = check_id(json_field(item, "product_id", (str, int), what), f"{what} product_id")
    os_name = json_field(item, "os", str, what)
    urls = _manifest_urls(item, what)
    legacy = None
    if generation == 1:
        legacy, urls = _v1_location(item, product_id, os_name, urls, cdn, what)
    elif not urls:
        raise ManifestError(f"{what}: neither 'link' nor 'urls'")
    branch = json_field(item, "branch", str, what, None)
    return BuildListing(
        build_id=build_id,
        product_id=product_id,
        os=os_name,
        generation=generation,
        branch=branch or None,
        version_name=json_field(item, "version_name", str, what, ""),
        date_published=json_field(item, "date_published", str, what, ""),
        public=json_field(item, "public", bool, what, True),
        tags=json_strings(item, "tags", what),
        manifest_urls=urls,
        legacy_build_id=legacy,
        item=item,
    )


def _manifest_urls(item: dict[str, Any], what: str) -> tuple[str, ...]:
    """`link` (classic) or `urls[]` (_version=2), best endpoint first (protocol.md 2.3, 5.4)."""
    link = json_field(item, "link", str, what, None)
    if link:
        return (link,)
    entries = [e for e in json_field(item, "urls", list, what, []) if isinstance(e, dict)]
    ranked = sorted(
        entries, key=lambda e: (bool(e.get("fallback_only")), -_as_number(e.get("priority")))
    )
    return tuple(url for url in map(_entry_url, ranked) if url is not None)


def _entry_url(entry: dict[str, Any]) -> str | None:
    """A `urls[]` entry's manifest URL: its `url`, else its `url_format` filled from its
    `parameters` as links are (protocol.md 5.3; no suffix: they name the manifest itself).
    None for an entry that gives no absolute http(s) URL (the item's other entries may)."""
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        url_format, parameters = entry.get("url_format"), entry.get("parameters")
        if not isinstance(url_format, str):
            return None
        url = fill_url_format(url_format, parameters if isinstance(parameters, dict) else {})
    if url is None:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _v1_location(
    item: dict[str, Any],
    product_id: str,
    os_name: str,
    urls: tuple[str, ...],
    cdn: str | None,
    what: str,
) -> tuple[int, tuple[str, ...]]:
    """A generation-1 build's legacy id and repository.json URLs. Either can be derived from
    the other: the link is `{cdn}/content-system/v1/manifests/{pid}/{os}/{legacy}/repository.json`
    (protocol.md 6.1)."""
    raw = json_field(item, "legacy_build_id", (int, str), what, None)
    if raw is not None:
        legacy: int | None = int(check_id(raw, f"{what} legacy_build_id"))
    else:
        legacy = _legacy_from_links(urls, product_id, os_name)
    if legacy is None:
        raise ManifestError(f"{what}: generation 1 build without legacy_build_id")
    if not urls:
        if cdn is None:
            raise ManifestError(f"{what}: generation 1 build without a link")
        os_segment = quote(os_name, safe="")
        urls = (
            f"{cdn.rstrip('/')}/content-system/v1/manifests/{product_id}/{os_segment}/"
            f"{legacy}/repository.json",
        )
    return legacy, urls


def _legacy_from_links(urls: tuple[str, ...], product_id: str, os_name: str) -> int | None:
    """The legacy build id a V1 repository link names, if it is this product's and OS's."""
    for url in urls:
        match = _V1_LINK_RE.search(urlsplit(url).path)
        if match and match.group(1) == product_id and match.group(2) == os_name:
            return int(match.group(3))
    return None


def _as_number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def added_build_item(repository: RepositoryV2, manifest_url: str, added_by: str) -> dict[str, Any]:
    """A builds-list item for a build known only by its repository manifest (GOG lists it no
    more): what the manifest says of it, no publication date, and `added_by`, its source."""
    return {
        "build_id": repository.build_id,
        "product_id": repository.base_product_id,
        "os": repository.platform,
        "generation": 2,
        "branch": None,
        "version_name": "",
        "date_published": "",
        "tags": [],
        "public": True,
        "link": manifest_url,
        "added_by": added_by,
    }


# --- V2 repository manifest (protocol.md §3) -----------------------------------------------


@dataclass(frozen=True)
class DepotRef:
    """A depot entry of a repository (or patch, or dependency repository) manifest."""

    product_id: str
    manifest: str
    languages: tuple[str, ...]
    size: int
    compressed_size: int
    is_gog_depot: bool = False
    is_offline: bool = False


@dataclass(frozen=True)
class RepositoryV2:
    base_product_id: str
    build_id: str | None
    platform: str
    depots: tuple[DepotRef, ...]
    offline_depot: DepotRef | None
    product_ids: tuple[str, ...]
    dependencies: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # entries left out, each named (see the module docstring)


def parse_depot_ref(obj: Any, what: str, *, is_offline: bool = False) -> DepotRef:
    return DepotRef(
        product_id=check_id(json_field(obj, "productId", (str, int), what), f"{what} productId"),
        manifest=check_md5(json_field(obj, "manifest", str, what), f"{what} manifest"),
        languages=json_strings(obj, "languages", what),
        size=json_size(obj, "size", what, 0),
        compressed_size=json_size(obj, "compressedSize", what, 0),
        is_gog_depot=bool(json_field(obj, "isGogDepot", bool, what, False)),
        is_offline=is_offline,
    )


def _product_id(entry: Any, what: str) -> str:
    return check_id(json_field(entry, "productId", (str, int), what), f"{what} productId")


def parse_product_ids(doc: Any, what: str, skipped: list[str]) -> tuple[str, ...]:
    """The `products[].productId` of a repository or patch root: the base game and its DLC."""
    products = json_field(doc, "products", list, what, [])
    return tuple(parse_entries(products, _product_id, f"{what} products", skipped))


def parse_depot_refs(doc: Any, what: str, skipped: list[str]) -> tuple[DepotRef, ...]:
    """The `depots[]` of a repository or patch root manifest."""
    depots = json_field(doc, "depots", list, what)
    return tuple(parse_entries(depots, parse_depot_ref, f"{what} depots", skipped))


def _offline_depot(doc: Any, what: str, skipped: list[str]) -> DepotRef | None:
    raw = json_field(doc, "offlineDepot", dict, what, None)
    if raw is None:
        return None
    try:
        return parse_depot_ref(raw, f"{what} offlineDepot", is_offline=True)
    except UnsafeReference as exc:
        skipped.append(f"{exc}; entry skipped")
        return None


def parse_repository_v2(doc: Any, what: str) -> RepositoryV2:
    skipped: list[str] = []
    depots = parse_depot_refs(doc, what, skipped)
    offline = _offline_depot(doc, what, skipped)
    product_ids = parse_product_ids(doc, what, skipped)
    build_id = json_field(doc, "buildId", (str, int), what, None)
    return RepositoryV2(
        base_product_id=check_id(json_field(doc, "baseProductId", (str, int), what), what),
        build_id=str(build_id) if build_id is not None else None,
        platform=json_field(doc, "platform", str, what, ""),
        depots=depots,
        offline_depot=offline,
        product_ids=product_ids,
        dependencies=json_strings(doc, "dependencies", what),
        skipped=tuple(skipped),
    )


# --- V2 depot manifest (protocol.md §4, §7.3) ----------------------------------------------


@dataclass(frozen=True)
class ChunkRef:
    compressed_md5: str
    compressed_size: int
    md5: str
    size: int


@dataclass(frozen=True)
class DepotFile:
    path: PurePosixPath
    chunks: tuple[ChunkRef, ...]
    md5: str | None
    sfc_ref: tuple[int, int] | None  # (offset, size) into the inflated small-files container


@dataclass(frozen=True)
class DepotDiff:
    """A patch item: chunks inflate and concatenate to an xdelta3 delta (protocol.md 7.3)."""

    path_source: PurePosixPath
    path_target: PurePosixPath
    md5_source: str
    md5_target: str
    chunks: tuple[ChunkRef, ...]


@dataclass(frozen=True)
class DepotManifest:
    files: tuple[DepotFile, ...]
    diffs: tuple[DepotDiff, ...]
    sfc_chunks: tuple[ChunkRef, ...]
    skipped: tuple[str, ...] = ()  # items left out, each named (see the module docstring)

    def chunks(self) -> tuple[ChunkRef, ...]:
        """Every chunk a mirror needs: SFC chunks and those of files and diffs not in an SFC."""
        own = [c for f in self.files if not self.is_in_sfc(f) for c in f.chunks]
        return (*self.sfc_chunks, *own, *(c for d in self.diffs for c in d.chunks))

    def sfc_member_chunks(self) -> tuple[ChunkRef, ...]:
        """Chunks of files that also live in an SFC: the CDN may not have them (4.3)."""
        return tuple(c for f in self.files if self.is_in_sfc(f) for c in f.chunks)

    def is_in_sfc(self, file: DepotFile) -> bool:
        """Whether the container really holds the file's bytes: a region that runs past its
        end, or an sfcRef in a depot without one, leaves the file's own chunks required
        (protocol.md 4.3: members are optional "as long as the SFC covers the file")."""
        if file.sfc_ref is None:
            return False
        offset, size = file.sfc_ref
        return offset + size <= self._sfc_size

    @functools.cached_property
    def _sfc_size(self) -> int:
        return sum(c.size for c in self.sfc_chunks)


def _parse_chunk(obj: Any, what: str) -> ChunkRef:
    return ChunkRef(
        compressed_md5=check_md5(
            json_field(obj, "compressedMd5", str, what), f"{what} compressedMd5"
        ),
        compressed_size=json_size(obj, "compressedSize", what),
        md5=check_md5(json_field(obj, "md5", str, what), f"{what} md5"),
        size=json_size(obj, "size", what),
    )


def _parse_chunks(obj: Any, what: str) -> tuple[ChunkRef, ...]:
    return tuple(
        _parse_chunk(c, f"{what} chunks[{i}]")
        for i, c in enumerate(json_field(obj, "chunks", list, what, []))
    )


def _optional_md5(obj: Any, key: str, what: str) -> str | None:
    value = json_field(obj, key, str, what, None)
    return check_md5(value, f"{what} {key}") if value else None


def parse_depot_manifest(doc: Any, what: str) -> DepotManifest:
    depot = json_field(doc, "depot", dict, what)
    skipped: list[str] = []
    items = parse_entries(
        json_field(depot, "items", list, what, []), _parse_item, f"{what} items", skipped
    )
    return DepotManifest(
        files=tuple(item for item in items if isinstance(item, DepotFile)),
        diffs=tuple(item for item in items if isinstance(item, DepotDiff)),
        sfc_chunks=_sfc_chunks(depot, what, skipped),
        skipped=tuple(skipped),
    )


def _parse_item(item: Any, what: str) -> DepotFile | DepotDiff | None:
    """A file or diff item; None for a directory or link (checked, then nothing to fetch)."""
    kind = json_field(item, "type", str, what, "DepotFile")
    if kind == "DepotFile":
        return _parse_file(item, what)
    if kind == "DepotDiff":
        return _parse_diff(item, what)
    if kind == "DepotDirectory":
        safe_relative_path(json_field(item, "path", str, what), what)
        return None
    if kind == "DepotLink":
        path = safe_relative_path(json_field(item, "path", str, what), what)
        safe_link_target(path, json_field(item, "target", str, what, ""), what)
        return None
    raise ManifestError(f"{what}: unknown item type {kind!r}")


def _sfc_chunks(depot: Any, what: str, skipped: list[str]) -> tuple[ChunkRef, ...]:
    """The small-files container's chunks; with an unsafe chunk, no container at all: its
    members then need their own chunks (protocol.md 4.3), which keeps them restorable."""
    sfc = json_field(depot, "smallFilesContainer", dict, what, None)
    if sfc is None:
        return ()
    try:
        return _parse_chunks(sfc, f"{what} smallFilesContainer")
    except UnsafeReference as exc:
        skipped.append(f"{exc}; the small-files container is skipped")
        return ()


def _parse_file(item: Any, what: str) -> DepotFile:
    path = safe_relative_path(json_field(item, "path", str, what), what)
    sfc = json_field(item, "sfcRef", dict, what, None)
    sfc_ref = None
    if sfc is not None:
        sfc_ref = (
            json_size(sfc, "offset", f"{what} sfcRef"),
            json_size(sfc, "size", f"{what} sfcRef"),
        )
    return DepotFile(
        path=path,
        chunks=_parse_chunks(item, what),
        md5=_optional_md5(item, "md5", what),
        sfc_ref=sfc_ref,
    )


def _parse_diff(item: Any, what: str) -> DepotDiff:
    return DepotDiff(
        path_source=safe_relative_path(json_field(item, "path_source", str, what), what),
        path_target=safe_relative_path(json_field(item, "path_target", str, what), what),
        md5_source=check_md5(json_field(item, "md5_source", str, what), f"{what} md5_source"),
        md5_target=check_md5(json_field(item, "md5_target", str, what), f"{what} md5_target"),
        chunks=_parse_chunks(item, what),
    )


def read_repository(reader: BinaryIO, what: str) -> RepositoryV2:
    """A stored (or just downloaded) V2 repository manifest, read from `reader`, bounded."""
    return parse_repository_v2(decode_meta(read_bounded(reader, what), what), what)


def read_depot(reader: BinaryIO, what: str) -> DepotManifest:
    """A stored (or just downloaded) V2 depot manifest, read from `reader`, bounded."""
    return parse_depot_manifest(decode_meta(read_bounded(reader, what), what), what)
