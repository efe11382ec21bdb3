"""`serve` as an HTTP server: roles, proven bytes only, hostile requests, HTTP features.

One archive is synced from the fake Galaxy per module, then the fake is stopped and `serve`
runs on it as a real process; every test talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer

from galaxy_archive.serve.server import Answers, ServeOptions, build_app
from galaxy_archive.state.serve_reads import open_read_only
from galaxy_archive.storage.local import ArchiveStore
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy
from tests.fakegalaxy.sample import (
    SAMPLE_DLC_ID,
    SAMPLE_PRODUCT_ID,
    SECOND_PRODUCT_ID,
    sample_world,
)
from tests.integration.serving import ServeProcess

PRODUCTS = (SAMPLE_PRODUCT_ID, SECOND_PRODUCT_ID)
SECRET = b"outside-the-tree-secret"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    base = tmp_path_factory.mktemp("served")
    world = sample_world()
    world.owned.update({int(p) for p in (*PRODUCTS, SAMPLE_DLC_ID)})
    fake = FakeGalaxy(world).start()
    try:
        archive = Archive(base / "a", base / "a.toml", base / "a-token.json", fake)
        archive.write_config()
        archive.login()
        result = archive.run("sync", *PRODUCTS)
        assert result.exit_code == 0, result.output
    finally:
        fake.stop()
    (base / "secret").write_bytes(SECRET)
    yield archive


@pytest.fixture(scope="module")
def server(archive: Archive) -> Iterator[ServeProcess]:
    process = ServeProcess(archive.config_path)
    yield process
    process.stop()


def _one(archive: Archive, sql: str) -> str:
    return str(archive.db_rows(sql)[0][0])


def _chunk(archive: Archive) -> tuple[str, str]:
    """(tree path, owning product) of a verified V2 chunk."""
    rows = archive.db_rows(
        "SELECT o.path, p.product_id FROM objects o JOIN object_products p ON p.object_id = o.id "
        "WHERE o.kind = 'store' AND o.state = 'verified' ORDER BY o.size DESC LIMIT 1"
    )
    return rows[0][0], rows[0][1]


def _store_url(server: ServeProcess, path: str, product: str) -> str:
    md5_path = path.removeprefix("v2/store/")
    return f"{server.url}/content-system/v2/store/{product}/{md5_path}"


def _raw_request(server: ServeProcess, request_line: bytes) -> bytes:
    """Send bytes as they are (no client normalising the path); the whole answer."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- roles ------------------------------------------------------------------------------


def test_serve_heartbeat_names_the_server(server: ServeProcess) -> None:
    reply = requests.get(f"{server.url}/galaxy-archive/heartbeat", timeout=10)
    assert reply.status_code == 204
    assert reply.headers["X-Galaxy-Archive"].startswith("galaxy-archive/")


def test_serve_token_answers_any_grant_in_the_real_shape(server: ServeProcess) -> None:
    for grant in ("authorization_code", "refresh_token"):
        doc = requests.get(f"{server.url}/token?grant_type={grant}&code=x", timeout=10).json()
        assert doc["token_type"] == "bearer" and doc["expires_in"] == 3600
        assert doc["access_token"] and doc["refresh_token"] and doc["user_id"]
    posted = requests.post(f"{server.url}/token", data={"grant_type": "refresh_token"}, timeout=10)
    assert posted.status_code == 200 and posted.json()["access_token"]


def test_serve_embed_account_and_product_roles(server: ServeProcess) -> None:
    owned = requests.get(f"{server.url}/user/data/games", timeout=10).json()["owned"]
    assert {int(SAMPLE_PRODUCT_ID), int(SECOND_PRODUCT_ID), int(SAMPLE_DLC_ID)} <= set(owned)
    assert requests.get(f"{server.url}/account", timeout=10).status_code == 200
    product = requests.get(f"{server.url}/products/{SAMPLE_PRODUCT_ID}", timeout=10).json()
    assert product["id"] == int(SAMPLE_PRODUCT_ID)
    assert requests.get(f"{server.url}/products/99999", timeout=10).status_code == 404


