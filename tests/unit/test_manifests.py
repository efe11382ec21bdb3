import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.decoding import decode_meta, inflate
from galaxy_archive.models.manifests import (
    decode_builds_list,
    parse_builds_list,
    parse_depot_manifest,
    parse_repository_v2,
)

# gog-samples.md 1a (real, 2017)
BUILDS_1A = {
    "total_count": 2,
    "count": 2,
    "items": [
        {
            "build_id": "48906206523382029",
            "product_id": "1207658930",
            "os": "windows",
            "branch": None,
            "version_name": "3.5.0.26",
            "tags": [],
            "public": True,
            "date_published": "2016-03-09T10:16:11+0000",
            "generation": 2,
            "link": "https://cdn.gog.com/content-system/v2/meta/92/ab/92ab42631ff4742b309bb62c175e6306",
        },
        {
            "build_id": "3161",
            "product_id": "1207658930",
            "os": "windows",
            "branch": None,
            "version_name": "",
            "tags": [],
            "public": True,
            "date_published": "2015-05-12T09:21:36+0000",
            "generation": 1,
            "link": "https://cdn.gog.com/content-system/v1/manifests/1207658930/windows/37794096/repository.json",
            "legacy_build_id": 37794096,
        },
    ],
    "has_private_branches": False,
}

# gog-samples.md 1d (_version=2: urls[] instead of link)
URLS_ITEM = {
    "build_id": "58989493373906337",
    "product_id": "1423049311",
    "os": "windows",
    "branch": None,
    "version_name": "2.31a",
    "tags": [],
    "public": True,
    "date_published": "2025-09-16T13:04:39+0000",
    "generation": 2,
    "urls": [
        {
            "endpoint_name": "gcore",
            "url": "https://gcore.example/content-system/v2/meta/9d/40/9d406eaeb2d0421c9b61aff9a1aaf0db",
            "priority": 1,
            "fallback_only": True,
            "supports_generation": [1, 2],
        },
        {
            "endpoint_name": "fastly",
            "url": "https://fastly.example/content-system/v2/meta/9d/40/9d406eaeb2d0421c9b61aff9a1aaf0db",
            "priority": 10,
            "fallback_only": False,
            "supports_generation": [1, 2],
        },
    ],
}

# gog-samples.md 2a (real, 2017: no compressedSize, buildId or clientId)
REPOSITORY_2A = {
    "baseProductId": "1207658930",
    "dependencies": ["MSVC2010", "MSVC2010_x64", "DirectX", "dotNet4"],
    "depots": [
        {
            "languages": ["*", "en"],
            "manifest": "79a1f5fd67f6d0cda22c51f1bd706b31",
            "productId": "1207658930",
            "size": 492,
        },
        {
            "languages": ["en"],
            "manifest": "32eee2cc5e7da11f22de078eac90ba60",
            "productId": "1207658930",
            "size": 24452205574,
        },
    ],
    "installDirectory": "The Witcher 2",
    "offlineDepot": {
        "languages": ["*"],
        "manifest": "d1e0f516a5ca1eae591c5969c5044f0f",
        "productId": "1207658930",
        "size": 3046,
    },
    "platform": "windows",
    "products": [
        {
            "name": "The Witcher 2",
            "productId": "1207658930",
            "script": "x",
            "temp_arguments": "",
            "temp_executable": "x.exe",
        }
    ],
    "version": 2,
}

CHUNK = {
    "compressedMd5": "f149b52a4ce1d025bbae57e8f8f7f662",
    "compressedSize": 351,
    "md5": "53318eac2bcdac67c84dfde40e58006d",
    "size": 1024,
}
# gog-samples.md 3a and 3b combined: plain files, flags, an SFC with members.
DEPOT = {
    "depot": {
        "items": [
            {
                "chunks": [CHUNK],
                "md5": "7da354ae24cee72ee8ef64c42944f530",
                "path": "CookedPC\\pack0.dzip",
                "type": "DepotFile",
            },
            {"chunks": [], "flags": ["hidden"], "path": "empty.txt", "type": "DepotFile"},
            {"type": "DepotDirectory", "path": "saves"},
            {"type": "DepotLink", "path": "link", "target": "saves"},
            {
                "path": "goggame-1.hashdb",
                "type": "DepotFile",
                "sfcRef": {"offset": 0, "size": 178},
                "chunks": [{**CHUNK, "compressedMd5": "a" * 32}],
            },
        ],
        "smallFilesContainer": {"chunks": [{**CHUNK, "compressedMd5": "b" * 32}]},
    },
    "version": 2,
}


