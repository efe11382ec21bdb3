"""Parsing of V1 repository.json and depot manifests (pure), on gog-samples 4 and 5 shapes."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import pytest

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.v1_manifests import (
    EMPTY_MD5,
    BlobRef,
    parse_blob_url,
    parse_depot_manifest_v1,
    parse_repository_v1,
    read_depot_manifest_v1,
    read_repository_v1,
)

# gog-samples 4a (gogapidocs, 1207658930/windows/37794096), verbatim.
REPOSITORY_4A = """{
  "product": {
    "timestamp": 37794096,
    "depots": [
      { "languages": ["Neutral"], "size": "1255672", "gameIDs": ["1207658930"],
        "systems": ["Windows"], "manifest": "a0e35d92-2a0f-40db-8a47-47cbbad0bac0.json" },
      { "languages": ["English"], "size": "24450928280", "gameIDs": ["1207658930"],
        "systems": ["Windows"], "manifest": "463cd4b2-783e-447a-b17e-a68d601911e3.json" },
      { "redist": "MSVC2010", "executable": "__redist/MSVC2010/vcredist_x86.exe",
        "argument": "/q", "size": "0" },
      { "redist": "DirectX", "executable": "__redist/DirectX/DXSETUP.exe",
        "argument": "/silent", "size": "0" }
    ],
    "support_commands": [
      { "languages": ["Neutral"], "executable": "/galaxy_the_witcher2_ee_3.5.0.26.exe",
        "gameID": "1207658930", "systems": ["Windows"], "argument": "" }
    ],
    "installDirectory": "The Witcher 2",
    "rootGameID": "1207658930",
    "gameIDs": [
      { "dependencies": [], "gameID": "1207658930",
        "name": { "en": "The Witcher 2 - Assassins of Kings Enhanced Edition" },
        "standalone": true }
    ],
    "projectName": "The Witcher 2 - Assassins of Kings Enhanced Edition"
  },
  "version": 1
}"""

# gog-samples 5a (gogapidocs, …/463cd4b2-….json), verbatim.
DEPOT_5A = """{
  "version": 1,
  "depot": {
    "name": "The Witcher 2 - Assassins of Kings Enhanced Edition",
    "files": [
      { "url": "1207658930/main.bin", "size": 128, "hash": "4d1daf474729e889b878b9bdef634f76",
        "path": "/CookedPC/dlc_finishers.dzip", "offset": 13944149457 },
      { "url": "1207658930/main.bin", "size": 262, "hash": "3d1be6f328329f983075c124a00aca56",
        "path": "/Launcher/Neutral/textbox_thumb_normal.PNG", "offset": 24440333403 },
      { "url": "1207658930/main.bin", "size": 417, "hash": "1ebd6e11f384c2d10c936155afbcfa13",
        "path": "/Launcher/Neutral/textbox_arrow_pressed.PNG", "offset": 24439929797 }
    ]
  }
}"""


def test_parse_repository_v1_reads_gog_sample_4a() -> None:
    repository = read_repository_v1(REPOSITORY_4A.encode(), "repo")
    assert repository.timestamp == 37794096
    assert repository.root_product_id == "1207658930"
    assert repository.install_directory == "The Witcher 2"
    assert repository.product_ids == ("1207658930",)
    assert [d.manifest for d in repository.depots] == [
        "a0e35d92-2a0f-40db-8a47-47cbbad0bac0.json",
        "463cd4b2-783e-447a-b17e-a68d601911e3.json",
    ]
    assert repository.depots[1].size == 24450928280  # a string upstream
    assert repository.depots[1].languages == ("English",)
    assert repository.depots[1].systems == ("Windows",)
    assert repository.depots[0].owner("999") == "1207658930"
    assert [(r.redist, r.executable, r.argument, r.size) for r in repository.redists] == [
        ("MSVC2010", "__redist/MSVC2010/vcredist_x86.exe", "/q", "0"),
        ("DirectX", "__redist/DirectX/DXSETUP.exe", "/silent", "0"),
    ]


def test_parse_repository_v1_tolerates_missing_fields() -> None:
    doc = {"product": {"depots": [{"manifest": "x.json"}, {"redist": "ISI", "targetDir": "t"}]}}
    repository = parse_repository_v1(doc, "repo")
    depot = repository.depots[0]
    assert depot.size is None and depot.product_ids == () and depot.owner("42") == "42"
    assert repository.redists[0].executable is None and repository.redists[0].target_dir == "t"
    assert repository.timestamp is None and repository.root_product_id is None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"product": []},
        {"product": {"depots": {}}},
        {"product": {"depots": [{"languages": ["x"]}]}},  # neither manifest nor redist
        {"product": {"depots": [{"manifest": "a.json", "size": "-5"}]}},
        {"product": {"depots": [{"manifest": "a.json", "size": True}]}},
        {"product": {"depots": [{"redist": ""}]}},
    ],
)
def test_parse_repository_v1_rejects_hostile_or_malformed(doc: Any) -> None:
    with pytest.raises(ManifestError, match="repo"):
        parse_repository_v1(doc, "repo")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"manifest": "../../etc/passwd"}, "manifest"),
        ({"manifest": "a/b.json"}, "manifest"),
        ({"manifest": "a.json", "gameIDs": ["12; rm"]}, "gameIDs"),
    ],
)
def test_parse_repository_v1_skips_an_unsafe_depot_and_names_it(entry: Any, field: str) -> None:
    depots = [{"manifest": "good.json"}, entry, {"redist": "ISI"}]
    repository = parse_repository_v1({"product": {"depots": depots}}, "repo")
    assert [d.manifest for d in repository.depots] == ["good.json"]
    assert [r.redist for r in repository.redists] == ["ISI"]
    (skipped,) = repository.skipped
    assert skipped.startswith(f"repo depots[1] {field}") and skipped.endswith("entry skipped")


def test_parse_repository_v1_skips_an_unsafe_game_id() -> None:
    product = {"gameIDs": [{"gameID": "1"}, {"gameID": "../1"}]}
    repository = parse_repository_v1({"product": product}, "repo")
    assert repository.product_ids == ("1",) and "'../1'" in repository.skipped[0]


def test_parse_depot_manifest_v1_reads_gog_sample_5a() -> None:
    manifest = read_depot_manifest_v1(DEPOT_5A.encode(), "depot")
    assert manifest.name == "The Witcher 2 - Assassins of Kings Enhanced Edition"
    first = manifest.files[0]
    assert first.path == PurePosixPath("CookedPC/dlc_finishers.dzip")
    assert (first.size, first.offset, first.md5) == (
        128,
        13944149457,
        "4d1daf474729e889b878b9bdef634f76",
    )
    assert first.blob == BlobRef("1207658930", "main.bin")
    assert manifest.items == ()


def test_parse_depot_manifest_v1_directories_symlinks_flags_and_defaults() -> None:
    doc = {
        "depot": {
            "files": [
                {"path": "/", "directory": True},
                {"path": "/Game.app/Contents", "directory": True},
                {
                    "path": "/Game.app/Contents/Frameworks/SDL2",
                    "target": "Versions/Current/SDL2",
                    "symlinkType": "file",
                },
                {
                    "path": "/Contents/PkgInfo",
                    "size": 8,
                    "hash": "a" * 32,
                    "executable": True,
                    "support": True,
                },
                {"path": "/empty.txt", "size": 0, "hash": ""},
                {"path": "/sized-as-string", "size": "3", "hash": "B" * 32, "offset": "7"},
                {"path": "/no-hash", "size": 5, "offset": 3},  # 6.2: any field can be missing
            ]
        }
    }
    manifest = parse_depot_manifest_v1(doc, "depot")
    assert [(str(i.path), i.kind, i.target, i.symlink_type) for i in manifest.items] == [
        ("Game.app/Contents", "directory", None, None),
        ("Game.app/Contents/Frameworks/SDL2", "symlink", "Versions/Current/SDL2", "file"),
    ]
    pkginfo, empty, sized, unhashed = manifest.files
    assert pkginfo.offset == 0 and pkginfo.blob is None  # GOGDB's defaults
    assert pkginfo.flags == ("executable", "support")
    assert (empty.size, empty.md5) == (0, EMPTY_MD5)
    assert (sized.size, sized.offset, sized.md5) == (3, 7, "b" * 32)
    assert (unhashed.size, unhashed.offset, unhashed.md5) == (5, 3, None)


@pytest.mark.parametrize(
    "record",
    [
        {"path": 5, "size": 1, "hash": "a" * 32},
        {"path": "/a", "size": -1, "hash": "a" * 32},
        {"path": "/a", "size": 1, "hash": "a" * 32, "offset": -3},
        {"path": "/a", "size": 1, "hash": "a" * 32, "url": "main.bin"},
        {"path": "/link", "symlinkType": "file"},  # no target
    ],
)
def test_parse_depot_manifest_v1_rejects_hostile_records(record: dict[str, Any]) -> None:
    with pytest.raises(ManifestError, match=r"depot files\[0\]"):
        parse_depot_manifest_v1({"depot": {"files": [record]}}, "depot")


@pytest.mark.parametrize(
    "record",
    [
        {"path": "/../../etc/passwd", "size": 1, "hash": "a" * 32},
        {"path": "//etc/passwd", "size": 1, "hash": "a" * 32},
        {"path": "/C:/Windows/x", "size": 1, "hash": "a" * 32},
        {"path": "/a\\..\\..\\b", "size": 1, "hash": "a" * 32},
        {"path": "/a\x00b", "size": 1, "hash": "a" * 32},
        {"path": "/a", "size": 1, "hash": "not-md5"},
        {"path": "/a", "size": 1, "hash": "a" * 32, "url": "../1/main.bin"},
        {"path": "/a", "size": 1, "hash": "a" * 32, "url": "1/../../main.bin"},
        {"path": "/../x", "directory": True},
        {"path": "/link", "target": "/etc/passwd"},
        {"path": "/a/link", "target": "../../x"},
    ],
)
def test_parse_depot_manifest_v1_skips_an_unsafe_record_and_names_it(
    record: dict[str, Any],
) -> None:
    good = {"path": "/good", "size": 1, "hash": "a" * 32}
    manifest = parse_depot_manifest_v1({"depot": {"files": [good, record]}}, "depot")
    assert [str(f.path) for f in manifest.files] == ["good"] and manifest.items == ()
    (skipped,) = manifest.skipped
    assert skipped.startswith("depot files[1]") and skipped.endswith("entry skipped")
    assert "\x00" not in skipped  # named escaped, on one line


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[]", b'{"depot": []}'])
def test_read_depot_manifest_v1_rejects_broken_json(body: bytes) -> None:
    with pytest.raises(ManifestError, match="depot"):
        read_depot_manifest_v1(body, "depot")


def test_parse_blob_url_takes_product_and_name() -> None:
    assert parse_blob_url("1441974651/main.bin", "f") == BlobRef("1441974651", "main.bin")
    assert json.dumps(parse_blob_url("1/x.bin", "f")) == '["1", "x.bin"]'
