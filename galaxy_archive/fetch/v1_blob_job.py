"""One V1 blob to fetch (`BlobJob`): where it goes, whose gen-1 secure link serves it, the
file records inside it, and its URL at each endpoint of that link. Values only."""

from __future__ import annotations

from dataclasses import dataclass

from galaxy_archive.fetch.sources import v1_blob_link, v1_blob_source
from galaxy_archive.fetch.tasks import FetchTask, Signed
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.links import Endpoint
from galaxy_archive.models.v1_ranges import Extent, extents_end
from galaxy_archive.upstream.galaxy_api import LinkRequest


def blob_suffix(endpoint: Endpoint, os_name: str, legacy_build_id: int, name: str) -> str:
    """What to append to an endpoint's path: the blob name when the link already points at the
    build's directory (HGD, WARP, protocol.md 6c), else ``<os>/<legacy>/<name>`` (GROG's
    ``path=/`` answer, which stops at the product)."""
    path = endpoint.parameters.get("path")
    if not isinstance(path, str):
        path = endpoint.url or endpoint.url_format or ""
    if path.split("?", 1)[0].rstrip("/").endswith(f"/{os_name}/{legacy_build_id}"):
        return name
    return f"{os_name}/{legacy_build_id}/{name}"


@dataclass(frozen=True)
class BlobJob:
    """One blob to fetch: where it goes, whose link serves it, the file records inside it."""

    object_id: int
    path: str  # relative to the archive root
    product_id: str
    os: str
    legacy_build_id: int
    name: str
    extents: tuple[Extent, ...]

    @property
    def what(self) -> str:
        return f"V1 blob {self.path}"

    @property
    def request(self) -> LinkRequest:
        return v1_blob_link(self.product_id, self.os, self.legacy_build_id)

    @property
    def min_size(self) -> int:
        return extents_end(self.extents)

    @property
    def source(self) -> Signed:
        return v1_blob_source(self.product_id, self.os, self.legacy_build_id, self.name)

    def url_for(self, endpoint: Endpoint, _suffix: str) -> str:
        """The blob's URL at `endpoint` (whose link may stop at the product or the build)."""
        return endpoint.build_url(blob_suffix(endpoint, self.os, self.legacy_build_id, self.name))

    def task(self) -> FetchTask:
        """The blob as a FetchTask, so results are recorded like any other download."""
        return FetchTask(
            self.object_id,
            ObjectKind.V1_BLOB,
            self.path,
            None,
            None,
            (self.source,),
            self.what,
            self.product_id,
        )