def test_manifests_parse_real_builds_list() -> None:
    builds = parse_builds_list(BUILDS_1A, "list")
    v2, v1 = builds.items
    assert v2.repository_md5 == "92ab42631ff4742b309bb62c175e6306"
    assert v2.generation == 2 and v2.legacy_build_id is None and v2.branch is None
    assert v1.legacy_build_id == 37794096 and v1.generation == 1
    assert not builds.is_truncated


def test_manifests_builds_list_urls_variant_prefers_priority_over_fallback() -> None:
    listing = parse_builds_list({"items": [URLS_ITEM], "total_count": 393}, "list")
    item = listing.items[0]
    assert item.manifest_urls[0].startswith("https://fastly.example/")
    assert item.repository_md5 == "9d406eaeb2d0421c9b61aff9a1aaf0db"
    assert listing.is_truncated


def test_manifests_builds_list_accepts_digit_strings_for_numbers() -> None:
    doc = {
        **BUILDS_1A,
        "total_count": "3",
        "items": [{**i, "generation": str(i["generation"])} for i in BUILDS_1A["items"]],
    }
    builds = parse_builds_list(doc, "list")
    assert [b.generation for b in builds.items] == [2, 1] and builds.total_count == 3


@pytest.mark.parametrize("value", ["1e3", "-2", "\u0663", " 2", "9" * 5000, True])
def test_manifests_builds_list_refuses_numbers_that_are_not_plain_digits(value: object) -> None:
    with pytest.raises(ManifestError, match="total_count"):
        parse_builds_list({"items": [], "total_count": value}, "list")
    builds = parse_builds_list({"items": [{**V2_ITEM, "generation": value}]}, "list")
    assert builds.items == () and "generation" in builds.skipped[0].reason


def test_manifests_urls_entry_without_url_is_built_from_its_template() -> None:
    templated = {
        "endpoint_name": "fastly",
        "url_format": "{base_url}/token={token}{path}",
        "parameters": {
            "base_url": "https://fastly.example",
            "token": "T",
            "path": "/content-system/v2/meta/9d/40/9d406eaeb2d0421c9b61aff9a1aaf0db",
        },
        "priority": 10,
    }
    unusable = [
        {**templated, "parameters": {"token": "T"}},  # placeholders left unfilled
        {**templated, "url_format": "{path}"},  # not an absolute URL
        {"endpoint_name": "x", "priority": 20},
        "not an object",
    ]
    item = {**URLS_ITEM, "urls": [*unusable, templated]}
    listing = parse_builds_list({"items": [item]}, "list").items[0]
    assert listing.manifest_urls == (
        "https://fastly.example/token=T/content-system/v2/meta/9d/40/"
        "9d406eaeb2d0421c9b61aff9a1aaf0db",
    )
    assert listing.repository_md5 == "9d406eaeb2d0421c9b61aff9a1aaf0db"


def test_manifests_collector_links_give_the_hash() -> None:
    item = {
        **BUILDS_1A["items"][0],
        "link": "https://downloadable-manifests-collector.gog.com/"
        "manifests/builds/9d/40/9d406eaeb2d0421c9b61aff9a1aaf0db",
    }
    listing = parse_builds_list({"items": [item]}, "list").items[0]
    assert listing.repository_md5 == "9d406eaeb2d0421c9b61aff9a1aaf0db"


V2_ITEM, V1_ITEM = BUILDS_1A["items"]
KEPT = {**V2_ITEM, "build_id": "1"}


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({**V2_ITEM, "build_id": "../../x"}, None),
        ({**V2_ITEM, "generation": 3}, "48906206523382029"),
        ({k: v for k, v in V2_ITEM.items() if k != "link"}, "48906206523382029"),
        ({**V2_ITEM, "link": ""}, "48906206523382029"),
        ({k: v for k, v in V1_ITEM.items() if k not in ("link", "legacy_build_id")}, "3161"),
        ({**V1_ITEM, "legacy_build_id": None, "link": "https://c/x/repository.json"}, "3161"),
        ("not an object", None),
    ],
)
def test_manifests_builds_list_skips_bad_items_and_keeps_the_others(
    item: object, named: str | None
) -> None:
    builds = parse_builds_list({"items": [item, KEPT]}, "list", cdn="https://cdn.example")
    assert [b.build_id for b in builds.items] == ["1"]
    [skipped] = builds.skipped
    assert skipped.build_id == named and skipped.reason.startswith("list items[0]")
    assert builds.is_truncated  # proves nothing about the skipped build


