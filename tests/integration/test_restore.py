"""`restore` of archived generation-2 builds, with the fake Galaxy stopped (issue 13)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from galaxy_archive.models.layout import ObjectKind, cas_path
from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, FileSpec, World, random_bytes
from tests.fakegalaxy.models import V2Build

PID = "1207658930"
DLC = "1207658931"
SUPPORT = FileSpec(b"support bytes\n", flags=("support",))


def restore_world(
    *, install_directory: str | None = None, links: dict[str, str] | None = None, big: int = 900_000
) -> tuple[World, V2Build]:
    world = World(seed=21)
    world.add_product(PID, install_directory=install_directory)
    files = {
        "bin\\game.exe": FileSpec(random_bytes(300_000, 1), flags=("executable",)),
        "data\\big.pak": random_bytes(big, 2),  # several chunks
        "empty.dat": b"",
        "app\\setup.ico": SUPPORT,
    }
    small = {f"config\\f{i}.ini": f"setting={i}\n".encode() * (i + 1) for i in range(6)}
    build = world.add_v2_build(
        PID,
        files=files,
        small_files=small,
        chunk_size=256 * 1024,
        absent_member_chunks=True,  # the members' own chunks were never served
        dlcs={DLC: {"dlc\\extra.pak": random_bytes(200_000, 3)}},
        languages={
            "en-US": {"lang\\en.pak": random_bytes(50_000, 4)},
            "de-DE": {"lang\\de.pak": random_bytes(50_000, 5)},
        },
        links={"current": "bin\\game.exe"} if links is None else links,
    )
    world.owned.update({int(PID), int(DLC)})
    return world, build


def synced(
    serve: Callable[..., FakeGalaxy],
    make_archive: Callable[..., Archive],
    world: World,
    *,
    sync_exit: int = 0,
) -> Archive:
    server = serve(world)
    archive = make_archive(server)
    result = archive.run("sync", PID, "--generation", "2")
    assert result.exit_code == sync_exit, result.output
    server.stop()  # no network from here on
    return archive


def expected_files(build: V2Build, language: str = "en-US") -> dict[str, bytes]:
    """DEST-relative path -> bytes, as a real install of the default selection lays them out."""
    out: dict[str, bytes] = {}
    for depot in build.unique_depots():
        if (
            depot.languages not in (["*"], [language])
            or depot.manifest_hash == build.offline_depot.manifest_hash
        ):
            continue
        for path, data in depot.files.items():
            posix = path.replace("\\", "/")
            out[f"support/{PID}/{posix}" if posix == "app/setup.ico" else posix] = data
    return out


def tree(dest: Path) -> dict[str, bytes]:
    return {
        p.relative_to(dest).as_posix(): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_restore_offline_gives_every_file_of_the_build_with_its_md5(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest), "--json")
    assert result.exit_code == 0, result.output
    want = expected_files(build)
    got = tree(dest)
    assert {p: hashlib.md5(b).hexdigest() for p, b in got.items()} == {
        p: hashlib.md5(b).hexdigest() for p, b in want.items()
    }
    assert "dlc/extra.pak" in got and "lang/de.pak" not in got and "config/f5.ini" in got
    assert got["empty.dat"] == b""
    assert os.stat(dest / "bin/game.exe").st_mode & 0o111 == 0o111
    assert os.stat(dest / "data/big.pak").st_mode & 0o111 == 0
    assert os.readlink(dest / "current") == "bin/game.exe"
    doc = json.loads(result.stdout)
    assert doc["written"] == len(want) and doc["failed"] == 0 and doc["already_correct"] == 0
    assert doc["selection"]["language"] == "en-US"
    assert result.stderr == ""


def test_restore_lists_the_builds_it_could_restore(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    result = archive.run("restore", PID)
    assert result.exit_code == 0, result.output
    assert build.build_id in result.stdout and "windows" in result.stdout
    assert "gen 2" in result.stdout and "listed" in result.stdout


def test_restore_a_second_time_writes_nothing_and_verify_only_finds_a_damaged_file(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    assert archive.run("restore", PID, build.build_id, str(dest)).exit_code == 0
    again = archive.run("restore", PID, build.build_id, str(dest), "--json")
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["written"] == 0 and doc["already_correct"] == doc["files"]
    (dest / "lang/en.pak").write_bytes(b"damaged")
    check = archive.run("restore", PID, build.build_id, str(dest), "--verify-only")
    assert check.exit_code == 1
    assert "1 missing or wrong" in check.stdout
    assert (dest / "lang/en.pak").read_bytes() == b"damaged"  # verify-only writes nothing


def test_a_flipped_byte_in_a_chunk_names_it_and_the_file_is_not_written(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    item = next(
        i
        for d in build.depots
        for i in d.manifest["depot"]["items"]
        if i.get("path") == "data\\big.pak"
    )
    chunk = cas_path(ObjectKind.STORE, item["chunks"][1]["compressedMd5"])
    stored = archive.root / chunk
    body = bytearray(stored.read_bytes())
    body[10] ^= 0xFF
    stored.write_bytes(bytes(body))
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert chunk in result.stderr and "data/big.pak" in result.stderr
    assert not (dest / "data/big.pak").exists()
    assert [p.name for p in (dest / "data").iterdir()] == []  # no temp file left either
    assert (dest / "bin/game.exe").is_file()  # the rest is restored


def test_a_chunk_that_inflates_to_other_bytes_is_named_and_the_file_is_not_written(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    # A valid zlib stream of the right inflated size, but other bytes: only an MD5 catches it
    # (the file's, on the fast path; then each chunk's, to name the bad one).
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    item = next(
        i
        for d in build.depots
        for i in d.manifest["depot"]["items"]
        if i.get("path") == "data\\big.pak"
    )
    bad = item["chunks"][1]
    chunk = cas_path(ObjectKind.STORE, bad["compressedMd5"])
    (archive.root / chunk).write_bytes(zlib.compress(b"\0" * bad["size"]))
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert f"{chunk}: corrupt: inflates to other bytes than the manifest says" in result.stderr
    assert result.stderr.count(chunk) == 1  # named once, not "path: path: why"
    assert "data/big.pak not written" in result.stderr
    assert not (dest / "data/big.pak").exists()
    assert [p.name for p in (dest / "data").iterdir()] == []
    assert (dest / "bin/game.exe").read_bytes() == expected_files(build)["bin/game.exe"]


def test_a_missing_object_is_refused_up_front_naming_the_files_it_feeds(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    item = next(
        i
        for d in build.depots
        for i in d.manifest["depot"]["items"]
        if i.get("path") == "bin\\game.exe"
    )
    chunk = cas_path(ObjectKind.STORE, item["chunks"][0]["compressedMd5"])
    archive.db_rows("UPDATE objects SET state = 'missing' WHERE path = ?", chunk)
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert chunk in result.stderr and "bin/game.exe" in result.stderr
    assert not dest.exists() or tree(dest) == {}
    partial = archive.run("restore", PID, build.build_id, str(dest), "--partial")
    assert partial.exit_code == 1
    assert not (dest / "bin/game.exe").exists() and (dest / "data/big.pak").is_file()


def test_hostile_install_directory_and_link_are_refused_and_nothing_leaves_dest(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world(
        install_directory="..\\..\\evil", links={"escape": "..\\..\\canary"}
    )
    # sync stores the depot manifest as served and names the link it skips (exit 1)
    archive = synced(serve, make_archive, world, sync_exit=1)
    canary = tmp_path / "canary"
    canary.write_text("untouched")
    dest = tmp_path / "out" / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert "..\\\\..\\\\evil" in result.stderr or "..\\..\\evil" in result.stderr
    assert "escape" in result.stderr
    assert canary.read_text() == "untouched"
    assert not dest.exists() or tree(dest) == {}


def test_a_symlink_planted_in_dest_is_refused_and_not_followed(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "game"
    dest.mkdir()
    (dest / "data").symlink_to(outside)
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 1
    assert "data: refused" in result.stderr
    assert list(outside.iterdir()) == []


def test_a_killed_restore_resumes_writing_only_what_is_missing(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world(big=24 * 1024 * 1024)
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    process = archive.popen("restore", PID, build.build_id, str(dest))
    in_flight = dest / "data" / "big.pak.restore-part"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not in_flight.exists():
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    want = expected_files(build)
    done_before = {p for p, data in tree(dest).items() if want.get(p) == data}
    assert "data/big.pak" not in done_before
    rerun = archive.run("restore", PID, build.build_id, str(dest), "--json")
    assert rerun.exit_code == 0, rerun.output
    doc = json.loads(rerun.stdout)
    assert doc["already_correct"] == len(done_before)
    assert doc["written"] == len(want) - len(done_before)
    assert tree(dest) == want  # complete, and no temp file left behind


def test_restore_selection_language_and_dlc_options(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    german = archive.run(
        "restore", PID, build.build_id, str(tmp_path / "de"), "--lang", "de-DE", "--no-dlc"
    )
    assert german.exit_code == 0, german.output
    got = tree(tmp_path / "de")
    assert "lang/de.pak" in got and "lang/en.pak" not in got and "dlc/extra.pak" not in got
    every = archive.run(
        "restore",
        PID,
        build.build_id,
        str(tmp_path / "all"),
        "--lang",
        "all",
        "--dlc",
        DLC,
        "--json",
    )
    assert every.exit_code == 0, every.output
    got = tree(tmp_path / "all")
    assert {"lang/de.pak", "lang/en.pak", "dlc/extra.pak"} <= set(got)
    chosen = json.loads(every.stdout)["selection"]["depots"]
    assert {d["product_id"] for d in chosen} == {PID, DLC}
    assert not any(d["is_offline"] for d in chosen)
    both = archive.run(
        "restore", PID, build.build_id, str(tmp_path / "x"), "--no-dlc", "--dlc", DLC
    )
    assert both.exit_code == 2 and "exclude each other" in both.stderr


def test_restore_offline_depot_only_when_asked(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    offline = {p.replace("\\", "/"): data for p, data in build.offline_depot.files.items()}
    assert offline
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest), "--offline-depot")
    assert result.exit_code == 0, result.output
    got = tree(dest)
    assert {p: got.get(p) for p in offline} == offline
    plain = archive.run("restore", PID, build.build_id, str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    assert not set(offline) & set(tree(tmp_path / "plain"))


def test_files_in_dest_the_build_does_not_name_are_left_alone_and_listed_with_v(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    (dest / "saves").mkdir(parents=True)
    (dest / "saves" / "slot1.sav").write_bytes(b"mine")
    result = archive.run("-v", "restore", PID, build.build_id, str(dest))
    assert result.exit_code == 0, result.output
    assert "not in the build (left alone): saves/slot1.sav" in result.stdout
    assert (dest / "saves" / "slot1.sav").read_bytes() == b"mine"
    quiet = archive.run("restore", PID, build.build_id, str(dest))
    assert quiet.exit_code == 0 and "slot1.sav" not in quiet.stdout


def test_restore_an_osx_build_checks_each_file_sha256_too(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world = World(seed=22)
    data = random_bytes(120_000, 9)
    build = world.add_v2_build(
        PID,
        "osx",
        files={"Game.app\\Contents\\MacOS\\game": data},
        links={"Game.app\\Contents\\MacOS\\current": "game"},
    )
    item = next(
        i for i in build.depots[0].manifest["depot"]["items"] if i.get("type") == "DepotFile"
    )
    assert "sha256" in item  # the fake gives osx files a sha256, as GOG does
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    result = archive.run("restore", PID, build.build_id, str(dest))
    assert result.exit_code == 0, result.output
    assert (dest / "Game.app/Contents/MacOS/game").read_bytes() == data
    assert os.readlink(dest / "Game.app/Contents/MacOS/current") == "game"


def test_restore_with_dependencies_puts_them_where_their_paths_say(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world = World(seed=23)
    setup = random_bytes(70_000, 10)
    world.set_dependencies(
        "59705672826648994", {"DirectX": {"__redist\\DirectX\\DXSETUP.exe": setup}}
    )
    build = world.add_v2_build(PID, files={"game.exe": b"game"}, dependencies=["DirectX"])
    other = world.add_v2_build(PID, files={"game.exe": b"game2"}, dependencies=["Missing"])
    archive = synced(serve, make_archive, world)
    dest = tmp_path / "game"
    plain = archive.run("restore", PID, build.build_id, str(dest))
    assert plain.exit_code == 0, plain.output
    assert not (dest / "__redist").exists()
    result = archive.run("restore", PID, build.build_id, str(dest), "--with-dependencies", "--json")
    assert result.exit_code == 0, result.output
    assert (dest / "__redist/DirectX/DXSETUP.exe").read_bytes() == setup
    doc = json.loads(result.stdout)
    assert doc["written"] == 1 and doc["already_correct"] == doc["files"] - 1
    assert "DirectX" in {d["product_id"] for d in doc["selection"]["depots"]}
    missing = archive.run(
        "restore", PID, other.build_id, str(tmp_path / "o"), "--with-dependencies"
    )
    assert missing.exit_code == 1
    assert "dependency Missing: its depot is not in the archive" in missing.stderr


def test_restore_on_a_terminal_shows_progress_of_files_and_bytes(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    archive = synced(serve, make_archive, world)
    main, terminal = os.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "galaxy_archive",
                "--config",
                str(archive.config_path),
                "restore",
                PID,
                build.build_id,
                str(tmp_path / "game"),
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            timeout=120,
            check=False,
            text=True,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                block = os.read(main, 4096)
            except OSError:
                break
            if not block:
                break
            shown += block
    finally:
        os.close(main)
    assert done.returncode == 0, done.stdout
    files = len(expected_files(build))
    assert f"{files}/{files} objects" in shown.decode(), shown.decode()[-600:]
    assert re.search(r"\| [0-9.]+M/[0-9.]+M \[", shown.decode())  # bytes done of the total
    assert done.stdout.startswith("restore: ")


def test_restore_of_a_build_the_archive_does_not_hold_exits_1_naming_it(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world()
    archive = synced(serve, make_archive, world)
    result = archive.run("restore", PID, "999", str(tmp_path / "game"))
    assert result.exit_code == 1
    assert result.stderr == f"galaxy-archive: product {PID} has no build 999 in the archive\n"
    assert not (tmp_path / "game").exists()
    usage = archive.run("restore", PID, "999")
    assert usage.exit_code == 2 and "PRODUCT_ID BUILD_ID DEST" in usage.stderr
