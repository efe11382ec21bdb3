"""Where each kind of object is fetched from: the one place sync and `verify --repair` ask.

Pure apart from the URL bases it reads from the GalaxyApi (the configured endpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from galaxy_archive.fetch.tasks import Plain, Signed, Source
from galaxy_archive.models.layout import ObjectKind, galaxy_path, split_v1_path
from galaxy_archive.upstream.galaxy_api import GalaxyApi, LinkRequest


def chunk_sources(
    api: GalaxyApi, kind: ObjectKind, md5: str, *product_ids: str
) -> tuple[Source, ...]:
    """A V2 chunk: signed under each of its products' stores in turn (the CDN stores chunks
    per product, protocol.md 4.4); offline chunks are public first."""
    signed = tuple(Signed(LinkRequest(product_id), galaxy_path(md5)) for product_id in product_ids)
    if kind is ObjectKind.OFFLINE:
        # Offline-depot chunks are public under v2/offline (GROG); the signed store path is
        # the fallback.
        return (Plain(api.cdn_url("v2/offline", md5)), *signed)
    return signed


def meta_sources(api: GalaxyApi, md5: str, *extra_urls: str) -> tuple[Source, ...]:
    """A V2 manifest: the URLs GOG named (builds list), then the configured CDN's v2/meta."""
    urls = dict.fromkeys([*extra_urls, api.cdn_url("v2/meta", md5)])
    return tuple(Plain(url) for url in urls)


def sibling_meta_urls(build_links: tuple[str, ...], md5: str) -> list[str]:
    """The same meta file next to the build's repository manifest, on the CDN GOG named.

    GOGDB derives depot-manifest URLs from the build link's base; for collector links
    (protocol.md 2.3) there is no such base and only the configured CDN is asked.
    """
    marker = "/content-system/v2/meta/"
    return [
        f"{link[: link.index(marker)]}{marker}{galaxy_path(md5)}"
        for link in build_links
        if marker in link
    ]


def patch_meta_sources(api: GalaxyApi, md5: str, *extra_urls: str) -> tuple[Source, ...]:
    """A patch root or patch depot manifest: the index's `link`, then v2/patches/meta."""
    urls = dict.fromkeys([*extra_urls, api.cdn_url("v2/patches/meta", md5)])
    return tuple(Plain(url) for url in urls)


def patch_chunk_sources(md5: str, product_id: str) -> tuple[Source, ...]:
    """A patch delta chunk: signed, under the product's secure link with root /patches/store."""
    return (Signed(LinkRequest(product_id, root="/patches/store"), galaxy_path(md5)),)


def dependency_meta_sources(api: GalaxyApi, md5: str, *extra_urls: str) -> tuple[Source, ...]:
    """The dependency repository or a dependency depot manifest: as named, then v2 meta."""
    urls = dict.fromkeys([*extra_urls, api.cdn_url("v2/dependencies/meta", md5)])
    return tuple(Plain(url) for url in urls)


def dependency_chunk_sources(api: GalaxyApi, md5: str) -> tuple[Source, ...]:
    """A dependency chunk: no product segment, unsigned, through open_link (protocol.md 5.6);
    then straight from the configured CDN, as GDLLIB does, should open_link fail."""
    return (
        Signed(LinkRequest(None, path="/dependencies/store/"), galaxy_path(md5)),
        Plain(api.cdn_url("v2/dependencies/store", md5)),
    )


def v1_manifest_sources(
    api: GalaxyApi,
    product_id: str,
    os_name: str,
    legacy_build_id: int,
    name: str,
    *,
    depot_product_id: str | None = None,
    repository_urls: Sequence[str] = (),
) -> tuple[Source, ...]:
    """A V1 manifest (plain JSON): beside repository.json, as GOG linked it and then on the
    configured CDN; a DLC's depot manifest then also under the DLC's own directory, which
    HGD and WARP use instead (protocol.md 6.2)."""
    urls = [_sibling(url, name) for url in repository_urls]
    urls.append(api.v1_manifest_url(product_id, os_name, legacy_build_id, name))
    if depot_product_id is not None and depot_product_id != product_id:
        urls += [_sibling(url, name, product_id, depot_product_id) for url in repository_urls]
        urls.append(api.v1_manifest_url(depot_product_id, os_name, legacy_build_id, name))
    return tuple(Plain(url) for url in dict.fromkeys(urls))


def _sibling(url: str, name: str, product_id: str = "", replacement: str = "") -> str:
    """`name` in the directory of `url` (…/<pid>/<os>/<legacy>/repository.json), optionally
    with the <pid> segment replaced."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    segments[-1] = name
    if replacement and len(segments) >= 4 and segments[-4] == product_id:
        segments[-4] = replacement
    return urlunsplit((parts.scheme, parts.netloc, "/".join(segments), parts.query, ""))


def v1_blob_link(product_id: str, os_name: str, legacy_build_id: int) -> LinkRequest:
    """The gen-1 secure link of a build's blobs, in HGD's form (protocol.md 5.1)."""
    return LinkRequest(
        product_id, generation=1, path=f"/{os_name}/{legacy_build_id}/", link_type="depot"
    )


def v1_blob_source(product_id: str, os_name: str, legacy_build_id: int, name: str) -> Signed:
    """A V1 blob through the gen-1 secure link. Fetch it with `v1_sync.download_blob`
    (parallel ranges, each file record checked); a plain Downloader would fetch it whole."""
    return Signed(v1_blob_link(product_id, os_name, legacy_build_id), name)


def sources_for(
    api: GalaxyApi,
    kind: ObjectKind,
    md5: str,
    product_id: str | None,
    path: str | None = None,
) -> tuple[Source, ...]:
    """Sources for an object known only by its DB row (kind, md5, product it came under,
    archive path: V1 objects are named by their path, not their MD5).

    Kinds added later (patches, dependencies, V1) register their rules here too, so that
    `verify --repair` fetches exactly as sync does.
    """
    if kind in (ObjectKind.V1_MANIFEST, ObjectKind.V1_BLOB):
        where = split_v1_path(path or "")
        if where is None:
            return ()
        if kind is ObjectKind.V1_BLOB:
            return (v1_blob_source(where.product_id, where.os, where.legacy_build_id, where.name),)
        return v1_manifest_sources(
            api,
            where.product_id,
            where.os,
            where.legacy_build_id,
            where.name,
            depot_product_id=product_id,
        )
    if kind is ObjectKind.META:
        return meta_sources(api, md5)
    if kind in (ObjectKind.STORE, ObjectKind.OFFLINE):
        if product_id is None:
            return ()
        return chunk_sources(api, kind, md5, product_id)
    if kind is ObjectKind.PATCH_META:
        return patch_meta_sources(api, md5)
    if kind is ObjectKind.PATCH_STORE:
        return patch_chunk_sources(md5, product_id) if product_id is not None else ()
    if kind is ObjectKind.DEP_META:
        return dependency_meta_sources(api, md5)
    if kind is ObjectKind.DEP_STORE:
        return dependency_chunk_sources(api, md5)
    return ()
