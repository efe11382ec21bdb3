"""Which endpoint or archived object a request names. Pure: a path and query in, a Route out.

One port plays every GOG host, so routing is by path alone, whatever the Host header says
(protocol.md: auth `/token`, embed `/user/data/games`, www `/account`, api `/products/{id}`,
content-system `/products/{id}/...`, `/open_link`, `/dependencies/repository`, and the CDN
paths). The CDN's signed forms resolve to the same objects as the plain paths: fastly puts a
`/token=nva=...~dirs=...~token=...` segment before the path, gcore a query string after it;
the signature is not checked (the archive serves only what it proved, to whoever asks).

Every object path is matched against strict patterns (32-hex hashes, digit ids, known OS
names, safe file names), so `..`, encoded dots, NUL or an absolute path never match: they
are `NotFound`, and no tree path is ever built from unmatched text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_H = r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})"
_PID = r"([0-9]{1,24})"
_OS = r"(windows|osx)"
_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"
# area on the CDN (after /content-system/v2/) -> area in the tree (after v2/)
_UNSIGNED_AREAS = {
    "meta": "meta",
    "offline": "offline",
    "patches/meta": "patches/meta",
    "dependencies/meta": "dependencies/meta",
    "dependencies/store": "dependencies/store",
}
_UNSIGNED_RE = re.compile(
    rf"^/content-system/v2/(meta|offline|patches/meta|dependencies/meta|dependencies/store)"
    rf"/{_H}$"
)
_OFFLINE_OWNED_RE = re.compile(rf"^/content-system/v2/offline/{_PID}/{_H}$")
_STORE_RE = re.compile(rf"^/content-system/v2/(store|patches/store)/{_PID}/{_H}$")
_COLLECTOR_RE = re.compile(rf"^/manifests/builds/{_H}$")
_V1_MANIFEST_RE = re.compile(
    rf"^/content-system/v1/manifests/{_PID}/{_OS}/([0-9]{{1,24}})/{_NAME}$"
)
_V1_BLOB_RE = re.compile(rf"^/content-system/v1/depots/{_PID}/{_OS}/([0-9]{{1,24}})/{_NAME}$")
_FASTLY_SEGMENT_RE = re.compile(r"^/token=[^/]*(/.*)$")

_BUILDS_RE = re.compile(rf"^/products/{_PID}/os/([a-z]+)/builds/?$")
_SECURE_LINK_RE = re.compile(rf"^/products/{_PID}/secure_link/?$")
_PATCHES_RE = re.compile(rf"^/products/{_PID}/patches/?$")
_PRODUCT_RE = re.compile(rf"^/(?:v2/)?products/{_PID}/?$")

HEARTBEAT_PATH = "/galaxy-archive/heartbeat"


@dataclass(frozen=True)
class ObjectRoute:
    """An archived object: its tree path, and the product the URL names it under (a chunk is
    served only under a product the DB records for it, as the CDN does)."""

    relative: str
    owner: str | None = None


@dataclass(frozen=True)
class V1ManifestRoute:
    """A V1 manifest; a DLC's depot manifest is also asked for under the DLC's own id
    (heroic-gogdl, gog-warp), so the lookup may have to find it beside another product's
    repository.json."""

    product_id: str
    os: str
    legacy_build_id: str
    name: str

    @property
    def relative(self) -> str:
        return f"v1/manifests/{self.product_id}/{self.os}/{self.legacy_build_id}/{self.name}"


@dataclass(frozen=True)
class ApiRoute:
    """A JSON endpoint: `name` says which; `product_id` and `os` where the path has them."""

    name: str  # token, owned, account, product, builds, secure_link, patches, deps, open_link
    product_id: str | None = None
    os: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class NotFound:
    pass


Route = ObjectRoute | V1ManifestRoute | ApiRoute | Heartbeat | NotFound

_FIXED_API_PATHS = {
    "/token": "token",
    "/user/data/games": "owned",
    "/account": "account",
    "/userData.json": "account",
    "/dependencies/repository": "deps",
    "/open_link": "open_link",
}


def route(path: str) -> Route:
    """The route for a decoded request path (the query string is not part of it)."""
    if "\x00" in path:
        return NotFound()
    if path == HEARTBEAT_PATH:
        return Heartbeat()
    fixed = _FIXED_API_PATHS.get(path.rstrip("/") or "/")
    if fixed is not None:
        return ApiRoute(fixed)
    api = _api_route(path)
    if api is not None:
        return api
    if (match := _FASTLY_SEGMENT_RE.match(path)) is not None:
        path = match.group(1)
    return _object_route(path)


def _api_route(path: str) -> ApiRoute | None:
    if (m := _BUILDS_RE.match(path)) is not None:
        return ApiRoute("builds", m.group(1), m.group(2))
    if (m := _SECURE_LINK_RE.match(path)) is not None:
        return ApiRoute("secure_link", m.group(1))
    if (m := _PATCHES_RE.match(path)) is not None:
        return ApiRoute("patches", m.group(1))
    if (m := _PRODUCT_RE.match(path)) is not None:
        return ApiRoute("product", m.group(1))
    return None


def _object_route(path: str) -> Route:
    if (m := _UNSIGNED_RE.match(path)) is not None:
        area, aa, bb, md5 = m.groups()
        return _cas(_UNSIGNED_AREAS[area], aa, bb, md5, None)
    if (m := _OFFLINE_OWNED_RE.match(path)) is not None:
        pid, aa, bb, md5 = m.groups()
        return _cas("offline", aa, bb, md5, pid)
    if (m := _STORE_RE.match(path)) is not None:
        area, pid, aa, bb, md5 = m.groups()
        return _cas(area, aa, bb, md5, pid)
    if (m := _COLLECTOR_RE.match(path)) is not None:
        aa, bb, md5 = m.groups()
        return _cas("meta", aa, bb, md5, None)
    if (m := _V1_MANIFEST_RE.match(path)) is not None:
        pid, os_name, legacy, name = m.groups()
        return V1ManifestRoute(pid, os_name, legacy, name) if ".." not in name else NotFound()
    if (m := _V1_BLOB_RE.match(path)) is not None:
        pid, os_name, legacy, name = m.groups()
        if ".." in name:
            return NotFound()
        return ObjectRoute(f"v1/depots/{pid}/{os_name}/{legacy}/{name}", pid)
    return NotFound()


def _cas(area: str, aa: str, bb: str, md5: str, owner: str | None) -> Route:
    # The fan-out must be the hash's own prefix: anything else names no object.
    if (aa, bb) != (md5[0:2], md5[2:4]):
        return NotFound()
    return ObjectRoute(f"v2/{area}/{aa}/{bb}/{md5}", owner)


def redact_path(path: str) -> str:
    """The path as the access log shows it: a fastly token segment is cut out (the query
    string, where gcore puts its signature, is never logged)."""
    match = _FASTLY_SEGMENT_RE.match(path)
    return "/token=…" + match.group(1) if match else path
