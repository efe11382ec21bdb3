import pytest
import requests

from galaxy_archive.errors import UpstreamError
from galaxy_archive.upstream.http_client import (
    HttpClient,
    RateLimiter,
    build_retry,
    redact_url,
    scrub,
)

SIGNED = (
    "https://gog-cdn-fastly.gog.com/token=nva=1717011195~dirs=4~token=SECRETTOKEN"
    "/content-system/v2/store/2034949552/f1/d4/f1d41c76eb9639d2f8c1d3fd2057d7f1"
)
GCORE = (
    "https://gog-cdn.gcdn.co/content-system/v2/store/1/de/fe/defe?wsSecret=SECRETTOKEN"
    "&wsTime=6a6a5075&prefix=/content-system/v2/store/1/"
)


def test_http_redact_url_drops_tokens_and_queries() -> None:
    assert "SECRETTOKEN" not in redact_url(SIGNED)
    assert redact_url(SIGNED).endswith(
        "/content-system/v2/store/2034949552/f1/d4/f1d41c76eb9639d2f8c1d3fd2057d7f1"
    )
    assert "SECRETTOKEN" not in redact_url(GCORE)
    assert "SECRETTOKEN" not in redact_url("https://user:SECRETTOKEN@host/x")


def test_http_scrub_cleans_library_messages() -> None:
    urllib3_warning = (
        "Retrying (Retry(total=4)) after connection broken by 'X': "
        "/token=nva=1~dirs=4~token=SECRETTOKEN/content-system/v2/store/1/aa/bb/c"
    )
    for text in (
        urllib3_warning,
        f"HTTPSConnectionPool(host='x', port=443): Max retries exceeded with url: {GCORE}",
        f"GET {SIGNED} failed",
        '"GET /products/1/os/windows/builds?generation=2&password=SECRETTOKEN HTTP/1.1" 200',
        "/token?client_id=1&code=SECRETTOKEN&redirect_uri=x",
    ):
        assert "SECRETTOKEN" not in scrub(text), text
    assert scrub("is the product owned?") == "is the product owned?"


def test_http_retry_policy_covers_rate_limits_and_honours_retry_after() -> None:
    retry = build_retry(5)
    assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist or ())
    assert 404 not in (retry.status_forcelist or ()) and 403 not in (retry.status_forcelist or ())
    assert retry.respect_retry_after_header
    assert retry.parse_retry_after("99999999") == 300.0


def test_http_rate_limiter_spreads_bytes_over_time() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(1000, clock=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        limiter.take(500)  # 5000 bytes at 1000 B/s, one second of burst allowed
    assert 3.9 <= clock[0] <= 4.1
    assert slept and all(s > 0 for s in slept)


def test_http_rate_limiter_at_rate_zero_never_sleeps() -> None:
    slept: list[float] = []
    unlimited = RateLimiter(0, clock=lambda: 0.0, sleep=slept.append)
    for _ in range(3):
        unlimited.take(10**9)
    assert slept == []  # rate 0 means unlimited: not even a zero-length sleep


def test_http_plain_http_only_for_loopback_and_configured_hosts() -> None:
    client = HttpClient(requests.Session(), timeout_s=1, plain_http_hosts=frozenset({"mirror.lan"}))
    for url in ("http://cdn.example.com/x", "ftp://127.0.0.1/x", "http://10.0.0.1/x"):
        with pytest.raises(UpstreamError, match=r"refusing .* \(not https\)"):  # nothing sent
            client.get(url, what="object")
    # allowed hosts get past the policy check (and then fail to connect: nothing listens)
    for url in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x"):
        with pytest.raises(UpstreamError) as info:
            client.get(url, what="object")
        assert "refusing" not in str(info.value)
    client._check_transport("http://mirror.lan/x", "object")  # configured: no error
    client._check_transport("https://anything.example/x", "object")
