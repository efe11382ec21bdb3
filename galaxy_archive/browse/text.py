"""`show` and `diff` documents as terminal text. Pure: documents in, lines out.

Names come from manifests, which may be hostile: every path is escaped to one printable line
(output.escape_name: a newline or an escape sequence in a file name cannot forge a line or
drive the terminal), every other text from a manifest goes through output.one_line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from galaxy_archive.output import escape_name, one_line
from galaxy_archive.report import human_bytes


def manifest_lines(doc: dict[str, Any]) -> Iterator[str]:
    """A `show HASH` document: what it is, what names it, then the manifest as indented JSON."""
    yield f"{escape_name(doc['path'])}: {doc['kind']}, {doc['state']}, {doc['size']} bytes"
    refs = [_reference(ref) for ref in doc["referenced_by"]]
    yield "referenced by: " + (", ".join(refs) if refs else "nothing recorded")
    # json.dumps escapes control characters itself; one_line catches what it leaves raw with
    # ensure_ascii off (bidi overrides, lone surrogates from a hostile escape).
    for line in json.dumps(doc["manifest"], indent=2, ensure_ascii=False).splitlines():
        yield one_line(line)


def _reference(ref: dict[str, str]) -> str:
    if "from_build_id" in ref:
        return f"patch {ref['product_id']} {ref['from_build_id']} -> {ref['to_build_id']}"
    if "dependency_id" in ref:
        return (
            f"dependency {one_line(ref['dependency_id'])} (repository {ref['repository_build_id']})"
        )
    if "build_id" in ref:
        return f"product {ref['product_id']} build {ref['build_id']}"
    return f"dependency repository {ref['repository_build_id']}"


def build_lines(doc: dict[str, Any]) -> Iterator[str]:
    """A `show PRODUCT_ID BUILD_ID` document."""
    yield (
        f"product {doc['product_id']} build {doc['build_id']}: gen{doc['generation']} "
        f"{doc['os']}, branch {one_line(doc['branch'] or 'default')}, "
        f"version {one_line(doc['version_name'] or '-')}"
    )
    listed = "listed" if doc["is_listed"] else "DELISTED"
    if doc.get("added_by"):
        listed += f" (added by {one_line(doc['added_by'])})"
    yield (
        f"published {doc['date_published'] or '-'}, seen {doc['first_seen']} .. "
        f"{doc['last_seen']}, {listed}, {doc['state']}"
    )
    yield f"depots ({len(doc['depots'])}):"
    for depot in doc["depots"]:
        yield "  " + _depot_line(depot)
    deps = [_dependency(d) for d in doc["dependencies"]]
    yield "dependencies: " + (", ".join(deps) if deps else "none")
    for patch in doc["patches"]:
        yield (
            f"patch {patch['from_build_id']} -> {patch['to_build_id']}: {patch['outcome']}, "
            f"{patch['state']}, {human_bytes(patch['compressed_size'])}"
        )
    if "files" in doc:
        yield f"files ({len(doc['files'])}):"
        for file in doc["files"]:
            yield "  " + _file_line(file)


def _depot_line(depot: dict[str, Any]) -> str:
    languages = ",".join(depot["languages"]) or "-"
    what = "offline depot" if depot["is_offline"] else "depot"
    files = "? files" if depot["file_count"] is None else f"{depot['file_count']} files"
    size = depot["files_size"] if depot["files_size"] is not None else depot["size"] or 0
    if depot["is_verified"]:
        checked = "verified"
    elif depot["is_complete"]:
        checked = "complete"
    else:
        checked = f"INCOMPLETE {depot['objects_stored']}/{depot['objects_needed']} objects"
    line = (
        f"{what} {depot['manifest']} product {depot['product_id']} [{one_line(languages)}]: "
        f"{files}, {human_bytes(size)}, {checked}"
    )
    return line + (f" ({one_line(depot['problem'])})" if depot["problem"] else "")


def _dependency(dep: dict[str, Any]) -> str:
    state = dep.get("state")
    return one_line(dep["id"]) + (f" ({state})" if state else "")


def _file_line(file: dict[str, Any]) -> str:
    marks = [*file["flags"], *(["sfc_member"] if file["is_sfc_member"] else [])]
    languages = ",".join(file["languages"]) or "-"
    return (
        f"{escape_name(file['path'])}  {file['size']}  {file['md5'] or '-'}  "
        f"{file['depot_product_id']} [{one_line(languages)}]"
        + (f"  {one_line(','.join(marks))}" if marks else "")
    )


def diff_lines(doc: dict[str, Any]) -> Iterator[str]:
    """A `diff` document: one line per file added (+), removed (-), changed (~), moved (>)."""
    old, new = doc["old"], doc["new"]
    yield (
        f"product {doc['product_id']}: {old['build_id']} (gen{old['generation']} "
        f"{one_line(old['version_name'] or '-')}) -> {new['build_id']} (gen{new['generation']} "
        f"{one_line(new['version_name'] or '-')}): {len(doc['added'])} added, "
        f"{len(doc['removed'])} removed, {len(doc['changed'])} changed, "
        f"{len(doc['moved'])} moved, {doc['identical']} identical"
    )
    for file in doc["added"]:
        yield f"+ {escape_name(file['path'])} ({file['size']} bytes)"
    for file in doc["removed"]:
        yield f"- {escape_name(file['path'])} ({file['size']} bytes)"
    for pair in doc["changed"]:
        yield (
            f"~ {escape_name(pair['path'])} ({pair['old']['size']} -> {pair['new']['size']} bytes)"
        )
    for pair in doc["moved"]:
        yield (
            f"> {escape_name(pair['path'])} (depot {_depot_of(pair['old'])} -> "
            f"{_depot_of(pair['new'])})"
        )
    update = doc["update"]
    yield (
        f"update: {update['chunks']} chunks, {human_bytes(update['compressed_bytes'])} to "
        f"fetch ({human_bytes(update['uncompressed_bytes'])} inflated)"
    )
    patch = doc["patch"]
    if patch is not None:
        yield (
            f"patch {patch['patch_id']} ({patch['state']}): "
            f"{human_bytes(patch['compressed_size'])}, covers {len(patch['covers'])} of "
            f"{len(doc['changed'])} changed files"
        )
        for path in patch["not_covered"]:
            yield f"  not covered: {escape_name(path)}"


def _depot_of(file: dict[str, Any]) -> str:
    return f"{file['depot_product_id']} [{one_line(','.join(file['languages']) or '-')}]"
