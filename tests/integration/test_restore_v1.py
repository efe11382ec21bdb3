"""`restore` of an archived generation-1 build, with the fake Galaxy stopped (issue 13)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from galaxy_archive.models.layout import v1_blob_path
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, FileSpec, V1Build, World, random_bytes

PID = "1207658930"
DLC = "1207658931"


def v1_synced(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> tuple[Archive, V1Build]:
    world = World(seed=8)
    files = {
        "bin\\game.exe": FileSpec(random_bytes(200_000, 1), flags=("executable",)),
        "data\\main.pak": random_bytes(300_000, 2),
        "empty.cfg": b"",
    }
    build = world.add_v1_build(
        PID, files=files, dlcs={DLC: {"dlc\\extra.pak": random_bytes(100_000, 3)}}, padding=17
    )
    world.owned.update({int(PID), int(DLC)})
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "1")
    assert result.exit_code == 0, result.output
    server.stop()
    return archive, build


def expected(build: V1Build) -> dict[str, bytes]:
    return {p.removeprefix("/"): data for d in build.depots for p, data in d.files.items()}


def test_restore_v1_cuts_every_file_from_its_blob_dlc_included(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    archive, build = v1_synced(serve, make_archive)
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest), "--json")
    assert result.exit_code == 0, result.output
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == expected(build)
    assert "dlc/extra.pak" in got and got["empty.cfg"] == b""
    assert os.stat(dest / "bin/game.exe").st_mode & 0o111 == 0o111
    doc = json.loads(result.stdout)
    assert doc["written"] == len(got) and doc["failed"] == 0


def test_restore_v1_a_flipped_blob_byte_names_the_blob_and_the_file_is_not_written(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    archive, build = v1_synced(serve, make_archive)
    dlc_depot = next(d for d in build.depots if d.product_id == DLC)
    blob = v1_blob_path(DLC, "windows", build.legacy_build_id, "main.bin")
    stored = archive.root / blob
    body = bytearray(stored.read_bytes())
    body[dlc_depot.offsets["/dlc/extra.pak"] + 5] ^= 0x01
    stored.write_bytes(bytes(body))
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert "dlc/extra.pak" in result.stderr and blob in result.stderr
    assert not (dest / "dlc/extra.pak").exists()
    assert (dest / "data/main.pak").is_file()