def test_serve_builds_lists_both_shapes_newest_first(
    server: ServeProcess, archive: Archive
) -> None:
    base = f"{server.url}/products/{SAMPLE_PRODUCT_ID}/os/windows/builds"
    gen2 = requests.get(f"{base}?generation=2", timeout=10).json()
    gen1 = requests.get(f"{base}?generation=1", timeout=10).json()
    v2 = requests.get(f"{base}?generation=2&_version=2", timeout=10).json()
    recorded = archive.db_rows(
        "SELECT build_id FROM builds WHERE product_id = ? AND os = 'windows' "
        "ORDER BY date_published DESC",
        SAMPLE_PRODUCT_ID,
    )
    assert [i["build_id"] for i in gen2["items"]] == [r[0] for r in recorded]
    assert {i["generation"] for i in gen1["items"]} == {1}
    assert all(i["link"].startswith(server.url) for i in gen2["items"])
    assert all("link" not in i and i["urls"][0]["url"].startswith(server.url) for i in v2["items"])
    for item in gen2["items"]:
        assert requests.head(item["link"], timeout=10).status_code == 200


def test_serve_secure_link_points_back_in_the_fastly_template(server: ServeProcess) -> None:
    url = f"{server.url}/products/{SAMPLE_PRODUCT_ID}/secure_link"
    gen2 = requests.get(f"{url}?_version=2&generation=2&path=/", timeout=10).json()
    params = gen2["urls"][0]["parameters"]
    assert params["base_url"] == server.url
    assert params["path"] == f"/content-system/v2/store/{SAMPLE_PRODUCT_ID}"
    assert int(params["expires_at"]) > 0 and "{token}" in gen2["urls"][0]["url_format"]
    v1 = requests.get(f"{url}?_version=2&type=depot&path=/windows/123/", timeout=10).json()
    assert v1["urls"][0]["parameters"]["path"] == (
        f"/content-system/v1/depots/{SAMPLE_PRODUCT_ID}/windows/123"
    )
    patches = requests.get(f"{url}?_version=2&root=/patches/store", timeout=10).json()
    assert patches["urls"][0]["parameters"]["path"].startswith("/content-system/v2/patches/store/")
    old = requests.get(f"{url}?generation=2", timeout=10).json()
    assert old["url"]["url"].startswith(f"{server.url}/token=nva=")


