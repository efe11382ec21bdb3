"""Pure dependency repository parsing and selection (protocol.md §8), and their sources."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy_archive.config import Endpoints
from galaxy_archive.errors import ManifestError
from galaxy_archive.fetch.sources import sources_for
from galaxy_archive.fetch.tasks import Plain, Signed
from galaxy_archive.models.dependencies import (
    DependencyMode,
    parse_dependency_manifest,
    parse_repository_answer,
    select_dependencies,
)
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.upstream.galaxy_api import GalaxyApi, LinkRequest

MANIFEST = "e4be1f61c9aeb73f0c1e1aa2ba9ab3c4"
URL = f"https://gog-cdn-fastly.gog.com/content-system/v2/dependencies/meta/e4/be/{MANIFEST}"


def test_dependencies_repository_answer() -> None:
    doc = {"repository_manifest": URL, "build_id": "59705672826648994", "generation": 2}
    answer = parse_repository_answer(doc, "dependencies repository")
    assert (answer.manifest_md5, answer.build_id, answer.generation) == (
        MANIFEST,
        "59705672826648994",
        2,
    )
    assert answer.manifest_url == URL
    no_generation = parse_repository_answer({"repository_manifest": URL, "build_id": 5}, "r")
    assert no_generation.build_id == "5" and no_generation.generation is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"build_id": "1"}, "field 'repository_manifest' is missing"),
        ({"repository_manifest": "ftp://x/" + MANIFEST, "build_id": "1"}, "not an http(s) URL"),
        ({"repository_manifest": "https://cdn/x/evil", "build_id": "1"}, "does not end in a"),
        ({"repository_manifest": URL, "build_id": "../1"}, "is not a numeric id"),
        ({"repository_manifest": URL}, "field 'build_id' is missing"),
        ([], "expected a JSON object"),
    ],
)
def test_dependencies_repository_answer_rejects(doc: Any, message: str) -> None:
    with pytest.raises(ManifestError, match="deps repo") as info:
        parse_repository_answer(doc, "deps repo")
    assert message in str(info.value)


def _entry(dependency_id: str, **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "dependencyId": dependency_id,
        "readableName": dependency_id,
        "executable": {"path": f"__redist/{dependency_id}/setup.exe", "arguments": "/silent"},
        "internal": False,
        "languages": ["*"],
        "manifest": "a" * 32,
        "size": 10,
        "compressedSize": 8,
        "signature": "sig",
    }
    entry.update(extra)
    return entry


def test_dependencies_manifest_parses_and_tolerates_missing_optional_fields() -> None:
    doc = {
        "depots": [
            _entry("DirectX"),
            {"dependencyId": "DOSBox074", "manifest": "B" * 32},
            _entry("ScummVM", executable={"path": "", "arguments": ""}, internal=True),
        ]
    }
    directx, dosbox, scummvm = parse_dependency_manifest(doc, "m").depots
    assert (directx.executable_path, directx.executable_arguments) == (
        "__redist/DirectX/setup.exe",
        "/silent",
    )
    assert directx.size == 10 and directx.compressed_size == 8 and directx.signature == "sig"
    assert dosbox.manifest == "b" * 32 and dosbox.readable_name == ""
    assert dosbox.executable_path == "" and dosbox.languages == () and dosbox.signature is None
    assert scummvm.is_internal and scummvm.item["dependencyId"] == "ScummVM"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("../evil"), "'../evil' is not a dependency id"),
        (_entry("a" * 80), "is not a dependency id"),
        (
            _entry("MSVC", manifest="../../x"),
            "m depots[0] (MSVC) manifest: '../../x' is not a 32-hex",
        ),
    ],
)
def test_dependencies_manifest_skips_an_unsafe_entry_and_names_it(entry: Any, message: str) -> None:
    manifest = parse_dependency_manifest({"depots": [_entry("DirectX"), entry]}, "m")
    assert [d.dependency_id for d in manifest.depots] == ["DirectX"]
    (skipped,) = manifest.skipped
    assert message.replace("depots[0]", "depots[1]") in skipped and "entry skipped" in skipped


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("MSVC", executable="setup.exe"), "field 'executable' should be dict"),
        (_entry("MSVC", executable={"path": 5}), "field 'path' should be str"),
        (_entry("MSVC", size=-1), "field 'size' is negative"),
        (_entry("MSVC", internal="yes"), "field 'internal' should be bool"),
        ({"manifest": "a" * 32}, "field 'dependencyId' is missing"),
        ({"dependencyId": 5, "manifest": "a" * 32}, "field 'dependencyId' should be str"),
    ],
)
def test_dependencies_manifest_rejects_an_entry_of_the_wrong_shape(
    entry: Any, message: str
) -> None:
    with pytest.raises(ManifestError, match="m depots") as info:
        parse_dependency_manifest({"depots": [_entry("DirectX"), entry]}, "m")
    assert message in str(info.value)


def test_dependencies_manifest_needs_depots() -> None:
    with pytest.raises(ManifestError, match="field 'depots' is missing"):
        parse_dependency_manifest({}, "m")


def test_dependencies_selection_by_mode() -> None:
    depots = parse_dependency_manifest(
        {"depots": [_entry(i) for i in ("DirectX", "MSVC2010", "MSVC2019", "ISI")]}, "m"
    ).depots
    referenced = select_dependencies(
        depots, DependencyMode.REFERENCED, ["DirectX", "Gone"], ["MSVC2010", "OLDREDIST"]
    )
    assert [d.dependency_id for d in referenced.depots] == ["DirectX", "MSVC2010"]
    assert referenced.unknown == ("Gone",)  # a V1 redist without a V2 twin is not reported
    everything = select_dependencies(depots, DependencyMode.ALL, ["Gone"])
    assert len(everything.depots) == 4 and everything.unknown == ("Gone",)
    assert select_dependencies(depots, DependencyMode.NONE, ["DirectX"]).depots == ()


def test_sources_for_patch_and_dependency_kinds() -> None:
    endpoints = Endpoints(cdn="https://cdn.example")
    api = GalaxyApi(http=None, endpoints=endpoints, auth=None)  # type: ignore[arg-type]
    h = "ab" * 16
    assert sources_for(api, ObjectKind.PATCH_META, h, "1") == (
        Plain(f"https://cdn.example/content-system/v2/patches/meta/ab/ab/{h}"),
    )
    assert sources_for(api, ObjectKind.PATCH_STORE, h, "7") == (
        Signed(LinkRequest("7", root="/patches/store"), f"ab/ab/{h}"),
    )
    assert sources_for(api, ObjectKind.PATCH_STORE, h, None) == ()
    assert sources_for(api, ObjectKind.DEP_META, h, None) == (
        Plain(f"https://cdn.example/content-system/v2/dependencies/meta/ab/ab/{h}"),
    )
    assert sources_for(api, ObjectKind.DEP_STORE, h, None) == (
        Signed(LinkRequest(None, path="/dependencies/store/"), f"ab/ab/{h}"),
        Plain(f"https://cdn.example/content-system/v2/dependencies/store/ab/ab/{h}"),  # GDLLIB
    )