def test_manifests_v1_legacy_id_and_link_are_derived_from_each_other() -> None:
    no_legacy = {k: v for k, v in V1_ITEM.items() if k != "legacy_build_id"}
    no_link = {k: v for k, v in V1_ITEM.items() if k != "link"}
    cdn = "https://cdn.example/"
    derived = parse_builds_list({"items": [no_legacy, no_link]}, "list", cdn=cdn).items
    assert [b.legacy_build_id for b in derived] == [37794096, 37794096]
    assert derived[1].manifest_urls == (
        "https://cdn.example/content-system/v1/manifests/1207658930/windows/37794096/"
        "repository.json",
    )
    # A link of another product (or OS) names no legacy id of this build; no CDN, no link.
    other = {**no_legacy, "link": V1_ITEM["link"].replace("1207658930", "1")}
    builds = parse_builds_list({"items": [other, no_link]}, "list")
    assert builds.items == () and len(builds.skipped) == 2


@pytest.mark.parametrize("body", [b"", b"  \n", b"[]", b"{}", b'{"total_count": 0}'])
def test_manifests_empty_builds_list_answers_list_no_builds(body: bytes) -> None:
    builds = decode_builds_list(body, "list")
    assert builds.items == () and builds.total_count == 0 and not builds.is_truncated


def test_manifests_parse_old_repository_without_compressed_sizes() -> None:
    repo = parse_repository_v2(REPOSITORY_2A, "repo")
    assert repo.build_id is None
    assert [d.compressed_size for d in repo.depots] == [0, 0]
    assert repo.offline_depot is not None and repo.offline_depot.is_offline
    assert repo.dependencies[0] == "MSVC2010"


@pytest.mark.parametrize(
    "broken",
    [
        {**REPOSITORY_2A, "depots": "nope"},
        {**REPOSITORY_2A, "depots": [{**REPOSITORY_2A["depots"][0], "size": "12"}]},
        {**REPOSITORY_2A, "depots": [{**REPOSITORY_2A["depots"][0], "manifest": 12}]},
        {**REPOSITORY_2A, "baseProductId": None},
        {**REPOSITORY_2A, "baseProductId": "../1"},
        [],
    ],
)
def test_manifests_repository_wrong_types_name_the_object(broken: object) -> None:
    with pytest.raises(ManifestError, match="repository 1234"):
        parse_repository_v2(broken, "repository 1234")


@pytest.mark.parametrize(
    ("field", "value"),
    [("manifest", "../../etc"), ("manifest", "a" * 31), ("productId", "12/../3")],
)
def test_manifests_repository_skips_a_depot_with_an_unsafe_reference(
    field: str, value: str
) -> None:
    good, other = REPOSITORY_2A["depots"][:2]
    doc = {**REPOSITORY_2A, "depots": [good, {**other, field: value}]}
    repo = parse_repository_v2(doc, "repository 1234")
    assert [d.manifest for d in repo.depots] == [good["manifest"].lower()]
    (skipped,) = repo.skipped
    assert skipped.startswith(f"repository 1234 depots[1] {field}: {value!r}")
    assert skipped.endswith("entry skipped")


def test_manifests_repository_skips_an_unsafe_offline_depot_and_product() -> None:
    offline = {**REPOSITORY_2A["offlineDepot"], "manifest": "nope"}
    products = [{"productId": "1"}, {"productId": "x1"}]
    repo = parse_repository_v2(
        {**REPOSITORY_2A, "offlineDepot": offline, "products": products}, "repo"
    )
    assert repo.offline_depot is None and repo.product_ids == ("1",)
    assert len(repo.skipped) == 2 and len(repo.depots) == len(REPOSITORY_2A["depots"])


def test_manifests_depot_chunks_and_sfc_members() -> None:
    depot = parse_depot_manifest(DEPOT, "depot")
    required = {c.compressed_md5 for c in depot.chunks()}
    assert required == {CHUNK["compressedMd5"], "b" * 32}
    assert [c.compressed_md5 for c in depot.sfc_member_chunks()] == ["a" * 32]
    assert str(depot.files[0].path) == "CookedPC/pack0.dzip"
    assert depot.files[2].sfc_ref == (0, 178)


@pytest.mark.parametrize(
    ("sfc_ref", "has_container"),
    [((900, 200), True), ((0, 178), False)],  # past the container's 1024 bytes; no container
)
def test_manifests_sfc_member_not_covered_by_the_container_keeps_its_chunks_required(
    sfc_ref: tuple[int, int], has_container: bool
) -> None:
    doc = json.loads(json.dumps(DEPOT))
    doc["depot"]["items"][4]["sfcRef"] = {"offset": sfc_ref[0], "size": sfc_ref[1]}
    if not has_container:
        del doc["depot"]["smallFilesContainer"]
    depot = parse_depot_manifest(doc, "depot")
    assert "a" * 32 in {c.compressed_md5 for c in depot.chunks()}
    assert depot.sfc_member_chunks() == ()


