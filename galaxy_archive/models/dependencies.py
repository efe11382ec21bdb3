"""The dependency (redistributable) repository (protocol.md §8): parsing and selection. Pure.

`/dependencies/repository` names the current repository manifest (zlib JSON on the CDN under
v2/dependencies/meta); its `depots` list every dependency with its depot manifest. Builds name
the dependencies they need: generation 2 in the repository manifest's `dependencies`,
generation 1 as `redist` entries, mapped to the V2 dependency of the same id.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from galaxy_archive.errors import ManifestError, UnsafeReference

# manifests' typed field readers, shared on purpose so every JSON field is checked alike.
from galaxy_archive.models.decoding import json_field, json_size, json_strings, parse_entries
from galaxy_archive.models.layout import check_id, check_md5

# Real ids: ISI, DirectX, MSVC2017_x64, dotNet4, DOSBox074, ScummVM (protocol.md §8).
_DEPENDENCY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_LINK_HASH_RE = re.compile(r"/([0-9a-fA-F]{32})/?$")


class DependencyMode(enum.StrEnum):
    """sync.dependencies: which dependency depots to archive."""

    REFERENCED = "referenced"  # those the builds archived in the run name
    ALL = "all"
    NONE = "none"  # TOML false, or --no-dependencies


@dataclass(frozen=True)
class RepositoryAnswer:
    """`/dependencies/repository?generation=2`."""

    manifest_url: str
    manifest_md5: str
    build_id: str
    generation: int | None


@dataclass(frozen=True)
class DependencyDepot:
    """One entry of the repository manifest's `depots`."""

    dependency_id: str
    manifest: str
    readable_name: str
    executable_path: str  # "" : files that go into the game folder (DOSBox, ScummVM)
    executable_arguments: str
    is_internal: bool
    languages: tuple[str, ...]
    size: int
    compressed_size: int
    signature: str | None
    item: dict[str, Any]


def check_dependency_id(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{what}: {str(value)[:80]!r} is not a dependency id")
    if not _DEPENDENCY_ID_RE.match(value):
        raise UnsafeReference(f"{what}: {value[:80]!r} is not a dependency id")
    return value


def parse_repository_answer(doc: Any, what: str) -> RepositoryAnswer:
    url = json_field(doc, "repository_manifest", str, what)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError(f"{what}: repository_manifest {url[:120]!r} is not an http(s) URL")
    match = _LINK_HASH_RE.search(parts.path)
    if match is None:
        raise ManifestError(f"{what}: repository_manifest does not end in a manifest id")
    generation = json_field(doc, "generation", int, what, None)
    return RepositoryAnswer(
        manifest_url=url,
        manifest_md5=check_md5(match.group(1), f"{what} repository_manifest"),
        build_id=check_id(json_field(doc, "build_id", (str, int), what), f"{what} build_id"),
        generation=generation,
    )


@dataclass(frozen=True)
class DependencyManifest:
    depots: tuple[DependencyDepot, ...]
    skipped: tuple[str, ...] = ()  # entries left out, each named (models/manifests.py)


def parse_dependency_manifest(doc: Any, what: str) -> DependencyManifest:
    """The repository manifest: `{"depots": [{dependencyId, manifest, ...}]}`."""
    skipped: list[str] = []
    entries = json_field(doc, "depots", list, what)
    depots = parse_entries(entries, _parse_dependency, f"{what} depots", skipped)
    return DependencyManifest(tuple(depots), tuple(skipped))


def _parse_dependency(entry: Any, what: str) -> DependencyDepot:
    dependency_id = check_dependency_id(
        json_field(entry, "dependencyId", str, what), f"{what} dependencyId"
    )
    what = f"{what} ({dependency_id})"
    executable = json_field(entry, "executable", dict, what, {})
    signature = json_field(entry, "signature", str, what, None)
    return DependencyDepot(
        dependency_id=dependency_id,
        manifest=check_md5(json_field(entry, "manifest", str, what), f"{what} manifest"),
        readable_name=json_field(entry, "readableName", str, what, ""),
        executable_path=json_field(executable, "path", str, f"{what} executable", ""),
        executable_arguments=json_field(executable, "arguments", str, f"{what} executable", ""),
        is_internal=json_field(entry, "internal", bool, what, False),
        languages=json_strings(entry, "languages", what),
        size=json_size(entry, "size", what, 0),
        compressed_size=json_size(entry, "compressedSize", what, 0),
        signature=signature,
        item=entry,
    )


@dataclass(frozen=True)
class Selection:
    depots: tuple[DependencyDepot, ...]
    unknown: tuple[str, ...]  # generation-2 names the repository does not list


def select_dependencies(
    depots: Sequence[DependencyDepot],
    mode: DependencyMode,
    v2_names: Iterable[str],
    v1_redists: Iterable[str] = (),
) -> Selection:
    """The depots to archive.

    A generation-1 redist is mapped to the V2 dependency of the same id where one exists
    (HGD: "we can use V2 dependencies for V1 games too"); many old redists have none, which
    is not a problem. A generation-2 name the repository lacks is reported as unknown (in
    every mode but NONE: the archive cannot hold it).
    """
    if mode is DependencyMode.NONE:
        return Selection((), ())
    listed = {d.dependency_id for d in depots}
    v2 = set(v2_names)
    if mode is DependencyMode.ALL:
        chosen = depots
    else:
        wanted = v2 | (set(v1_redists) & listed)
        chosen = [d for d in depots if d.dependency_id in wanted]
    return Selection(tuple(chosen), tuple(sorted(v2 - listed)))
