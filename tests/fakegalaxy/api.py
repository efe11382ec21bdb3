"""JSON endpoints of the fake Galaxy: auth, embed and content-system (protocol.md 1, 2, 5, 7, 8).

Each ``handle_*`` function maps a :class:`Request` to a :class:`Response`; the server state
(tokens, clock, knobs, URLs) lives on :class:`~tests.fakegalaxy.server.FakeGalaxy`.
"""

from __future__ import annotations

import html
import re
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from .content import JsonDict, galaxy_path
from .messages import Request, Response, error_response, json_response, text_response
from .models import Build, V1Build

if TYPE_CHECKING:
    from .server import FakeGalaxy

GALAXY_CLIENT_ID = "46899977096215655"
GALAXY_CLIENT_SECRET = "9d85c43b1482497dbbce61f6e4aa173a433796eeae2ca8c5f6129f2dc4de46d9"
GALAXY_REDIRECT_URI = "https://embed.gog.com/on_login_success?origin=client"

_BUILDS_RE = re.compile(r"^/products/(\d+)/os/([^/]+)/builds/?$")
_SECURE_LINK_RE = re.compile(r"^/products/(\d+)/secure_link/?$")
_PATCHES_RE = re.compile(r"^/products/(\d+)/patches/?$")

# (priority, fallback_only) per CDN endpoint, as PLAYDEN saw them live (protocol.md 5.4).
_ENDPOINT_TRAITS = {"fastly": (10, False), "gcore": (1, True)}


def _auth_required(description: str = "OAuth2 authentication required") -> Response:
    return error_response(401, "access_denied", description)


# ---------------------------------------------------------------------- auth host


def handle_auth(galaxy: FakeGalaxy, req: Request) -> Response:
    """``/auth`` (login page) and ``/token`` (code exchange and refresh)."""
    if req.path == "/auth":
        code = secrets.token_urlsafe(24)
        target = f"{galaxy.embed_url}/on_login_success?origin=client&code={quote(code)}"
        page = (
            "<!doctype html><title>Fake GOG login</title>"
            f"<p>Fake GOG Galaxy login. Continue to <a id='login' href='{html.escape(target)}'>"
            f"{html.escape(target)}</a></p><p>code: <code>{html.escape(code)}</code></p>"
        )
        return text_response(200, page, "text/html; charset=utf-8")
    if req.path == "/token":
        params = dict(req.query)
        if req.method == "POST" and req.body:
            params.update(parse_qsl(req.body.decode("utf-8", "replace")))
        return _token(galaxy, params)
    return error_response(404, "not_found", "Unknown endpoint")


def _token(galaxy: FakeGalaxy, params: dict[str, str]) -> Response:
    client_id = params.get("client_id", "")
    secret = params.get("client_secret", "")
    if client_id == GALAXY_CLIENT_ID:
        is_game_client = False
        expected_secret = GALAXY_CLIENT_SECRET
    else:
        game = next((p for p in galaxy.world.products.values() if p.client_id == client_id), None)
        if game is None:
            return error_response(401, "invalid_client", "The client credentials are invalid")
        is_game_client = True
        expected_secret = game.client_secret
    if not secrets.compare_digest(secret, expected_secret):
        return error_response(401, "invalid_client", "The client credentials are invalid")

    grant = params.get("grant_type", "")
    if grant == "authorization_code":
        code = params.get("code", "")
        if is_game_client or not code or not galaxy.consume_code(code):
            return error_response(
                400, "invalid_grant", "Code doesn't exist or is invalid for the client"
            )
        if params.get("redirect_uri") != GALAXY_REDIRECT_URI:
            return error_response(
                400,
                "redirect_uri_mismatch",
                "The redirect URI provided does not match registered URI(s).",
            )
        return json_response(galaxy.issue_tokens())
    if grant == "refresh_token":
        tokens = galaxy.refresh_tokens(params.get("refresh_token", ""), keep_refresh=is_game_client)
        if tokens is None:
            return error_response(400, "invalid_grant", "The refresh token is invalid.")
        return json_response(tokens)
    return error_response(400, "unsupported_grant_type", "The grant type is not supported")


# ---------------------------------------------------------------------- embed host


def handle_embed(galaxy: FakeGalaxy, req: Request) -> Response:
    """``/user/data/games`` (Bearer) and the post-login landing page."""
    if req.path == "/user/data/games":
        if galaxy.bearer_state(req) != "valid":
            return _auth_required()
        return json_response({"owned": sorted(galaxy.world.owned)})
    if req.path == "/on_login_success":
        return text_response(200, "<!doctype html><p>Logged in.</p>", "text/html; charset=utf-8")
    return error_response(404, "not_found", "Unknown endpoint")


# ---------------------------------------------------------------------- content-system host