@pytest.mark.parametrize(
    "item",
    [
        {"type": "DepotFile", "path": "ok", "chunks": [{**CHUNK, "size": -1}]},
        {"type": "DepotFile", "path": "ok", "chunks": "many"},
        {"type": "DepotFile", "path": 5, "chunks": []},
        {"type": "DepotLink", "path": "ok", "target": 5},
        {"type": "Mystery", "path": "x"},
    ],
)
def test_manifests_depot_rejects_items_of_the_wrong_shape(item: dict) -> None:
    with pytest.raises(ManifestError, match="depot 42"):
        parse_depot_manifest({"depot": {"items": [item]}}, "depot 42")


_DIFF = {
    "type": "DepotDiff",
    "path_source": "a",
    "path_target": "a",
    "md5_source": "1" * 32,
    "md5_target": "x",
    "chunks": [],
}


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ({"type": "DepotFile", "path": "..\\..\\evil", "chunks": []}, "..\\..\\evil"),
        ({"type": "DepotFile", "path": "/etc/passwd", "chunks": []}, "/etc/passwd"),
        ({"type": "DepotFile", "path": "a\x00b", "chunks": []}, "a\x00b"),
        (
            {"type": "DepotFile", "path": "ok", "chunks": [{**CHUNK, "compressedMd5": "zz" * 16}]},
            "zz" * 16,
        ),
        (_DIFF, "x"),
        ({"type": "DepotLink", "path": "../up", "target": "x"}, "../up"),
        ({"type": "DepotLink", "path": "bin/up", "target": "../../etc"}, "../../etc"),
        ({"type": "DepotLink", "path": "up", "target": "/etc"}, "/etc"),
        ({"type": "DepotDirectory", "path": "C:\\Windows"}, "C:\\Windows"),
    ],
)
def test_manifests_depot_skips_an_unsafe_item_and_names_it(item: dict, value: str) -> None:
    good = {"type": "DepotFile", "path": "good", "chunks": [CHUNK]}
    depot = parse_depot_manifest({"depot": {"items": [good, item]}}, "depot 42")
    assert [str(f.path) for f in depot.files] == ["good"] and depot.diffs == ()
    (skipped,) = depot.skipped
    assert skipped.startswith("depot 42 items[1]") and repr(value) in skipped
    assert "\x00" not in skipped and skipped.endswith("entry skipped")


def test_manifests_depot_link_inside_the_install_directory_is_kept() -> None:
    items = [{"type": "DepotLink", "path": "bin/lib/x.so", "target": "../../share/x.so"}]
    assert parse_depot_manifest({"depot": {"items": items}}, "depot").skipped == ()


def test_manifests_depot_unsafe_sfc_chunk_drops_the_container_not_its_members() -> None:
    doc = json.loads(json.dumps(DEPOT))
    doc["depot"]["smallFilesContainer"]["chunks"][0]["md5"] = "not-a-hash"
    depot = parse_depot_manifest(doc, "depot")
    assert depot.sfc_chunks == () and depot.sfc_member_chunks() == ()
    assert "a" * 32 in {c.compressed_md5 for c in depot.chunks()}  # the member's own chunk
    (skipped,) = depot.skipped
    assert "smallFilesContainer" in skipped and "container is skipped" in skipped


def test_manifests_decode_meta_zlib_and_plain_json() -> None:
    doc = {"a": 1}
    assert decode_meta(zlib.compress(json.dumps(doc).encode()), "m") == doc
    assert decode_meta(json.dumps(doc).encode(), "m") == doc
    with pytest.raises(ManifestError, match="meta x: neither zlib nor JSON"):
        decode_meta(b"\x00\x01garbage", "meta x")
    with pytest.raises(ManifestError, match=r"invalid zlib|truncated"):
        decode_meta(zlib.compress(b'{"a": 1}')[:-3] + b"\xff\xff\xff", "meta x")
    with pytest.raises(ManifestError, match="trailing"):
        decode_meta(zlib.compress(b"{}") + b"junk", "meta x")


def test_manifests_inflate_refuses_bombs() -> None:
    bomb = zlib.compress(b"\0" * 10_000_000)
    with pytest.raises(ManifestError, match="more than"):
        inflate(bomb, "bomb", limit=1_000_000)


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=9))
def test_manifests_inflate_round_trips(data: bytes, level: int) -> None:
    assert inflate(zlib.compress(data, level), "x") == data
