from urllib.parse import urlsplit

import pytest

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.links import parse_link

# gog-samples.md 6a (gog-warp test) and 6b (gcore template, PLAYDEN / issue #5782)
FASTLY = {
    "endpoint_name": "fastly",
    "url_format": "{base_url}/token=nva={expires_at}~dirs={dirs}~token={token}{path}",
    "parameters": {
        "path": "/content-system/v2/store/2034949552",
        "dirs": "4",
        "token": "TOK",
        "base_url": "https://gog-cdn-fastly.gog.com",
        "expires_at": "1717011195",
    },
    "priority": 998,
    "max_fails": 100,
    "supports_generation": [1, 2],
    "fallback_only": False,
}
GCORE = {
    "endpoint_name": "gcore",
    "url_format": "{base_url}/{path}?wsSecret={token}&wsTime={time}&prefix={prefix}",
    "parameters": {
        "base_url": "https://gog-cdn.gcdn.co",
        "path": "content-system/v2/store/1432813160",
        "token": "SEC",
        "time": "6a6a5075",
        "prefix": "/content-system/v2/store/1432813160/",
    },
    "priority": 1,
    "supports_generation": [2],
    "fallback_only": True,
}
NOW = 1717000000.0


def test_links_fastly_url_matches_gog_warp_expectation() -> None:
    link = parse_link({"product_id": 1, "urls": [FASTLY]}, "l", generation=2, now=NOW)
    url = link.endpoints[0].build_url("f1/d4/f1d41c76eb9639d2f8c1d3fd2057d7f1")
    assert url == (
        "https://gog-cdn-fastly.gog.com/token=nva=1717011195~dirs=4~token=TOK"
        "/content-system/v2/store/2034949552/f1/d4/f1d41c76eb9639d2f8c1d3fd2057d7f1"
    )
    assert link.expires_at == 1717011195


def test_links_gcore_url_and_hex_expiry() -> None:
    link = parse_link({"urls": [GCORE]}, "l", generation=2, now=NOW)
    url = link.endpoints[0].build_url("de/fe/defe1a4f40e63e0c7ec37bf14fbaf937")
    assert url == (
        "https://gog-cdn.gcdn.co/content-system/v2/store/1432813160/de/fe/"
        "defe1a4f40e63e0c7ec37bf14fbaf937?wsSecret=SEC&wsTime=6a6a5075"
        "&prefix=/content-system/v2/store/1432813160/"
    )
    assert link.endpoints[0].expires_at() == 0x6A6A5075


@pytest.mark.parametrize("endpoint", [FASTLY, GCORE])
def test_links_either_form_of_path_gives_the_same_url(endpoint: dict[str, object]) -> None:
    params = dict(endpoint["parameters"])  # type: ignore[call-overload]
    path = str(params["path"])
    flipped = path.lstrip("/") if path.startswith("/") else f"/{path}"
    urls = [
        parse_link({"urls": [{**endpoint, "parameters": {**params, "path": p}}]}, "l",
                   generation=2, now=NOW).endpoints[0].build_url("ab/cd/" + "e" * 32)
        for p in (path, flipped, f"{path}/")
    ]  # fmt: skip
    assert len(set(urls)) == 1 and "//content" not in urls[0] and "TOKcontent" not in urls[0]


def test_links_gcore_time_in_decimal_is_read_as_decimal() -> None:
    params = {**GCORE["parameters"], "time": "1717011195"}  # type: ignore[dict-item]
    decimal = {**GCORE, "parameters": params}
    link = parse_link({"urls": [decimal]}, "l", generation=2, now=NOW)
    assert link.expires_at == 1717011195


def test_links_order_fallbacks_last_then_priority_descending() -> None:
    low = {**FASTLY, "endpoint_name": "low", "priority": 5}
    link = parse_link({"urls": [GCORE, low, FASTLY]}, "l", generation=2, now=NOW)
    assert [e.name for e in link.endpoints] == ["fastly", "low", "gcore"]
    gen1 = parse_link({"urls": [GCORE, FASTLY]}, "l", generation=1, now=NOW)
    assert [e.name for e in gen1.endpoints] == ["fastly"]


