"""The fake Galaxy's data model: a :class:`World` of products, builds and CDN objects.

A world is built with the ``add_*`` methods, deterministically from a seed, and holds every
object the fake server serves, keyed the way the CDN keys them:

* ``meta``: V2 repository, depot and offline-depot manifests, by MD5 of the stored zlib bytes;
* ``store`` + ``store_owners``: V2 chunks by compressedMd5, and the product ids each one is
  served under (a DLC's chunks only under the DLC's id);
* ``offline``: offline-depot chunks (served unsigned, never from the store);
* ``patch_meta``, ``patch_store`` + ``patch_store_owners``: patch manifests and delta chunks;
* ``dep_meta``, ``dep_store``: the dependency repository, its depot manifests and chunks;
* ``v1_manifests`` (key ``"<pid>/<os>/<legacy>/<name>.json"``) and ``v1_blobs``
  (key ``"<pid>/<os>/<legacy>"``).

Nothing here touches the network or the disk except :meth:`World.export_cdn_tree`.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from . import layout
from .content import (
    DEFAULT_CHUNK_SIZE_BYTES,
    ZLIB_LEVEL,
    Chunk,
    Chunker,
    FileInput,
    FileSpec,
    JsonDict,
    as_spec,
    encode_json,
    md5_hex,
    parent_dirs,
    random_bytes,
    zlib_json,
)
from .models import (
    Build,
    DependencyRepository,
    Depot,
    LinkStyle,
    Patch,
    PatchDepot,
    Product,
    V1Build,
    V1Depot,
    V2Build,
)
from .v1 import make_v1_depot, v1_repository

Namespace = Literal["store", "offline", "deps", "patches"]

# Default install arguments GOG uses for some well-known redistributables (protocol.md 7b/8).
_DEPENDENCY_ARGUMENTS = {
    "DirectX": "/silent",
    "MSVC2017": "/install /quiet /norestart",
    "MSVC2019": "/install /quiet /norestart",
}
# The magic bytes of a VCDIFF (xdelta3) stream, used for made-up deltas.
_VCDIFF_MAGIC = b"\xd6\xc3\xc4\x00"


def _stable_int(text: str) -> int:
    """A process-independent integer for a string (``hash()`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


class World:
    """Everything a :class:`~tests.fakegalaxy.server.FakeGalaxy` serves.

    :param seed: drives every generated id, secret, date and default content.
    :param compress_level: zlib level for chunks and meta; 6 gives GOG's ``78 9C`` header, a
        benchmark may choose 1 to build big worlds faster.
    :param workers: threads used to compress big depots.
    """

    def __init__(
        self, seed: int = 0, *, compress_level: int = ZLIB_LEVEL, workers: int = 4
    ) -> None:
        self.seed = seed
        self.compress_level = compress_level
        self._rng = random.Random(seed)
        self._chunker = Chunker(compress_level, workers)
        self.products: dict[str, Product] = {}
        self.builds: list[Build] = []
        self.patches: dict[tuple[str, str, str], Patch] = {}
        self.dependency_versions: list[DependencyRepository] = []
        self.delisted: set[str] = set()
        self.owned: set[int] = set()

        self.meta: dict[str, bytes] = {}
        self.repository_hashes: set[str] = set()
        self.collector_hashes: set[str] = set()  # repository manifests of collector-linked builds
        self.store: dict[str, bytes] = {}
        self.store_owners: dict[str, set[str]] = {}
        self.offline: dict[str, bytes] = {}
        self.patch_meta: dict[str, bytes] = {}
        self.patch_store: dict[str, bytes] = {}
        self.patch_store_owners: dict[str, set[str]] = {}
        self.dep_meta: dict[str, bytes] = {}
        self.dep_store: dict[str, bytes] = {}
        self.v1_manifests: dict[str, bytes] = {}
        self.v1_blobs: dict[str, bytes] = {}
        self.v1_blob_md5: dict[str, str] = {}

        self._next_build_number = 48_000_000_000_000_000 + self._rng.randrange(10**15)
        self._next_v1_build_number = 3000 + self._rng.randrange(200)
        self._next_legacy_id = 37_000_000 + self._rng.randrange(10**6)
        self._date = datetime(2019, 3, 1, tzinfo=UTC) + timedelta(
            seconds=self._rng.randrange(30 * 86400)
        )

    # ------------------------------------------------------------------ ids, dates, products

    def _new_build_id(self) -> str:
        """A 17-digit gen-2 build id; later builds get larger ids, as on GOG."""
        self._next_build_number += self._rng.randrange(10**11, 10**12)
        return str(self._next_build_number)

    def _new_date(self) -> str:
        """The next publication date, a few days after the previous one."""
        self._date += timedelta(days=self._rng.randrange(1, 20), seconds=self._rng.randrange(86400))
        return self._date.strftime("%Y-%m-%dT%H:%M:%S+0000")

    def add_product(
        self,
        product_id: str,
        name: str | None = None,
        *,
        install_directory: str | None = None,
        root_product_id: str | None = None,
    ) -> Product:
        """Register a product (idempotent; later calls may rename it). It is owned by default."""
        product = self.products.get(product_id)
        if product is None:
            product = Product(
                product_id=product_id,
                name=name or f"Product {product_id}",
                install_directory=install_directory or (name or f"Product {product_id}"),
                client_id=str(50_000_000_000_000_000 + self._rng.randrange(10**16)),
                client_secret=f"{self._rng.getrandbits(256):064x}",
                root_product_id=root_product_id,
            )
            self.products[product_id] = product
            self.owned.add(int(product_id))
        else:
            if name is not None:
                product.name = name
            if install_directory is not None:
                product.install_directory = install_directory
            if root_product_id is not None:
                product.root_product_id = root_product_id
        return product

    def _default_files(self, product_id: str) -> dict[str, FileInput]:
        """Small deterministic game files, identical for every build of a product."""
        base = self.seed * 1_000_003 + _stable_int(product_id)
        return {
            "bin\\game.exe": FileSpec(random_bytes(200_000, base), flags=("executable",)),
            "data\\main.pak": random_bytes(300_000, base + 1),
            "readme.txt": f"Readme of {product_id}\n".encode() * 20,
        }

    # ------------------------------------------------------------------ chunk registries

    def _register_chunk(self, chunk: Chunk, namespace: Namespace, owner: str | None) -> None:
        """Put a chunk body where the CDN will serve it; ``owner`` is None when not served."""
        if namespace == "store":
            self.store[chunk.compressed_md5] = chunk.body
            if owner is not None:
                self.store_owners.setdefault(chunk.compressed_md5, set()).add(owner)
        elif namespace == "offline":
            self.offline[chunk.compressed_md5] = chunk.body
        elif namespace == "deps":
            self.dep_store[chunk.compressed_md5] = chunk.body
        else:
            self.patch_store[chunk.compressed_md5] = chunk.body
            if owner is not None:
                self.patch_store_owners.setdefault(chunk.compressed_md5, set()).add(owner)

    def _make_depot(
        self,
        product_id: str,
        languages: list[str],
        files: Mapping[str, FileInput],
        *,
        namespace: Namespace,
        chunk_size: int,
        small_files: Mapping[str, bytes] | None = None,
        absent_member_chunks: bool = False,
        links: Mapping[str, str] | None = None,
        with_sha256: bool = False,
        is_gog_depot: bool = False,
        meta_store: dict[str, bytes] | None = None,
    ) -> Depot:
        """Chunk ``files`` (and an SFC of ``small_files``), register chunks and the manifest."""
        specs = {path: as_spec(value) for path, value in files.items()}
        small = dict(small_files or {})
        all_paths = list(specs) + list(small) + list(links or {})
        items: list[JsonDict] = [
            {"path": d, "type": "DepotDirectory"} for d in parent_dirs(all_paths, "\\")
        ]
        chunk_lists = self._chunker.chunk_files(list(specs.values()), chunk_size)
        served: list[str] = []
        members: list[str] = []
        compressed_size = 0
        size = 0

        def file_item(
            path: str, data: bytes, chunks: list[Chunk], flags: tuple[str, ...]
        ) -> JsonDict:
            item: JsonDict = {
                "chunks": [c.record() for c in chunks],
                "md5": md5_hex(data),
                "path": path,
                "type": "DepotFile",
            }
            if flags:
                item["flags"] = list(flags)
            if with_sha256:
                item["sha256"] = hashlib.sha256(data).hexdigest()
            return item

        for (path, spec), chunks in zip(specs.items(), chunk_lists, strict=True):
            for chunk in chunks:
                self._register_chunk(chunk, namespace, product_id)
                served.append(chunk.compressed_md5)
                compressed_size += chunk.compressed_size
            size += len(spec.data)
            items.append(file_item(path, spec.data, chunks, spec.flags))

        depot_body: JsonDict = {"items": items}
        sfc_data: bytes | None = None
        if small:
            # The container is the members concatenated; each member keeps its own chunks too.
            sfc_data = b"".join(small.values())
            sfc_chunks = self._chunker.chunk_files([FileSpec(sfc_data)], chunk_size)[0]
            for chunk in sfc_chunks:
                self._register_chunk(chunk, namespace, product_id)
                served.append(chunk.compressed_md5)
            member_chunk_lists = self._chunker.chunk_files(
                [FileSpec(v) for v in small.values()], chunk_size
            )
            offset = 0
            for (path, data), chunks in zip(small.items(), member_chunk_lists, strict=True):
                for chunk in chunks:
                    owner = None if absent_member_chunks else product_id
                    self._register_chunk(chunk, namespace, owner)
                    members.append(chunk.compressed_md5)
                    compressed_size += chunk.compressed_size
                size += len(data)
                item = file_item(path, data, chunks, ())
                item["sfcRef"] = {"offset": offset, "size": len(data)}
                items.append(item)
                offset += len(data)
            depot_body["smallFilesContainer"] = {"chunks": [c.record() for c in sfc_chunks]}
        for path, target in (links or {}).items():
            items.append({"path": path, "target": target, "type": "DepotLink"})

        manifest: JsonDict = {"depot": depot_body, "version": 2}
        body = zlib_json(manifest, self.compress_level)
        manifest_hash = md5_hex(body)
        (self.meta if meta_store is None else meta_store)[manifest_hash] = body
        contents = {path: spec.data for path, spec in specs.items()}
        contents.update(small)
        return Depot(
            product_id=product_id,
            languages=languages,
            manifest_hash=manifest_hash,
            manifest=manifest,
            manifest_bytes=body,
            files=contents,
            chunks=list(dict.fromkeys(served)),
            member_chunks=list(dict.fromkeys(members)),
            size=size,
            compressed_size=compressed_size,
            sfc=sfc_data,
            is_gog_depot=is_gog_depot,
        )

    # ------------------------------------------------------------------ generation 2

    def add_v2_build(
        self,
        product_id: str,
        os: str = "windows",
        *,
        build_id: str | None = None,
        files: Mapping[str, FileInput] | None = None,
        dlcs: Mapping[str, Mapping[str, FileInput]] | None = None,
        languages: Mapping[str, Mapping[str, FileInput]] | None = None,
        small_files: Mapping[str, bytes] | None = None,
        branch: str | None = None,
        private_password: str | None = None,
        date_published: str | None = None,
        version_name: str = "1.0",
        chunk_size: int = DEFAULT_CHUNK_SIZE_BYTES,
        absent_member_chunks: bool = False,
        link_style: LinkStyle = "cdn",
        dependencies: list[str] | None = None,
        links: Mapping[str, str] | None = None,
        tags: list[str] | None = None,
    ) -> V2Build:
        """Add a generation-2 build; see the module docstring for where its objects go.

        :param files: path (backslashes) -> content of the base product's ``["*"]`` depot.
            None: a few small default files, the same for every build of the product.
        :param private_password: makes the build private: listed only with this password.
        :param absent_member_chunks: the SFC members' own chunks are not served (404).
        :param link_style: ``"collector"`` lists the build with a manifests-collector link.
        :param dependencies: names for the repository's ``dependencies``; default ``["MSVC2019"]``.
        :param links: ``DepotLink`` items (path -> target) in the neutral depot.
        """
        product = self.add_product(product_id)
        dlc_ids = list(dlcs or {})
        for number, dlc_id in enumerate(dlc_ids, start=1):
            self.add_product(dlc_id, f"{product.name} - DLC {number}", root_product_id=product_id)
        build_id = build_id or self._new_build_id()
        is_osx = os == "osx"
        content_files = dict(self._default_files(product_id) if files is None else files)

        depots: list[Depot] = [
            self._make_depot(
                product_id,
                ["*"],
                content_files,
                namespace="store",
                chunk_size=chunk_size,
                small_files=small_files,
                absent_member_chunks=absent_member_chunks,
                links=links,
                with_sha256=is_osx,
            )
        ]
        for language, lang_files in (languages or {}).items():
            depots.append(
                self._make_depot(
                    product_id,
                    [language],
                    lang_files,
                    namespace="store",
                    chunk_size=chunk_size,
                    with_sha256=is_osx,
                )
            )
        for dlc_id, dlc_files in (dlcs or {}).items():
            depots.append(
                self._make_depot(
                    dlc_id,
                    ["*"],
                    dlc_files,
                    namespace="store",
                    chunk_size=chunk_size,
                    with_sha256=is_osx,
                )
            )
        # One isGogDepot per product and language, as GOG does; identical contents give the
        # same manifest id repeated across languages (gog-samples 2c).
        gog_languages = list(languages or {}) or ["en-US"]
        for pid in [product_id, *dlc_ids]:
            gog_files = self._gog_files(pid, product_id)
            for language in gog_languages:
                depots.append(
                    self._make_depot(
                        pid,
                        [language],
                        gog_files,
                        namespace="store",
                        chunk_size=chunk_size,
                        with_sha256=is_osx,
                        is_gog_depot=True,
                    )
                )
        offline = self._make_depot(
            product_id,
            ["*"],
            self._offline_files(product_id, build_id),
            namespace="offline",
            chunk_size=chunk_size,
        )

        deps = ["MSVC2019"] if dependencies is None else list(dependencies)
        repository: JsonDict = {
            "baseProductId": product_id,
            "buildId": build_id,
            "clientId": product.client_id,
            "clientSecret": product.client_secret,
            "dependencies": deps,
            "depots": [d.entry() for d in depots],
            "installDirectory": product.install_directory,
            "offlineDepot": offline.entry(),
            "platform": os,
            "products": [
                {
                    "name": self.products[pid].name,
                    "productId": pid,
                    "temp_arguments": "",
                    "temp_executable": "",
                }
                for pid in [product_id, *dlc_ids]
            ],
            "scriptInterpreter": False,
            "tags": ["csb_10_6_1_w_158", "galaxy"],
            "version": 2,
        }
        if not is_osx:
            for entry in repository["depots"]:
                entry["osBitness"] = ["64"]
        body = zlib_json(repository, self.compress_level)
        repository_hash = md5_hex(body)
        self.meta[repository_hash] = body
        self.repository_hashes.add(repository_hash)
        if link_style == "collector":
            self.collector_hashes.add(repository_hash)

        build = V2Build(
            product_id=product_id,
            os=os,
            build_id=build_id,
            branch=branch,
            private_password=private_password,
            date_published=date_published or self._new_date(),
            version_name=version_name,
            tags=list(tags or []),
            link_style=link_style,
            repository_hash=repository_hash,
            repository=repository,
            repository_bytes=body,
            depots=depots,
            offline_depot=offline,
            dependencies=deps,
            dlc_ids=dlc_ids,
        )
        self.builds.append(build)
        return build

    def _gog_files(self, product_id: str, root_id: str) -> dict[str, FileInput]:
        """The ``goggame-<pid>.info`` / ``.hashdb`` pair of an isGogDepot."""
        info = {
            "gameId": product_id,
            "rootGameId": root_id,
            "name": self.products[product_id].name,
            "playTasks": [{"category": "game", "isPrimary": True, "path": "bin\\game.exe"}],
            "version": 1,
        }
        hashdb = hashlib.sha256(f"hashdb:{product_id}:{self.seed}".encode()).hexdigest().encode()
        return {
            f"goggame-{product_id}.info": FileSpec(encode_json(info), flags=("hidden",)),
            f"goggame-{product_id}.hashdb": FileSpec(hashdb * 4, flags=("hidden",)),
        }

    def _offline_files(self, product_id: str, build_id: str) -> dict[str, FileInput]:
        """The offline depot's files (PLAYDEN: things like ``project.json``)."""
        project = {"buildId": build_id, "productId": product_id, "offline": True}
        return {
            "project.json": encode_json(project),
            f"goggame-{product_id}.script": f"script for {product_id}\n".encode() * 8,
        }

    # ------------------------------------------------------------------ generation 1

    def add_v1_build(
        self,
        product_id: str,
        os: str = "windows",
        *,
        build_id: str | None = None,
        legacy_build_id: int | None = None,
        files: Mapping[str, FileInput],
        dlcs: Mapping[str, Mapping[str, FileInput]] | None = None,
        redists: list[str] | None = None,
        date_published: str | None = None,
        padding: int = 0,
    ) -> V1Build:
        """Add a generation-1 build: repository.json, ``<uuid>.json`` depots, ``main.bin`` blobs.

        A DLC's depot manifest is served only under the DLC's own directory
        (``v1/manifests/<dlc>/<os>/<legacy>/``) to exercise protocol.md 6.2.

        :param redists: redist entries (no manifest); default ``["MSVC2010"]``.
        :param padding: filler bytes put between files in each blob (offsets stay exact).
        """
        product = self.add_product(product_id)
        dlc_ids = list(dlcs or {})
        for number, dlc_id in enumerate(dlc_ids, start=1):
            self.add_product(dlc_id, f"{product.name} - DLC {number}", root_product_id=product_id)
        if build_id is None:
            self._next_v1_build_number += self._rng.randrange(1, 60)
            build_id = str(self._next_v1_build_number)
        if legacy_build_id is None:
            self._next_legacy_id += self._rng.randrange(100_000, 2_000_000)
            legacy_build_id = self._next_legacy_id
        redist_names = ["MSVC2010"] if redists is None else list(redists)

        depots: list[V1Depot] = []
        blobs: dict[str, bytes] = {}
        for pid, pid_files in [(product_id, files), *(dlcs or {}).items()]:
            depot, blob = make_v1_depot(self._rng, self.products[pid], os, pid_files, padding)
            depots.append(depot)
            blobs[pid] = blob

        repository = v1_repository(
            product,
            [self.products[pid] for pid in dlc_ids],
            legacy_build_id,
            os,
            depots,
            redist_names,
        )
        repository_bytes = encode_json(repository)
        root_dir = f"{product_id}/{os}/{legacy_build_id}"
        self.v1_manifests[f"{root_dir}/repository.json"] = repository_bytes
        for depot in depots:
            # DLC depot manifests live only under the DLC's own id (protocol.md 6.2).
            self.v1_manifests[
                f"{depot.product_id}/{os}/{legacy_build_id}/{depot.manifest_name}"
            ] = depot.manifest_bytes
        for pid, blob in blobs.items():
            key = f"{pid}/{os}/{legacy_build_id}"
            self.v1_blobs[key] = blob
            self.v1_blob_md5[key] = md5_hex(blob)

        build = V1Build(
            product_id=product_id,
            os=os,
            build_id=build_id,
            legacy_build_id=legacy_build_id,
            date_published=date_published or self._new_date(),
            repository=repository,
            repository_bytes=repository_bytes,
            depots=depots,
            blobs=blobs,
            redists=redist_names,
            dlc_ids=dlc_ids,
        )
        self.builds.append(build)
        return build

    # ------------------------------------------------------------------ patches

    def add_patch(
        self,
        product_id: str,
        from_build: V2Build,
        to_build: V2Build,
        *,
        deltas: Mapping[str, bytes] | None = None,
        empty: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE_BYTES,
    ) -> Patch:
        """Add a patch from one V2 build to another.

        :param deltas: path -> raw delta bytes (e.g. real xdelta3 output). None: a made-up delta
            (VCDIFF magic + filler) for every path present in both builds with changed content.
        :param empty: GOG's "no patch made" case: the root manifest is ``zlib("{}")``.
        """
        if empty:
            root = zlib.compress(b"{}")
            patch_id = md5_hex(root)
            self.patch_meta[patch_id] = root
            patch = Patch(
                product_id, from_build.build_id, to_build.build_id, patch_id, root, [], True
            )
            self.patches[(product_id, from_build.build_id, to_build.build_id)] = patch
            return patch

        old = from_build.file_map()
        new = to_build.file_map()
        if deltas is None:
            deltas = {
                path: _VCDIFF_MAGIC + random_bytes(min(4096, len(data)) + 16, _stable_int(path))
                for path, (_, data) in new.items()
                if path in old and old[path][1] != data
            }
        grouped: dict[tuple[str, tuple[str, ...]], dict[str, bytes]] = {}
        for path, delta in deltas.items():
            if path not in new or path not in old:
                raise ValueError(f"patched path {path!r} must exist in both builds")
            depot = new[path][0]
            grouped.setdefault((depot.product_id, tuple(depot.languages)), {})[path] = delta

        patch_depots: list[PatchDepot] = []
        for (pid, langs), diffs in grouped.items():
            chunk_lists = self._chunker.chunk_files(
                [FileSpec(d) for d in diffs.values()], chunk_size
            )
            items: list[JsonDict] = []
            chunks_used: list[str] = []
            compressed = 0
            for (path, delta), chunks in zip(diffs.items(), chunk_lists, strict=True):
                for chunk in chunks:
                    self._register_chunk(chunk, "patches", pid)
                    chunks_used.append(chunk.compressed_md5)
                    compressed += chunk.compressed_size
                items.append(
                    {
                        "chunks": [c.record() for c in chunks],
                        "md5": md5_hex(delta),
                        "md5_source": md5_hex(old[path][1]),
                        "md5_target": md5_hex(new[path][1]),
                        "path_source": path,
                        "path_target": path,
                        "type": "DepotDiff",
                    }
                )
            body = zlib_json({"depot": {"items": items}, "version": 2}, self.compress_level)
            manifest_hash = md5_hex(body)
            self.patch_meta[manifest_hash] = body
            patch_depots.append(
                PatchDepot(
                    product_id=pid,
                    languages=list(langs),
                    manifest_hash=manifest_hash,
                    manifest_bytes=body,
                    diffs=dict(diffs),
                    chunks=list(dict.fromkeys(chunks_used)),
                    size=sum(len(d) for d in diffs.values()),
                    compressed_size=compressed,
                )
            )

        product = self.products[product_id]
        root_manifest: JsonDict = {
            "algorithm": "xdelta3",
            "baseProductId": product_id,
            "buildId_source": from_build.build_id,
            "buildId_target": to_build.build_id,
            "clientId": product.client_id,
            "clientSecret": product.client_secret,
            "depots": [
                {
                    "compressedSize": d.compressed_size,
                    "languages": d.languages,
                    "manifest": d.manifest_hash,
                    "productId": d.product_id,
                    "size": d.size,
                }
                for d in patch_depots
            ],
            "products": [
                {"name": self.products[pid].name, "productId": pid} for pid in to_build.product_ids
            ],
        }
        root = zlib_json(root_manifest, self.compress_level)
        patch_id = md5_hex(root)
        self.patch_meta[patch_id] = root
        patch = Patch(
            product_id, from_build.build_id, to_build.build_id, patch_id, root, patch_depots
        )
        self.patches[(product_id, from_build.build_id, to_build.build_id)] = patch
        return patch

    # ------------------------------------------------------------------ dependencies

    def set_dependencies(
        self,
        build_id: str,
        deps: Mapping[str, Mapping[str, FileInput]],
        *,
        executable_paths: Mapping[str, str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE_BYTES,
    ) -> DependencyRepository:
        """Publish a (new) version of the dependency repository; the newest one is served.

        :param deps: dependencyId -> files, e.g. ``{"__redist\\\\DirectX\\\\DXSETUP.exe": b"…"}``.
        :param executable_paths: dependencyId -> ``executable.path``; default: the first file's
            path with forward slashes. An empty string means "files for the game folder".
        """
        depots: dict[str, Depot] = {}
        entries: list[JsonDict] = []
        for dep_id, dep_files in deps.items():
            depot = self._make_depot(
                dep_id,
                ["*"],
                dep_files,
                namespace="deps",
                chunk_size=chunk_size,
                meta_store=self.dep_meta,
            )
            depots[dep_id] = depot
            if executable_paths is not None and dep_id in executable_paths:
                exe = executable_paths[dep_id]
            else:
                exe = next(iter(dep_files), "").replace("\\", "/")
            entries.append(
                {
                    "compressedSize": depot.compressed_size,
                    "dependencyId": dep_id,
                    "executable": {
                        "arguments": _DEPENDENCY_ARGUMENTS.get(dep_id, "") if exe else "",
                        "path": exe,
                    },
                    "internal": False,
                    "languages": ["*"],
                    "manifest": depot.manifest_hash,
                    "readableName": dep_id,
                    "signature": hashlib.sha256(
                        f"{depot.manifest_hash}:{self.seed}".encode()
                    ).hexdigest(),
                    "size": depot.size,
                }
            )
        manifest: JsonDict = {"depots": entries}
        body = zlib_json(manifest, self.compress_level)
        manifest_hash = md5_hex(body)
        self.dep_meta[manifest_hash] = body
        repository = DependencyRepository(build_id, manifest_hash, manifest, body, depots)
        self.dependency_versions.append(repository)
        return repository

    # ------------------------------------------------------------------ lookups

    def delist(self, build_id: str) -> None:
        """Hide a build from builds lists; its objects stay on the CDN (like GOG)."""
        self.delisted.add(build_id)

    def relist(self, build_id: str) -> None:
        """Undo :meth:`delist`."""
        self.delisted.discard(build_id)

    def find_build(self, build_id: str) -> Build:
        """The build with this id (KeyError if none)."""
        for build in self.builds:
            if build.build_id == build_id:
                return build
        raise KeyError(build_id)

    def builds_for(self, product_id: str, os: str) -> list[Build]:
        """Every build of a product and OS, newest first (delisted and private included)."""
        found = [b for b in self.builds if b.product_id == product_id and b.os == os]
        return sorted(found, key=lambda b: (b.date_published, int(b.build_id)), reverse=True)

    def patch(self, product_id: str, from_build_id: str, to_build_id: str) -> Patch | None:
        """The patch for this pair, if one was added."""
        return self.patches.get((product_id, from_build_id, to_build_id))

    def latest_dependencies(self) -> DependencyRepository | None:
        """The newest dependency repository version, or None when there is none."""
        return self.dependency_versions[-1] if self.dependency_versions else None

    # ------------------------------------------------------------------ views of the world

    def expected_tree(
        self,
        *,
        products: Iterable[str] | None = None,
        os: Iterable[str] | None = None,
        generations: Iterable[int] = (1, 2),
        include_dlc: bool = True,
        include_patches: bool = True,
        include_dependencies: Literal["referenced", "all", False] = "referenced",
        dependency_versions: Literal["latest", "all"] = "latest",
        include_v1_redists: bool = True,
        include_delisted: bool = False,
        include_private: bool = False,
    ) -> dict[str, bytes]:
        """Archive-relative path -> bytes that a complete sync of the selection ends with.

        See :func:`tests.fakegalaxy.layout.expected_tree` for the exact rules.
        """
        return layout.expected_tree(
            self,
            products=products,
            os=os,
            generations=generations,
            include_dlc=include_dlc,
            include_patches=include_patches,
            include_dependencies=include_dependencies,
            dependency_versions=dependency_versions,
            include_v1_redists=include_v1_redists,
            include_delisted=include_delisted,
            include_private=include_private,
        )

    def cdn_objects(self) -> Iterator[tuple[str, bytes]]:
        """Every CDN object as (URL path without leading slash, body)."""
        return layout.cdn_objects(self)

    def export_cdn_tree(self, directory: str | Path) -> int:
        """Write every CDN object under its URL path (for a static server); returns the count."""
        return layout.export_cdn_tree(self, Path(directory))
