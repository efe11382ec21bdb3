"""The fake CDN (both secure-link endpoints) and the manifests collector (protocol.md 3-6, 8).

Unsigned paths: V2 meta, offline chunks, patch meta, dependency meta and store, V1 manifests.
Signed paths (fastly ``/token=nva=…~dirs=…~token=…/…`` or gcore ``?wsSecret=…&wsTime=…&prefix=…``):
V2 store and patch store chunks under their product id, and V1 ``main.bin`` blobs. An unsigned,
badly signed or expired request for a signed path gets 403, like GOG; a chunk asked for under a
product it is not served under gets 404.
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING

from .content import md5_hex
from .messages import Request, Response, text_response

if TYPE_CHECKING:
    from .server import FakeGalaxy

_H = r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})"
_UNSIGNED_RE = re.compile(
    rf"^/content-system/v2/(meta|offline|patches/meta|dependencies/meta|dependencies/store)/{_H}$"
)
_STORE_RE = re.compile(rf"^/content-system/v2/(store|patches/store)/(\d+)/{_H}$")
_V1_MANIFEST_RE = re.compile(r"^/content-system/v1/manifests/(\d+)/([a-z]+)/(\d+)/([^/]+\.json)$")
_V1_BLOB_RE = re.compile(r"^/content-system/v1/depots/(\d+)/([a-z]+)/(\d+)/main\.bin$")
_COLLECTOR_RE = re.compile(rf"^/manifests/builds/{_H}$")
_OCTETS = "application/octet-stream"


def _not_found() -> Response:
    return text_response(404, "Not Found")


def _forbidden() -> Response:
    return text_response(403, "Forbidden")


def _object(body: bytes, etag: str, content_type: str = _OCTETS) -> Response:
    return Response(200, memoryview(body), content_type=content_type, is_rangeable=True, etag=etag)


def _check_fastly(galaxy: FakeGalaxy, segment: str, rest: str) -> bool:
    """Verify a ``token=nva={exp}~dirs={n}~token={tok}`` segment for the path after it."""
    fields: dict[str, str] = {}
    for part in segment.removeprefix("token=").split("~"):
        key, _, value = part.partition("=")
        fields[key] = value
    try:
        expires_at = int(fields["nva"])
        dirs = int(fields["dirs"])
    except (KeyError, ValueError):
        return False
    segments = rest.strip("/").split("/")
    if dirs < 1 or len(segments) <= dirs:
        return False
    signed = "/" + "/".join(segments[:dirs])
    return _token_ok(galaxy, signed, expires_at, fields.get("token", ""))


def _check_gcore(galaxy: FakeGalaxy, req: Request) -> bool:
    """Verify ``wsSecret``/``wsTime`` (hex expiry)/``prefix`` for the request path."""
    prefix = req.query.get("prefix", "")
    try:
        expires_at = int(req.query.get("wsTime", ""), 16)
    except ValueError:
        return False
    if not prefix.endswith("/") or not req.path.startswith(prefix):
        return False
    return _token_ok(galaxy, prefix.rstrip("/"), expires_at, req.query.get("wsSecret", ""))


def _token_ok(galaxy: FakeGalaxy, signed: str, expires_at: int, token: str) -> bool:
    if expires_at < galaxy.now():
        return False
    return hmac.compare_digest(galaxy.sign(signed, expires_at), token)


def handle_cdn(galaxy: FakeGalaxy, req: Request) -> Response:
    """Serve one CDN request (either endpoint role)."""
    path = req.path
    is_signed = False
    if path.startswith("/token="):
        segment, _, rest = path[1:].partition("/")
        path = "/" + rest
        if not _check_fastly(galaxy, segment, path):
            return _forbidden()
        is_signed = True
    elif "wsSecret" in req.query:
        if not _check_gcore(galaxy, req):
            return _forbidden()
        is_signed = True

    world = galaxy.world
    if (m := _UNSIGNED_RE.match(path)) is not None:
        kind, aa, bb, h = m.groups()
        if (aa, bb) != (h[0:2], h[2:4]):
            return _not_found()
        stores = {
            "meta": world.meta,
            "offline": world.offline,
            "patches/meta": world.patch_meta,
            "dependencies/meta": world.dep_meta,
            "dependencies/store": world.dep_store,
        }
        body = stores[kind].get(h)
        if body is None:
            return _not_found()
        if kind == "meta" and h in world.collector_hashes and not galaxy.collector_manifests_on_cdn:
            return _not_found()
        if kind.endswith("meta"):
            body = galaxy.meta_bodies.get(h, body)
        return _object(body, h)

    if (m := _STORE_RE.match(path)) is not None:
        if not is_signed:
            return _forbidden()
        kind, product_id, aa, bb, h = m.groups()
        owners = world.store_owners if kind == "store" else world.patch_store_owners
        bodies = world.store if kind == "store" else world.patch_store
        if (aa, bb) != (h[0:2], h[2:4]) or product_id not in owners.get(h, set()):
            return _not_found()
        return _object(bodies[h], h)

    if (m := _V1_MANIFEST_RE.match(path)) is not None:
        key = "/".join(m.groups())
        manifest = world.v1_manifests.get(key)
        if manifest is None:
            return _not_found()
        return _object(manifest, md5_hex(manifest), "application/json")

    if (m := _V1_BLOB_RE.match(path)) is not None:
        if not is_signed:
            return _forbidden()
        key = "/".join(m.groups())
        blob = world.v1_blobs.get(key)
        if blob is None:
            return _not_found()
        return _object(blob, world.v1_blob_md5[key])

    return _not_found()


def handle_collector(galaxy: FakeGalaxy, req: Request) -> Response:
    """``/manifests/builds/aa/bb/<h>``: repository manifests (the 2025 builds-list links)."""
    m = _COLLECTOR_RE.match(req.path)
    if m is None:
        return _not_found()
    aa, bb, h = m.groups()
    if (aa, bb) != (h[0:2], h[2:4]) or h not in galaxy.world.repository_hashes:
        return _not_found()
    return _object(galaxy.meta_bodies.get(h, galaxy.world.meta[h]), h)