def handle_content_system(galaxy: FakeGalaxy, req: Request) -> Response:
    """builds, secure_link, patches, dependencies/repository and open_link."""
    if (m := _BUILDS_RE.match(req.path)) is not None:
        return _builds(galaxy, req, m.group(1), m.group(2))
    if (m := _SECURE_LINK_RE.match(req.path)) is not None:
        return _secure_link(galaxy, req, m.group(1))
    if (m := _PATCHES_RE.match(req.path)) is not None:
        return _patches(galaxy, req, m.group(1))
    if req.path.rstrip("/") == "/dependencies/repository":
        return _dependencies(galaxy)
    if req.path.rstrip("/") == "/open_link":
        return _open_link(galaxy, req)
    return error_response(404, "not_found", "Unknown endpoint")


def endpoint_record(
    name: str, *, url_format: str, parameters: dict[str, str], url: str | None = None
) -> JsonDict:
    """One entry of a ``urls`` list (builds ``_version=2``, secure_link, open_link)."""
    priority, fallback_only = _ENDPOINT_TRAITS[name]
    record: JsonDict = {"endpoint_name": name}
    if url is not None:
        record["url"] = url
    record.update(
        url_format=url_format,
        parameters=parameters,
        priority=priority,
        max_fails=100,
        supports_generation=[1, 2],
        fallback_only=fallback_only,
    )
    return record


def _build_urls(galaxy: FakeGalaxy, build: Build) -> tuple[str, list[JsonDict]]:
    """The classic ``link`` of a build and its ``_version=2`` ``urls`` list."""
    if isinstance(build, V1Build):
        rel = f"/content-system/v1/manifests/{build.manifest_dir()}/repository.json"
        link = galaxy.endpoint_base("fastly", apply_dead=False) + rel
        per_endpoint = {name: galaxy.endpoint_base(name) + rel for name in galaxy.endpoints}
    else:
        rel = f"/content-system/v2/meta/{galaxy_path(build.repository_hash)}"
        if build.link_style == "collector":
            link = f"{galaxy.collector_url}/manifests/builds/{galaxy_path(build.repository_hash)}"
        else:
            link = galaxy.endpoint_base("fastly", apply_dead=False) + rel
        per_endpoint = {
            name: link
            if name == "fastly" and build.link_style == "collector"
            else galaxy.endpoint_base(name) + rel
            for name in galaxy.endpoints
        }
    # The URL is complete and ``url_format`` has no placeholders, so a client that formats it
    # with the (empty) parameters and one that takes ``url`` get the same thing.
    urls = [endpoint_record(n, url=u, url_format=u, parameters={}) for n, u in per_endpoint.items()]
    return link, urls


def _build_item(galaxy: FakeGalaxy, build: Build, use_urls: bool) -> JsonDict:
    link, urls = _build_urls(galaxy, build)
    item: JsonDict = {
        "build_id": build.build_id,
        "product_id": build.product_id,
        "os": build.os,
        "branch": build.branch,
        "version_name": build.version_name,
        "tags": list(build.tags),
        "public": build.public,
        "date_published": build.date_published,
        "generation": build.generation,
    }
    if use_urls:
        item["urls"] = urls
    else:
        item["link"] = link
    if isinstance(build, V1Build):
        item["legacy_build_id"] = build.legacy_build_id
    return item


def _builds(galaxy: FakeGalaxy, req: Request, product_id: str, os: str) -> Response:
    if galaxy.bearer_state(req) == "invalid":
        return _auth_required("The access token provided is invalid or has expired")
    if product_id not in galaxy.world.products:
        return error_response(404, "not_found", "Product not found")
    try:
        generation = int(req.query.get("generation", "1"))
    except ValueError:
        generation = 0
    if generation not in (1, 2):
        return error_response(400, "invalid_request", "Invalid generation")
    password = req.query.get("password")
    candidates = galaxy.world.builds_for(product_id, os)
    visible = [
        b
        for b in candidates
        if b.build_id not in galaxy.world.delisted
        and b.generation <= generation
        and (b.public or (password is not None and b.private_password == password))
    ]
    use_urls = req.query.get("_version") == "2" and galaxy.builds_version_2_urls
    items = [_build_item(galaxy, b, use_urls) for b in visible]
    if galaxy.builds_page_limit is not None:
        items = items[: galaxy.builds_page_limit]
    doc = {
        "total_count": len(visible),
        "count": len(items),
        "items": items,
        "has_private_branches": any(not b.public for b in candidates),
    }
    if galaxy.builds_rewrite is not None:
        body = galaxy.builds_rewrite(product_id, os, generation, doc)
        if body is not None:
            return Response(200, body)
    return json_response(doc)


