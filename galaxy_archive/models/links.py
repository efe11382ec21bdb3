"""Secure links and open links (protocol.md §5): parsing, endpoint order, URL building. Pure.

A link is a list of CDN endpoints; each turns an object suffix (``ab/cd/<md5>`` or
``main.bin``) into a full URL. Those URLs carry secrets (tokens in the path or query), so they
are only ever handed to the HTTP layer, never logged or stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from galaxy_archive.errors import ManifestError

_PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
# Without a known expiry, a link is still renewed this often (and on any 401/403).
DEFAULT_LINK_LIFETIME_S = 3600.0
_YEAR_3000 = 32_503_680_000


@dataclass(frozen=True)
class Endpoint:
    name: str
    url_format: str | None
    parameters: dict[str, Any]
    url: str | None  # open_link and builds `urls[]` entries carry a complete base URL
    priority: float
    is_fallback_only: bool
    generations: tuple[int, ...]

    def build_url(self, suffix: str) -> str:
        """protocol.md 5.3: append the suffix to parameters.path and fill the template."""
        if self.url_format and self.parameters:
            params = dict(self.parameters)
            stem = str(params.get("path", "")).strip("/")
            path = f"{stem}/{suffix}" if stem else suffix
            # The template decides the leading slash, whatever `path` came with: gcore writes
            # "{base_url}/{path}", fastly "...~token={token}{path}".
            params["path"] = path if "/{path}" in self.url_format else f"/{path}"
            return _PLACEHOLDER_RE.sub(lambda m: str(params.get(m.group(1), "")), self.url_format)
        # WARP: without parameters, url_format (or url) is a base and "/" + path is appended;
        # a query string (a token) stays at the end.
        base = urlsplit(self.url or self.url_format or "")
        path = f"{base.path.rstrip('/')}/{suffix}"
        return urlunsplit((base.scheme, base.netloc, path, base.query, base.fragment))

    def expires_at(self) -> float | None:
        """Unix expiry if the endpoint states one: fastly `expires_at`, gcore hex `time`."""
        value = self.parameters.get("expires_at")
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
        value = self.parameters.get("time")
        if isinstance(value, str):
            try:
                expiry = int(value, 16)
            except ValueError:
                return None
            # Hex per the one real URL seen (protocol.md 5.2); a decimal time read as hex
            # lands centuries ahead and the link would never be renewed before a 403.
            return float(int(value) if expiry > _YEAR_3000 and value.isdigit() else expiry)
        return None


@dataclass(frozen=True)
class Link:
    """An ordered set of endpoints, valid until `expires_at` (unix seconds)."""

    endpoints: tuple[Endpoint, ...]
    fetched_at: float
    expires_at: float

    def renew_at(self) -> float:
        """Renew a minute early, or halfway through a short-lived link."""
        margin = min(60.0, (self.expires_at - self.fetched_at) / 2)
        return self.expires_at - max(margin, 0.0)


def parse_link(doc: Any, what: str, *, generation: int, now: float) -> Link:
    """Parse a secure_link or open_link answer and order its endpoints for `generation`."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    raw_urls = doc.get("urls")
    if isinstance(raw_urls, list):
        endpoints = [_parse_endpoint(e, f"{what} urls[{i}]") for i, e in enumerate(raw_urls)]
    elif isinstance(doc.get("url"), dict):
        endpoints = [_historical_endpoint(doc["url"], what)]
    else:
        raise ManifestError(f"{what}: no 'urls' in the answer")
    ordered = order_endpoints(endpoints, generation)
    if not ordered:
        raise ManifestError(f"{what}: no endpoint supports generation {generation}")
    expiries = [e for e in (ep.expires_at() for ep in ordered) if e is not None and e > now]
    expires_at = min(expiries) if expiries else now + DEFAULT_LINK_LIFETIME_S
    return Link(endpoints=tuple(ordered), fetched_at=now, expires_at=expires_at)


def _historical_endpoint(old: dict[str, Any], what: str) -> Endpoint:
    """The answer without _version=2 (protocol.md 5.1): `{url: {url, base_url, path, token}}`.

    Its `url` is the signed base. Without it, base_url + path serve only when there is no
    token: where a token would go in the URL is not known, and a URL without it is refused.
    """
    base = old.get("url")
    if not isinstance(base, str) or not base:
        if old.get("token"):
            raise ManifestError(f"{what}: a token but no 'url' to carry it")
        base = f"{old.get('base_url') or ''}{old.get('path') or ''}"
    if not urlsplit(base).netloc:
        raise ManifestError(f"{what}: no URL in the answer")
    return Endpoint("legacy", None, {}, base, 0.0, False, (1, 2))


def _parse_endpoint(obj: Any, what: str) -> Endpoint:
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    params = obj.get("parameters")
    url_format = obj.get("url_format")
    url = obj.get("url")
    if not isinstance(params, dict):
        params = {}
    if not isinstance(url_format, str) and not isinstance(url, str):
        raise ManifestError(f"{what}: neither 'url_format' nor 'url'")
    generations = obj.get("supports_generation")
    if not isinstance(generations, list):
        generations = [1, 2]
    priority = obj.get("priority")
    return Endpoint(
        name=str(obj.get("endpoint_name") or "unnamed"),
        url_format=url_format if isinstance(url_format, str) else None,
        parameters=params,
        url=url if isinstance(url, str) else None,
        priority=float(priority) if isinstance(priority, int | float) else 0.0,
        is_fallback_only=obj.get("fallback_only") is True,
        generations=tuple(g for g in map(_generation, generations) if g is not None),
    )


def fill_url_format(url_format: str, parameters: dict[str, Any]) -> str | None:
    """protocol.md 5.3 step 3: every `{key}` replaced by `str(parameters[key])`; None when
    the parameters lack one of the placeholders."""
    if any(key not in parameters for key in _PLACEHOLDER_RE.findall(url_format)):
        return None
    return _PLACEHOLDER_RE.sub(lambda m: str(parameters[m.group(1)]), url_format)


def _generation(value: Any) -> int | None:
    """A `supports_generation` entry: 1 or 2, also sent as a digit string ("1")."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 4:
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def order_endpoints(endpoints: list[Endpoint], generation: int) -> list[Endpoint]:
    """protocol.md 5.4: keep those supporting the generation; fallbacks last; priority desc.

    The sort is stable, so equal priorities keep the server's order.
    """
    usable = [e for e in endpoints if generation in e.generations]
    return sorted(usable, key=lambda e: (e.is_fallback_only, -e.priority))
