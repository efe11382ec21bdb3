"""fetch.rounds: the one loop over endpoints that the chunk downloader and the V1 blob fetcher
share. The attempts here are plain functions (what an endpoint answers is scripted per URL);
the end-to-end behaviour over real HTTP is in tests/integration/test_sync_robustness.py and
test_sync_v1.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from galaxy_archive.errors import UpstreamError
from galaxy_archive.fetch.rounds import (
    ROUNDS,
    Candidate,
    Ended,
    EndKind,
    Miss,
    MissKind,
    Rounds,
    status_miss,
)
from galaxy_archive.fetch.tasks import Plain, Signed
from galaxy_archive.upstream.galaxy_api import LinkRefused, LinkRequest
from galaxy_archive.upstream.link_cache import LinkCache

REQUEST = LinkRequest("1207658930")
SIGNED = (Signed(REQUEST, "ab/cd/abcd"),)


def _link_doc(generation: int) -> dict[str, Any]:
    """A secure link with two endpoints; `generation` tells the links fetched so far apart."""
    return {
        "urls": [
            {"endpoint_name": name, "url": f"https://{name}.example/g{generation}", "priority": p}
            for name, p in (("fastly", 10), ("gcore", 1))
        ]
    }


class _Links:
    """A LinkCache whose GOG answers from a script: a doc, or an exception to raise."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked = 0
        self.cache = LinkCache(self._fetch, clock=lambda: 1000.0)

    def _fetch(self, _request: LinkRequest) -> Any:
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _rounds(links: _Links, sleeps: list[float]) -> Rounds:
    return Rounds(links.cache, sleep=sleeps.append, backoff_s=0.5)


def _scripted(answers: dict[str, Callable[[], str | Miss]], tried: list[str]) -> Any:
    """An attempt that answers by the candidate's URL and records every URL tried."""

    def attempt(candidate: Candidate) -> str | Miss:
        tried.append(candidate.url)
        return answers[candidate.url]()

    return attempt


def test_rounds_first_value_wins_and_later_endpoints_are_not_asked() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    attempt = _scripted(
        {
            "https://fastly.example/g1/ab/cd/abcd": lambda: Miss(MissKind.ERROR, "x: 500"),
            "https://gcore.example/g1/ab/cd/abcd": lambda: "body",
        },
        tried,
    )
    assert _rounds(links, sleeps).run("chunk x", SIGNED, attempt) == "body"
    assert tried == ["https://fastly.example/g1/ab/cd/abcd", "https://gcore.example/g1/ab/cd/abcd"]
    assert sleeps == []


def test_rounds_a_rejected_signed_url_renews_the_link_without_backing_off() -> None:
    links, sleeps, tried = _Links(_link_doc(1), _link_doc(2)), [], []
    attempt = _scripted(
        {
            "https://fastly.example/g1/ab/cd/abcd": lambda: status_miss(403, "x: HTTP 403"),
            "https://fastly.example/g2/ab/cd/abcd": lambda: "renewed",
        },
        tried,
    )
    assert _rounds(links, sleeps).run("chunk x", SIGNED, attempt) == "renewed"
    # the second endpoint of the stale link is not tried: the link is renewed at once
    assert tried == ["https://fastly.example/g1/ab/cd/abcd", "https://fastly.example/g2/ab/cd/abcd"]
    assert (links.asked, sleeps) == (2, [])


def test_rounds_a_rejected_plain_url_backs_off_like_any_error() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    url = "https://cdn.example/meta/ab"
    attempt = _scripted({url: lambda: status_miss(401, "meta: HTTP 401")}, tried)
    ended = _rounds(links, sleeps).run("meta", (Plain(url),), attempt)
    assert ended == Ended(EndKind.FAILED, "meta: HTTP 401")
    assert len(tried) == ROUNDS and len(sleeps) == ROUNDS - 1 and links.asked == 0


def test_rounds_404_on_every_endpoint_is_absent_after_one_round() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    attempt = _scripted(
        {
            "https://fastly.example/g1/ab/cd/abcd": lambda: status_miss(404, "x: 404"),
            "https://gcore.example/g1/ab/cd/abcd": lambda: status_miss(404, "x: 404"),
        },
        tried,
    )
    ended = _rounds(links, sleeps).run("chunk x", SIGNED, attempt)
    assert ended == Ended(EndKind.ABSENT, "chunk x: 404 on every endpoint")
    assert (len(tried), sleeps) == (2, [])


