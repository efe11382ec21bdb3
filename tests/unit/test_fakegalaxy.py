"""The fake Galaxy is faithful to protocol.md: shapes, signing, hashes, Range, faults, layout.

Everything here talks to a real :class:`FakeGalaxy` over HTTP on 127.0.0.1 with ``requests``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.fakegalaxy import (
    GALAXY_CLIENT_ID,
    GALAXY_CLIENT_SECRET,
    GALAXY_REDIRECT_URI,
    FakeGalaxy,
    FileSpec,
    V1Build,
    V2Build,
    World,
    galaxy_path,
    inflate,
    md5_hex,
    random_bytes,
    sample_world,
)
from tests.fakegalaxy.sample import SAMPLE_DLC_ID, SAMPLE_PRODUCT_ID, SECOND_PRODUCT_ID

TIMEOUT_S = 5
PID = SAMPLE_PRODUCT_ID


@pytest.fixture(scope="module")
def world() -> World:
    return sample_world()


@pytest.fixture
def server(world: World) -> Iterator[FakeGalaxy]:
    with FakeGalaxy(world) as galaxy:
        yield galaxy


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT_S, **kwargs)


def _bearer(server: FakeGalaxy) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.issue_tokens()['access_token']}"}


def _secure_link(server: FakeGalaxy, pid: str, query: str = "generation=2&path=/") -> Any:
    url = f"{server.content_system_url}/products/{pid}/secure_link?_version=2&{query}"
    response = _get(url, headers=_bearer(server))
    assert response.status_code == 200, response.text
    return response.json()


def _endpoint_url(endpoint: dict[str, Any], suffix: str) -> str:
    """protocol.md 5.3: append to parameters.path, then fill the url_format."""
    params = dict(endpoint["parameters"])
    params["path"] = params["path"] + suffix
    url: str = endpoint["url_format"]
    for key, value in params.items():
        url = url.replace("{" + key + "}", str(value))
    return url


def _chunk_url(server: FakeGalaxy, pid: str, h: str, *, index: int = 0, root: str = "") -> str:
    query = "generation=2&path=/" + (f"&root={root}" if root else "")
    return _endpoint_url(_secure_link(server, pid, query)["urls"][index], "/" + galaxy_path(h))


def _v2_builds(world: World, os: str = "windows") -> list[V2Build]:
    return [b for b in world.builds_for(PID, os) if isinstance(b, V2Build)]


def _v1_build(world: World) -> V1Build:
    return next(b for b in world.builds if isinstance(b, V1Build))


# ---------------------------------------------------------------------- builds lists


def test_fakegalaxy_builds_list_classic_links_and_generation_filter(
    server: FakeGalaxy, world: World
) -> None:
    base = f"{server.content_system_url}/products/{PID}/os/windows/builds"
    gen2 = _get(base + "?generation=2").json()
    assert gen2["total_count"] == gen2["count"] == 3
    assert gen2["has_private_branches"] is False
    assert [i["generation"] for i in gen2["items"]] == [2, 2, 1]
    dates = [i["date_published"] for i in gen2["items"]]
    assert dates == sorted(dates, reverse=True)
    newest = gen2["items"][0]
    assert set(newest) == {
        "build_id", "product_id", "os", "branch", "version_name", "tags", "public",
        "date_published", "generation", "link",
    }  # fmt: skip
    assert len(newest["build_id"]) == 17 and newest["branch"] is None
    assert newest["link"].startswith(server.cdn_url + "/content-system/v2/meta/")
    gen1 = _get(base + "?generation=1").json()
    assert [i["generation"] for i in gen1["items"]] == [1]
    item = gen1["items"][0]
    v1 = _v1_build(world)
    assert item["legacy_build_id"] == v1.legacy_build_id and item["build_id"] == v1.build_id
    assert item["link"] == (
        f"{server.cdn_url}/content-system/v1/manifests/{PID}/windows/{v1.legacy_build_id}"
        "/repository.json"
    )
    assert json.loads(_get(item["link"]).content)["product"]["timestamp"] == v1.legacy_build_id


def test_fakegalaxy_builds_list_version_2_has_urls(server: FakeGalaxy) -> None:
    url = f"{server.content_system_url}/products/{PID}/os/windows/builds?generation=2&_version=2"
    item = _get(url).json()["items"][0]
    assert "link" not in item
    fastly, gcore = item["urls"]
    assert (fastly["endpoint_name"], fastly["priority"], fastly["fallback_only"]) == (
        "fastly", 10, False,
    )  # fmt: skip
    assert (gcore["endpoint_name"], gcore["priority"], gcore["fallback_only"]) == (
        "gcore", 1, True,
    )  # fmt: skip
    assert fastly["url"].startswith(server.cdn_url) and gcore["url"].startswith(server.cdn2_url)
    assert _get(fastly["url"]).content == _get(gcore["url"]).content


def test_fakegalaxy_builds_list_errors_linux_paging_and_bearer(server: FakeGalaxy) -> None:
    cs = server.content_system_url
    assert _get(f"{cs}/products/1/os/windows/builds?generation=2").status_code == 404
    linux = _get(f"{cs}/products/{PID}/os/linux/builds?generation=2").json()
    assert linux == {"total_count": 0, "count": 0, "items": [], "has_private_branches": False}
    bad = _get(
        f"{cs}/products/{PID}/os/windows/builds?generation=2",
        headers={"Authorization": "Bearer nope"},
    )
    assert bad.status_code == 401
    ok = _get(f"{cs}/products/{PID}/os/windows/builds?generation=2", headers=_bearer(server))
    assert ok.status_code == 200
    server.builds_page_limit = 1
    paged = _get(f"{cs}/products/{PID}/os/windows/builds?generation=2").json()
    assert (paged["count"], paged["total_count"], len(paged["items"])) == (1, 3, 1)


def test_fakegalaxy_private_branch_needs_password_and_delist_hides() -> None:
    world = World(seed=3)
    public = world.add_v2_build("42", files={"a.txt": b"a"})
    private = world.add_v2_build("42", files={"a.txt": b"b"}, branch="beta", private_password="pw")
    with FakeGalaxy(world) as server:
        base = f"{server.content_system_url}/products/42/os/windows/builds?generation=2"
        plain = _get(base).json()
        assert plain["has_private_branches"] is True
        assert [i["build_id"] for i in plain["items"]] == [public.build_id]
        assert [i["build_id"] for i in _get(base + "&password=wrong").json()["items"]] == [
            public.build_id
        ]
        unlocked = _get(base + "&password=pw").json()["items"]
        assert [(i["build_id"], i["branch"], i["public"]) for i in unlocked] == [
            (private.build_id, "beta", False),
            (public.build_id, None, True),
        ]
        world.delist(public.build_id)
        assert _get(base).json()["items"] == []
        # Delisted objects are still on the CDN.
        meta = f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(public.repository_hash)}"
        assert _get(meta).status_code == 200


def test_fakegalaxy_collector_link_style() -> None:
    world = World(seed=4)
    build = world.add_v2_build("7", link_style="collector")
    with FakeGalaxy(world) as server:
        item = _get(
            f"{server.content_system_url}/products/7/os/windows/builds?generation=2"
        ).json()["items"][0]
        assert item["link"] == (
            f"{server.collector_url}/manifests/builds/{galaxy_path(build.repository_hash)}"
        )
        body = _get(item["link"]).content
        assert md5_hex(body) == build.repository_hash
        on_cdn = f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(build.repository_hash)}"
        assert _get(on_cdn).content == body
        server.collector_manifests_on_cdn = False
        assert _get(on_cdn).status_code == 404
        # The collector serves repository manifests only.
        depot = build.depots[0].manifest_hash
        collector = f"{server.collector_url}/manifests/builds/{galaxy_path(depot)}"
        assert _get(collector).status_code == 404


# ---------------------------------------------------------------------- manifests and chunks


def test_fakegalaxy_meta_is_named_by_md5_and_has_the_repository_fields(
    server: FakeGalaxy, world: World
) -> None:
    build = _v2_builds(world)[0]
    url = f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(build.repository_hash)}"
    response = _get(url)
    assert response.content[:2] == b"\x78\x9c"
    assert md5_hex(response.content) == build.repository_hash
    assert response.headers["ETag"] == f'"{build.repository_hash}"'
    assert _get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    repo = json.loads(zlib.decompress(response.content, 15))
    assert {
        "baseProductId", "buildId", "clientId", "clientSecret", "dependencies", "depots",
        "installDirectory", "offlineDepot", "platform", "products", "version",
    } <= set(repo)  # fmt: skip
    assert repo["buildId"] == build.build_id and repo["version"] == 2
    assert [p["productId"] for p in repo["products"]] == [PID, SAMPLE_DLC_ID]
    assert any(d.get("isGogDepot") for d in repo["depots"])
    for entry in [*repo["depots"], repo["offlineDepot"]]:
        body = _get(f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(entry['manifest'])}")
        assert md5_hex(body.content) == entry["manifest"]
        assert "items" in json.loads(inflate(body.content))["depot"]


def test_fakegalaxy_signed_chunks_hash_as_recorded_on_both_endpoints(
    server: FakeGalaxy, world: World
) -> None:
    build = _v2_builds(world)[0]
    neutral = build.depots[0]
    multi = next(i for i in neutral.manifest["depot"]["items"] if len(i.get("chunks", [])) > 1)
    link = _secure_link(server, PID)
    assert link["product_id"] == int(PID)
    assert link["urls"][0]["parameters"]["path"] == f"/content-system/v2/store/{PID}"
    assert link["urls"][0]["parameters"]["dirs"] == "4"
    data = b""
    for chunk in multi["chunks"]:
        for endpoint in link["urls"]:
            body = _get(_endpoint_url(endpoint, "/" + galaxy_path(chunk["compressedMd5"])))
            assert body.status_code == 200
            assert md5_hex(body.content) == chunk["compressedMd5"]
            assert len(body.content) == chunk["compressedSize"]
            assert md5_hex(inflate(body.content)) == chunk["md5"]
        data += inflate(body.content)
    assert md5_hex(data) == multi["md5"]


def test_fakegalaxy_secure_link_needs_a_valid_bearer(server: FakeGalaxy) -> None:
    url = f"{server.content_system_url}/products/{PID}/secure_link?_version=2&generation=2&path=/"
    response = _get(url)
    assert response.status_code == 401
    assert response.json()["error"] == "access_denied"
    assert _get(url, headers={"Authorization": "Bearer unknown"}).status_code == 401
    headers = _bearer(server)
    server.expire_access_tokens()
    assert _get(url, headers=headers).status_code == 401


def test_fakegalaxy_store_rejects_unsigned_expired_tampered_and_wrong_product(
    server: FakeGalaxy, world: World
) -> None:
    build = _v2_builds(world)[0]
    chunk = build.depots[0].chunks[0]
    plain = f"{server.cdn_url}/content-system/v2/store/{PID}/{galaxy_path(chunk)}"
    assert _get(plain).status_code == 403
    signed = _chunk_url(server, PID, chunk)
    assert _get(signed).status_code == 200
    assert _get(signed.replace("~token=", "~token=00")).status_code == 403
    gcore = _chunk_url(server, PID, chunk, index=1)
    assert _get(gcore.replace("wsSecret=", "wsSecret=00")).status_code == 403
    # A DLC chunk exists only under the DLC's product id.
    dlc_depot = next(d for d in build.depots if d.product_id == SAMPLE_DLC_ID)
    dlc_chunk = dlc_depot.chunks[0]
    assert _get(_chunk_url(server, PID, dlc_chunk)).status_code == 404
    assert _get(_chunk_url(server, SAMPLE_DLC_ID, dlc_chunk)).status_code == 200
    # Links expire.
    server.advance_clock(server.link_ttl_s + 5)
    assert _get(signed).status_code == 403
    assert _get(gcore).status_code == 403


def test_fakegalaxy_small_files_container_offsets_and_absent_members(
    server: FakeGalaxy, world: World
) -> None:
    older, newer = _v2_builds(world)[1], _v2_builds(world)[0]
    for build, members_served in ((older, True), (newer, False)):
        depot = build.depots[0].manifest["depot"]
        (sfc_chunk,) = depot["smallFilesContainer"]["chunks"]
        sfc = inflate(_get(_chunk_url(server, PID, sfc_chunk["compressedMd5"])).content)
        assert md5_hex(sfc) == sfc_chunk["md5"] and len(sfc) == sfc_chunk["size"]
        members = [i for i in depot["items"] if "sfcRef" in i]
        assert len(members) == 10
        assert sum(m["sfcRef"]["size"] for m in members) == len(sfc)
        for member in members:
            ref = member["sfcRef"]
            assert md5_hex(sfc[ref["offset"] : ref["offset"] + ref["size"]]) == member["md5"]
            own = _get(_chunk_url(server, PID, member["chunks"][0]["compressedMd5"]))
            assert own.status_code == (200 if members_served else 404)


def test_fakegalaxy_offline_depot_is_unsigned_and_not_in_store(
    server: FakeGalaxy, world: World
) -> None:
    offline = _v2_builds(world)[0].offline_depot
    h = offline.chunks[0]
    response = _get(f"{server.cdn_url}/content-system/v2/offline/{galaxy_path(h)}")
    assert response.status_code == 200 and md5_hex(response.content) == h
    assert _get(_chunk_url(server, PID, h)).status_code == 404


def test_fakegalaxy_chunking_rules_and_dedupe() -> None:
    world = World(seed=5)
    data = random_bytes(2500, 1)
    first = world.add_v2_build(
        "9",
        files={
            "bin\\a.bin": data,
            "bin\\big.bin": FileSpec.big_last_chunk(random_bytes(2500, 2), 1000),
            "empty.txt": b"",
        },
        chunk_size=1000,
    )
    items = {i["path"]: i for i in first.depots[0].manifest["depot"]["items"]}
    assert items["bin"] == {"path": "bin", "type": "DepotDirectory"}
    assert [c["size"] for c in items["bin\\a.bin"]["chunks"]] == [1000, 1000, 500]
    assert [c["size"] for c in items["bin\\big.bin"]["chunks"]] == [1000, 1500]
    assert items["empty.txt"]["chunks"] == [] and items["empty.txt"]["md5"] == md5_hex(b"")
    second = world.add_v2_build("9", files={"bin\\a.bin": data, "new.txt": b"new"}, chunk_size=1000)
    shared = {c["compressedMd5"] for c in items["bin\\a.bin"]["chunks"]}
    assert shared <= set(second.depots[0].chunks)  # same bytes, same content address
    assert int(second.build_id) > int(first.build_id)
    assert second.date_published > first.date_published
    again = World(seed=5).add_v2_build(
        "9",
        files={
            "bin\\a.bin": data,
            "bin\\big.bin": FileSpec.big_last_chunk(random_bytes(2500, 2), 1000),
            "empty.txt": b"",
        },
        chunk_size=1000,
    )
    assert again.repository_hash == first.repository_hash


# ---------------------------------------------------------------------- generation 1


def test_fakegalaxy_v1_manifests_and_main_bin_ranges(server: FakeGalaxy, world: World) -> None:
    build = _v1_build(world)
    cdn = f"{server.cdn_url}/content-system/v1/manifests"
    repo = _get(f"{cdn}/{PID}/windows/{build.legacy_build_id}/repository.json").json()
    depots = [d for d in repo["product"]["depots"] if "manifest" in d]
    assert all(isinstance(d["size"], str) for d in depots)
    assert any("redist" in d and "manifest" not in d for d in repo["product"]["depots"])
    dlc_entry = next(d for d in depots if d["gameIDs"] == [SAMPLE_DLC_ID])
    # protocol.md 6.2: the DLC's depot manifest is only under the DLC's own directory.
    legacy = build.legacy_build_id
    name = dlc_entry["manifest"]
    assert _get(f"{cdn}/{PID}/windows/{legacy}/{name}").status_code == 404
    assert _get(f"{cdn}/{SAMPLE_DLC_ID}/windows/{legacy}/{name}").status_code == 200

    root_entry = next(d for d in depots if d["gameIDs"] == [PID])
    manifest = _get(f"{cdn}/{PID}/windows/{legacy}/{root_entry['manifest']}").json()
    records = manifest["depot"]["files"]
    assert any(r.get("directory") for r in records)
    blob_path = f"/content-system/v1/depots/{PID}/windows/{legacy}/main.bin"
    assert _get(server.cdn_url + blob_path).status_code == 403  # unsigned

    link = _secure_link(server, PID, f"type=depot&path=/windows/{legacy}/")
    assert link["urls"][0]["parameters"]["path"] == blob_path.removesuffix("/main.bin")
    url = _endpoint_url(link["urls"][0], "/main.bin")
    blob = build.blobs[PID]
    head = requests.head(url, timeout=TIMEOUT_S)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(blob)
    assert head.headers["Accept-Ranges"] == "bytes"
    full = _get(url)
    assert full.status_code == 200 and full.content == blob
    for record in (r for r in records if "hash" in r and r["size"] > 0):
        first, last = record["offset"], record["offset"] + record["size"] - 1
        part = _get(url, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(blob)}"
        assert int(part.headers["Content-Length"]) == record["size"]
        assert md5_hex(part.content) == record["hash"]
    tail = _get(url, headers={"Range": f"bytes={len(blob) - 10}-"})
    assert tail.status_code == 206 and tail.content == blob[-10:]
    suffix = _get(url, headers={"Range": "bytes=-7"})
    assert suffix.content == blob[-7:]
    bad = _get(url, headers={"Range": f"bytes={len(blob)}-"})
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(blob)}"
    gcore = _endpoint_url(link["urls"][1], "/main.bin")
    assert _get(gcore, headers={"Range": "bytes=0-99"}).content == blob[:100]
    # GROG's variant: path=/ and the client appends {os}/{legacy}/main.bin itself.
    grog = _secure_link(server, PID, "generation=1&type=depot&path=/")
    grog_url = _endpoint_url(grog["urls"][0], f"/windows/{legacy}/main.bin")
    assert _get(grog_url, headers={"Range": "bytes=0-9"}).content == blob[:10]


# ---------------------------------------------------------------------- patches, dependencies


def test_fakegalaxy_patch_index_manifests_and_delta_chunks(
    server: FakeGalaxy, world: World
) -> None:
    newer, older = _v2_builds(world)[0], _v2_builds(world)[1]
    cs = server.content_system_url
    query = f"_version=4&from_build_id={older.build_id}&to_build_id={newer.build_id}"
    index = _get(f"{cs}/products/{PID}/patches?{query}").json()
    assert set(index) == {"id", "from_build_id", "to_build_id", "link"}
    assert index["link"].endswith(galaxy_path(index["id"]))
    root_body = _get(index["link"]).content
    assert md5_hex(root_body) == index["id"]
    root = json.loads(inflate(root_body))
    assert root["algorithm"] == "xdelta3"
    assert (root["buildId_source"], root["buildId_target"]) == (older.build_id, newer.build_id)
    depot_hash = root["depots"][0]["manifest"]
    depot_body = _get(f"{server.cdn_url}/content-system/v2/patches/meta/{galaxy_path(depot_hash)}")
    assert md5_hex(depot_body.content) == depot_hash
    item = json.loads(inflate(depot_body.content))["depot"]["items"][0]
    assert item["type"] == "DepotDiff"
    assert {"md5_source", "md5_target", "path_source", "path_target", "md5"} <= set(item)
    h = item["chunks"][0]["compressedMd5"]
    link = _secure_link(server, PID, "generation=2&path=/&root=/patches/store")
    assert link["urls"][0]["parameters"]["path"] == f"/content-system/v2/patches/store/{PID}"
    assert md5_hex(_get(_endpoint_url(link["urls"][0], "/" + galaxy_path(h))).content) == h
    assert _get(_chunk_url(server, PID, h)).status_code == 404  # not in the game store

    reverse = _get(
        f"{cs}/products/{PID}/patches?_version=4"
        f"&from_build_id={newer.build_id}&to_build_id={older.build_id}"
    )
    assert reverse.status_code == 404
    assert reverse.json() == {"error": "not_found", "error_description": ""}
    server.patch_index_keys = "from_to"
    assert set(_get(f"{cs}/products/{PID}/patches?{query}").json()) == {"id", "from", "to", "link"}


def test_fakegalaxy_empty_patch_is_zlib_of_empty_object() -> None:
    world = World(seed=6)
    a = world.add_v2_build("5", files={"x": b"1"})
    b = world.add_v2_build("5", files={"x": b"2"})
    patch = world.add_patch("5", a, b, empty=True)
    with FakeGalaxy(world) as server:
        index = _get(
            f"{server.content_system_url}/products/5/patches?_version=4"
            f"&from_build_id={a.build_id}&to_build_id={b.build_id}"
        ).json()
        assert index["id"] == patch.patch_id
        assert _get(index["link"]).content == zlib.compress(b"{}")


def test_fakegalaxy_dependencies_repository_open_link_and_versions(
    server: FakeGalaxy, world: World
) -> None:
    cs = server.content_system_url
    repo_info = _get(f"{cs}/dependencies/repository?generation=2").json()
    assert repo_info["generation"] == 2
    body = _get(repo_info["repository_manifest"]).content
    assert md5_hex(body) == repo_info["repository_manifest"].rsplit("/", 1)[1]
    depots = {d["dependencyId"]: d for d in json.loads(inflate(body))["depots"]}
    assert depots["DirectX"]["executable"] == {
        "path": "__redist/DirectX/DXSETUP.exe",
        "arguments": "/silent",
    }
    open_link = _get(f"{cs}/open_link?generation=2&_version=2&path=/dependencies/store/").json()
    store = open_link["urls"][0]["url"]
    assert store == server.cdn_url + "/content-system/v2/dependencies/store"
    meta = _get(
        f"{server.cdn_url}/content-system/v2/dependencies/meta/"
        f"{galaxy_path(depots['MSVC2019']['manifest'])}"
    )
    item = next(i for i in json.loads(inflate(meta.content))["depot"]["items"] if "chunks" in i)
    h = item["chunks"][0]["compressedMd5"]
    assert md5_hex(_get(f"{store}/{galaxy_path(h)}").content) == h

    newer = World(seed=7)
    newer.set_dependencies("1", {"A": {"a": b"a"}})
    newer.set_dependencies("2", {"A": {"a": b"b"}})
    with FakeGalaxy(newer) as other:
        info = _get(f"{other.content_system_url}/dependencies/repository?generation=2").json()
        assert info["build_id"] == "2"


# ---------------------------------------------------------------------- auth


def _token_url(server: FakeGalaxy, *parts: dict[str, str], **params: str) -> str:
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part)
    merged.update(params)
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in merged.items())
    return f"{server.auth_url}/token?{query}"


def test_fakegalaxy_auth_code_exchange_refresh_and_embed(server: FakeGalaxy) -> None:
    client = {"client_id": GALAXY_CLIENT_ID, "client_secret": GALAXY_CLIENT_SECRET}
    assert _get(f"{server.auth_url}/auth?client_id={GALAXY_CLIENT_ID}").status_code == 200
    code = {"grant_type": "authorization_code", "redirect_uri": GALAXY_REDIRECT_URI}
    bad = _get(_token_url(server, client, code, code="bad"))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    wrong_redirect = _get(
        _token_url(server, client, code, code="c0", redirect_uri="https://example.com")
    )
    assert wrong_redirect.json()["error"] == "redirect_uri_mismatch"
    assert _get(_token_url(server, client, code, code="c1", client_secret="x")).status_code == 401
    tokens = _get(_token_url(server, client, code, code="c2")).json()
    assert set(tokens) == {
        "access_token", "expires_in", "token_type", "refresh_token", "scope", "session_id",
        "user_id",
    }  # fmt: skip
    assert tokens["expires_in"] == 3600 and tokens["token_type"] == "bearer"
    games = f"{server.embed_url}/user/data/games"
    assert _get(games).status_code == 401
    owned = _get(games, headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert int(PID) in owned["owned"] and int(SECOND_PRODUCT_ID) in owned["owned"]

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    renewed = _get(_token_url(server, client, refresh)).json()
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert _get(_token_url(server, client, refresh)).status_code == 400  # rotated away
    server.rotate_refresh_tokens = False
    again = {"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]}
    kept = _get(_token_url(server, client, again)).json()
    assert kept["refresh_token"] == renewed["refresh_token"]
    server.revoke_all_tokens()
    assert _get(_token_url(server, client, again)).status_code == 400


def test_fakegalaxy_prefixes_keep_hosts_apart(server: FakeGalaxy) -> None:
    path = f"/products/{PID}/os/windows/builds?generation=2"
    assert _get(server.cdn_url + path).status_code == 404
    assert _get(server.auth_url + path).status_code == 404
    assert _get(server.url + path).status_code == 404
    assert _get(server.content_system_url + path).status_code == 200
    assert server.count("/builds", role="content_system", status=200) == 1
    assert server.count("/builds") == 4


# ---------------------------------------------------------------------- faults


def test_fakegalaxy_status_faults_once_and_retry_after(server: FakeGalaxy, world: World) -> None:
    h = _v2_builds(world)[0].repository_hash
    url = f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(h)}"
    server.faults.once(h, "503")
    server.faults.once(h, "429")
    assert _get(url).status_code == 503
    limited = _get(url)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert _get(url).status_code == 200
    assert server.fault_count == 2
    assert [r.fault for r in server.requests] == ["503", "429", None]


def test_fakegalaxy_body_faults(server: FakeGalaxy, world: World) -> None:
    build = _v2_builds(world)[0]
    chunk = build.depots[0].manifest["depot"]["items"]
    h = next(i for i in chunk if i.get("chunks"))["chunks"][0]["compressedMd5"]
    url = _chunk_url(server, PID, h)
    good = _get(url).content

    server.faults.once(h, "corrupt")
    corrupt = _get(url).content
    assert len(corrupt) == len(good) and corrupt != good
    server.faults.once(h, "short")
    short = _get(url)
    assert short.status_code == 200 and good.startswith(short.content)
    assert len(short.content) == int(short.headers["Content-Length"]) < len(good)
    server.faults.once(h, "truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _get(url)
    server.faults.once(h, "reset")
    with pytest.raises(requests.exceptions.RequestException):
        _get(url)
    assert _get(url).content == good
    server.faults.always(h, "corrupt")
    assert _get(url).content != good and _get(url).content != good
    assert server.fault_count == 6


def test_fakegalaxy_range_faults_on_main_bin(server: FakeGalaxy, world: World) -> None:
    build = _v1_build(world)
    link = _secure_link(server, PID, f"type=depot&path=/windows/{build.legacy_build_id}/")
    url = _endpoint_url(link["urls"][0], "/main.bin")
    blob = build.blobs[PID]
    rng = {"Range": "bytes=100-299"}
    server.faults.once("main.bin", "range_as_200")
    whole = _get(url, headers=rng)
    assert whole.status_code == 200 and whole.content == blob
    server.faults.once("main.bin", "short_206")
    short = _get(url, headers=rng)
    assert short.status_code == 206
    assert short.headers["Content-Range"] == f"bytes 100-199/{len(blob)}"
    assert short.content == blob[100:200]
    server.faults.once("main.bin", "wrong_content_range")
    shifted = _get(url, headers=rng)
    assert shifted.headers["Content-Range"] == f"bytes 101-300/{len(blob)}"
    assert shifted.content == blob[101:301]
    # A range fault waits for a ranged request; a plain GET is not affected.
    server.faults.once("main.bin", "short_206")
    assert _get(url).status_code == 200
    assert _get(url, headers=rng).headers["Content-Range"] == f"bytes 100-199/{len(blob)}"


def test_fakegalaxy_random_faults_respect_paths_and_max(server: FakeGalaxy, world: World) -> None:
    build = _v2_builds(world)[0]
    server.faults.configure(rate=1.0, kinds=["500"], paths="/v2/store/", max_faults=2)
    h = build.depots[0].chunks[0]
    meta = f"{server.cdn_url}/content-system/v2/meta/{galaxy_path(build.repository_hash)}"
    url = _chunk_url(server, PID, h)
    assert _get(meta).status_code == 200
    assert [_get(url).status_code for _ in range(4)] == [500, 500, 200, 200]
    assert server.fault_count == 2
    with pytest.raises(ValueError):
        server.faults.once("x", "explode")


def test_fakegalaxy_single_endpoint_and_dead_first_endpoint(
    server: FakeGalaxy, world: World
) -> None:
    server.endpoints = ["fastly"]
    assert [u["endpoint_name"] for u in _secure_link(server, PID)["urls"]] == ["fastly"]
    server.endpoints = ["fastly", "gcore"]
    server.dead_endpoints = {"fastly"}
    server.dead_mode = "503"
    h = _v2_builds(world)[0].depots[0].chunks[0]
    assert _get(_chunk_url(server, PID, h, index=0)).status_code == 503
    assert _get(_chunk_url(server, PID, h, index=1)).status_code == 200
    server.dead_mode = "refused"
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(_chunk_url(server, PID, h, index=0))


# ---------------------------------------------------------------------- layout


def _fetch_archive_path(server: FakeGalaxy, world: World, rel: str) -> bytes:
    """Fetch the CDN object an archive path came from, the way a client would."""
    parts = rel.split("/")
    cdn = server.cdn_url + "/content-system"
    if rel.startswith("v2/store/"):
        h = parts[-1]
        return _get(_chunk_url(server, sorted(world.store_owners[h])[0], h)).content
    if rel.startswith("v2/patches/store/"):
        h = parts[-1]
        pid = sorted(world.patch_store_owners[h])[0]
        return _get(_chunk_url(server, pid, h, root="/patches/store")).content
    if rel.startswith("v1/depots/"):
        _, _, pid, os, legacy, _ = parts
        link = _secure_link(server, pid, f"type=depot&path=/{os}/{legacy}/")
        return _get(_endpoint_url(link["urls"][0], "/main.bin")).content
    if rel.startswith("v1/manifests/") and not rel.endswith("repository.json"):
        response = _get(f"{cdn}/{rel}")
        if response.status_code == 404:  # a DLC depot manifest: under the DLC's directory
            manifest = json.loads(_get(f"{cdn}/{'/'.join(parts[:-1])}/repository.json").content)
            entry = next(d for d in manifest["product"]["depots"] if d.get("manifest") == parts[-1])
            response = _get(f"{cdn}/v1/manifests/{entry['gameIDs'][0]}/{'/'.join(parts[3:])}")
        return response.content
    return _get(f"{cdn}/{rel}").content


def test_fakegalaxy_expected_tree_matches_what_is_served(server: FakeGalaxy, world: World) -> None:
    tree = world.expected_tree()
    prefixes = {"/".join(rel.split("/")[:2]) for rel in tree}
    assert prefixes == {
        "v2/meta", "v2/store", "v2/offline", "v2/patches", "v2/dependencies", "v1/manifests",
        "v1/depots",
    }  # fmt: skip
    for rel, body in tree.items():
        assert _fetch_archive_path(server, world, rel) == body, rel
        if rel.startswith("v2/"):
            assert md5_hex(body) == rel.rsplit("/", 1)[1]
            assert rel.split("/")[-3:-1] == [rel[-32:-30], rel[-30:-28]]
    # Absent SFC member chunks are not expected.
    newest = _v2_builds(world)[0]
    for h in newest.depots[0].member_chunks:
        assert f"v2/store/{galaxy_path(h)}" not in tree


def test_fakegalaxy_expected_tree_filters(world: World) -> None:
    full = world.expected_tree()
    second = world.expected_tree(products=[SECOND_PRODUCT_ID])
    assert set(second) < set(full)
    assert not any(k.startswith(("v1/", "v2/patches/")) for k in second)
    # Second Sample names only MSVC2019, so DirectX's depot is left out.
    all_deps = world.expected_tree(products=[SECOND_PRODUCT_ID], include_dependencies="all")
    assert len([k for k in all_deps if k.startswith("v2/dependencies/meta")]) == 3
    assert len([k for k in second if k.startswith("v2/dependencies/meta")]) == 2
    gen1 = world.expected_tree(products=[PID], generations=[1], include_dependencies=False)
    assert all(k.startswith("v1/") for k in gen1)
    assert any(k.startswith(f"v1/depots/{SAMPLE_DLC_ID}/") for k in gen1)
    no_dlc = world.expected_tree(products=[PID], generations=[1], include_dlc=False)
    assert not any(SAMPLE_DLC_ID in k for k in no_dlc)
    no_patches = world.expected_tree(include_patches=False)
    assert not any(k.startswith("v2/patches/") for k in no_patches)


def test_fakegalaxy_export_cdn_tree(tmp_path: Path, world: World) -> None:
    count = world.export_cdn_tree(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == count
    v1 = _v1_build(world)
    blob = tmp_path / "content-system/v1/depots" / v1.manifest_dir() / "main.bin"
    assert blob.read_bytes() == v1.blobs[PID]
    build = _v2_builds(world)[0]
    h = build.depots[0].chunks[0]
    assert (tmp_path / "content-system/v2/store" / PID / galaxy_path(h)).read_bytes() == (
        world.store[h]
    )


def test_fakegalaxy_sample_world_is_deterministic_and_small(world: World) -> None:
    again = sample_world()
    tree = world.expected_tree()
    assert again.expected_tree() == tree
    assert 2 * 1024 * 1024 < sum(len(b) for b in tree.values()) < 16 * 1024 * 1024
    assert sample_world(seed=1).expected_tree().keys() != tree.keys()
    v1 = _v1_build(world)
    assert 2.5 * 1024 * 1024 < len(v1.blobs[PID]) < 3.5 * 1024 * 1024
