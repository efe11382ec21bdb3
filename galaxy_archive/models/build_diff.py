"""What changed between two builds' file lists, and what an update costs. Pure.

Files are matched by path ('/'-separated, so a V1 build compares with a V2 build). A path that
one build lists in several depots (language depots often share paths) is matched per depot
languages within that build: `("lang/speech.pak", "de-DE")`. Two files are the same when their
MD5s are equal (and their sizes: an MD5 that a hostile manifest repeats proves nothing of the
size); a file without an MD5 is the same only when its size and chunk MD5s are.

The update is what a client holding OLD must fetch to get NEW: the chunks of NEW's added and
changed files that no file of OLD references (by compressedMd5, each chunk once), compressed
and inflated; a V1 NEW file is a range of its blob and counts its own size in both columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from galaxy_archive.models.build_files import BuildFile, BuildFiles
from galaxy_archive.models.manifests import DepotDiff

FileKey = tuple[str, str]  # (path, "" or the depot languages when the path is in several)


@dataclass(frozen=True)
class UpdateCost:
    """Bytes a client holding OLD needs to fetch for NEW (see the module docstring)."""

    chunks: int  # V2 chunks; 0 for a V1 NEW build
    compressed_bytes: int
    uncompressed_bytes: int


@dataclass(frozen=True)
class BuildDiff:
    added: tuple[BuildFile, ...]
    removed: tuple[BuildFile, ...]
    changed: tuple[tuple[BuildFile, BuildFile], ...]  # (old, new), by path
    moved: tuple[tuple[BuildFile, BuildFile], ...]  # same bytes, another depot (same generation)
    identical: int  # files the same in both (moved ones included)
    update: UpdateCost

    @property
    def is_empty(self) -> bool:
        """No file added, removed, changed or moved."""
        return not (self.added or self.removed or self.changed or self.moved)


def diff_builds(old: BuildFiles, new: BuildFiles) -> BuildDiff:
    """Compare two builds' files (see the module docstring for the rules)."""
    old_files, new_files = keyed_files(old.files), keyed_files(new.files)
    added = tuple(new_files[k] for k in sorted(new_files.keys() - old_files.keys()))
    removed = tuple(old_files[k] for k in sorted(old_files.keys() - new_files.keys()))
    changed, moved, identical = [], [], 0
    for key in sorted(old_files.keys() & new_files.keys()):
        before, after = old_files[key], new_files[key]
        if not is_same_content(before, after):
            changed.append((before, after))
            continue
        identical += 1
        # Across generations every depot differs by construction: a move there says nothing.
        if old.generation == new.generation and _depot_key(before) != _depot_key(after):
            moved.append((before, after))
    fetched = [*added, *(after for _, after in changed)]
    return BuildDiff(
        added=added,
        removed=removed,
        changed=tuple(changed),
        moved=tuple(moved),
        identical=identical,
        update=update_cost(fetched, old.files),
    )


def keyed_files(files: Iterable[BuildFile]) -> dict[FileKey, BuildFile]:
    """Files by (path, variant): the variant names the depot languages only for a path that
    the build lists more than once; a repeat within the same languages keeps the first."""
    listed = list(files)
    counts = Counter(f.path for f in listed)
    keyed: dict[FileKey, BuildFile] = {}
    for file in listed:
        variant = ",".join(file.depot.languages) if counts[file.path] > 1 else ""
        keyed.setdefault((file.path, variant), file)
    return keyed


def is_same_content(a: BuildFile, b: BuildFile) -> bool:
    """Whether two files hold the same bytes, as far as their manifests say."""
    if a.size != b.size:
        return False
    if a.md5 is not None and b.md5 is not None:
        return a.md5 == b.md5
    return bool(a.chunks) and [c.md5 for c in a.chunks] == [c.md5 for c in b.chunks]


def update_cost(fetched: Iterable[BuildFile], held: Iterable[BuildFile]) -> UpdateCost:
    """The chunks (or V1 ranges) of `fetched` files that no `held` file references."""
    have = {chunk.compressed_md5 for file in held for chunk in file.chunks}
    needed: dict[str, tuple[int, int]] = {}
    range_bytes = 0
    for file in fetched:
        if not file.chunks:
            range_bytes += file.size
        for chunk in file.chunks:
            if chunk.compressed_md5 not in have:
                needed[chunk.compressed_md5] = (chunk.compressed_size, chunk.size)
    return UpdateCost(
        chunks=len(needed),
        compressed_bytes=sum(c for c, _ in needed.values()) + range_bytes,
        uncompressed_bytes=sum(u for _, u in needed.values()) + range_bytes,
    )


def covered_by_patch(
    changed: Sequence[tuple[BuildFile, BuildFile]], diffs: Iterable[DepotDiff]
) -> tuple[str, ...]:
    """Paths of changed files a patch's DepotDiff items turn from the old bytes into the new
    ones (path_target and both MD5s match), in the order of `changed`."""
    deltas = {(d.path_target.as_posix(), d.md5_source, d.md5_target) for d in diffs}
    return tuple(new.path for old, new in changed if (new.path, old.md5, new.md5) in deltas)


def _depot_key(file: BuildFile) -> tuple[str, tuple[str, ...], bool]:
    return (file.depot.product_id, file.depot.languages, file.depot.is_offline)
