"""`show` and `diff` (issue 17) over a real sync of a fake Galaxy world whose truth is known."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from galaxy_archive.output import escape_name
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, galaxy_path, random_bytes
from tests.fakegalaxy.content import FileSpec
from tests.fakegalaxy.models import DependencyRepository, Patch, V1Build, V2Build

PID = "1207658930"
HOSTILE = "evil\x1b[31m\nname.txt"  # an escape sequence and a newline in one file name
GAME_V2 = random_bytes(150_000, 1)
SAME = random_bytes(90_000, 2)
THEME = random_bytes(40_000, 3)


@dataclass
class DiffWorld:
    world: World
    old: V2Build
    new: V2Build
    v1: V1Build
    patch: Patch
    deps: DependencyRepository


def diff_world() -> DiffWorld:
    """OLD -> NEW: data/new.txt and the hostile name added, data/old.txt removed, bin/game.exe
    changed, music/theme.ogg moved from the neutral depot to the en-US one, data/same.pak the
    same. A V1 build of the same OS shares game.exe and same.pak with NEW."""
    world = World(seed=17)
    old = world.add_v2_build(
        PID,
        files={
            "bin\\game.exe": FileSpec(random_bytes(150_000, 4), flags=("executable",)),
            "data\\same.pak": SAME,
            "data\\old.txt": b"removed in 1.1\n" * 10,
            "music\\theme.ogg": THEME,
        },
        languages={"en-US": {"lang\\en.dat": b"english strings\n" * 50}},
        version_name="1.0",
        chunk_size=64 * 1024,
    )
    new = world.add_v2_build(
        PID,
        files={
            "bin\\game.exe": FileSpec(GAME_V2, flags=("executable",)),
            "data\\same.pak": SAME,
            "data\\new.txt": b"added in 1.1\n" * 10,
            HOSTILE: b"hostile\n",
        },
        languages={"en-US": {"lang\\en.dat": b"english strings\n" * 50, "music\\theme.ogg": THEME}},
        small_files={"config\\a.ini": b"[a]\nx=1\n", "config\\b.ini": b"[b]\ny=2\n"},
        version_name="1.1",
        chunk_size=64 * 1024,
    )
    v1 = world.add_v1_build(
        PID,
        files={"bin\\game.exe": GAME_V2, "data\\same.pak": SAME, "readme.txt": b"classic\n"},
    )
    patch = world.add_patch(PID, old, new)
    deps = world.set_dependencies(
        "59705672826648994", {"MSVC2019": {"vc\\redist.exe": b"vc" * 500}}
    )
    return DiffWorld(world, old, new, v1, patch, deps)


@pytest.fixture(scope="module")
def synced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """One sync of the world, shared by the read-only tests of this module."""
    truth = diff_world()
    server = FakeGalaxy(truth.world).start()
    base = tmp_path_factory.mktemp("show-diff")
    archive = Archive(
        root=base / "archive",
        config_path=base / "archive.toml",
        token_file=base / "token.json",
        server=server,
    )
    archive.write_config(sync={"os": ["windows"]})
    archive.login()
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    yield archive, truth
    server.stop()


def show_json(archive: Archive, *args: str) -> dict[str, Any]:
    result = archive.run("show", *args, "--json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)  # the whole of stdout is one document
    return doc


def v1_manifest_path(truth: DiffWorld, name: str) -> str:
    return f"v1/manifests/{truth.v1.manifest_dir()}/{name}"


# --- show HASH ------------------------------------------------------------------------------


def test_show_each_manifest_kind_decodes_it_and_names_what_references_it(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    new = {"product_id": PID, "build_id": truth.new.build_id}
    pair = {
        "product_id": PID,
        "from_build_id": truth.old.build_id,
        "to_build_id": truth.new.build_id,
    }
    msvc = truth.deps.depots["MSVC2019"]
    expected = [
        (truth.new.repository_hash, "repository", [new], truth.new.repository),
        (truth.new.depots[0].manifest_hash, "depot", [new], truth.new.depots[0].manifest),
        (truth.new.offline_depot.manifest_hash, "offline_depot", [new], None),
        (truth.patch.patch_id, "patch_root", [pair], None),
        (truth.patch.depots[0].manifest_hash, "patch_depot", [pair], None),
        (
            truth.deps.manifest_hash,
            "dependency_repository",
            [{"repository_build_id": truth.deps.build_id}],
            truth.deps.manifest,
        ),
        (
            msvc.manifest_hash,
            "dependency_depot",
            [{"dependency_id": "MSVC2019", "repository_build_id": truth.deps.build_id}],
            msvc.manifest,
        ),
        (
            v1_manifest_path(truth, "repository.json"),
            "v1_repository",
            [{"product_id": PID, "build_id": truth.v1.build_id}],
            truth.v1.repository,
        ),
        (
            v1_manifest_path(truth, truth.v1.depots[0].manifest_name),
            "v1_depot",
            [{"product_id": PID, "build_id": truth.v1.build_id}],
            truth.v1.depots[0].manifest,
        ),
    ]
    for target, kind, referenced_by, manifest in expected:
        doc = show_json(archive, target)
        assert (doc["kind"], doc["referenced_by"], doc["state"]) == (
            kind,
            referenced_by,
            "verified",
        )
        if manifest is not None:
            assert doc["manifest"] == manifest, target
    patch_root = show_json(archive, truth.patch.patch_id)["manifest"]
    assert patch_root["buildId_target"] == truth.new.build_id


def test_show_manifest_prints_its_kind_then_indented_json(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    result = archive.run("show", truth.new.repository_hash)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"v2/meta/{galaxy_path(truth.new.repository_hash)}: repository, verified, "
        f"{len(truth.new.repository_bytes)} bytes"
    )
    assert lines[1] == f"referenced by: product {PID} build {truth.new.build_id}"
    assert json.loads("\n".join(lines[2:])) == truth.new.repository
    assert result.stderr == ""


def test_show_raw_writes_the_stored_bytes_unchanged(synced: tuple[Archive, DiffWorld]) -> None:
    archive, truth = synced
    result = archive.run("show", truth.new.depots[0].manifest_hash, "--raw")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == truth.new.depots[0].manifest_bytes
    v1 = archive.run("show", v1_manifest_path(truth, "repository.json"), "--raw")
    assert (v1.exit_code, v1.stdout_bytes) == (0, truth.v1.repository_bytes)


def test_show_a_hash_not_stored_says_so_and_exits_1(synced: tuple[Archive, DiffWorld]) -> None:
    archive, _ = synced
    missing = hashlib.md5(b"never archived").hexdigest()
    result = archive.run("show", missing)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        result.stderr == f"galaxy-archive: {missing}: no such manifest is stored in the archive\n"
    )


def test_show_an_argument_that_is_no_manifest_name_is_a_usage_error(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, _ = synced
    result = archive.run("show", "../../etc/passwd")
    assert result.exit_code == 2
    assert "neither a manifest id" in result.stderr


def test_show_build_summarises_depots_dependencies_and_patches(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    doc = show_json(archive, PID, truth.new.build_id)
    assert (doc["generation"], doc["os"], doc["version_name"]) == (2, "windows", "1.1")
    assert (doc["is_listed"], doc["state"]) == (True, "complete")
    by_manifest = {d["manifest"]: d for d in doc["depots"]}
    assert set(by_manifest) == {d.manifest_hash for d in truth.new.unique_depots()} | {
        truth.new.offline_depot.manifest_hash
    }
    for depot in truth.new.unique_depots():
        shown = by_manifest[depot.manifest_hash]
        assert (shown["product_id"], shown["languages"]) == (depot.product_id, depot.languages)
        assert (shown["file_count"], shown["files_size"]) == (len(depot.files), depot.size)
        assert shown["is_complete"] and shown["is_verified"]
    assert doc["dependencies"] == [{"id": "MSVC2019", "state": "complete"}]
    [patch] = doc["patches"]
    assert (patch["from_build_id"], patch["to_build_id"]) == (
        truth.old.build_id,
        truth.new.build_id,
    )
    assert (patch["outcome"], patch["state"], patch["patch_id"]) == (
        "patch",
        "complete",
        truth.patch.patch_id,
    )
    assert patch["compressed_size"] == sum(d.compressed_size for d in truth.patch.depots)
    assert "files" not in doc


def test_show_build_files_lists_every_file_with_flags_and_sfc_members(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    files = {f["path"]: f for f in show_json(archive, PID, truth.new.build_id, "--files")["files"]}
    expected = {
        path.replace("\\", "/"): data
        for depot in [*truth.new.unique_depots(), truth.new.offline_depot]
        for path, data in depot.files.items()
    }
    assert {p: (f["size"], f["md5"]) for p, f in files.items()} == {
        p: (len(d), hashlib.md5(d).hexdigest()) for p, d in expected.items()
    }
    assert files["bin/game.exe"]["flags"] == ["executable"]
    assert files[f"goggame-{PID}.info"]["flags"] == ["hidden"]
    assert [p for p, f in files.items() if f["is_sfc_member"]] == ["config/a.ini", "config/b.ini"]
    assert files["music/theme.ogg"]["languages"] == ["en-US"]


def test_show_build_files_on_a_terminal_escapes_a_hostile_name_to_one_line(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    result = archive.run("show", PID, truth.new.build_id, "--files")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith("  evil")]
    assert line.startswith(f"  {escape_name(HOSTILE)}  8  ")
    assert escape_name(HOSTILE) == "evil\\x1b[31m\\nname.txt"


def test_show_v1_build_lists_its_files_and_redists(synced: tuple[Archive, DiffWorld]) -> None:
    archive, truth = synced
    doc = show_json(archive, PID, truth.v1.build_id, "--files")
    assert doc["generation"] == 1
    assert [d["id"] for d in doc["dependencies"]] == ["MSVC2010"]
    assert {f["path"]: f["size"] for f in doc["files"]} == {
        "bin/game.exe": len(GAME_V2),
        "data/same.pak": len(SAME),
        "readme.txt": len(b"classic\n"),
    }
    assert [d["is_verified"] for d in doc["depots"]] == [True]


def test_show_unknown_build_exits_1(synced: tuple[Archive, DiffWorld]) -> None:
    archive, _ = synced
    result = archive.run("show", PID, "12345")
    assert result.exit_code == 1
    assert result.stderr == f"galaxy-archive: product {PID} has no build 12345 in the archive\n"


# --- diff -----------------------------------------------------------------------------------


def test_diff_lists_added_removed_changed_moved_and_identical_files(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    result = archive.run("diff", PID, truth.old.build_id, truth.new.build_id, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [f["path"] for f in doc["added"]] == [
        "config/a.ini",
        "config/b.ini",
        "data/new.txt",
        HOSTILE,
    ]
    assert [f["path"] for f in doc["removed"]] == ["data/old.txt"]
    # project.json of the offline depot names its build: it changes with every build.
    assert [c["path"] for c in doc["changed"]] == ["bin/game.exe", "project.json"]
    game = doc["changed"][0]
    assert (game["old"]["size"], game["new"]["md5"]) == (150_000, hashlib.md5(GAME_V2).hexdigest())
    [moved] = doc["moved"]
    assert (moved["path"], moved["old"]["languages"], moved["new"]["languages"]) == (
        "music/theme.ogg",
        ["*"],
        ["en-US"],
    )
    # same.pak, theme.ogg, lang/en.dat, goggame-<pid>.info/.hashdb, goggame-<pid>.script
    assert doc["identical"] == 6
    assert doc["update"] == expected_update(
        truth,
        ["config/a.ini", "config/b.ini", "data/new.txt", HOSTILE, "bin/game.exe", "project.json"],
    )
    patch = doc["patch"]
    assert (patch["patch_id"], patch["state"]) == (truth.patch.patch_id, "complete")
    assert patch["size"] == sum(d.size for d in truth.patch.depots)
    assert (patch["covers"], patch["not_covered"]) == (["bin/game.exe"], ["project.json"])


def expected_update(truth: DiffWorld, paths: list[str]) -> dict[str, int]:
    """The chunks of NEW's files at `paths` that no file of OLD has, from the world's manifests."""

    def chunks(build: V2Build) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for depot in [*build.unique_depots(), build.offline_depot]:
            for item in depot.manifest["depot"]["items"]:
                if item["type"] == "DepotFile":
                    out[item["path"].replace("\\", "/")] = item["chunks"]
        return out

    held = {c["compressedMd5"] for cs in chunks(truth.old).values() for c in cs}
    needed = {
        c["compressedMd5"]: c
        for path in paths
        for c in chunks(truth.new)[path]
        if c["compressedMd5"] not in held
    }
    return {
        "chunks": len(needed),
        "compressed_bytes": sum(c["compressedSize"] for c in needed.values()),
        "uncompressed_bytes": sum(c["size"] for c in needed.values()),
    }


def test_diff_swapped_swaps_added_and_removed(synced: tuple[Archive, DiffWorld]) -> None:
    archive, truth = synced
    forward = json.loads(
        archive.run("diff", PID, truth.old.build_id, truth.new.build_id, "--json").stdout
    )
    result = archive.run("diff", PID, truth.new.build_id, truth.old.build_id, "--json")
    backward = json.loads(result.stdout)
    assert [f["path"] for f in backward["added"]] == [f["path"] for f in forward["removed"]]
    assert [f["path"] for f in backward["removed"]] == [f["path"] for f in forward["added"]]
    assert backward["patch"] is None  # the archive holds no patch NEW -> OLD


def test_diff_on_a_terminal_prints_one_line_per_file_names_escaped(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    result = archive.run("diff", PID, truth.old.build_id, truth.new.build_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"product {PID}: {truth.old.build_id} (gen2 1.0) -> {truth.new.build_id} (gen2 1.1): "
        "4 added, 1 removed, 2 changed, 1 moved, 6 identical"
    )
    assert f"+ {escape_name(HOSTILE)} (8 bytes)" in lines
    assert "- data/old.txt (150 bytes)" in lines
    assert "~ bin/game.exe (150000 -> 150000 bytes)" in lines
    assert f"> music/theme.ogg (depot {PID} [*] -> {PID} [en-US])" in lines
    assert "  not covered: project.json" in lines
    assert "\x1b" not in result.stdout


def test_diff_v1_against_v2_compares_by_path(synced: tuple[Archive, DiffWorld]) -> None:
    archive, truth = synced
    result = archive.run("diff", PID, truth.v1.build_id, truth.new.build_id, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["old"]["generation"], doc["new"]["generation"]) == (1, 2)
    assert [f["path"] for f in doc["removed"]] == ["readme.txt"]
    assert doc["changed"] == [] and doc["moved"] == []
    assert doc["identical"] == 2  # bin/game.exe and data/same.pak, byte for byte
    assert "bin/game.exe" not in [f["path"] for f in doc["added"]]
    assert doc["patch"] is None


def test_diff_of_a_build_with_itself_is_empty(synced: tuple[Archive, DiffWorld]) -> None:
    archive, truth = synced
    doc = json.loads(
        archive.run("diff", PID, truth.new.build_id, truth.new.build_id, "--json").stdout
    )
    assert (doc["added"], doc["removed"], doc["changed"], doc["moved"]) == ([], [], [], [])
    assert doc["update"] == {"chunks": 0, "compressed_bytes": 0, "uncompressed_bytes": 0}


def test_diff_of_an_unknown_build_is_one_json_error_document(
    synced: tuple[Archive, DiffWorld],
) -> None:
    archive, truth = synced
    result = archive.run("diff", PID, truth.old.build_id, "999", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "command": "diff",
        "exit_code": 1,
        "error": f"product {PID} has no build 999 in the archive",
    }


# --- a corrupt manifest (its own archive: the flip must not spoil the shared one) ----------


def test_show_and_diff_name_a_corrupt_manifest_and_exit_1(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    truth = diff_world()
    archive = make_archive(serve(truth.world))
    archive.write_config(sync={"os": ["windows"], "generations": [2]})
    assert archive.run("sync", PID).exit_code == 0
    depot = truth.new.depots[0]
    relative = f"v2/meta/{galaxy_path(depot.manifest_hash)}"
    stored = archive.root / relative
    body = bytearray(stored.read_bytes())
    body[len(body) // 2] ^= 0x01
    stored.write_bytes(bytes(body))
    corrupt = hashlib.md5(bytes(body)).hexdigest()

    for args in (("show", depot.manifest_hash), ("show", depot.manifest_hash, "--raw")):
        result = archive.run(*args)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr == (
            f"galaxy-archive: {relative}: corrupt: its stored bytes have MD5 {corrupt}, "
            f"not {depot.manifest_hash} (verify --repair fetches it again)\n"
        )
    result = archive.run("diff", PID, truth.old.build_id, truth.new.build_id)
    assert result.exit_code == 1
    assert relative in result.stderr and "corrupt" in result.stderr
    shown = json.loads(archive.run("show", PID, truth.new.build_id, "--json").stdout)
    [bad] = [d for d in shown["depots"] if d["manifest"] == depot.manifest_hash]
    assert bad["file_count"] is None and "corrupt" in bad["problem"]
