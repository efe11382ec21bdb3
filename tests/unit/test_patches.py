"""Pure patch planning and parsing (protocol.md §7)."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.patches import (
    BuildPoint,
    PatchOutcome,
    PatchPair,
    PatchRoot,
    is_due,
    parse_patch_index,
    plan_pairs,
    read_patch_root,
    root_mismatch,
    select_patch_depots,
)

PID = "1207658930"
DLC = "1207658931"
ROOT_ID = "67cf3e9356b831e8738b482ed3a8dabf"
LINK = f"https://cdn.gog.com/content-system/v2/patches/meta/67/cf/{ROOT_ID}"
PAIR = PatchPair(PID, "windows", None, "49999910531550131", "56452082907692588")


def _build(
    build_id: str, date: str, os_name: str = "windows", branch: str | None = None
) -> BuildPoint:
    return BuildPoint(build_id, os_name, branch, date)


def test_patches_plan_pairs_by_os_and_branch_ordered_by_date_then_id() -> None:
    builds = [
        _build("300", "2020-03-01T00:00:00+0000"),
        _build("100", "2020-01-01T00:00:00+0000"),
        _build("90", "2020-02-01T00:00:00+0000"),
        _build("95", "2020-02-01T00:00:00+0000"),  # same date: 90 before 95 (numeric, not text)
        _build("200", "2020-01-15T00:00:00+0000", branch="beta"),
        _build("210", "2020-01-16T00:00:00+0000", branch="beta"),
        _build("400", "2020-01-01T00:00:00+0000", os_name="osx"),
    ]
    pairs = [(p.os, p.branch, p.from_build_id, p.to_build_id) for p in plan_pairs(PID, builds)]
    assert pairs == [
        ("windows", None, "100", "90"),
        ("windows", None, "90", "95"),
        ("windows", None, "95", "300"),
        ("windows", "beta", "200", "210"),
    ]


def test_patches_plan_pairs_places_an_undated_build_by_its_id() -> None:
    """A build added by manifest id has no date: it goes after the last build with a lower id."""
    builds = [
        _build("100", "2020-01-01T00:00:00+0000"),
        _build("300", "2020-03-01T00:00:00+0000"),
        _build("200", ""),
        _build("50", ""),
    ]
    pairs = [(p.from_build_id, p.to_build_id) for p in plan_pairs(PID, builds)]
    assert pairs == [("50", "100"), ("100", "200"), ("200", "300")]


_BUILDS = st.lists(
    st.builds(
        BuildPoint,
        build_id=st.integers(1, 10**17).map(str),
        os=st.sampled_from(["windows", "osx"]),
        branch=st.sampled_from([None, "beta"]),
        date_published=st.sampled_from(["2020-01-01", "2020-01-02", "2020-01-03"]),
    ),
    unique_by=lambda b: b.build_id,
)


@given(_BUILDS)
def test_patches_plan_pairs_chains_each_group(points: list[BuildPoint]) -> None:
    pairs = plan_pairs(PID, points)
    groups = {(p.os, p.branch) for p in points}
    assert len(pairs) == len(points) - len(groups)
    by_id = {p.build_id: p for p in points}
    targets = [p.to_build_id for p in pairs]
    assert len(targets) == len(set(targets))  # every build follows at most one other
    for pair in pairs:
        old, new = by_id[pair.from_build_id], by_id[pair.to_build_id]
        assert (old.os, old.branch) == (new.os, new.branch) == (pair.os, pair.branch)
        assert (old.date_published, int(old.build_id)) < (new.date_published, int(new.build_id))


def test_patches_is_due() -> None:
    week = 7 * 86400.0
    assert is_due(None, None, 0, week)
    assert is_due(PatchOutcome.ERROR, 100, 101, week)  # errors: every run
    assert not is_due(PatchOutcome.PATCH, 0, 10 * week, week)  # a patch: never again
    for outcome in (
        PatchOutcome.NO_PATCH,
        PatchOutcome.EMPTY,
        PatchOutcome.UNSUPPORTED,
        PatchOutcome.INVALID,
    ):
        assert not is_due(outcome, 1000, 1000 + week - 1, week)
        assert is_due(outcome, 1000, 1000 + week, week)


def _answer(status: int, doc: object) -> tuple[int, bytes]:
    return status, json.dumps(doc).encode()


@pytest.mark.parametrize(
    "doc",
    [
        {
            "id": ROOT_ID,
            "from_build_id": PAIR.from_build_id,
            "to_build_id": PAIR.to_build_id,
            "link": LINK,
        },
        {
            "id": ROOT_ID,
            "from": PAIR.from_build_id,
            "to": PAIR.to_build_id,
            "link": LINK,
        },  # GALAXYDL
        {"link": LINK},  # id from the link
        {"id": 73102, "link": LINK},  # an id of another form: the link names the manifest
        {"id": "0" * 32, "link": LINK},  # an id other than the link's: the link is fetched
        {"id": ROOT_ID.upper()},  # no link: the configured CDN is asked
    ],
)
def test_patches_index_answer_with_a_patch(doc: dict[str, str]) -> None:
    answer = parse_patch_index(*_answer(200, doc), PAIR)
    assert answer.outcome is PatchOutcome.PATCH and answer.error is None
    assert answer.patch_id == ROOT_ID and answer.link == doc.get("link")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b'{"error": "not_found", "error_description": ""}'),
        (400, b'{"error": "not_found"}'),
        (200, b'{"error": "not_found"}'),  # HGD looks at the body, not the status
        (404, b""),
        (404, b"<html>Not Found</html>"),
    ],
)
def test_patches_index_not_found(status: int, body: bytes) -> None:
    answer = parse_patch_index(status, body, PAIR)
    assert answer.outcome is PatchOutcome.NO_PATCH and answer.patch_id is None


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'{"error": "invalid_request"}', "HTTP 400 (invalid_request)"),
        (503, b"", "HTTP 503"),
        (200, b"{not json", "not valid JSON"),
        (200, b"[1, 2]", "expected a JSON object"),
        (200, b"", "expected a JSON object"),
        (200, b'{"error": "server_error"}', "error 'server_error' with HTTP 200"),
        (200, b'{"id": "../../etc/passwd"}', "is not a 32-hex MD5"),
        (200, json.dumps({"link": "file:///etc/passwd"}).encode(), "is not an http(s) URL"),
        (
            200,
            json.dumps({"link": "https://cdn/x/y"}).encode(),
            "ends in 'y', not in a manifest id",
        ),
        (200, json.dumps({"id": ROOT_ID, "from_build_id": "1"}).encode(), "from_build_id is 1"),
        (200, json.dumps({"id": ROOT_ID, "to": "../1"}).encode(), "is not a numeric id"),
        (200, b"{}", "neither 'id' nor 'link'"),
    ],
)
def test_patches_index_errors_name_the_pair(status: int, body: bytes, message: str) -> None:
    answer = parse_patch_index(status, body, PAIR)
    assert answer.outcome is PatchOutcome.ERROR and answer.patch_id is None
    assert answer.error is not None and message in answer.error
    assert f"patch {PID} {PAIR.from_build_id}->{PAIR.to_build_id}" in answer.error


def _root(**extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "algorithm": "xdelta3",
        "baseProductId": PID,
        "buildId_source": PAIR.from_build_id,
        "buildId_target": PAIR.to_build_id,
        "clientId": "1",
        "clientSecret": "s",
        "products": [{"name": "Game", "productId": PID}, {"name": "DLC", "productId": DLC}],
        "depots": [
            {
                "productId": PID,
                "languages": ["*"],
                "manifest": "a" * 32,
                "size": 5,
                "compressedSize": 3,
            },
            {"productId": DLC, "languages": ["en-US"], "manifest": "b" * 32, "size": 5},
            {"productId": PID, "languages": ["de-DE"], "manifest": "a" * 32},
            {"productId": "1423049311", "languages": ["*"], "manifest": "c" * 32},
        ],
    }
    doc.update(extra)
    return doc


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n",
        zlib.compress(b""),
        zlib.compress(b"{}"),
        b"{}",
        zlib.compress(b" {} "),
        b"[]",
        zlib.compress(b"null"),
    ],
)
def test_patches_root_empty_forms(body: bytes) -> None:
    root = read_patch_root(body, "root x")
    assert root.is_empty and not root.is_supported and root.depots == ()


def test_patches_root_parses_zlib_and_plain_json() -> None:
    for body in (zlib.compress(json.dumps(_root()).encode()), json.dumps(_root()).encode()):
        root = read_patch_root(body, "root x")
        assert root.is_supported and not root.is_empty
        assert root.product_ids == (PID, DLC) and len(root.depots) == 4
        assert root.depots[0].compressed_size == 3 and root.depots[1].compressed_size == 0
        assert root_mismatch(root, PAIR) is None


def test_patches_root_other_algorithm_is_unsupported() -> None:
    root = read_patch_root(json.dumps(_root(algorithm="bsdiff")).encode(), "root x")
    assert not root.is_supported and not root.is_empty and root.algorithm == "bsdiff"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00\x01garbage", "root x: neither zlib nor JSON"),
        (zlib.compress(b"{}")[:-4], "truncated"),
        (b"[1]", "expected a JSON object"),
        (json.dumps({"depots": []}).encode(), "field 'algorithm' is missing"),
        (json.dumps(_root(depots=None)).encode(), "field 'depots' is missing"),
        (json.dumps(_root(algorithm=7)).encode(), "field 'algorithm' should be str"),
        (json.dumps(_root(buildId_target="x")).encode(), "buildId_target"),
    ],
)
def test_patches_root_invalid(body: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match="root x") as info:
        read_patch_root(body, "root x")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("depot", "message"),
    [
        (
            {"productId": PID, "manifest": "../x"},
            "root x depots[1] manifest: '../x' is not a 32-hex",
        ),
        ({"productId": "../1", "manifest": "a" * 32}, "'../1' is not a numeric id"),
    ],
)
def test_patches_root_skips_an_unsafe_depot_and_names_it(depot: dict, message: str) -> None:
    good = {"productId": PID, "manifest": "b" * 32}
    root = read_patch_root(json.dumps(_root(depots=[good, depot])).encode(), "root x")
    assert [d.manifest for d in root.depots] == ["b" * 32]
    (skipped,) = root.skipped
    assert message in skipped and skipped.endswith("entry skipped")


def test_patches_root_mismatch_names_the_field() -> None:
    root = read_patch_root(json.dumps(_root(buildId_source="1")).encode(), "root x")
    assert root_mismatch(root, PAIR) == f"its buildId_source is 1, not {PAIR.from_build_id}"
    lenient = PatchRoot(algorithm="xdelta3")  # ids missing: tolerated
    assert root_mismatch(lenient, PAIR) is None


def test_patches_select_depots_base_and_listed_dlc_once_each() -> None:
    root = read_patch_root(json.dumps(_root()).encode(), "root x")
    base_only = select_patch_depots(root, PID, None)
    assert [d.manifest for d in base_only] == ["a" * 32]
    with_dlc = select_patch_depots(root, PID, (PID, DLC))
    assert [(d.product_id, d.manifest) for d in with_dlc] == [(PID, "a" * 32), (DLC, "b" * 32)]
