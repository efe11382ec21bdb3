"""The objects a fake Galaxy world is made of: products, builds, depots, patches, dependencies.

These are plain records produced by :class:`~tests.fakegalaxy.world.World`; tests read them to
know what the server will serve (hashes, file contents, ids). They hold no sockets and do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .content import JsonDict

LinkStyle = Literal["cdn", "collector"]


@dataclass
class Product:
    """A product (base game or DLC) and the per-game OAuth client GOG gives it."""

    product_id: str
    name: str
    install_directory: str
    client_id: str
    client_secret: str
    root_product_id: str | None = None  # set for DLCs

    @property
    def is_dlc(self) -> bool:
        return self.root_product_id is not None


@dataclass
class Depot:
    """One V2 depot (game, offline or dependency) with its manifest and what it references.

    ``files`` maps item paths (backslashes, as in the manifest) to content, SFC members included.
    ``chunks`` are the compressedMd5s that are always served (file chunks and SFC chunks);
    ``member_chunks`` are the SFC members' own chunks, which the CDN may or may not serve.
    """

    product_id: str
    languages: list[str]
    manifest_hash: str
    manifest: JsonDict
    manifest_bytes: bytes = field(repr=False)
    files: dict[str, bytes] = field(repr=False)
    chunks: list[str]
    member_chunks: list[str]
    size: int
    compressed_size: int
    sfc: bytes | None = field(default=None, repr=False)
    is_gog_depot: bool = False

    def entry(self) -> JsonDict:
        """The depot's entry in a repository manifest's ``depots`` list."""
        out: JsonDict = {
            "compressedSize": self.compressed_size,
            "languages": list(self.languages),
            "manifest": self.manifest_hash,
            "productId": self.product_id,
            "size": self.size,
        }
        if self.is_gog_depot:
            out["isGogDepot"] = True
        return out


@dataclass
class V2Build:
    """A generation-2 build: repository manifest, depots (DLC and gog ones too), offline depot."""

    product_id: str
    os: str
    build_id: str
    branch: str | None
    private_password: str | None
    date_published: str
    version_name: str
    tags: list[str]
    link_style: LinkStyle
    repository_hash: str
    repository: JsonDict
    repository_bytes: bytes = field(repr=False)
    depots: list[Depot] = field(repr=False)
    offline_depot: Depot = field(repr=False)
    dependencies: list[str]
    dlc_ids: list[str]
    generation: int = 2

    @property
    def public(self) -> bool:
        return self.private_password is None

    @property
    def product_ids(self) -> list[str]:
        """The base product followed by its DLCs."""
        return [self.product_id, *self.dlc_ids]

    def unique_depots(self) -> list[Depot]:
        """Depots with duplicate manifests removed (gog depots repeat once per language)."""
        seen: set[str] = set()
        out: list[Depot] = []
        for depot in self.depots:
            if depot.manifest_hash not in seen:
                seen.add(depot.manifest_hash)
                out.append(depot)
        return out

    def file_map(self, product_id: str | None = None) -> dict[str, tuple[Depot, bytes]]:
        """Path -> (depot, content) over content and gog depots, optionally for one product."""
        out: dict[str, tuple[Depot, bytes]] = {}
        for depot in self.unique_depots():
            if product_id is not None and depot.product_id != product_id:
                continue
            for path, data in depot.files.items():
                out[path] = (depot, data)
        return out


@dataclass
class V1Depot:
    """A generation-1 depot: a ``<uuid>.json`` manifest and the files it places in a blob."""

    product_id: str
    manifest_name: str
    manifest: JsonDict
    manifest_bytes: bytes = field(repr=False)
    files: dict[str, bytes] = field(repr=False)  # V1 path ("/dir/file") -> content
    offsets: dict[str, int] = field(repr=False)  # V1 path -> offset into the product's blob


@dataclass
class V1Build:
    """A generation-1 build: ``repository.json``, depot manifests, a ``main.bin`` per product."""

    product_id: str
    os: str
    build_id: str
    legacy_build_id: int
    date_published: str
    repository: JsonDict
    repository_bytes: bytes = field(repr=False)
    depots: list[V1Depot] = field(repr=False)
    blobs: dict[str, bytes] = field(repr=False)  # product id -> main.bin
    redists: list[str]
    dlc_ids: list[str]
    version_name: str = ""
    tags: list[str] = field(default_factory=list)
    branch: str | None = None
    private_password: str | None = None
    generation: int = 1

    @property
    def public(self) -> bool:
        return self.private_password is None

    @property
    def product_ids(self) -> list[str]:
        return [self.product_id, *self.dlc_ids]

    def manifest_dir(self, product_id: str | None = None) -> str:
        """``<pid>/<os>/<legacy>``: the directory under ``v1/manifests`` and ``v1/depots``."""
        return f"{product_id or self.product_id}/{self.os}/{self.legacy_build_id}"


Build = V2Build | V1Build


@dataclass
class PatchDepot:
    """One patch depot manifest: the xdelta3 deltas for one (product, languages) depot."""

    product_id: str
    languages: list[str]
    manifest_hash: str
    manifest_bytes: bytes = field(repr=False)
    diffs: dict[str, bytes] = field(repr=False)  # path -> raw delta bytes
    chunks: list[str]
    size: int = 0  # bytes of raw deltas
    compressed_size: int = 0  # bytes of their zlib chunks


@dataclass
class Patch:
    """A patch between two V2 builds of one product (possibly GOG's empty ``{}`` patch)."""

    product_id: str
    from_build_id: str
    to_build_id: str
    patch_id: str  # = MD5 of root_bytes, the id in the patches index
    root_bytes: bytes = field(repr=False)
    depots: list[PatchDepot] = field(repr=False)
    empty: bool = False


@dataclass
class DependencyRepository:
    """One version of the shared dependency (redistributable) repository."""

    build_id: str
    manifest_hash: str
    manifest: JsonDict
    manifest_bytes: bytes = field(repr=False)
    depots: dict[str, Depot] = field(repr=False)  # dependencyId -> depot
