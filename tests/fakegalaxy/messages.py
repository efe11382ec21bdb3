"""Request and response values passed between the fake server's socket layer and its routes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

UNSATISFIABLE: Literal["unsatisfiable"] = "unsatisfiable"
_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True)
class Request:
    """One parsed request. ``path`` is relative to the host role's prefix, without the query."""

    method: str
    role: str | None
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        value = self.header("Authorization")
        if value is None:
            return None
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


@dataclass
class Response:
    """What a route answers; the socket layer adds Range handling and faults.

    ``body`` may be a memoryview of a world object, so big blobs are never copied.
    """

    status: int
    body: bytes | memoryview = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    is_rangeable: bool = False
    etag: str | None = None


def json_response(obj: object, status: int = 200) -> Response:
    """A JSON body (compact, like GOG's API)."""
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def error_response(status: int, error: str, description: str = "") -> Response:
    """GOG's JSON error shape: ``{"error": ..., "error_description": ...}``."""
    return json_response({"error": error, "error_description": description}, status)


def text_response(status: int, text: str, content_type: str = "text/plain") -> Response:
    """A plain text (or HTML) body, as CDNs answer errors."""
    return Response(status, text.encode("utf-8"), content_type=content_type)


def parse_range(header: str, total: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """Parse a single ``Range: bytes=a-b`` / ``a-`` / ``-n`` header against ``total`` bytes.

    Returns a half-open ``(start, end)``, ``UNSATISFIABLE`` (answer 416), or None when the
    header should be ignored (malformed or multi-range; RFC 9110 lets a server send a 200).
    """
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or total == 0:
            return UNSATISFIABLE
        return max(0, total - suffix), total
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= total:
        return UNSATISFIABLE
    end = total if not last else min(int(last) + 1, total)
    return start, end
