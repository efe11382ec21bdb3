"""Two views of a :class:`~tests.fakegalaxy.world.World` as files: the archive and the CDN.

* :func:`expected_tree` is what a correct archiver ends with (SPEC "the archive tree"), so
  end-to-end tests can compare a sorted listing of the archive root with it;
* :func:`cdn_objects` / :func:`export_cdn_tree` lay every CDN object out under its URL path so a
  static server (nginx in the benchmark) can stand in for the CDN.
"""

from __future__ import annotations

import itertools
import os as _os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .content import galaxy_path
from .models import Build, V1Build, V2Build

if TYPE_CHECKING:
    from .world import World


def _selected_builds(
    world: World,
    products: set[str] | None,
    oses: set[str] | None,
    generations: set[int],
    include_delisted: bool,
    include_private: bool,
) -> list[Build]:
    out: list[Build] = []
    for build in world.builds:
        if products is not None and build.product_id not in products:
            continue
        if oses is not None and build.os not in oses:
            continue
        if build.generation not in generations:
            continue
        if build.build_id in world.delisted and not include_delisted:
            continue
        if not build.public and not include_private:
            continue
        out.append(build)
    return out


def expected_tree(
    world: World,
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
    """Archive path -> bytes for a complete sync of the selected builds.

    Rules (a test that disagrees with one can filter the result):

    * builds: those of ``products`` (root product ids; None = all), ``os`` and ``generations``;
      delisted and private builds only when asked (a fresh sync cannot see them);
    * V2: repository manifest, every depot manifest (DLC and gog depots only with
      ``include_dlc`` for DLC product ids), the offline depot manifest, all their served
      chunks; SFC member chunks only if the CDN serves them under the depot's product;
    * V1: ``repository.json`` and every depot manifest under the *root* product's directory,
      and one ``main.bin`` per product (DLC blobs with ``include_dlc``);
    * patches: for each pair of consecutive selected V2 builds of one product, OS and branch
      (ordered by date, then build id), the patch root manifest if one exists, and unless it is
      empty its depot manifests and delta chunks;
    * dependencies: the dependency repository manifest (``dependency_versions="latest"``: only
      the newest, which is all ``/dependencies/repository`` reveals) when any selected build
      names a dependency (or always with ``"all"``), plus the depots of the named ones (V2
      ``dependencies`` and, with ``include_v1_redists``, V1 ``redist`` ids) or of all.
    """
    product_set = set(products) if products is not None else None
    os_set = set(os) if os is not None else None
    builds = _selected_builds(
        world, product_set, os_set, set(generations), include_delisted, include_private
    )
    tree: dict[str, bytes] = {}

    def wants(product_id: str, root_id: str) -> bool:
        return include_dlc or product_id == root_id

    referenced: set[str] = set()
    for build in builds:
        if isinstance(build, V2Build):
            referenced.update(build.dependencies)
            tree[f"v2/meta/{galaxy_path(build.repository_hash)}"] = build.repository_bytes
            for depot in build.unique_depots():
                if not wants(depot.product_id, build.product_id):
                    continue
                tree[f"v2/meta/{galaxy_path(depot.manifest_hash)}"] = depot.manifest_bytes
                for h in depot.chunks:
                    tree[f"v2/store/{galaxy_path(h)}"] = world.store[h]
                for h in depot.member_chunks:
                    if depot.product_id in world.store_owners.get(h, set()):
                        tree[f"v2/store/{galaxy_path(h)}"] = world.store[h]
            offline = build.offline_depot
            tree[f"v2/meta/{galaxy_path(offline.manifest_hash)}"] = offline.manifest_bytes
            for h in offline.chunks:
                tree[f"v2/offline/{galaxy_path(h)}"] = world.offline[h]
        else:
            if include_v1_redists:
                referenced.update(build.redists)
            _add_v1(tree, build, include_dlc)

    if include_patches:
        _add_patches(world, tree, builds, include_dlc)
    if include_dependencies:
        _add_dependencies(world, tree, referenced, include_dependencies, dependency_versions)
    return tree


def _add_v1(tree: dict[str, bytes], build: V1Build, include_dlc: bool) -> None:
    root_dir = f"v1/manifests/{build.manifest_dir()}"
    tree[f"{root_dir}/repository.json"] = build.repository_bytes
    for depot in build.depots:
        if depot.product_id != build.product_id and not include_dlc:
            continue
        # The archiver stores every depot manifest beside repository.json, even those it had
        # to fetch from the DLC's own directory.
        tree[f"{root_dir}/{depot.manifest_name}"] = depot.manifest_bytes
    for pid, blob in build.blobs.items():
        if pid != build.product_id and not include_dlc:
            continue
        tree[f"v1/depots/{build.manifest_dir(pid)}/main.bin"] = blob


def _add_patches(
    world: World, tree: dict[str, bytes], builds: list[Build], include_dlc: bool
) -> None:
    groups: dict[tuple[str, str, str | None], list[V2Build]] = {}
    for build in builds:
        if isinstance(build, V2Build):
            groups.setdefault((build.product_id, build.os, build.branch), []).append(build)
    for (product_id, _, _), members in groups.items():
        members.sort(key=lambda b: (b.date_published, int(b.build_id)))
        for older, newer in itertools.pairwise(members):
            patch = world.patch(product_id, older.build_id, newer.build_id)
            if patch is None:
                continue
            tree[f"v2/patches/meta/{galaxy_path(patch.patch_id)}"] = patch.root_bytes
            for depot in patch.depots:
                if depot.product_id != product_id and not include_dlc:
                    continue
                tree[f"v2/patches/meta/{galaxy_path(depot.manifest_hash)}"] = depot.manifest_bytes
                for h in depot.chunks:
                    tree[f"v2/patches/store/{galaxy_path(h)}"] = world.patch_store[h]


def _add_dependencies(
    world: World,
    tree: dict[str, bytes],
    referenced: set[str],
    mode: Literal["referenced", "all"],
    versions: Literal["latest", "all"],
) -> None:
    repositories = (
        world.dependency_versions if versions == "all" else world.dependency_versions[-1:]
    )
    if mode == "referenced" and not referenced:
        return
    for repository in repositories:
        tree[f"v2/dependencies/meta/{galaxy_path(repository.manifest_hash)}"] = (
            repository.manifest_bytes
        )
        for dep_id, depot in repository.depots.items():
            if mode == "referenced" and dep_id not in referenced:
                continue
            tree[f"v2/dependencies/meta/{galaxy_path(depot.manifest_hash)}"] = depot.manifest_bytes
            for h in depot.chunks:
                tree[f"v2/dependencies/store/{galaxy_path(h)}"] = world.dep_store[h]


def cdn_objects(world: World) -> Iterator[tuple[str, bytes]]:
    """Every object the fake CDN serves, as (URL path without the leading slash, body).

    Signed objects appear under their plain path (no token segment); collector-linked
    repository manifests appear under both the collector and the CDN meta path.
    """
    cs = "content-system"
    for h, body in world.meta.items():
        yield f"{cs}/v2/meta/{galaxy_path(h)}", body
    for h in world.repository_hashes:
        yield f"manifests/builds/{galaxy_path(h)}", world.meta[h]
    for h, owners in world.store_owners.items():
        for pid in sorted(owners):
            yield f"{cs}/v2/store/{pid}/{galaxy_path(h)}", world.store[h]
    for h, body in world.offline.items():
        yield f"{cs}/v2/offline/{galaxy_path(h)}", body
    for h, body in world.patch_meta.items():
        yield f"{cs}/v2/patches/meta/{galaxy_path(h)}", body
    for h, owners in world.patch_store_owners.items():
        for pid in sorted(owners):
            yield f"{cs}/v2/patches/store/{pid}/{galaxy_path(h)}", world.patch_store[h]
    for h, body in world.dep_meta.items():
        yield f"{cs}/v2/dependencies/meta/{galaxy_path(h)}", body
    for h, body in world.dep_store.items():
        yield f"{cs}/v2/dependencies/store/{galaxy_path(h)}", body
    for key, body in world.v1_manifests.items():
        yield f"{cs}/v1/manifests/{key}", body
    for key, body in world.v1_blobs.items():
        yield f"{cs}/v1/depots/{key}/main.bin", body


def export_cdn_tree(world: World, directory: Path) -> int:
    """Write :func:`cdn_objects` under ``directory``; returns how many files were written."""
    count = 0
    for rel, body in cdn_objects(world):
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(body)
        _os.replace(tmp, target)
        count += 1
    return count
