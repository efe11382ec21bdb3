"""Where V1 objects are fetched from: manifest URLs (protocol.md 6.2) and blob link suffixes
(6.3, with the secure-link variants of 5.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from galaxy_archive.config import AuthSection, Endpoints
from galaxy_archive.fetch.sources import sources_for, v1_manifest_sources
from galaxy_archive.fetch.tasks import Plain, Signed
from galaxy_archive.fetch.v1_blob_job import blob_suffix
from galaxy_archive.models.layout import ObjectKind, split_v1_path, v1_blob_path, v1_manifest_path
from galaxy_archive.models.links import Endpoint, parse_link
from galaxy_archive.upstream.auth import Authenticator, TokenStore
from galaxy_archive.upstream.galaxy_api import GalaxyApi, LinkRequest
from galaxy_archive.upstream.http_client import HttpClient

ROOT = "1207658930"
DLC = "1207658931"
CDN = "https://cdn.example"
GOG_HOST = "https://gog-cdn-fastly.example"
GOG_LINK = f"{GOG_HOST}/content-system/v1/manifests/{ROOT}/windows/37794096/repository.json"


@pytest.fixture
def api(tmp_path: Path) -> GalaxyApi:
    http = HttpClient(requests.Session(), timeout_s=1)
    auth = Authenticator(
        http,
        auth_url="https://auth.example",
        client=AuthSection(),
        store=TokenStore(tmp_path / "t"),
    )
    return GalaxyApi(http, Endpoints(cdn=CDN), auth)


def urls(sources: tuple[object, ...]) -> list[str]:
    assert all(isinstance(s, Plain) for s in sources)
    return [s.url for s in sources if isinstance(s, Plain)]


def test_v1_repository_is_fetched_where_gog_linked_it_then_on_the_cdn(api: GalaxyApi) -> None:
    found = urls(
        v1_manifest_sources(
            api, ROOT, "windows", 37794096, "repository.json", repository_urls=[GOG_LINK]
        )
    )
    assert found == [
        GOG_LINK,
        f"{CDN}/content-system/v1/manifests/{ROOT}/windows/37794096/repository.json",
    ]


def test_v1_dlc_depot_manifest_is_tried_beside_repository_then_under_game_id(
    api: GalaxyApi,
) -> None:
    found = urls(
        v1_manifest_sources(
            api,
            ROOT,
            "windows",
            37794096,
            "u.json",
            depot_product_id=DLC,
            repository_urls=[GOG_LINK],
        )
    )
    base = "content-system/v1/manifests"
    assert found == [
        f"{GOG_HOST}/{base}/{ROOT}/windows/37794096/u.json",
        f"{CDN}/{base}/{ROOT}/windows/37794096/u.json",
        f"{GOG_HOST}/{base}/{DLC}/windows/37794096/u.json",
        f"{CDN}/{base}/{DLC}/windows/37794096/u.json",
    ]


def test_sources_for_v1_objects_uses_their_archive_path(api: GalaxyApi) -> None:
    manifest = v1_manifest_path(ROOT, "osx", 5, "u.json")
    found = urls(sources_for(api, ObjectKind.V1_MANIFEST, "", DLC, manifest))
    assert found[-1] == f"{CDN}/content-system/v1/manifests/{DLC}/osx/5/u.json"
    (blob,) = sources_for(api, ObjectKind.V1_BLOB, "", DLC, v1_blob_path(DLC, "osx", 5, "main.bin"))
    assert blob == Signed(LinkRequest(DLC, 1, "/osx/5/", None, "depot"), "main.bin")
    assert sources_for(api, ObjectKind.V1_BLOB, "", DLC, None) == ()
    assert sources_for(api, ObjectKind.V1_BLOB, "", DLC, "v1/depots/../x") == ()


def test_split_v1_path_inverts_the_layout() -> None:
    where = split_v1_path(v1_blob_path(DLC, "windows", 37794096, "main.bin"))
    assert where is not None
    assert (where.top, where.product_id, where.os, where.legacy_build_id, where.name) == (
        "depots",
        DLC,
        "windows",
        37794096,
        "main.bin",
    )
    assert split_v1_path("v2/meta/ab/cd/abcd") is None
    assert split_v1_path("v1/depots/1/windows/2/../main.bin") is None


def link_endpoint(path: str, url_format: str = "{base_url}/token=t{path}") -> Endpoint:
    doc = {
        "urls": [
            {
                "endpoint_name": "fastly",
                "url_format": url_format,
                "parameters": {"base_url": "https://cdn", "path": path},
            }
        ]
    }
    return parse_link(doc, "link", generation=1, now=0).endpoints[0]


@pytest.mark.parametrize(
    ("path", "expected_url"),
    [
        # HGD / WARP / PLAYDEN: the link already names the build directory
        (
            f"/content-system/v1/depots/{ROOT}/windows/37794096",
            f"https://cdn/token=t/content-system/v1/depots/{ROOT}/windows/37794096/main.bin",
        ),
        (
            f"/content-system/v1/depots/{ROOT}/windows/37794096/",
            f"https://cdn/token=t/content-system/v1/depots/{ROOT}/windows/37794096/main.bin",
        ),
        # GROG: path=/ gives the product directory; the client appends os/legacy/main.bin
        (
            f"/content-system/v1/depots/{ROOT}",
            f"https://cdn/token=t/content-system/v1/depots/{ROOT}/windows/37794096/main.bin",
        ),
    ],
)
def test_blob_suffix_accepts_both_link_shapes(path: str, expected_url: str) -> None:
    endpoint = link_endpoint(path)
    suffix = blob_suffix(endpoint, "windows", 37794096, "main.bin")
    assert endpoint.build_url(suffix) == expected_url


def test_blob_suffix_on_a_gcore_style_endpoint() -> None:
    endpoint = link_endpoint(
        f"content-system/v1/depots/{ROOT}/osx/9", "{base_url}/{path}?wsSecret=s"
    )
    assert blob_suffix(endpoint, "osx", 9, "main.bin") == "main.bin"
