"""models.build_files and models.build_diff: file lists from manifests, and their diff."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.models.build_diff import covered_by_patch, diff_builds, keyed_files
from galaxy_archive.models.build_files import (
    BuildFile,
    BuildFiles,
    DepotInfo,
    build_files,
    v1_depot_files,
    v2_depot_files,
)
from galaxy_archive.models.manifests import ChunkRef, DepotDiff

NEUTRAL = DepotInfo("a" * 32, "1", ("*",))
ENGLISH = DepotInfo("b" * 32, "1", ("en-US",))
DLC = DepotInfo("c" * 32, "2", ("*",))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def chunk(data: bytes, compressed_size: int = 10) -> dict[str, Any]:
    return {
        "compressedMd5": md5(b"z" + data),
        "compressedSize": compressed_size,
        "md5": md5(data),
        "size": len(data),
    }


# --- build_files ----------------------------------------------------------------------------


def test_v2_depot_files_give_slash_paths_sizes_md5_flags_and_sfc_members() -> None:
    doc = {
        "depot": {
            "items": [
                {"type": "DepotDirectory", "path": "bin"},
                {
                    "type": "DepotFile",
                    "path": "bin\\game.exe",
                    "chunks": [chunk(b"ab"), chunk(b"cde")],
                    "md5": md5(b"abcde"),
                    "flags": ["executable"],
                },
                {"type": "DepotFile", "path": "one.txt", "chunks": [chunk(b"xyz")]},
                {
                    "type": "DepotFile",
                    "path": "cfg\\a.ini",
                    "chunks": [chunk(b"[a]")],
                    "md5": md5(b"[a]"),
                    "sfcRef": {"offset": 0, "size": 3},
                },
                {"type": "DepotLink", "path": "current", "target": "bin"},
            ],
            "smallFilesContainer": {"chunks": [chunk(b"[a]")]},
        }
    }
    files = {f.path: f for f in v2_depot_files(doc, NEUTRAL, "depot")}
    assert sorted(files) == ["bin/game.exe", "cfg/a.ini", "one.txt"]
    game = files["bin/game.exe"]
    assert (game.size, game.md5, game.flags, game.is_sfc_member) == (
        5,
        md5(b"abcde"),
        ("executable",),
        False,
    )
    assert files["one.txt"].md5 == md5(b"xyz")  # one chunk, no md5: the chunk's
    assert files["cfg/a.ini"].is_sfc_member
    assert game.depot is NEUTRAL


def test_v1_depot_files_drop_the_leading_slash_and_keep_empty_files() -> None:
    doc = {
        "depot": {
            "files": [
                {"directory": True, "path": "/bin"},
                {
                    "path": "/bin/game.exe",
                    "size": 4,
                    "hash": md5(b"game"),
                    "offset": 0,
                    "executable": True,
                },
                {"path": "/empty.cfg", "size": 0, "offset": 4},
            ]
        }
    }
    files = v1_depot_files(doc, DLC, "uuid.json")
    assert [(f.path, f.size, f.flags) for f in files] == [
        ("bin/game.exe", 4, ("executable",)),
        ("empty.cfg", 0, ()),
    ]
    assert files[1].md5 == "d41d8cd98f00b204e9800998ecf8427e"


# --- diff, by example -----------------------------------------------------------------------


def file(
    path: str, data: bytes, depot: DepotInfo = NEUTRAL, *, chunks: tuple[ChunkRef, ...] = ()
) -> BuildFile:
    return BuildFile(path, len(data), md5(data), depot, (), False, chunks)


def ref(data: bytes, compressed_size: int) -> ChunkRef:
    return ChunkRef(md5(b"z" + data), compressed_size, md5(data), len(data))


def test_diff_builds_finds_each_kind_of_change_and_the_update_chunks() -> None:
    shared, fresh = ref(b"shared", 4), ref(b"fresh", 3)
    old = build_files(
        2,
        [
            [
                file("same", b"s"),
                file("gone", b"g"),
                file("changed", b"v1", chunks=(shared,)),
                file("moved", b"m"),
            ]
        ],
    )
    new = build_files(
        2,
        [
            [file("same", b"s"), file("changed", b"v2", chunks=(shared, fresh))],
            [file("moved", b"m", ENGLISH), file("added", b"a", ENGLISH)],
        ],
    )
    diff = diff_builds(old, new)
    assert [f.path for f in diff.added] == ["added"]
    assert [f.path for f in diff.removed] == ["gone"]
    assert [new.path for _, new in diff.changed] == ["changed"]
    assert [(a.depot, b.depot) for a, b in diff.moved] == [(NEUTRAL, ENGLISH)]
    assert diff.identical == 2
    # "added" has no chunks: a V1-like range of 1 byte; "changed" needs only `fresh`.
    assert (diff.update.chunks, diff.update.compressed_bytes, diff.update.uncompressed_bytes) == (
        1,
        3 + 1,
        5 + 1,
    )


def test_diff_builds_across_generations_reports_no_moves() -> None:
    old = build_files(1, [[file("a", b"x", DLC)]])
    new = build_files(2, [[file("a", b"x", NEUTRAL)]])
    diff = diff_builds(old, new)
    assert diff.is_empty and diff.identical == 1


def test_keyed_files_tell_apart_one_path_in_two_language_depots() -> None:
    keyed = keyed_files([file("speech.pak", b"en", ENGLISH), file("speech.pak", b"de", DLC)])
    assert sorted(keyed) == [("speech.pak", "*"), ("speech.pak", "en-US")]


def test_covered_by_patch_needs_path_and_both_md5s() -> None:
    old, new = file("a/b", b"1"), file("a/b", b"2")
    other_new = file("c", b"3")
    delta = DepotDiff(PurePosixPath("a/b"), PurePosixPath("a/b"), old.md5 or "", new.md5 or "", ())
    stale = DepotDiff(PurePosixPath("c"), PurePosixPath("c"), md5(b"?"), other_new.md5 or "", ())
    changed = [(old, new), (file("c", b"0"), other_new)]
    assert covered_by_patch(changed, [delta, stale]) == ("a/b",)


# --- diff, properties -----------------------------------------------------------------------

_depots = st.sampled_from([NEUTRAL, ENGLISH, DLC])
_chunks = st.lists(
    st.builds(ref, st.binary(min_size=1, max_size=3), st.integers(0, 50)), max_size=3
).map(tuple)
_files = st.builds(
    lambda path, data, depot, chunks: file(path, data, depot, chunks=chunks),
    st.sampled_from(["a", "b", "c/d", "e/f/g", "h"]),
    st.binary(max_size=3),
    _depots,
    _chunks,
)
_builds = st.builds(
    lambda generation, files: build_files(generation, [files]),
    st.sampled_from([1, 2]),
    st.lists(_files, max_size=8),
)


def _paths(build: BuildFiles) -> set[str]:
    return {f.path for f in build.files}


@given(_builds)
def test_diff_of_a_build_with_itself_is_empty(build: BuildFiles) -> None:
    diff = diff_builds(build, build)
    assert diff.is_empty
    assert diff.identical == len(keyed_files(build.files))
    assert diff.update.chunks == diff.update.compressed_bytes == 0


@given(_builds, _builds)
def test_diff_swapped_swaps_added_and_removed(old: BuildFiles, new: BuildFiles) -> None:
    forward, backward = diff_builds(old, new), diff_builds(new, old)
    assert forward.added == backward.removed
    assert forward.removed == backward.added
    assert [(a, b) for b, a in backward.changed] == list(forward.changed)
    assert forward.identical == backward.identical


@given(_builds, _builds)
def test_diff_changed_paths_are_in_both_builds(old: BuildFiles, new: BuildFiles) -> None:
    diff = diff_builds(old, new)
    for before, after in (*diff.changed, *diff.moved):
        assert before.path == after.path
        assert before.path in _paths(old) and after.path in _paths(new)
    assert {f.path for f in diff.added} <= _paths(new)
    assert {f.path for f in diff.removed} <= _paths(old)
