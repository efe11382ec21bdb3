"""Where each object lives in the archive tree. Pure: names in, relative paths out.

Every path is built from validated pieces (32-hex hashes, digit ids, known OS names, UUID-like
manifest names), so nothing a server sends can point outside the archive root.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from galaxy_archive.errors import ManifestError, UnsafeReference

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_ID_RE = re.compile(r"^[0-9]{1,24}$")
_V1_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_V1_PATH_RE = re.compile(
    r"^v1/(manifests|depots)/([0-9]{1,24})/(windows|osx|linux)/([0-9]{1,24})/"
    r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
)


class ObjectKind(enum.StrEnum):
    """A kind of stored object; its value is what the DB records."""

    META = "meta"  # v2 repository, depot and offline-depot manifests
    STORE = "store"  # v2 chunks, incl. small-files containers
    OFFLINE = "offline"  # offline-depot chunks
    PATCH_META = "patch_meta"
    PATCH_STORE = "patch_store"
    DEP_META = "dep_meta"
    DEP_STORE = "dep_store"
    V1_MANIFEST = "v1_manifest"
    V1_BLOB = "v1_blob"

    @property
    def is_manifest(self) -> bool:
        return self in (
            ObjectKind.META,
            ObjectKind.PATCH_META,
            ObjectKind.DEP_META,
            ObjectKind.V1_MANIFEST,
        )


_CAS_DIRS = {
    ObjectKind.META: "v2/meta",
    ObjectKind.STORE: "v2/store",
    ObjectKind.OFFLINE: "v2/offline",
    ObjectKind.PATCH_META: "v2/patches/meta",
    ObjectKind.PATCH_STORE: "v2/patches/store",
    ObjectKind.DEP_META: "v2/dependencies/meta",
    ObjectKind.DEP_STORE: "v2/dependencies/store",
}


def check_md5(value: object, what: str) -> str:
    """Return value as a lower-case 32-hex MD5, or raise ManifestError naming `what`."""
    if not isinstance(value, str):
        raise ManifestError(f"{what}: {value!r} is not a 32-hex MD5")
    if not _MD5_RE.match(value.lower()):
        raise UnsafeReference(f"{what}: {value!r} is not a 32-hex MD5")
    return value.lower()


def check_id(value: object, what: str) -> str:
    """A product or build id: digits only (ints are accepted and turned into strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ManifestError(f"{what}: {value!r} is not a numeric id")
    if not _ID_RE.match(value):
        raise UnsafeReference(f"{what}: {value!r} is not a numeric id")
    return value


def check_v1_name(value: object, what: str) -> str:
    """A V1 file name (``<uuid>.json``, ``main.bin``): one safe path component."""
    if not isinstance(value, str):
        raise ManifestError(f"{what}: {value!r} is not a safe file name")
    if not _V1_NAME_RE.match(value) or ".." in value:
        raise UnsafeReference(f"{what}: {value!r} is not a safe file name")
    return value


def galaxy_path(md5: str) -> str:
    """'abcdef…' -> 'ab/cd/abcdef…' (the CDN's and the archive's fan-out)."""
    return f"{md5[0:2]}/{md5[2:4]}/{md5}"


def cas_path(kind: ObjectKind, md5: str) -> str:
    """Relative archive path of a content-addressed object."""
    return f"{_CAS_DIRS[kind]}/{galaxy_path(check_md5(md5, str(kind)))}"


def v1_manifest_path(product_id: str, os_name: str, legacy_build_id: int, name: str) -> str:
    return _v1_path("v1/manifests", product_id, os_name, legacy_build_id, name)


def v1_blob_path(product_id: str, os_name: str, legacy_build_id: int, name: str) -> str:
    return _v1_path("v1/depots", product_id, os_name, legacy_build_id, name)


@dataclass(frozen=True)
class V1Location:
    """What a V1 object's archive path names: ``v1/<top>/<pid>/<os>/<legacy>/<name>``."""

    top: str  # "manifests" | "depots"
    product_id: str
    os: str
    legacy_build_id: int
    name: str


def split_v1_path(relative: str) -> V1Location | None:
    """The parts of a path made by v1_manifest_path / v1_blob_path; None for any other path."""
    match = _V1_PATH_RE.match(relative)
    if match is None:
        return None
    top, product_id, os_name, legacy, name = match.groups()
    return V1Location(top, product_id, os_name, int(legacy), name)


def _v1_path(top: str, product_id: str, os_name: str, legacy_build_id: int, name: str) -> str:
    if os_name not in ("windows", "osx", "linux"):
        raise ManifestError(f"unknown os {os_name!r}")
    pid = check_id(product_id, "product id")
    build = check_id(legacy_build_id, "legacy build id")
    return f"{top}/{pid}/{os_name}/{build}/{check_v1_name(name, 'V1 file name')}"


def safe_relative_path(raw: object, what: str) -> PurePosixPath:
    """A manifest's file path as a relative POSIX path that cannot leave its directory.

    GOG paths use backslashes (protocol.md 4.2); absolute paths, drive letters, NUL bytes and
    '..' components are hostile and rejected.
    """
    if not isinstance(raw, str):
        raise ManifestError(f"{what}: path {raw!r} is not a string")
    text = raw.replace("\\", "/")
    if "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UnsafeReference(f"{what}: path {raw!r} is absolute or invalid")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise UnsafeReference(f"{what}: path {raw!r} is empty or leaves its directory")
    return PurePosixPath(*parts)


def safe_link_target(link: PurePosixPath, raw: object, what: str) -> str:
    """A link's target (relative to the link's directory, backslashes as '/') that stays inside
    the install directory; absolute targets and ones that climb out of it are hostile."""
    if not isinstance(raw, str):
        raise ManifestError(f"{what}: link target {raw!r} is not a string")
    text = raw.replace("\\", "/")
    if not text or "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UnsafeReference(f"{what}: link target {raw!r} is empty, absolute or invalid")
    depth = len(link.parts) - 1  # directories between the install directory and the link
    for part in text.split("/"):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            raise UnsafeReference(f"{what}: link target {raw!r} leaves the install directory")
    return text
