"""Decoding of what the content system serves, and typed access to its JSON fields.

Manifests are zlib-compressed JSON (protocol.md 3.1), bounded in size so a hostile body
cannot inflate to gigabytes; `json_field` and friends raise ManifestError naming the object
and the field; `parse_entries` lets one unsafe entry of a list cost that entry (see the
docstring of models/manifests.py). Pure: bytes and decoded JSON in, values out.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, TypeVar

from galaxy_archive.errors import ManifestError, UnsafeReference

# A hostile zlib body can inflate to gigabytes; no real manifest comes near this.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024


# --- decoding ------------------------------------------------------------------------------


def inflate(body: bytes, what: str, *, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """Inflate a zlib stream (window bits 15), refusing trailing garbage and bombs."""
    inflater = zlib.decompressobj(15)
    try:
        data = inflater.decompress(body, limit)
    except zlib.error as exc:
        raise ManifestError(f"{what}: invalid zlib data ({exc})") from None
    if inflater.unconsumed_tail:
        raise ManifestError(f"{what}: inflates to more than {limit} bytes")
    if not inflater.eof:
        raise ManifestError(f"{what}: zlib stream is truncated")
    if inflater.unused_data:
        raise ManifestError(f"{what}: trailing bytes after the zlib stream")
    return data


def read_bounded(reader: BinaryIO, what: str, *, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """The bytes of a manifest from `reader` (a stored object, or one being checked before it
    is stored), refusing one larger than `limit` without reading past it."""
    body = reader.read(limit + 1)
    if len(body) > limit:
        raise ManifestError(f"{what}: larger than {limit} bytes")
    return body


def looks_like_zlib(body: bytes) -> bool:
    # RFC 1950: CM=8 in the low nibble, and the 16-bit header is a multiple of 31.
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def decode_json(body: bytes, what: str) -> Any:
    """Plain JSON (V1 manifests, API answers)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"{what}: not valid JSON ({exc})") from None


def decode_meta(body: bytes, what: str) -> Any:
    """V2 meta: zlib JSON, with the plain-JSON fallback every client has (protocol.md 3.1)."""
    if looks_like_zlib(body):
        return decode_json(inflate(body, what), what)
    if body.lstrip()[:1] in (b"{", b"["):
        return decode_json(body, what)
    raise ManifestError(f"{what}: neither zlib nor JSON")


# --- typed field access --------------------------------------------------------------------


def json_field(
    obj: Any, key: str, kind: type | tuple[type, ...], what: str, default: Any = ...
) -> Any:
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj or obj[key] is None:
        if default is ...:
            raise ManifestError(f"{what}: field {key!r} is missing")
        return default
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ManifestError(f"{what}: field {key!r} is a boolean")
    if not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ManifestError(f"{what}: field {key!r} should be {names}, not {type(value).__name__}")
    return value


def json_size(obj: Any, key: str, what: str, default: Any = ...) -> int:
    value = json_field(obj, key, int, what, default)
    if value < 0:
        raise ManifestError(f"{what}: field {key!r} is negative")
    return int(value)


def json_count(obj: Any, key: str, what: str, default: Any = ...) -> int:
    """A non-negative integer field that some answers send as a digit string ("2")."""
    value = json_field(obj, key, (int, str), what, default)
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 24):
            raise ManifestError(f"{what}: field {key!r} is not a number: {value[:40]!r}")
        return int(value)
    if value < 0:
        raise ManifestError(f"{what}: field {key!r} is negative")
    return int(value)


def json_strings(obj: Any, key: str, what: str) -> tuple[str, ...]:
    values = json_field(obj, key, list, what, [])
    if not all(isinstance(v, str) for v in values):
        raise ManifestError(f"{what}: field {key!r} should be a list of strings")
    return tuple(values)


T = TypeVar("T")


def parse_entries(
    entries: Iterable[Any], parse: Callable[[Any, str], T], what: str, skipped: list[str]
) -> list[T]:
    """Each entry of a manifest's list parsed by `parse`; one with an unsafe reference is left
    out and named in `skipped` (a wrong shape still raises: the manifest is not what GOG
    documents)."""
    kept: list[T] = []
    for index, entry in enumerate(entries):
        try:
            kept.append(parse(entry, f"{what}[{index}]"))
        except UnsafeReference as exc:
            skipped.append(f"{exc}; entry skipped")
    return kept
