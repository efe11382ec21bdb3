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
_URL_RE = re.compile(r"https?://[^\s'\"<>]+")
# In free text: the value of a secret-named parameter, up to the end of its path segment
# (Fastly's `token=nva=…~dirs=…~token=…` segment is one such value) and, to be safe, across
# any '&' (what follows in a query is redacted anyway).
_SECRET_PARAM_RE = re.compile(r"([\w.-]*(?:token|secret|password|signature|code)=)[^/\s\"']*", re.I)
# A query string: a '?' followed by what can start one. Not a '?' that ends a question or
# stands before punctuation, as in a V1 blob's "(md5 ?): ...".
_QUERY_RE = re.compile(r"\?(?=[\w%.~+=&-])[^\s\"']*")
_PARAM_NAME_RE = re.compile(r"[A-Za-z_][\w.-]{0,40}")


def redact_url(url: str) -> str:
    """scheme://host/path without the query and without path segments carrying tokens."""
    parts = urlsplit(url)
    path = _TOKEN_SEGMENT_RE.sub("<redacted>", parts.path)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{path}"


def scrub(text: str) -> str:
    """Remove URLs' queries and secrets, and every value of a query string or of a secret-named
    parameter, from free text (exception messages, log lines).

    Parameter names are kept (`?wsSecret=<redacted>&wsTime=<redacted>`), so the text still says
    what it was about, and so is the rest of a line: a file name that merely contains
    `?token=` keeps its name, only what follows `token=` is hidden.
    """
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    text = re.sub(r"with url: \S+", "with url: <redacted>", text)
    text = _SECRET_PARAM_RE.sub(r"\1<redacted>", text)
    return _QUERY_RE.sub(_redacted_query, text)


def _redacted_query(match: re.Match[str]) -> str:
    """?a=1&b -> ?a=<redacted>&<redacted>: names kept when they look like parameter names."""
    parts: list[str] = []
    for part in match.group(0)[1:].split("&"):
        name, is_pair, _value = part.partition("=")
        if not part:
            parts.append(part)
        elif is_pair and _PARAM_NAME_RE.fullmatch(name):
            parts.append(f"{name}=<redacted>")
        else:
            parts.append("<redacted>")
    return "?" + "&".join(parts)
