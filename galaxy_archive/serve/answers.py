"""The JSON documents `serve` answers with, in GOG's shapes (protocol.md 1.3, 2, 5, 7, 8, 9).

Pure: recorded values and the base URL the server hands out in, documents out. Every URL
in an answer points back at that base, in the CDN's own path shapes, so a client fills the
fastly template (protocol.md 5.3) and comes back here.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from galaxy_archive.models.layout import galaxy_path
from galaxy_archive.state.serve_reads import RecordedBuild

LINK_TTL_S = 24 * 3600  # fastly's links last about a day (protocol.md 5.5)
TOKEN_TTL_S = 3600
ANONYMOUS_USER_ID = "0"
_FASTLY_FORMAT = "{base_url}/token=nva={expires_at}~dirs={dirs}~token={token}{path}"


def not_found(description: str = "") -> dict[str, str]:
    return {"error": "not_found", "error_description": description}


def token() -> dict[str, Any]:
    """An anonymous token of the real shape, for any grant: the archive asks nobody."""
    return {
        "access_token": secrets.token_urlsafe(32),
        "expires_in": TOKEN_TTL_S,
        "token_type": "bearer",
        "scope": "",
        "session_id": secrets.token_hex(16),
        "refresh_token": secrets.token_urlsafe(32),
        "user_id": ANONYMOUS_USER_ID,
    }


def owned(product_ids: Sequence[str]) -> dict[str, Any]:
    return {"owned": [int(pid) for pid in product_ids]}


def product(product_id: str) -> dict[str, Any]:
    """A minimal product document (the api host's shape)."""
    return {
        "id": int(product_id),
        "title": f"Product {product_id}",
        "content_system_compatibility": {"windows": True, "osx": True, "linux": False},
    }


def object_url(base: str, relative: str) -> str:
    """The CDN URL of a tree path (`v2/meta/aa/bb/h` -> `{base}/content-system/v2/meta/...`)."""
    return f"{base}/content-system/{relative}"


def builds_list(
    base: str,
    builds: Sequence[RecordedBuild],
    *,
    generation: int,
    use_urls: bool,
    with_private: bool,
    with_delisted: bool,
) -> dict[str, Any]:
    """The builds list: generation 2 lists both generations, 1 only the first; a private
    build (`public: false`) only when the request carried a password."""
    items = []
    has_private = False
    for build in builds:
        is_private = build.item.get("public") is False
        has_private = has_private or is_private
        if build.generation > generation or (is_private and not with_private):
            continue
        if not build.is_listed and not with_delisted:
            continue
        item = _build_item(base, build, use_urls)
        if item is not None:
            items.append(item)
    return {
        "total_count": len(items),
        "count": len(items),
        "items": items,
        "has_private_branches": has_private,
    }


def _build_item(base: str, build: RecordedBuild, use_urls: bool) -> dict[str, Any] | None:
    link = _manifest_url(base, build)
    if link is None:
        return None
    item = {k: v for k, v in build.item.items() if k not in ("link", "urls")}
    if use_urls:
        item["urls"] = [_endpoint("fastly", url=link, url_format=link, parameters={})]
    else:
        item["link"] = link
    return item


def _manifest_url(base: str, build: RecordedBuild) -> str | None:
    if build.generation == 1:
        pid = build.item.get("product_id")
        os_name = build.item.get("os")
        if build.legacy_build_id is None or not pid or not os_name:
            return None
        rel = f"v1/manifests/{pid}/{os_name}/{build.legacy_build_id}/repository.json"
        return object_url(base, rel)
    if build.repository_path is None:
        return None
    return object_url(base, build.repository_path)


def _endpoint(
    name: str, *, url_format: str, parameters: dict[str, str], url: str | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {"endpoint_name": name}
    if url is not None:
        record["url"] = url
    record.update(
        url_format=url_format,
        parameters=parameters,
        priority=10,
        max_fails=100,
        supports_generation=[1, 2],
        fallback_only=False,
    )
    return record


def signed_path(product_id: str, query: dict[str, str]) -> str:
    """The path a secure link covers: V1 blobs (`type=depot` or `generation=1`), patch chunks
    (`root=/patches/store`) or V2 chunks, plus the request's `path` (HGD sends
    `/{os}/{legacy}/`, gog-warp `/windows/{ts}`, GROG `/`)."""
    extra = "/".join(part for part in query.get("path", "/").split("/") if part)
    suffix = f"/{extra}" if extra else ""
    if query.get("type") == "depot" or query.get("generation") == "1":
        return f"/content-system/v1/depots/{product_id}{suffix}"
    if query.get("root", "").strip("/") == "patches/store":
        return f"/content-system/v2/patches/store/{product_id}{suffix}"
    return f"/content-system/v2/store/{product_id}{suffix}"


def secure_link(base: str, product_id: str, query: dict[str, str], now: float) -> dict[str, Any]:
    """A secure link back at `base`: `urls[]` in the fastly template with `_version=2`, the
    historical single `url` object without it (protocol.md 5.1, 5.2)."""
    path = signed_path(product_id, query)
    expires_at = str(int(now) + LINK_TTL_S)
    link_token = secrets.token_hex(16)
    dirs = str(len(path.strip("/").split("/")))
    if query.get("_version") != "2":
        url = f"{base}/token=nva={expires_at}~dirs={dirs}~token={link_token}{path}"
        return {
            "product_id": int(product_id),
            "type": "depot" if "/v1/" in path else "v2",
            "url": {"url": url, "base_url": base, "path": path, "token": link_token},
        }
    parameters = {
        "base_url": base,
        "path": path,
        "token": link_token,
        "expires_at": expires_at,
        "dirs": dirs,
    }
    return {
        "product_id": int(product_id),
        "urls": [_endpoint("fastly", url_format=_FASTLY_FORMAT, parameters=parameters)],
    }


def open_link(base: str, query: dict[str, str]) -> dict[str, Any]:
    """Unsigned URLs under the content system (dependencies, protocol.md 5.6)."""
    tree = "v1" if query.get("generation") == "1" else "v2"
    path = "/".join(part for part in query.get("path", "").split("/") if part)
    url = f"{base}/content-system/{tree}/{path}" if path else f"{base}/content-system/{tree}"
    return {"urls": [_endpoint("fastly", url=url, url_format=url, parameters={})]}


def patch_index(base: str, patch_id: str, from_build: str, to_build: str) -> dict[str, Any]:
    link = object_url(base, f"v2/patches/meta/{galaxy_path(patch_id)}")
    return {"id": patch_id, "from_build_id": from_build, "to_build_id": to_build, "link": link}


def dependencies_repository(
    base: str, build_id: str, generation: int | None, manifest_path: str
) -> dict[str, Any]:
    return {
        "repository_manifest": object_url(base, manifest_path),
        "build_id": build_id,
        "generation": generation or 2,
    }
