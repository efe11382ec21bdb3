"""`sync PRODUCT_ID --v1 OS/LEGACY_ID`: a generation-1 build GOG no longer lists, archived
from its repository.json location alone (issue 15 §3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes

PID = "1207658930"


def delisted_v1_world() -> tuple[World, V1Build, V1Build]:
    """A listed windows build and an older one the builds lists no longer name."""
    world = World(seed=11)
    old = world.add_v1_build(PID, files={"game.exe": random_bytes(90_000, 1), "a.txt": b"old\n"})
    new = world.add_v1_build(PID, files={"game.exe": random_bytes(90_000, 2), "a.txt": b"new\n"})
    world.delist(old.build_id)
    return world, old, new


def v1_tree(world: World, **kw: bool) -> dict[str, bytes]:
    expected = world.expected_tree(
        generations=(1,), include_patches=False, include_dependencies=False, **kw
    )  # type: ignore[arg-type]
    return {k: v for k, v in expected.items() if k.startswith("v1/")}


def test_sync_v1_adds_a_build_gog_no_longer_lists_and_restores_it(
    tmp_path: Path, serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, old, new = delisted_v1_world()
    archive = make_archive(serve(world))
    location = f"windows/{old.legacy_build_id}"
    result = archive.run("sync", PID, "--os", "windows", "--generation", "1", "--v1", location)
    assert result.exit_code == 0, result.output
    assert archive.tree() == v1_tree(world, include_delisted=True)
    legacy = str(old.legacy_build_id)
    rows = archive.db_rows(
        "SELECT build_id, is_listed, state, legacy_build_id, item FROM builds ORDER BY is_listed"
    )
    assert [r[:4] for r in rows] == [
        (legacy, 0, "complete", old.legacy_build_id),
        (new.build_id, 1, "complete", new.legacy_build_id),
    ]
    assert json.loads(rows[0][4])["added_by"] == "generation-1 location (sync --v1)"

    status = json.loads(archive.run("status", PID, "--json").stdout)
    builds = {b["build_id"]: b for p in status["products"] for b in p["builds"]}
    assert builds[legacy]["is_listed"] is False and builds[legacy]["state"] == "complete"
    shown = archive.run("show", PID, legacy)
    assert shown.exit_code == 0, shown.output
    assert "DELISTED (added by generation-1 location (sync --v1))" in shown.output
    shown_json = json.loads(archive.run("show", PID, legacy, "--json").stdout)
    assert shown_json["is_listed"] is False
    assert shown_json["added_by"] == "generation-1 location (sync --v1)"
    listed = json.loads(archive.run("show", PID, new.build_id, "--json").stdout)
    assert listed["is_listed"] is True and listed["added_by"] is None

    dest = tmp_path / "old"
    restored = archive.run("restore", PID, legacy, str(dest))
    assert restored.exit_code == 0, restored.output
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == {p.removeprefix("/"): d for depot in old.depots for p, d in depot.files.items()}

    again = archive.run("sync", PID, "--os", "windows", "--generation", "1", "--v1", location)
    assert again.exit_code == 0, again.output
    assert archive.db_rows("SELECT count(*) FROM builds") == [(2,)]  # no second row


def test_sync_v1_of_a_listed_build_uses_its_recorded_row(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _, new = delisted_v1_world()
    archive = make_archive(serve(world))
    location = f"windows/{new.legacy_build_id}"
    result = archive.run("sync", PID, "--generation", "1", "--v1", location)
    assert result.exit_code == 0, result.output
    assert archive.db_rows("SELECT build_id, is_listed FROM builds") == [(new.build_id, 1)]


def test_sync_v1_names_a_location_the_cdn_does_not_have_and_goes_on(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _, new = delisted_v1_world()
    archive = make_archive(serve(world))
    result = archive.run(
        "sync", PID, "--generation", "1", "--v1", "windows/12345", "--v1", "osx/12345"
    )
    assert result.exit_code == 1
    for os_name in ("windows", "osx"):
        assert (
            f"V1 repository {PID}/{os_name}/12345 (--v1 {os_name}/12345): not available from "
            "the CDN" in result.output
        )
    assert archive.db_rows("SELECT build_id, state FROM builds") == [(new.build_id, "complete")]


def test_sync_v1_a_malformed_location_is_a_usage_error_naming_it(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, _, _ = delisted_v1_world()
    server = serve(world)
    archive = make_archive(server)
    before = len(server.requests)  # the fixture's login
    for bad in ("windows", "linux/123", "windows/12a", "windows/-1", "/123", "windows/" + "9" * 30):
        result = archive.run("sync", PID, "--v1", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert f"Invalid value for '--v1': {bad!r} is not OS/LEGACY_ID" in result.output
        assert "Traceback" not in result.output
    two = archive.run("sync", PID, "1207658931", "--v1", "windows/123")
    assert two.exit_code == 2
    assert "--v1 needs exactly one PRODUCT_ID" in two.output
    assert len(server.requests) == before  # nothing more asked of the network


def test_sync_v1_with_generation_1_left_out_says_so(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, old, _ = delisted_v1_world()
    archive = make_archive(serve(world))
    location = f"windows/{old.legacy_build_id}"
    result = archive.run("sync", PID, "--generation", "2", "--v1", location)
    assert result.exit_code == 1
    assert "--v1 given but generation 1 is not synced" in result.output
    assert archive.db_rows("SELECT count(*) FROM builds WHERE is_listed = 0") == [(0,)]
