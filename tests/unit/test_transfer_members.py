"""transfer.members: which names an export may carry, and what makes an index unreadable."""

from __future__ import annotations

import json

import pytest

from galaxy_archive.errors import UnsafeReference
from galaxy_archive.transfer.members import check_tree_path, parse_index

MD5 = "0123456789abcdef0123456789abcdef"
CHUNK = f"v2/store/01/23/{MD5}"


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("store", CHUNK),
        ("meta", f"v2/meta/01/23/{MD5}"),
        ("v1_blob", "v1/depots/1207658930/windows/38076956/main.bin"),
        ("v1_manifest", "v1/manifests/1207658930/osx/38076956/repository.json"),
    ],
)
def test_members_tree_paths_the_layout_makes_are_accepted(kind: str, path: str) -> None:
    assert check_tree_path(kind, path) == path


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("store", f"/v2/store/01/23/{MD5}"),
        ("store", f"v2/store/01/23/../../../{MD5}"),
        ("store", f"v2/store/aa/bb/{MD5}"),  # fan-out that is not the name's
        ("meta", CHUNK),  # a chunk path claimed as a manifest
        ("v1_blob", "v1/manifests/1207658930/windows/38076956/main.bin"),
        ("v1_blob", "v1/depots/1207658930/windows/38076956/../x"),
        ("v1_blob", "../../x"),
        ("db", "db/objects.jsonl"),
        ("store", 7),
    ],
)
def test_members_other_names_are_refused(kind: str, path: object) -> None:
    with pytest.raises(UnsafeReference):
        check_tree_path(kind, path)


def _index(*members: dict[str, object]) -> bytes:
    return json.dumps({"format": 1, "members": list(members)}).encode()


def _entry(**overrides: object) -> dict[str, object]:
    return {"name": CHUNK, "kind": "store", "path": CHUNK, "size": 3, "md5": MD5} | overrides


def test_members_an_index_gives_its_members_by_name() -> None:
    _, members = parse_index(_index(_entry(), _entry(name="db/builds.jsonl", kind="db")))
    assert set(members) == {CHUNK, "db/builds.jsonl"}
    assert members[CHUNK].size == 3 and members["db/builds.jsonl"].path is None


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        json.dumps({"format": 2, "members": []}).encode(),
        _index(_entry(), _entry()),  # listed twice
        _index(_entry(size=-1)),
        _index(_entry(size=True)),
        _index(_entry(md5="XYZ")),
        _index(_entry(path="v2/store/other")),
        _index(_entry(name="db/runs.jsonl", kind="db")),  # not a table an export carries
        _index(_entry(name="db/builds.jsonl", kind="db", size=2**40)),
    ],
)
def test_members_a_malformed_or_hostile_index_is_refused(bad: bytes) -> None:
    with pytest.raises(UnsafeReference):
        parse_index(bad)