def _secure_link(galaxy: FakeGalaxy, req: Request, product_id: str) -> Response:
    if galaxy.bearer_state(req) != "valid":
        return _auth_required()
    if product_id not in galaxy.world.products:
        return error_response(404, "not_found", "Product not found")
    if galaxy.require_ownership and int(product_id) not in galaxy.world.owned:
        return error_response(403, "access_denied", "Product is not owned")

    is_v1 = req.query.get("type") == "depot" or req.query.get("generation") == "1"
    extra = req.query.get("path", "/").strip("/")
    suffix = f"/{extra}" if extra else ""
    if is_v1:
        # HGD: path=/{os}/{legacy}/; WARP: path=/windows/{ts}; GROG: path=/ (appends the rest).
        signed = f"/content-system/v1/depots/{product_id}{suffix}"
    elif req.query.get("root", "").strip("/") == "patches/store":
        signed = f"/content-system/v2/patches/store/{product_id}{suffix}"
    else:
        signed = f"/content-system/v2/store/{product_id}{suffix}"
    expires_at = int(galaxy.now() + galaxy.link_ttl_s)
    token = galaxy.sign(signed, expires_at)

    fastly_base = galaxy.endpoint_base("fastly")
    if req.query.get("_version") != "2":
        # The historical single-URL shape (protocol.md 6d), for clients that forget _version=2.
        url = f"{fastly_base}/token=nva={expires_at}~dirs={_dirs(signed)}~token={token}{signed}"
        return json_response(
            {
                "product_id": int(product_id),
                "type": "depot" if is_v1 else "v2",
                "url": {"url": url, "base_url": fastly_base, "path": signed, "token": token},
            }
        )
    urls: list[JsonDict] = []
    for name in galaxy.endpoints:
        if name == "fastly":
            urls.append(
                endpoint_record(
                    "fastly",
                    url_format="{base_url}/token=nva={expires_at}~dirs={dirs}~token={token}{path}",
                    parameters={
                        "base_url": fastly_base,
                        "path": signed,
                        "token": token,
                        "expires_at": str(expires_at),
                        "dirs": _dirs(signed),
                    },
                )
            )
        else:
            urls.append(
                endpoint_record(
                    "gcore",
                    url_format="{base_url}/{path}?wsSecret={token}&wsTime={time}&prefix={prefix}",
                    parameters={
                        "base_url": galaxy.endpoint_base("gcore"),
                        "path": signed.lstrip("/"),
                        "token": token,
                        "time": f"{expires_at:x}",
                        "prefix": signed + "/",
                    },
                )
            )
    return json_response({"product_id": int(product_id), "urls": urls})


def _dirs(signed_path: str) -> str:
    """How many leading path segments a fastly token covers: all of the signed path."""
    return str(len(signed_path.strip("/").split("/")))


def _patches(galaxy: FakeGalaxy, req: Request, product_id: str) -> Response:
    if product_id not in galaxy.world.products:
        return error_response(404, "not_found", "")
    from_id = req.query.get("from_build_id")
    to_id = req.query.get("to_build_id")
    if not from_id or not to_id:
        return error_response(400, "invalid_request", "from_build_id and to_build_id are required")
    patch = galaxy.world.patch(product_id, from_id, to_id)
    if patch is None:
        return error_response(404, "not_found", "")
    link = (
        galaxy.endpoint_base("fastly", apply_dead=False)
        + f"/content-system/v2/patches/meta/{galaxy_path(patch.patch_id)}"
    )
    if galaxy.patch_index_keys == "from_to":
        # The GALAXYDL variant (protocol.md 8a).
        return json_response({"id": patch.patch_id, "from": from_id, "to": to_id, "link": link})
    return json_response(
        {"id": patch.patch_id, "from_build_id": from_id, "to_build_id": to_id, "link": link}
    )


def _dependencies(galaxy: FakeGalaxy) -> Response:
    latest = galaxy.world.latest_dependencies()
    if latest is None:
        return error_response(404, "not_found", "")
    url = (
        galaxy.endpoint_base("fastly", apply_dead=False)
        + f"/content-system/v2/dependencies/meta/{galaxy_path(latest.manifest_hash)}"
    )
    return json_response({"repository_manifest": url, "build_id": latest.build_id, "generation": 2})


def _open_link(galaxy: FakeGalaxy, req: Request) -> Response:
    path = req.query.get("path")
    if not path:
        return error_response(400, "invalid_request", "path is required")
    tree = "v1" if req.query.get("generation") == "1" else "v2"
    rel = f"/content-system/{tree}/{path.strip('/')}"
    urls = []
    for name in galaxy.endpoints:
        url = galaxy.endpoint_base(name) + rel
        urls.append(endpoint_record(name, url=url, url_format=url, parameters={}))
    return json_response({"urls": urls})
