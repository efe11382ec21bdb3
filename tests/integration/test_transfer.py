"""`export` / `import` (issue 15 part 1): a product's closure from one archive into another,
with the fake Galaxy stopped after the sync, and hostile files built here."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import zstandard

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes
from tests.fakegalaxy.sample import SAMPLE_PRODUCT_ID, sample_world
from tests.integration.test_restore import PID, restore_world, synced, tree
from tests.integration.test_restore_v1 import expected, v1_synced

OTHER = "1111111111"


def _exported(archive: Archive, tmp_path: Path) -> Path:
    out = tmp_path / "quest.tar.zst"
    result = archive.run("export", PID, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["objects"] >= 3 and report["index_md5"] == _index_md5(out)
    return out


def _index_md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(_members(path)[0][1]).hexdigest()


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with path.open("rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


def _rewrite(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    out = path.with_name("hostile.tar.zst")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    out.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return out


def _empty(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], name: str
) -> Archive:
    """An archive with no product yet (configured against an empty fake Galaxy)."""
    return make_archive(serve(World(seed=5)), login=False, name=name)


def _product_tree(archive: Archive) -> dict[str, bytes]:
    paths = {row[0] for row in archive.db_rows("SELECT path FROM objects")}
    return {p: b for p, b in archive.tree().items() if p in paths}


def test_export_then_import_gives_an_archive_that_verifies_and_restores_the_same(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, build = restore_world()
    a = synced(serve, make_archive, world)
    out = _exported(a, tmp_path)
    b = _empty(serve, make_archive, "b")

    result = b.run("import", str(out), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["refused"] == [] and report["imported"] > 10
    assert b.tree() == a.tree()
    rows = "SELECT path, md5, size, state FROM objects ORDER BY path"
    assert b.db_rows(rows) == a.db_rows(rows)
    builds = "SELECT product_id, build_id, state FROM builds ORDER BY 1, 2"
    assert b.db_rows(builds) == a.db_rows(builds)
    assert b.run("verify").exit_code == 0
    for archive, dest in ((a, tmp_path / "from-a"), (b, tmp_path / "from-b")):
        restored = archive.run("restore", PID, build.build_id, str(dest))
        assert restored.exit_code == 0, restored.output
    assert tree(tmp_path / "from-a") == tree(tmp_path / "from-b")

    again = b.run("import", str(out))
    assert again.exit_code == 0, again.output
    assert "nothing to import" in again.output


def _object_member(members: list[tuple[tarfile.TarInfo, bytes]], nth: int) -> int:
    """The position of the nth object member (chunks and manifests, not index or DB)."""
    positions = [i for i, (m, _) in enumerate(members) if m.name.startswith("v2/store/")]
    return positions[nth]


def test_import_refuses_each_hostile_member_by_name_and_keeps_every_good_one(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world()
    a = synced(serve, make_archive, world)
    members = _members(_exported(a, tmp_path))
    flipped = _object_member(members, 0)
    info, data = members[flipped]
    members[flipped] = (info, bytes([data[0] ^ 1]) + data[1:])
    # an index that lies: it gives the second chunk another MD5 (the bytes are intact)
    index = json.loads(members[0][1])
    lying = members[_object_member(members, 1)][0].name
    for entry in index["members"]:
        if entry["name"] == lying:
            entry["md5"] = "0" * 32
    members[0] = (members[0][0], json.dumps(index).encode())
    # a symlink under a name the index lists, ahead of that member (which then comes twice)
    linked = _object_member(members, 2)
    link = tarfile.TarInfo(members[linked][0].name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members.insert(linked, (link, b""))
    escape = tarfile.TarInfo("../../x")
    members.append((escape, b"escaped\n"))
    b = _empty(serve, make_archive, "b")

    result = b.run("import", str(_rewrite(tmp_path / "quest.tar.zst", members)))

    assert result.exit_code == 1, result.output
    for name in (info.name, lying, "../../x"):
        assert f"refused {name}: " in result.output
    assert f"refused {link.name}: not a regular file" in result.output
    assert not (tmp_path / "x").exists() and not (b.root.parent.parent / "x").exists()
    assert not (b.root / link.name).is_symlink()
    stored = b.tree()
    assert info.name not in stored and lying not in stored
    expected = {n: d for n, d in a.tree().items() if n not in (info.name, lying, link.name)}
    assert stored == expected  # every good member landed, with its bytes
    assert b.run("verify").exit_code == 0  # nothing stored is wrong; the two are just missing


def test_import_of_a_truncated_file_keeps_what_came_before_and_names_the_rest(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world()
    a = synced(serve, make_archive, world)
    out = _exported(a, tmp_path)
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size * 2 // 3])
    b = _empty(serve, make_archive, "b")

    result = b.run("import", str(cut), "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["missing"] and report["imported"] > 0
    assert [r["name"] for r in report["refused"]] == ["(stream)"]
    assert b.run("verify").exit_code in (0, 1)  # incomplete builds, never a corrupt object
    assert not b.db_rows("SELECT path FROM objects WHERE state = 'corrupt'")
    complete = b.run("import", str(out))  # the whole file completes it
    assert complete.exit_code == 0, complete.output
    assert b.tree() == a.tree()


def test_import_into_an_archive_holding_another_product_keeps_it(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world()
    a = synced(serve, make_archive, world)
    out = _exported(a, tmp_path)
    other = World(seed=9)
    other.add_product(OTHER)
    other.add_v2_build(OTHER, files={"other.bin": random_bytes(70_000, 9)})
    other.owned.add(int(OTHER))
    b = make_archive(serve(other), name="b")
    assert b.run("sync", OTHER).exit_code == 0
    before = b.tree()

    result = b.run("import", str(out))

    assert result.exit_code == 0, result.output
    assert b.tree() == before | a.tree()
    states = b.db_rows("SELECT product_id, state FROM builds ORDER BY 1")
    assert states == [(OTHER, "complete"), (PID, "complete")]
    assert b.run("verify").exit_code == 0


def test_import_killed_midway_leaves_no_partial_object_and_the_rerun_completes(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world(big=24_000_000)
    a = synced(serve, make_archive, world)
    out = _exported(a, tmp_path)
    b = _empty(serve, make_archive, "b")

    process = b.popen("import", str(out))
    deadline = time.monotonic() + 60
    while len(list((b.root / "v2").rglob("*"))) < 40 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the import ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()

    wanted = a.tree()
    left = b.tree()
    temp = {p for p in left if p.endswith(".galaxy-tmp")}  # the rerun sweeps these
    for path in left.keys() - temp:  # only whole, correct objects at final paths
        assert wanted.get(path) == left[path], path
    rerun = b.run("import", str(out))
    assert rerun.exit_code == 0, rerun.output
    assert b.tree() == wanted
    assert b.run("verify").exit_code == 0


def test_export_then_import_of_a_generation_1_build_restores_the_same_files(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    a, build = v1_synced(serve, make_archive)
    out = _exported(a, tmp_path)
    b = _empty(serve, make_archive, "b")

    result = b.run("import", str(out))

    assert result.exit_code == 0, result.output
    assert b.tree() == a.tree()
    # a blob is proved by its files' extents, which verify checks: until then only present
    blobs = "SELECT state FROM objects WHERE kind = 'v1_blob'"
    assert {row[0] for row in b.db_rows(blobs)} == {"present"}
    assert b.run("verify").exit_code == 0
    states = "SELECT build_id, state FROM builds ORDER BY 1"
    assert b.db_rows(states) == a.db_rows(states) == [(build.build_id, "complete")]
    restored = b.run("restore", PID, build.build_id, str(tmp_path / "dest"))
    assert restored.exit_code == 0, restored.output
    assert tree(tmp_path / "dest") == expected(build)


def test_import_moves_first_seen_earlier_never_later(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world, _ = restore_world()
    a = synced(serve, make_archive, world)
    out = _exported(a, tmp_path)
    b = _empty(serve, make_archive, "b")
    assert b.run("import", str(out)).exit_code == 0
    seen = "SELECT first_seen FROM {} WHERE product_id = ?"
    first = a.db_rows(seen.format("builds"), PID)
    with sqlite3.connect(b.root / "archive.db") as conn:
        conn.execute("UPDATE builds SET first_seen = '2099-01-01T00:00:00Z'")
        conn.execute("UPDATE products SET first_seen = '2000-01-01T00:00:00Z'")

    assert b.run("import", str(out)).exit_code == 0

    assert b.db_rows(seen.format("builds"), PID) == first  # the file saw it earlier
    assert b.db_rows(seen.format("products"), PID) == [("2000-01-01T00:00:00Z",)]


def test_a_product_with_a_patch_between_its_builds_imports_whole(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    """The sample product has a patch whose recorded index answer (json_bodies) the export does
    not carry: its row lands without that pointer instead of failing the whole import."""
    a = make_archive(serve(sample_world()))
    assert a.run("sync", SAMPLE_PRODUCT_ID).exit_code == 0
    out = tmp_path / "sample.tar.zst"
    assert a.run("export", SAMPLE_PRODUCT_ID, "-o", str(out)).exit_code == 0
    b = _empty(serve, make_archive, "b")

    result = b.run("import", str(out), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["refused"] == []
    patches = "SELECT product_id, from_build_id, to_build_id, outcome, state FROM patches"
    assert b.db_rows(patches) == a.db_rows(patches) != []
    assert b.run("verify").exit_code == 0
