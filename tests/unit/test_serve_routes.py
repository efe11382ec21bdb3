"""serve.routes and serve.answers: which object a URL names, and the documents (pure)."""

from __future__ import annotations

import pytest

from galaxy_archive.serve import answers
from galaxy_archive.serve.routes import (
    ApiRoute,
    Heartbeat,
    NotFound,
    ObjectRoute,
    V1ManifestRoute,
    redact_path,
    route,
)
from galaxy_archive.state.serve_reads import RecordedBuild

H = "0123456789abcdef0123456789abcdef"
GH = f"01/23/{H}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/content-system/v2/meta/{GH}", ObjectRoute(f"v2/meta/{GH}")),
        (f"/manifests/builds/{GH}", ObjectRoute(f"v2/meta/{GH}")),
        (f"/content-system/v2/store/12/{GH}", ObjectRoute(f"v2/store/{GH}", "12")),
        (f"/content-system/v2/patches/store/12/{GH}", ObjectRoute(f"v2/patches/store/{GH}", "12")),
        (f"/content-system/v2/offline/{GH}", ObjectRoute(f"v2/offline/{GH}")),
        (f"/content-system/v2/offline/12/{GH}", ObjectRoute(f"v2/offline/{GH}", "12")),
        (f"/content-system/v2/dependencies/store/{GH}", ObjectRoute(f"v2/dependencies/store/{GH}")),
        (f"/content-system/v2/dependencies/meta/{GH}", ObjectRoute(f"v2/dependencies/meta/{GH}")),
        (f"/content-system/v2/patches/meta/{GH}", ObjectRoute(f"v2/patches/meta/{GH}")),
        (
            f"/token=nva=9~dirs=4~token=x/content-system/v2/store/12/{GH}",
            ObjectRoute(f"v2/store/{GH}", "12"),
        ),
        (
            "/content-system/v1/depots/12/windows/345/main.bin",
            ObjectRoute("v1/depots/12/windows/345/main.bin", "12"),
        ),
        (
            "/content-system/v1/manifests/12/osx/345/repository.json",
            V1ManifestRoute("12", "osx", "345", "repository.json"),
        ),
        ("/galaxy-archive/heartbeat", Heartbeat()),
        ("/token", ApiRoute("token")),
        ("/user/data/games", ApiRoute("owned")),
        ("/account", ApiRoute("account")),
        ("/products/12", ApiRoute("product", "12")),
        ("/products/12/os/windows/builds", ApiRoute("builds", "12", "windows")),
        ("/products/12/secure_link", ApiRoute("secure_link", "12")),
        ("/products/12/patches", ApiRoute("patches", "12")),
        ("/dependencies/repository", ApiRoute("deps")),
        ("/open_link", ApiRoute("open_link")),
    ],
)
def test_route_names_each_role_and_object(path: str, expected: object) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        f"/content-system/v2/meta/ff/23/{H}",  # fan-out is not the hash's prefix
        "/content-system/v2/meta/01/23/0123",  # not 32 hex
        f"/content-system/v2/meta/01/23/{H.upper()}",
        f"/content-system/v2/store/{GH}",  # a chunk needs its product
        "/content-system/v2/meta/../../../etc/passwd",
        "/content-system/v1/manifests/12/windows/345/../../x.json",
        "/content-system/v1/manifests/12/windows/345/a..json",
        "/content-system/v1/manifests/12/linux/345/repository.json",
        "/content-system/v1/manifests/12/windows/345/a\x00.json",
        "/etc/passwd",
        "",
        "/",
    ],
)
def test_route_refuses_anything_else(path: str) -> None:
    assert route(path) == NotFound()


def test_redact_path_cuts_the_fastly_token() -> None:
    assert redact_path(f"/token=nva=1~dirs=4~token=SECRET/content-system/v2/store/1/{GH}") == (
        f"/token=…/content-system/v2/store/1/{GH}"
    )
    assert redact_path("/products/1/secure_link") == "/products/1/secure_link"


def _build(
    build_id: str, generation: int, *, public: bool = True, listed: bool = True
) -> RecordedBuild:
    item = {"build_id": build_id, "product_id": "12", "os": "windows", "public": public,
            "generation": generation, "link": "https://cdn.gog.com/old"}  # fmt: skip
    return RecordedBuild(
        build_id, generation, None, 345 if generation == 1 else None,
        None if generation == 1 else f"v2/meta/{GH}", listed, item,
    )  # fmt: skip


def test_builds_list_filters_generation_private_and_delisted() -> None:
    builds = [_build("3", 2, public=False), _build("2", 2, listed=False), _build("1", 1)]

    def ids(**kw: bool) -> list[str]:
        options = {"generation": 2, "use_urls": False, "with_private": False,
                   "with_delisted": True} | kw  # fmt: skip
        doc = answers.builds_list("http://m", builds, **options)  # type: ignore[arg-type]
        return [item["build_id"] for item in doc["items"]]

    assert ids() == ["2", "1"]
    assert ids(with_private=True) == ["3", "2", "1"]
    assert ids(with_delisted=False) == ["1"]
    assert ids(generation=1) == ["1"]


def test_builds_list_links_point_back_at_the_server() -> None:
    doc = answers.builds_list(
        "http://m", [_build("2", 2), _build("1", 1)], generation=2, use_urls=False,
        with_private=False, with_delisted=True,
    )  # fmt: skip
    assert [i["link"] for i in doc["items"]] == [
        f"http://m/content-system/v2/meta/{GH}",
        "http://m/content-system/v1/manifests/12/windows/345/repository.json",
    ]
    with_urls = answers.builds_list(
        "http://m", [_build("2", 2)], generation=2, use_urls=True, with_private=False,
        with_delisted=True,
    )  # fmt: skip
    item = with_urls["items"][0]
    assert "link" not in item and item["urls"][0]["url"] == f"http://m/content-system/v2/meta/{GH}"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"_version": "2", "generation": "2", "path": "/"}, "/content-system/v2/store/12"),
        ({"type": "depot", "path": "/windows/345/"}, "/content-system/v1/depots/12/windows/345"),
        ({"generation": "1", "path": "/"}, "/content-system/v1/depots/12"),
        ({"root": "/patches/store", "path": "/"}, "/content-system/v2/patches/store/12"),
    ],
)
def test_secure_link_path_follows_the_request(query: dict[str, str], path: str) -> None:
    doc = answers.secure_link("http://m", "12", {**query, "_version": "2"}, now=1000)
    parameters = doc["urls"][0]["parameters"]
    assert parameters["path"] == path and parameters["base_url"] == "http://m"
    assert int(parameters["expires_at"]) == 1000 + answers.LINK_TTL_S
    assert parameters["dirs"] == str(len(path.strip("/").split("/")))
