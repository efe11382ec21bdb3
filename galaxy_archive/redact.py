"""Redaction of secrets (signed CDN links, tokens, passwords) from URLs and free text.

Its own module, apart from http_client, so that commands without network (plain verify,
status) can scrub their messages without importing requests and urllib3.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_TOKEN_SEGMENT_RE = re.compile(
    r"[^/\s]*(token|secret|password|signature|code|wsSecret)=[^/\s\"']*", re.I
)
_QUERY_RE = re.compile(r"\?[^\s\"']+")
_URL_RE = re.compile(r"https?://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """scheme://host/path without the query and without path segments carrying tokens."""
    parts = urlsplit(url)
    path = _TOKEN_SEGMENT_RE.sub("<redacted>", parts.path)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{path}"


def scrub(text: str) -> str:
    """Remove URLs, query strings and token-like segments from free text (exception messages)."""
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    text = re.sub(r"with url: \S+", "with url: <redacted>", text)
    text = _TOKEN_SEGMENT_RE.sub("<redacted>", text)
    return _QUERY_RE.sub("?<redacted>", text)
