"""Generation-1 ("legacy") objects: ``<uuid>.json`` depot manifests, blobs and repository.json.

Shapes follow gog-samples 4a (repository) and 5a (depot manifest); see protocol.md section 6.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence

from .content import FileInput, JsonDict, as_spec, encode_json, md5_hex, parent_dirs
from .models import Product, V1Depot


def make_v1_depot(
    rng: random.Random, product: Product, os: str, files: Mapping[str, FileInput], padding: int
) -> tuple[V1Depot, bytes]:
    """One V1 depot manifest and its ``main.bin`` (the files concatenated, optionally padded).

    Paths get forward slashes and a leading ``/``; parent directories get ``directory``
    records, and an osx depot gets one symlink record (no size, no offset).
    """
    blob = bytearray()
    records: list[JsonDict] = []
    contents: dict[str, bytes] = {}
    offsets: dict[str, int] = {}
    v1_paths = {"/" + p.replace("\\", "/").lstrip("/"): as_spec(v) for p, v in files.items()}
    for directory in parent_dirs(v1_paths, "/"):
        records.append({"directory": True, "path": "/" + directory})
    for path, spec in v1_paths.items():
        if padding and blob:
            blob += rng.randbytes(padding)
        record: JsonDict = {
            "url": f"{product.product_id}/main.bin",
            "size": len(spec.data),
            "hash": md5_hex(spec.data),
            "path": path,
            "offset": len(blob),
        }
        if path.endswith(".exe") or "executable" in spec.flags:
            record["executable"] = True
        offsets[path] = len(blob)
        contents[path] = spec.data
        records.append(record)
        blob += spec.data
    if os == "osx" and v1_paths:
        first = next(iter(v1_paths))
        directory, _, name = first.rpartition("/")
        records.append(
            {"path": f"{directory}/link-to-{name}", "target": name, "symlinkType": "file"}
        )
    manifest: JsonDict = {"version": 1, "depot": {"name": product.name, "files": records}}
    depot = V1Depot(
        product_id=product.product_id,
        manifest_name=f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.json",
        manifest=manifest,
        manifest_bytes=encode_json(manifest),
        files=contents,
        offsets=offsets,
    )
    return depot, bytes(blob)


def v1_repository(
    product: Product,
    dlcs: Sequence[Product],
    legacy_build_id: int,
    os: str,
    depots: Sequence[V1Depot],
    redists: Sequence[str],
) -> JsonDict:
    """The ``repository.json`` document: ``timestamp`` = legacy build id, sizes as strings."""
    system = "OSX" if os == "osx" else "Windows"
    content_depots: list[JsonDict] = [
        {
            "languages": ["Neutral"],
            "size": str(sum(len(v) for v in d.files.values())),
            "gameIDs": [d.product_id],
            "systems": [system],
            "manifest": d.manifest_name,
        }
        for d in depots
    ]
    redist_depots: list[JsonDict] = [
        {"redist": name, "executable": f"__redist/{name}/setup.exe", "argument": "/q", "size": "0"}
        for name in redists
    ]
    game_ids: list[JsonDict] = [
        {
            "dependencies": [] if p is product else [product.product_id],
            "gameID": p.product_id,
            "name": {"en": p.name},
            "standalone": p is product,
        }
        for p in [product, *dlcs]
    ]
    return {
        "product": {
            "timestamp": legacy_build_id,
            "depots": content_depots + redist_depots,
            "support_commands": [],
            "installDirectory": product.install_directory,
            "rootGameID": product.product_id,
            "gameIDs": game_ids,
            "projectName": product.name,
        },
        "version": 1,
    }
