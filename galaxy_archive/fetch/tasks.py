"""What the fetchers take and give: a task naming one object and where to get it, and its result.

Values only: the chunk downloader and the V1 blob fetcher run them, sync and repair build
them, `sources` says which `Source`s an object kind has.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.storage.interface import Check
from galaxy_archive.upstream.galaxy_api import LinkRequest


class Outcome(enum.StrEnum):
    FETCHED = "fetched"
    ALREADY_PRESENT = "already_present"  # a correct file was already at the final path
    ABSENT = "absent_upstream"  # every endpoint answered 404
    FAILED = "failed"
    STOPPED = "stopped"  # not attempted: the run is stopping


@dataclass(frozen=True)
class Signed:
    """Fetch through a secure (or open) link: each endpoint's URL for `suffix`."""

    request: LinkRequest
    suffix: str


@dataclass(frozen=True)
class Plain:
    """Fetch from a fixed, unsigned URL (meta files, offline chunks)."""

    url: str

    @property
    def endpoint(self) -> str:
        return urlsplit(self.url).hostname or "cdn"


Source = Signed | Plain


@dataclass(frozen=True)
class FetchTask:
    object_id: int
    kind: ObjectKind
    path: str
    md5: str | None
    size: int | None
    sources: tuple[Source, ...]
    what: str
    product_id: str | None = None
    # Run on the complete bytes (a reader at 0) before they become visible: a manifest must
    # also parse; an exception from it discards them like a hash mismatch.
    check: Check | None = None


@dataclass(frozen=True)
class FetchResult:
    task: FetchTask
    outcome: Outcome
    size: int = 0
    md5: str | None = None  # measured while storing
    endpoint: str | None = None
    source_url: str | None = None  # redacted
    error: str | None = None
    served_md5: str | None = None  # a meta file kept with bytes of this MD5, not its id
