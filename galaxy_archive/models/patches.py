"""Patches between generation-2 builds (protocol.md §7): which pairs, and what GOG answered. Pure.

A patch is asked for per pair of consecutive generation-2 builds of one product, OS and
branch. The patches index answers with a link to a patch root manifest (or 4xx not_found);
the root lists patch depot manifests, whose DepotDiff items name the delta chunks.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.decoding import decode_json, inflate, json_field, looks_like_zlib
from galaxy_archive.models.layout import check_id, check_md5

# manifests' typed field readers, shared on purpose so every JSON field is checked alike.
from galaxy_archive.models.manifests import DepotRef, parse_depot_refs, parse_product_ids

SUPPORTED_ALGORITHM = "xdelta3"  # every client refuses anything else (protocol.md 7.2)
_LINK_HASH_RE = re.compile(r"/([0-9a-fA-F]{32})/?$")


class PatchOutcome(enum.StrEnum):
    """What is known about a pair; the DB records its value."""

    PATCH = "patch"  # the index named a patch (root manifest id)
    NO_PATCH = "no_patch"  # the index answered not_found
    EMPTY = "empty"  # the root manifest is {} or empty: GOG made no patch
    UNSUPPORTED = "unsupported"  # the root's algorithm is not xdelta3
    INVALID = "invalid"  # the root manifest is not a valid patch manifest
    ERROR = "error"  # the index could not be asked, or its answer makes no sense


@dataclass(frozen=True)
class BuildPoint:
    """A recorded generation-2 build, as far as pairing needs it."""

    build_id: str
    os: str
    branch: str | None
    date_published: str


@dataclass(frozen=True)
class PatchPair:
    product_id: str
    os: str
    branch: str | None
    from_build_id: str
    to_build_id: str

    @property
    def what(self) -> str:
        return f"patch {self.product_id} {self.from_build_id}->{self.to_build_id}"


def plan_pairs(product_id: str, builds: Iterable[BuildPoint]) -> list[PatchPair]:
    """Consecutive builds of each (OS, branch), ordered by date published, then build id; a
    build without a date (added by manifest id) goes among them by build id."""
    groups: dict[tuple[str, str | None], list[BuildPoint]] = {}
    for build in builds:
        groups.setdefault((build.os, build.branch), []).append(build)
    pairs: list[PatchPair] = []
    for (os_name, branch), members in sorted(groups.items(), key=_group_order):
        for older, newer in itertools.pairwise(_in_order(members)):
            pairs.append(PatchPair(product_id, os_name, branch, older.build_id, newer.build_id))
    return pairs


def _in_order(members: list[BuildPoint]) -> list[BuildPoint]:
    ordered = sorted(
        (b for b in members if b.date_published), key=lambda b: (b.date_published, int(b.build_id))
    )
    for build in sorted(
        (b for b in members if not b.date_published), key=lambda b: int(b.build_id)
    ):
        # Generation-2 build ids grow with time: after the last build with a smaller id.
        after = [
            i + 1 for i, other in enumerate(ordered) if int(other.build_id) < int(build.build_id)
        ]
        ordered.insert(max(after, default=0), build)
    return ordered


def _group_order(group: tuple[tuple[str, str | None], list[BuildPoint]]) -> tuple[str, str]:
    (os_name, branch), _ = group
    return (os_name, branch or "")


def is_due(
    outcome: PatchOutcome | None, asked_at_s: float | None, now_s: float, recheck_s: float
) -> bool:
    """Whether to ask the index (again) about a pair.

    Never asked: ask. A patch was named: never again (its id is content-addressed; what is
    missing of it is fetched by id). An error: every run. No usable patch (not_found, empty,
    unsupported or invalid root): only once `recheck_s` has passed, as GROG does (7 days).
    """
    if outcome is None or asked_at_s is None or outcome is PatchOutcome.ERROR:
        return True
    if outcome is PatchOutcome.PATCH:
        return False
    return now_s - asked_at_s >= recheck_s


# --- the patches index answer (protocol.md 7.1) --------------------------------------------


@dataclass(frozen=True)
class PatchIndexAnswer:
    outcome: PatchOutcome  # PATCH, NO_PATCH or ERROR
    patch_id: str | None = None
    link: str | None = None
    error: str | None = None


def parse_patch_index(status: int, body: bytes, pair: PatchPair) -> PatchIndexAnswer:
    """Interpret one answer of the patches index; never raises (errors become ERROR).

    Accepts `{id, from_build_id, to_build_id, link}` and GALAXYDL's `from`/`to` keys. `id` is
    the root manifest's MD5, which is also the last segment of `link`; either may be missing.
    """
    what = f"{pair.what}: patches index"
    doc: Any = None
    if body.strip():
        try:
            doc = decode_json(body, what)
        except ManifestError as exc:
            if status == 200:
                return PatchIndexAnswer(PatchOutcome.ERROR, error=str(exc))
    if 400 <= status < 500:
        error = doc.get("error") if isinstance(doc, dict) else None
        if status == 404 or error == "not_found":
            return PatchIndexAnswer(PatchOutcome.NO_PATCH)
        detail = f" ({str(error)[:80]})" if error else ""
        return PatchIndexAnswer(PatchOutcome.ERROR, error=f"{what}: HTTP {status}{detail}")
    if status == 200 and isinstance(doc, dict) and doc.get("error") == "not_found":
        return PatchIndexAnswer(PatchOutcome.NO_PATCH)  # HGD checks for `error`, not the status
    if status != 200:
        return PatchIndexAnswer(PatchOutcome.ERROR, error=f"{what}: HTTP {status}")
    try:
        patch_id, link = _patch_reference(doc, pair, what)
    except ManifestError as exc:
        return PatchIndexAnswer(PatchOutcome.ERROR, error=str(exc))
    return PatchIndexAnswer(PatchOutcome.PATCH, patch_id=patch_id, link=link)


def _patch_reference(doc: Any, pair: PatchPair, what: str) -> tuple[str, str | None]:
    """The patch's meta id and link. The link's hash names the root manifest we fetch; `id`
    equals it in the one example (GALAXYDL, protocol.md 7.1), so it is only needed when there
    is no link, and an `id` of another form is not an error."""
    if isinstance(doc, dict) and doc.get("error"):
        raise ManifestError(f"{what}: error {str(doc['error'])[:80]!r} with HTTP 200")
    link = json_field(doc, "link", str, what, None)
    link_id = None
    if link is not None:
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ManifestError(f"{what}: link {link[:120]!r} is not an http(s) URL")
        match = _LINK_HASH_RE.search(parts.path)
        if match is None:
            tail = parts.path.rsplit("/", 1)[-1][:80]
            raise ManifestError(f"{what}: link ends in {tail!r}, not in a manifest id")
        link_id = match.group(1).lower()
    raw_id = json_field(doc, "id", (str, int), what, None)
    if link_id is None and raw_id is None:
        raise ManifestError(f"{what}: neither 'id' nor 'link'")
    patch_id = link_id or check_md5(str(raw_id), f"{what} id")
    for keys, expected in (
        (("from_build_id", "from"), pair.from_build_id),
        (("to_build_id", "to"), pair.to_build_id),
    ):
        for key in keys:
            value = json_field(doc, key, (str, int), what, None)
            if value is not None and check_id(value, f"{what} {key}") != expected:
                raise ManifestError(f"{what}: {key} is {value}, not {expected}")
    return patch_id, link


# --- the patch root manifest (protocol.md 7.2) ---------------------------------------------


@dataclass(frozen=True)
class PatchRoot:
    algorithm: str | None  # None: an empty patch
    base_product_id: str | None = None
    build_id_source: str | None = None
    build_id_target: str | None = None
    depots: tuple[DepotRef, ...] = ()
    product_ids: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # entries left out, each named (models/manifests.py)

    @property
    def is_empty(self) -> bool:
        return self.algorithm is None

    @property
    def is_supported(self) -> bool:
        return self.algorithm == SUPPORTED_ALGORITHM


def read_patch_root(body: bytes, what: str) -> PatchRoot:
    """Parse a patch root manifest's bytes as served (zlib JSON, or plain JSON).

    An empty body, an empty zlib stream and an empty JSON value (`{}`, `[]`, `null`) are
    GOG's empty patch (WARP: "most likely an empty patch"; GALAXYDL), not errors. Anything else
    must be a well-formed root.
    """
    text = inflate(body, what) if looks_like_zlib(body) else body
    if not text.strip():
        return PatchRoot(algorithm=None)
    if text.lstrip()[:1] not in (b"{", b"[", b"n"):
        raise ManifestError(f"{what}: neither zlib nor JSON")
    doc = decode_json(text, what)
    if doc in ({}, [], None):
        return PatchRoot(algorithm=None)
    return parse_patch_root(doc, what)


def parse_patch_root(doc: Any, what: str) -> PatchRoot:
    algorithm = json_field(doc, "algorithm", str, what)
    skipped: list[str] = []
    depots = parse_depot_refs(doc, what, skipped)
    product_ids = parse_product_ids(doc, what, skipped)
    return PatchRoot(
        algorithm=algorithm,
        base_product_id=_optional_id(doc, "baseProductId", what),
        build_id_source=_optional_id(doc, "buildId_source", what),
        build_id_target=_optional_id(doc, "buildId_target", what),
        depots=depots,
        product_ids=product_ids,
        skipped=tuple(skipped),
    )


def _optional_id(doc: Any, key: str, what: str) -> str | None:
    value = json_field(doc, key, (str, int), what, None)
    return check_id(value, f"{what} {key}") if value is not None else None


def root_mismatch(root: PatchRoot, pair: PatchPair) -> str | None:
    """Why a root does not belong to the pair it was named for, or None when it does."""
    for label, value, expected in (
        ("baseProductId", root.base_product_id, pair.product_id),
        ("buildId_source", root.build_id_source, pair.from_build_id),
        ("buildId_target", root.build_id_target, pair.to_build_id),
    ):
        if value is not None and value != expected:
            return f"its {label} is {value}, not {expected}"
    return None


def select_patch_depots(
    root: PatchRoot, product_id: str, dlc_ids: Iterable[str] | None
) -> list[DepotRef]:
    """The base product's patch depots, plus those of the DLC the target build lists.

    :param dlc_ids: None: DLC excluded (--no-dlc). Every language is kept, as for builds.
    """
    wanted = {product_id, *(dlc_ids or ())}
    seen: set[str] = set()
    selected = []
    for depot in root.depots:
        if depot.product_id in wanted and depot.manifest not in seen:
            seen.add(depot.manifest)
            selected.append(depot)
    return selected
