"""A fake GOG Galaxy (auth, embed, content-system, CDNs) for tests and the offline demo.

Build a :class:`World`, serve it with :class:`FakeGalaxy`, point a client's endpoints at
``server.auth_url``, ``server.embed_url``, ``server.content_system_url`` and ``server.cdn_url``::

    world = World(seed=1)
    build = world.add_v2_build("1207658930", files={"bin\\\\game.exe": b"..."})
    with FakeGalaxy(world) as server:
        ...
    assert archive_listing == world.expected_tree()
"""

from .api import GALAXY_CLIENT_ID, GALAXY_CLIENT_SECRET, GALAXY_REDIRECT_URI
from .content import (
    DEFAULT_CHUNK_SIZE_BYTES,
    Chunk,
    FileSpec,
    galaxy_path,
    inflate,
    md5_hex,
    random_bytes,
    zlib_json,
)
from .faults import ALL_KINDS, FaultPlan, InjectedFault
from .models import (
    Build,
    DependencyRepository,
    Depot,
    Patch,
    PatchDepot,
    Product,
    V1Build,
    V1Depot,
    V2Build,
)
from .sample import sample_world
from .server import ROLE_PREFIXES, FakeGalaxy, RecordedRequest
from .world import World

__all__ = [
    "ALL_KINDS",
    "DEFAULT_CHUNK_SIZE_BYTES",
    "GALAXY_CLIENT_ID",
    "GALAXY_CLIENT_SECRET",
    "GALAXY_REDIRECT_URI",
    "ROLE_PREFIXES",
    "Build",
    "Chunk",
    "DependencyRepository",
    "Depot",
    "FakeGalaxy",
    "FaultPlan",
    "FileSpec",
    "InjectedFault",
    "Patch",
    "PatchDepot",
    "Product",
    "RecordedRequest",
    "V1Build",
    "V1Depot",
    "V2Build",
    "World",
    "galaxy_path",
    "inflate",
    "md5_hex",
    "random_bytes",
    "sample_world",
    "zlib_json",
]
