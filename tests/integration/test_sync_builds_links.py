"""`sync` against the odd builds lists and secure-link answers protocol.md lists (issue: robust
builds lists and links): empty answers, odd items, lenient types, refused links."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

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