def test_links_open_link_and_parameterless_endpoints_append_the_suffix() -> None:
    doc = {
        "urls": [
            {
                "endpoint_name": "fastly",
                "url": "https://cdn.example/content-system/v2/dependencies/store",
            }
        ]
    }
    link = parse_link(doc, "open", generation=2, now=NOW)
    assert link.endpoints[0].build_url("2c/5f/x") == (
        "https://cdn.example/content-system/v2/dependencies/store/2c/5f/x"
    )
    assert link.expires_at == NOW + 3600


def test_links_supported_generations_may_be_digit_strings() -> None:
    fastly = {**FASTLY, "supports_generation": ["1", "2"]}
    gcore = {**GCORE, "supports_generation": ["2", "x", None, True]}
    gen1 = parse_link({"urls": [fastly, gcore]}, "l", generation=1, now=NOW)
    assert [e.name for e in gen1.endpoints] == ["fastly"]
    gen2 = parse_link({"urls": [fastly, gcore]}, "l", generation=2, now=NOW)
    assert [e.name for e in gen2.endpoints] == ["fastly", "gcore"]


def test_links_historical_single_url_answer() -> None:
    doc = {"product_id": 1, "type": "x", "url": {"url": "https://cdn.example/secure/p"}}
    link = parse_link(doc, "old", generation=2, now=NOW)
    assert link.endpoints[0].build_url("main.bin") == "https://cdn.example/secure/p/main.bin"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ({"url": "https://cdn.example/p?token=abc"}, "https://cdn.example/p/ab/cd/x?token=abc"),
        ({"url": "https://cdn.example/p/?a=1&b=2"}, "https://cdn.example/p/ab/cd/x?a=1&b=2"),
        (
            {"url_format": "https://cdn.example/p?token=abc"},
            "https://cdn.example/p/ab/cd/x?token=abc",
        ),
        ({"url": "https://cdn.example/p"}, "https://cdn.example/p/ab/cd/x"),
    ],
)
def test_links_parameterless_endpoint_puts_the_path_before_the_query(
    endpoint: dict[str, str], expected: str
) -> None:
    """WARP: url_format (or url) is a base and "/" + path is appended (protocol.md 5.3)."""
    link = parse_link({"urls": [{"endpoint_name": "e", **endpoint}]}, "l", generation=2, now=NOW)
    assert link.endpoints[0].build_url("ab/cd/x") == expected


@pytest.mark.parametrize(
    "url",
    [
        # the fake Galaxy's historical answer: a fastly-style token in the path
        {
            "url": "https://fastly.example/token=nva=1~dirs=4~token=TOK/content-system/v1/depots/1",
            "base_url": "https://fastly.example",
            "path": "/content-system/v1/depots/1",
            "token": "TOK",
        },
        # a token in the query string
        {"url": "https://cdn.example/content-system/v1/depots/1?token=TOK"},
    ],
)
def test_links_historical_answer_builds_urls_that_carry_the_token(url: dict[str, str]) -> None:
    link = parse_link({"product_id": 1, "type": "depot", "url": url}, "old", generation=1, now=NOW)
    built = link.endpoints[0].build_url("main.bin")
    assert "TOK" in built and urlsplit(built).path.endswith("/content-system/v1/depots/1/main.bin")


def test_links_historical_answer_without_url_is_refused_when_it_has_a_token() -> None:
    """Where its token goes in a URL is unknown: a URL without it would only be refused."""
    parts = {"base_url": "https://cdn.example", "path": "/content-system/v1/depots/1"}
    with pytest.raises(ManifestError, match="token"):
        parse_link({"url": {**parts, "token": "TOK"}}, "old", generation=1, now=NOW)
    unsigned = parse_link({"url": parts}, "old", generation=1, now=NOW)
    assert unsigned.endpoints[0].build_url("main.bin") == (
        "https://cdn.example/content-system/v1/depots/1/main.bin"
    )


def test_links_short_lived_links_renew_halfway() -> None:
    fast = {**FASTLY, "parameters": {**FASTLY["parameters"], "expires_at": str(int(NOW) + 4)}}
    link = parse_link({"urls": [fast]}, "l", generation=2, now=NOW)
    assert link.renew_at() == NOW + 2


@pytest.mark.parametrize(
    "doc",
    [[], {"urls": "x"}, {"urls": [{"endpoint_name": "x"}]}, {"urls": [{**GCORE}]}, {"url": {}}],
)
def test_links_reject_unusable_answers(doc: object) -> None:
    with pytest.raises(ManifestError):
        parse_link(doc, "link", generation=1 if isinstance(doc, dict) else 2, now=NOW)