def test_serve_patches_index_and_dependencies(server: ServeProcess, archive: Archive) -> None:
    pair = archive.db_rows(
        "SELECT from_build_id, to_build_id, patch_id FROM patches WHERE outcome = 'patch'"
    )[0]
    url = f"{server.url}/products/{SAMPLE_PRODUCT_ID}/patches?_version=4"
    found = requests.get(f"{url}&from_build_id={pair[0]}&to_build_id={pair[1]}", timeout=10)
    assert found.status_code == 200 and found.json()["id"] == pair[2]
    assert requests.get(found.json()["link"], timeout=10).status_code == 200
    missing = requests.get(f"{url}&from_build_id={pair[1]}&to_build_id={pair[0]}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    deps = requests.get(f"{server.url}/dependencies/repository?generation=2", timeout=10).json()
    assert requests.get(deps["repository_manifest"], timeout=10).status_code == 200
    link = requests.get(
        f"{server.url}/open_link?_version=2&generation=2&path=/dependencies/store/", timeout=10
    ).json()
    assert link["urls"][0]["url"] == f"{server.url}/content-system/v2/dependencies/store"


def test_serve_signed_fastly_and_gcore_forms_name_the_same_chunk(
    server: ServeProcess, archive: Archive
) -> None:
    path, owner = _chunk(archive)
    expected = (archive.root / path).read_bytes()
    md5_path = path.removeprefix("v2/store/")
    signed = f"/content-system/v2/store/{owner}"
    fastly = f"{server.url}/token=nva=1~dirs=4~token=abc{signed}/{md5_path}"
    gcore = f"{server.url}{signed}/{md5_path}?wsSecret=abc&wsTime=ff&prefix={signed}/"
    assert requests.get(fastly, timeout=10).content == expected
    assert requests.get(gcore, timeout=10).content == expected


def test_serve_dlc_v1_depot_manifest_also_under_the_dlc_directory(
    server: ServeProcess, archive: Archive
) -> None:
    rows = archive.db_rows(
        "SELECT o.path FROM objects o JOIN v1_depots d ON d.manifest_object_id = o.id "
        "WHERE d.depot_product_ids LIKE ?",
        f'%"{SAMPLE_DLC_ID}"%',
    )
    base_path = rows[0][0]
    dlc_path = base_path.replace(f"/{SAMPLE_PRODUCT_ID}/", f"/{SAMPLE_DLC_ID}/", 1)
    for path in (base_path, dlc_path):
        reply = requests.get(f"{server.url}/content-system/{path}", timeout=10)
        assert reply.status_code == 200
        assert reply.content == (archive.root / base_path).read_bytes()


# --- only proven bytes ------------------------------------------------------------------


def test_serve_answers_absent_upstream_with_the_cdn_404(
    server: ServeProcess, archive: Archive
) -> None:
    path = _one(archive, "SELECT path FROM objects WHERE state = 'absent_upstream' LIMIT 1")
    owner = _one(
        archive,
        "SELECT product_id FROM object_products WHERE object_id = "
        f"(SELECT id FROM objects WHERE path = '{path}')",
    )
    reply = requests.get(_store_url(server, path, owner), timeout=10)
    assert reply.status_code == 404 and reply.text == "Not Found"


def test_serve_refuses_an_object_whose_size_or_state_does_not_match(
    tmp_path: Path, archive: Archive
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive.root, copy)
    config = tmp_path / "copy.toml"
    config.write_text(archive.config_path.read_text().replace(str(archive.root), str(copy)))
    path, owner = _chunk(archive)
    (copy / path).write_bytes((copy / path).read_bytes() + b"x")  # size no longer matches
    meta = _one(archive, "SELECT path FROM objects WHERE kind = 'meta' LIMIT 1")
    subprocess.run(
        [
            "sqlite3",
            str(copy / "archive.db"),
            f"UPDATE objects SET state='corrupt' WHERE path='{meta}'",
        ],
        check=True,
    ) if shutil.which("sqlite3") else _set_state(copy / "archive.db", meta)
    process = ServeProcess(config)
    try:
        assert requests.get(_store_url(process, path, owner), timeout=10).status_code == 404
        reply = requests.get(f"{process.url}/content-system/{meta}", timeout=10)
        assert reply.status_code == 404 and reply.json()["error"] == "not_found"
    finally:
        process.stop()


def _set_state(db: Path, path: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE objects SET state = 'corrupt' WHERE path = ?", (path,))


# --- hostile requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/content-system/v2/meta/../../../secret",
        b"/content-system/v2/meta/%2e%2e/%2e%2e/%2e%2e/secret",
        b"/content-system/v1/manifests/1/windows/1/..%2f..%2f..%2f..%2fsecret",
        b"//etc/passwd",
        b"/content-system/v1/manifests/1207658930/windows/1/a%00.json",
        b"/content-system/v2/meta/ab/cd/abcd",
        b"/content-system/v2/meta/ab/cd/ABCDEF0123456789ABCDEF0123456789",
        b"/content-system/v2/meta/",
        b"/content-system/v2/store/",
    ],
)
def test_serve_hostile_paths_get_a_clear_404_and_nothing_outside(
    server: ServeProcess, target: bytes
) -> None:
    answer = _raw_request(server, b"GET " + target + b" HTTP/1.1")
    assert 400 <= _status(answer) < 500
    assert SECRET not in answer and b"root:" not in answer


def test_serve_absolute_form_request_target_is_refused(server: ServeProcess) -> None:
    answer = _raw_request(server, b"GET http://evil.example/../../secret HTTP/1.1")
    assert 400 <= _status(answer) < 500 and SECRET not in answer


def test_serve_a_chunk_under_a_product_that_does_not_own_it_is_404(
    server: ServeProcess, archive: Archive
) -> None:
    path, owner = _chunk(archive)
    owners = {
        r[0]
        for r in archive.db_rows(
            "SELECT product_id FROM object_products WHERE object_id = "
            "(SELECT id FROM objects WHERE path = ?)",
            path,
        )
    }
    stranger = next(p for p in PRODUCTS if p not in owners)
    assert requests.get(_store_url(server, path, owner), timeout=10).status_code == 200
    assert requests.get(_store_url(server, path, stranger), timeout=10).status_code == 404