def test_rounds_404_beside_another_error_is_retried_then_fails_with_the_error() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    attempt = _scripted(
        {
            "https://fastly.example/g1/ab/cd/abcd": lambda: status_miss(404, "x: 404"),
            "https://gcore.example/g1/ab/cd/abcd": lambda: status_miss(502, "x: HTTP 502"),
        },
        tried,
    )
    ended = _rounds(links, sleeps).run("chunk x", SIGNED, attempt)
    assert ended == Ended(EndKind.FAILED, "x: HTTP 502")
    assert len(tried) == 2 * ROUNDS
    # exponential, jittered: round n sleeps within [b*2^n, 2*b*2^n)
    assert len(sleeps) == ROUNDS - 1
    assert all(0.5 * 2**n <= s < 1.0 * 2**n for n, s in enumerate(sleeps))


def test_rounds_a_refused_link_fails_at_once_without_asking_again() -> None:
    links, sleeps = _Links(LinkRefused("secure link of 1207658930: HTTP 403")), []
    ended = _rounds(links, sleeps).run("chunk x", SIGNED, _scripted({}, []))
    assert ended == Ended(EndKind.FAILED, "chunk x: secure link of 1207658930: HTTP 403")
    assert (links.asked, sleeps) == (1, [])


def test_rounds_a_refused_link_still_tries_the_other_sources() -> None:
    links, sleeps, tried = _Links(LinkRefused("refused")), [], []
    url = "https://cdn.example/store/ab"
    attempt = _scripted({url: lambda: "public copy"}, tried)
    assert _rounds(links, sleeps).run("chunk x", (*SIGNED, Plain(url)), attempt) == "public copy"


def test_rounds_a_link_that_cannot_be_had_now_is_asked_again_each_round() -> None:
    links, sleeps, tried = _Links(UpstreamError("secure link: HTTP 500"), _link_doc(1)), [], []
    attempt = _scripted({"https://fastly.example/g1/ab/cd/abcd": lambda: "body"}, tried)
    assert _rounds(links, sleeps).run("chunk x", SIGNED, attempt) == "body"
    assert links.asked == 2 and len(sleeps) == 1


def test_rounds_stop_is_honoured_before_every_attempt() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    stopping: list[bool] = []

    def attempt(candidate: Candidate) -> Miss:
        tried.append(candidate.url)
        stopping.append(True)  # the run is asked to stop during the first attempt
        return Miss(MissKind.ERROR, "x: timeout")

    ended = _rounds(links, sleeps).run("chunk x", SIGNED, attempt, stopped=lambda: bool(stopping))
    assert ended == Ended(EndKind.STOPPED)
    assert tried == ["https://fastly.example/g1/ab/cd/abcd"]


def test_rounds_url_for_builds_each_endpoints_url() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    attempt = _scripted({"https://fastly.example/g1/windows/7/main.bin": lambda: "blob"}, tried)
    outcome = _rounds(links, sleeps).run(
        "V1 blob",
        (Signed(REQUEST, "main.bin"),),
        attempt,
        url_for=lambda endpoint, suffix: endpoint.build_url(f"windows/7/{suffix}"),
    )
    assert outcome == "blob"


def test_rounds_keep_mismatch_is_asked_once_every_endpoint_served_other_bytes() -> None:
    links, sleeps, tried = _Links(_link_doc(1)), [], []
    mismatch = Miss(MissKind.MISMATCH, "x: MD5 mismatch")
    attempt = _scripted(
        {
            "https://fastly.example/g1/ab/cd/abcd": lambda: mismatch,
            "https://gcore.example/g1/ab/cd/abcd": lambda: mismatch,
        },
        tried,
    )
    asked: list[str] = []

    def keep(candidate: Candidate) -> str:
        asked.append(candidate.endpoint)
        return "kept as served"

    outcome = _rounds(links, sleeps).run("meta x", SIGNED, attempt, keep_mismatch=keep)
    assert outcome == "kept as served"
    assert asked == ["fastly"] and sleeps == []  # the first endpoint's body, after one round
