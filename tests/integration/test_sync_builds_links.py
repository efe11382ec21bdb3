"""`sync` against the odd builds lists and secure-link answers protocol.md lists (issue: robust
builds lists and links): empty answers, odd items, lenient types, refused links."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from galaxy_archive.errors import ExitCode
from galaxy_archive.models.links import parse_link
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, galaxy_path, random_bytes

PID = "1207658930"
DLC = "1207658931"
NO_EXTRAS = ("--no-patches", "--no-dependencies")


def builds_by_state(archive: Archive) -> dict[str, str]:
    return dict(archive.db_rows("SELECT build_id, state FROM builds"))


# --- empty answers (protocol.md 2.1) ---------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b" \r\n", b"[]", b"{}"])
def test_sync_empty_builds_list_means_no_builds_for_that_os(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], body: bytes
) -> None:
    world = World(seed=11)
    windows = world.add_v2_build(PID, files={"game.exe": random_bytes(40_000, 1)})
    world.add_v2_build(PID, "osx", files={"Game.app\\game": random_bytes(40_000, 2)})
    server = serve(world)
    server.builds_rewrite = lambda _pid, os_name, _gen, _doc: body if os_name == "osx" else None
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, *NO_EXTRAS)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []
    assert builds_by_state(archive) == {windows.build_id: "complete"}  # windows kept
    assert server.count("/os/osx/builds") == 2  # once per generation, not asked again


def test_sync_a_builds_list_that_keeps_failing_costs_only_its_own_builds(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=11)
    windows = world.add_v2_build(PID, files={"game.exe": random_bytes(40_000, 1)})
    osx = world.add_v2_build(PID, "osx", files={"Game.app\\game": random_bytes(40_000, 2)})
    server = serve(world)
    archive = make_archive(server)
    assert archive.run("sync", PID, *NO_EXTRAS).exit_code == 0
    world.add_v2_build(PID, files={"game.exe": random_bytes(40_000, 3)}, version_name="2.0")
    server.faults.always(f"/products/{PID}/os/osx/builds", "500")
    result = archive.run("--json", "sync", PID, *NO_EXTRAS)
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert any(f"builds list {PID}/osx/gen2: HTTP 500" in p for p in problems), problems
    states = builds_by_state(archive)
    assert len(states) == 3 and set(states.values()) == {"complete"}  # windows went on
    assert archive.db_rows(  # a list that could not be had proves no build delisted
        "SELECT is_listed FROM builds WHERE build_id = ?", osx.build_id
    ) == [(1,)]
    assert states[windows.build_id] == "complete"


# --- odd items (protocol.md 2.2, 2.3, 6.1) ---------------------------------------------------


def odd_items_world() -> tuple[World, dict[str, str]]:
    """Builds whose list items will be damaged in different ways; name -> build id."""
    world = World(seed=12)
    names = {
        "fine_v2": world.add_v2_build(PID, files={"a.bin": random_bytes(30_000, 1)}),
        "v2_no_link": world.add_v2_build(PID, files={"a.bin": random_bytes(30_000, 2)}),
        "v1_no_legacy": world.add_v1_build(PID, files={"b.bin": random_bytes(20_000, 3)}),
        "v1_empty_link": world.add_v1_build(PID, files={"b.bin": random_bytes(20_000, 4)}),
        "v1_neither": world.add_v1_build(PID, files={"b.bin": random_bytes(20_000, 5)}),
    }
    return world, {name: build.build_id for name, build in names.items()}


def damage(ids: dict[str, str]) -> Callable[[str, str, int, dict[str, Any]], bytes]:
    def rewrite(_pid: str, _os: str, _generation: int, doc: dict[str, Any]) -> bytes:
        for item in doc["items"]:
            if item["build_id"] == ids["v2_no_link"]:
                del item["link"]
            elif item["build_id"] == ids["v1_no_legacy"]:
                del item["legacy_build_id"]
            elif item["build_id"] == ids["v1_empty_link"]:
                item["link"] = ""
            elif item["build_id"] == ids["v1_neither"]:
                del item["link"], item["legacy_build_id"]
        for item in list(doc["items"]):  # a build that claims another OS, in the windows list
            if item["build_id"] == ids["fine_v2"]:
                doc["items"].append({**item, "build_id": "1", "os": "osx"})
        return json.dumps(doc).encode()

    return rewrite


def test_sync_odd_builds_list_items_are_skipped_or_repaired_not_fatal(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, ids = odd_items_world()
    server = serve(world)
    server.builds_rewrite = damage(ids)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, *NO_EXTRAS)
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    # The legacy id comes from the link's path; the link from the CDN base and the legacy id.
    assert builds_by_state(archive) == {
        ids["fine_v2"]: "complete",
        ids["v1_no_legacy"]: "complete",
        ids["v1_empty_link"]: "complete",
    }
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 3  # each bad item once, although both generations list it
    for build_id in (ids["v2_no_link"], ids["v1_neither"], "1"):
        [problem] = [p for p in problems if re.search(rf"build {build_id}\b", p)]
        assert f"{PID}/windows" in problem and "skipped" in problem


# --- lenient types (protocol.md 2.2, 2.3) ----------------------------------------------------


def loosen(doc: dict[str, Any]) -> bytes:
    """Numbers as digit strings, and each link as a templated `urls[]` entry without `url`."""
    doc["total_count"] = str(doc["total_count"])
    for item in doc["items"]:
        item["generation"] = str(item["generation"])
        parts = urlsplit(item.pop("link"))
        base = f"{parts.scheme}://{parts.netloc}"
        item["urls"] = [
            {
                "endpoint_name": "fastly",
                "url_format": "{base_url}{path}",
                "parameters": {"base_url": base, "path": parts.path},
                "priority": 10,
                "supports_generation": ["1", "2"],
                "fallback_only": False,
            }
        ]
    return json.dumps(doc).encode()


def test_sync_accepts_digit_strings_and_templated_manifest_urls(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=13)
    v2 = world.add_v2_build(PID, files={"a.bin": random_bytes(30_000, 1)})
    v1 = world.add_v1_build(PID, files={"b.bin": random_bytes(20_000, 2)}, redists=[])
    server = serve(world)
    server.builds_rewrite = lambda _pid, _os, _gen, doc: loosen(doc)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, *NO_EXTRAS)
    assert result.exit_code == 0, result.output
    assert builds_by_state(archive) == {v2.build_id: "complete", v1.build_id: "complete"}
    # total_count "2" is read as a number: the list is whole, so a build it lacks is delisted.
    world.delist(v1.build_id)
    assert archive.run("sync", PID, *NO_EXTRAS).exit_code == 0
    assert dict(archive.db_rows("SELECT build_id, is_listed FROM builds")) == {
        v2.build_id: 1,
        v1.build_id: 0,
    }


# --- link URLs (protocol.md 5.1-5.3) ---------------------------------------------------------


def test_historical_secure_link_answer_gives_urls_the_cdn_accepts(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    """The answer without _version=2 (`{url: {url, base_url, path, token}}`): the URL built
    from it carries the token, so the CDN serves the chunk."""
    world = World(seed=14)
    build = world.add_v2_build(PID, files={"a.bin": random_bytes(30_000, 1)})
    server = serve(world)
    archive = make_archive(server)
    token = json.loads(archive.token_file.read_text())["access_token"]
    request = urllib.request.Request(
        f"{server.content_system_url}/products/{PID}/secure_link?generation=2&path=/",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as answer:
        doc = json.load(answer)
    assert "urls" not in doc  # the historical shape indeed
    link = parse_link(doc, "historical link", generation=2, now=time.time())
    md5 = build.depots[0].chunks[0]
    with urllib.request.urlopen(link.endpoints[0].build_url(galaxy_path(md5))) as chunk:
        assert hashlib.md5(chunk.read()).hexdigest() == md5


# --- refused secure links (protocol.md 1.6, SPEC exit codes) ---------------------------------


def unowned_dlc_world() -> World:
    """A game (V2 and V1 builds) whose DLC the account does not own: its links are refused."""
    world = World(seed=15)
    world.add_v2_build(
        PID,
        files={"game.exe": random_bytes(100_000, 1)},
        dlcs={DLC: {"dlc.pak": random_bytes(400_000, 2)}},
        chunk_size=64 * 1024,
    )
    world.add_v1_build(
        PID,
        files={"game.exe": random_bytes(50_000, 3)},
        dlcs={DLC: {"dlc.pak": random_bytes(50_000, 4)}},
        redists=[],
    )
    world.owned.discard(int(DLC))
    return world


def test_sync_refused_secure_link_fails_that_products_objects_not_the_run(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = unowned_dlc_world()
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("--json", "sync", PID, *NO_EXTRAS)
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    report = json.loads(result.stdout)
    dlc_objects = archive.db_rows(
        "SELECT path, state FROM objects WHERE product_id = ? AND kind IN ('store', 'v1_blob')",
        DLC,
    )
    assert len(dlc_objects) > 6 and {state for _, state in dlc_objects} == {"missing"}
    assert report["failed"] == len(dlc_objects)
    for path, _ in dlc_objects:  # each named
        name = path.rsplit("/", 1)[-1] if "v2/" in path else path
        assert any(name in p and "HTTP 403" in p for p in report["problems"]), name
    # The game's own objects are all there.
    game = archive.db_rows("SELECT DISTINCT state FROM objects WHERE product_id = ?", PID)
    assert game == [("verified",)]
    # One refused secure_link request per link (chunks, V1 blob), not one per object.
    assert server.count(f"/products/{DLC}/secure_link", status=403) == 2


def test_sync_secure_link_401_after_the_refresh_still_means_not_logged_in(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = World(seed=16)
    world.add_v2_build(PID, files={"game.exe": random_bytes(30_000, 1)})
    server = serve(world)
    archive = make_archive(server)
    server.faults.always("/secure_link", "401")
    result = archive.run("sync", PID, *NO_EXTRAS)
    assert result.exit_code == ExitCode.NOT_LOGGED_IN, result.output
    assert server.count("/token", role="auth") == 2  # the login, then the one refresh
