"""Log lines and --json stay whole and truthful: the scrubber hides secrets without eating
ordinary text, and file names cannot forge a line or break an encoding."""

from __future__ import annotations

import codecs
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.output import escape_name, one_line, print_json, setup_logging
from galaxy_archive.redact import scrub
from galaxy_archive.verify.object_checks import Verdict
from galaxy_archive.verify.report import ObjectProblem, VerifyReport

SECRET = "SECRETTOKEN"
SECRET_TEXTS = [
    "Retrying (Retry(total=4)) after connection broken by 'X': "
    f"/token=nva=1~dirs=4~token={SECRET}/content-system/v2/store/1/aa/bb/c",
    f"Max retries exceeded with url: /content-system/v2/store/1/de/fe/defe?wsSecret={SECRET}",
    f"GET https://gog-cdn.gcdn.co/x/defe?wsSecret={SECRET}&wsTime=6a6a5075&prefix=/x/ failed",
    f'"GET /products/1/os/windows/builds?generation=2&password={SECRET} HTTP/1.1" 200',
    f"/token?client_id=1&code={SECRET}&redirect_uri=x",
    f"/token?client_id=1&grant_type=refresh_token&refresh_token={SECRET}",
    f"GET /content-system/v2/store/1/aa?{SECRET} HTTP/1.1",  # a bare query string
    f"GET /x?a=1&{SECRET} HTTP/1.1",
    f"/x?e=1&s={SECRET}#frag",
    f"refresh_token={SECRET}&x=1",
]


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_scrub_removes_every_secret(text: str) -> None:
    assert SECRET not in scrub(text)
    assert scrub(scrub(text)) == scrub(text)


def test_scrub_keeps_a_v1_blobs_problem_line_whole() -> None:
    problem = ObjectProblem(
        object_id=7,
        kind="v1_blob",
        path="v1/depots/1207658930/windows/37794096/main.bin",
        md5=None,  # GOG publishes no MD5 for a V1 blob
        verdict=Verdict.MISSING,
        detail="file is missing",
    )
    line = problem.line()
    assert "(md5 ?): file is missing; no recorded build or product" in line
    assert scrub(line) == line


def test_scrub_keeps_questions_and_names_around_a_question_mark() -> None:
    for text in ("is the product owned?", "(md5 ?): x", "what? no", "a ? b", "why?!"):
        assert scrub(text) == text


def test_scrub_keeps_a_file_name_that_contains_a_secret_name_and_hides_the_value() -> None:
    line = "unknown file: v2/store/q?token=abc is not recorded in the DB (left in place)"
    assert scrub(line) == (
        "unknown file: v2/store/q?token=<redacted> is not recorded in the DB (left in place)"
    )


def test_scrub_keeps_parameter_names_of_a_query_string() -> None:
    assert scrub("GET /a/b?generation=2&wsTime=y HTTP/1.1") == (
        "GET /a/b?generation=<redacted>&wsTime=<redacted> HTTP/1.1"
    )
    # A secret's value runs to the end of the query, to be safe: the names after it go too.
    assert scrub("GET /a/b?wsSecret=x&wsTime=y HTTP/1.1") == "GET /a/b?wsSecret=<redacted> HTTP/1.1"


@given(st.binary(min_size=1, max_size=40))
def test_escape_name_is_one_printable_line_that_gives_the_bytes_back(raw: bytes) -> None:
    name = os.fsdecode(raw)
    shown = escape_name(name)
    assert shown.isprintable()
    shown.encode("utf-8")  # no lone surrogate left
    assert codecs.escape_decode(shown.encode("utf-8"))[0] == raw  # type: ignore[attr-defined]


def test_escape_name_leaves_ordinary_names_alone() -> None:
    for name in ("v2/store/aa/bb/aabb", "v1/depots/1/windows/2/main.bin", "v2/café ü"):
        assert escape_name(name) == name
    assert escape_name("a\nb") == "a\\nb"
    assert escape_name("a\\b") == "a\\\\b"
    assert escape_name(os.fsdecode(b"bad\xff")) == "bad\\xff"
    assert escape_name("evil\u202etxt.exe") == "evil\\xe2\\x80\\xaetxt.exe"  # bidi override


def test_one_line_keeps_backslashes_of_manifest_paths() -> None:
    assert one_line("wrong bytes in 1 file(s): bin\\game.exe") == (
        "wrong bytes in 1 file(s): bin\\game.exe"
    )
    assert one_line("x\ny\udcff") == "x\\ny\\xff"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_newline_in_a_file_name_cannot_forge_a_log_line(
    tmp_path: Path, restore_logging: None
) -> None:
    log_file = tmp_path / "archive.log"
    setup_logging(-1, log_file)
    report = VerifyReport(level="full")
    report.unknown_file("v2/x\n2024-01-01 00:00:00,000 INFO verify ended (exit 0)")
    report.unknown_file(os.fsdecode(b"v2/bad\xff"))
    logging.shutdown()
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "ERROR unknown file: v2/x\\n2024-01-01 00:00:00,000 INFO verify ended (exit 0) is not "
        "recorded in the DB (left in place)"
    )
    assert "ERROR unknown file: v2/bad\\xff is not recorded" in lines[1]


def test_the_log_file_takes_a_line_with_an_undecodable_byte(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "archive.log"
    setup_logging(0, log_file)
    logging.getLogger("test").warning("name %s", os.fsdecode(b"v2/bad\xff"))
    logging.shutdown()
    assert "Logging error" not in capsys.readouterr().err
    assert log_file.read_text(encoding="utf-8").rstrip().endswith("name v2/bad\\xff")


def test_json_names_are_escaped_and_strict_json() -> None:
    report = VerifyReport(level="full", is_tree_walked=True)
    report.unknown_files += [os.fsdecode(b"v2/bad\xff"), "v2/new\nline", "v2/plain"]
    out = io.StringIO()
    print_json(report.to_json(), out)
    text = out.getvalue()
    assert "\\udc" not in text  # no lone surrogate escapes: strict parsers reject them
    document = json.loads(text)
    assert document["unknown_files"] == ["v2/bad\\xff", "v2/new\\nline", "v2/plain"]


def test_print_json_escapes_any_lone_surrogate_left() -> None:
    out = io.StringIO()
    print_json({"detail": "from a manifest: \udcff\ud800"}, out)
    assert "\\ud" not in out.getvalue()
    assert json.loads(out.getvalue()) == {"detail": "from a manifest: \\xff\\xed\\xa0\\x80"}