def test_serve_does_not_follow_a_symlink_planted_in_the_tree(
    tmp_path: Path, archive: Archive
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive.root, copy)
    config = tmp_path / "copy.toml"
    config.write_text(archive.config_path.read_text().replace(str(archive.root), str(copy)))
    meta = _one(archive, "SELECT path FROM objects WHERE kind = 'meta' AND state = 'verified'")
    size = (copy / meta).stat().st_size
    outside = tmp_path / "outside"
    outside.write_bytes(SECRET.ljust(size, b"!"))  # the size the DB expects
    (copy / meta).unlink()
    (copy / meta).symlink_to(outside)
    process = ServeProcess(config)
    try:
        reply = requests.get(f"{process.url}/content-system/{meta}", timeout=10)
        assert reply.status_code == 404 and SECRET not in reply.content
    finally:
        process.stop()


def test_serve_many_idle_connections_do_not_hold_others_up(server: ServeProcess) -> None:
    parts = urlsplit(server.url)
    idle = [socket.create_connection((parts.hostname, parts.port), timeout=10) for _ in range(500)]
    try:
        reply = requests.get(f"{server.url}/galaxy-archive/heartbeat", timeout=10)
        assert reply.status_code == 204
        for sock in idle:  # each idle client, when it finally asks, gets a clear answer
            sock.sendall(b"GET /nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in idle:
            assert _status(sock.recv(4096)) == 404
    finally:
        for sock in idle:
            sock.close()


# --- HTTP -------------------------------------------------------------------------------


def test_serve_head_range_etag_and_keep_alive(server: ServeProcess, archive: Archive) -> None:
    path = _one(archive, "SELECT path FROM objects WHERE kind = 'v1_blob' AND state = 'verified'")
    blob = (archive.root / path).read_bytes()
    url = f"{server.url}/content-system/{path}"
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(blob)
    assert head.headers["ETag"] and head.content == b""
    part = requests.get(url, headers={"Range": "bytes=10-99"}, timeout=10)
    assert part.status_code == 206 and part.content == blob[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(blob)}"
    past = requests.get(url, headers={"Range": f"bytes={len(blob)}-"}, timeout=10)
    assert past.status_code == 416
    cached = requests.get(url, headers={"If-None-Match": head.headers["ETag"]}, timeout=10)
    assert cached.status_code == 304
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    for _ in range(3):  # one connection, three answers: kept alive
        connection.request("GET", "/galaxy-archive/heartbeat")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 204
    sock = connection.sock
    connection.request("HEAD", f"/content-system/{path}")
    connection.getresponse().read()
    assert connection.sock is sock
    connection.close()


def test_serve_conditional_requests_and_if_range_on_a_local_file(
    server: ServeProcess, archive: Archive
) -> None:
    path, owner = _chunk(archive)
    chunk = (archive.root / path).read_bytes()
    url = _store_url(server, path, owner)
    first = requests.get(url, timeout=10)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status_code == 200 and first.content == chunk
    assert etag == f'"{path.rsplit("/", 1)[1]}"'  # the chunk's MD5: the same on every mirror
    assert first.headers["Accept-Ranges"] == "bytes"

    def status(**headers: str) -> int:
        return requests.get(url, headers=headers, timeout=10).status_code

    assert status(**{"If-Modified-Since": modified}) == 304
    assert status(**{"If-Match": '"0123"'}) == 412
    assert status(**{"If-Match": etag}) == 200
    assert status(**{"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}) == 412
    resumed = requests.get(url, headers={"Range": "bytes=4-", "If-Range": etag}, timeout=10)
    assert resumed.status_code == 206 and resumed.content == chunk[4:]
    stale = requests.get(url, headers={"Range": "bytes=4-", "If-Range": '"0123"'}, timeout=10)
    assert stale.status_code == 200 and stale.content == chunk  # never a splice
    whole = requests.get(url, headers={"Range": "bytes=0-"}, timeout=10)
    assert whole.status_code == 206 and whole.headers["Content-Range"] == (
        f"bytes 0-{len(chunk) - 1}/{len(chunk)}"
    )


def test_serve_access_log_has_no_tokens_and_sigint_stops_it(archive: Archive) -> None:
    process = ServeProcess(archive.config_path)
    path, owner = _chunk(archive)
    md5_path = path.removeprefix("v2/store/")
    signed = f"/content-system/v2/store/{owner}"
    requests.get(
        f"{process.url}/token=nva=1~dirs=4~token=SECRETTOKEN{signed}/{md5_path}", timeout=10
    )
    requests.get(
        f"{process.url}{signed}/{md5_path}?wsSecret=SECRETGCORE&wsTime=1&prefix=/", timeout=10
    )
    requests.get(f"{process.url}/token?refresh_token=SECRETREFRESH", timeout=10)
    assert process.stop(signal.SIGINT) == 0
    assert md5_path in process.stderr  # the requests were logged...
    for secret in ("SECRETTOKEN", "SECRETGCORE", "SECRETREFRESH"):
        assert secret not in process.stderr  # ...without their secrets


def test_serve_tls_with_a_throwaway_ca(tmp_path: Path, archive: Archive) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    process = ServeProcess(archive.config_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert process.url.startswith("https://")
        reply = requests.get(
            f"{process.url}/galaxy-archive/heartbeat", verify=str(cert), timeout=10
        )
        assert reply.status_code == 204
        link = requests.get(
            f"{process.url}/products/{SAMPLE_PRODUCT_ID}/secure_link?_version=2",
            verify=str(cert),
            timeout=10,
        ).json()
        assert link["urls"][0]["parameters"]["base_url"] == process.url
    finally:
        process.stop()


def test_serve_public_url_and_hide_delisted(archive: Archive) -> None:
    process = ServeProcess(
        archive.config_path, "--public-url", "http://mirror.lan:8080/", "--hide-delisted"
    )
    try:
        doc = requests.get(
            f"{process.url}/products/{SAMPLE_PRODUCT_ID}/os/windows/builds?generation=2",
            timeout=10,
        ).json()
        assert doc["items"] and all(
            i["link"].startswith("http://mirror.lan:8080/content-system/") for i in doc["items"]
        )
    finally:
        process.stop()
    assert json.dumps(doc)  # a JSON document all the way


def test_serve_sees_what_a_sync_commits_without_a_restart(tmp_path: Path, archive: Archive) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive.root, copy)
    config = tmp_path / "copy.toml"
    config.write_text(archive.config_path.read_text().replace(str(archive.root), str(copy)))
    meta = _one(archive, "SELECT path FROM objects WHERE kind = 'meta' AND state = 'verified'")
    _set_state(copy / "archive.db", meta)
    process = ServeProcess(config)
    try:
        url = f"{process.url}/content-system/{meta}"
        assert requests.get(url, timeout=10).status_code == 404
        with sqlite3.connect(copy / "archive.db") as conn:  # what a sync's commit does
            conn.execute("UPDATE objects SET state = 'verified' WHERE path = ?", (meta,))
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        process.stop()


class _NoLocalFiles(ArchiveStore):
    """A backend without local paths (an object store): serve streams from open_read."""

    def local_path(self, relative: str) -> Path | None:
        return None


def test_serve_streams_with_range_and_head_from_a_store_without_local_files(
    archive: Archive,
) -> None:
    path = _one(archive, "SELECT path FROM objects WHERE kind = 'v1_blob' AND state = 'verified'")
    blob = (archive.root / path).read_bytes()
    reads = open_read_only(archive.root / "archive.db")
    handler = Answers(_NoLocalFiles(archive.root), reads, ServeOptions())

    async def exercise() -> None:
        async with TestClient(TestServer(build_app(handler))) as client:
            url = f"/content-system/{path}"
            whole = await client.get(url)
            assert whole.status == 200 and await whole.read() == blob
            part = await client.get(url, headers={"Range": "bytes=5-20"})
            assert part.status == 206 and await part.read() == blob[5:21]
            assert part.headers["Content-Range"] == f"bytes 5-20/{len(blob)}"
            tail = await client.get(url, headers={"Range": "bytes=-7"})
            assert tail.status == 206 and await tail.read() == blob[-7:]
            head = await client.head(url)
            assert head.status == 200 and int(head.headers["Content-Length"]) == len(blob)
            past = await client.get(url, headers={"Range": f"bytes={len(blob) + 1}-"})
            assert past.status == 416

    try:
        asyncio.run(exercise())
    finally:
        reads.close()
