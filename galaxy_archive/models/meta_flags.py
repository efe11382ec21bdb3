"""Meta files kept although their bytes do not hash to their id (protocol.md 3.2).

A V2 meta file's id is, by strong evidence but not proof, the MD5 of its bytes as served. When
no endpoint serves bytes with that MD5 but the bytes served still parse as the manifest they
must be (plain JSON instead of zlib, 3.1; or a server whose ids are not content MD5s), the
bytes are kept at the object's usual path and flagged: `objects.served_md5` is the MD5 of the
bytes kept, which `verify` checks instead of the id. Bytes that do not parse are corrupt and
never kept. Chunks are not meta: their id is proven to be the MD5 of their bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from galaxy_archive.models.layout import ObjectKind

KEEPABLE_KINDS = frozenset({ObjectKind.META, ObjectKind.PATCH_META, ObjectKind.DEP_META})


def may_keep_mismatch(
    kind: ObjectKind, md5: str | None, check: Callable[[BinaryIO], None] | None
) -> bool:
    """Whether bytes of another MD5 may be kept: a meta file whose bytes can be proven to
    parse (its fetch has a check), known by an id."""
    return kind in KEEPABLE_KINDS and md5 is not None and check is not None
