"""The bundled sample world used by the offline demo (and handy in end-to-end tests).

"Sample Quest" (1207658930) with its DLC (1207658931): a gen-1 windows build, two gen-2 windows
builds that share most chunks, a gen-2 osx build, English and German language depots, a
small-files container (whose member chunks are absent on the newer windows build), a patch
between the two windows builds and two dependencies. "Second Sample" (1423049311) has one small
gen-2 build listed with a manifests-collector link. A few MiB in all, 1 MiB chunks.
"""

from __future__ import annotations

from .content import FileSpec, random_bytes
from .world import World

SAMPLE_PRODUCT_ID = "1207658930"
SAMPLE_DLC_ID = "1207658931"
SECOND_PRODUCT_ID = "1423049311"
SAMPLE_CHUNK_SIZE_BYTES = 1024 * 1024

_KIB = 1024
_MIB = 1024 * 1024


def _small_files(version: str) -> dict[str, bytes]:
    """Ten small config files; their text names the version, so each build's SFC differs."""
    out: dict[str, bytes] = {}
    for i in range(10):
        text = f"; Sample Quest {version}\n[section{i}]\nvalue={i * 7}\n" + "x" * (40 * i)
        out[f"config\\settings{i:02d}.ini"] = text.encode()
    return out


def sample_world(seed: int = 0) -> World:
    """Build the sample world (deterministic for a given seed)."""
    world = World(seed)
    world.add_product(SAMPLE_PRODUCT_ID, "Sample Quest")
    world.add_product(
        SAMPLE_DLC_ID, "Sample Quest - The Lost Caves", root_product_id=SAMPLE_PRODUCT_ID
    )
    world.add_product(SECOND_PRODUCT_ID, "Second Sample")
    s = seed * 100

    exe_a = random_bytes(2 * _MIB + 512 * _KIB, s + 1)
    exe_b = exe_a[: 2 * _MIB] + random_bytes(512 * _KIB, s + 2)  # first two chunks shared
    world_pak = random_bytes(_MIB + 512 * _KIB, s + 3)
    textures = FileSpec.big_last_chunk(
        random_bytes(_MIB + 300 * _KIB, s + 4), SAMPLE_CHUNK_SIZE_BYTES
    )
    languages = {
        "en-US": {"lang\\en\\strings.dat": random_bytes(200 * _KIB, s + 5)},
        "de-DE": {"lang\\de\\strings.dat": random_bytes(220 * _KIB, s + 6)},
    }
    dlc = {SAMPLE_DLC_ID: {"dlc\\caves.pak": random_bytes(600 * _KIB, s + 7)}}

    world.add_v1_build(
        SAMPLE_PRODUCT_ID,
        "windows",
        files={
            "bin\\SampleQuest.exe": random_bytes(2 * _MIB, s + 8),
            "data\\world.pak": random_bytes(900 * _KIB, s + 9),
            "readme.txt": b"Sample Quest (classic installer)\n" * 30,
        },
        dlcs={SAMPLE_DLC_ID: {"dlc\\caves.pak": random_bytes(200 * _KIB, s + 10)}},
        redists=["MSVC2010", "DirectX"],
        padding=512,
    )

    def windows_files(exe: bytes, version: str) -> dict[str, bytes | FileSpec]:
        return {
            "bin\\SampleQuest.exe": FileSpec(exe, flags=("executable",)),
            "data\\world.pak": world_pak,
            "data\\textures.pak": textures,
            "readme.txt": f"Sample Quest {version}\n".encode() * 40,
            "saves\\empty.cfg": b"",
        }

    build_a = world.add_v2_build(
        SAMPLE_PRODUCT_ID,
        "windows",
        files=windows_files(exe_a, "1.0"),
        languages=languages,
        dlcs=dlc,
        small_files=_small_files("1.0"),
        version_name="1.0",
        chunk_size=SAMPLE_CHUNK_SIZE_BYTES,
        dependencies=["MSVC2019", "DirectX"],
    )
    world.add_v2_build(
        SAMPLE_PRODUCT_ID,
        "osx",
        files={
            "Contents\\MacOS\\SampleQuest": random_bytes(400 * _KIB, s + 11),
            "Contents\\Resources\\world.pak": world_pak,  # the same chunks as on windows
            "Contents\\Info.plist": b"<plist><dict><key>CFBundleName</key></dict></plist>\n",
        },
        languages={"en-US": languages["en-US"]},
        small_files=_small_files("1.0-osx"),
        links={"Contents\\MacOS\\current": "SampleQuest"},
        version_name="1.0",
        chunk_size=SAMPLE_CHUNK_SIZE_BYTES,
        dependencies=[],
    )
    build_b = world.add_v2_build(
        SAMPLE_PRODUCT_ID,
        "windows",
        files=windows_files(exe_b, "1.1"),
        languages=languages,
        dlcs=dlc,
        small_files=_small_files("1.1"),
        absent_member_chunks=True,
        version_name="1.1",
        chunk_size=SAMPLE_CHUNK_SIZE_BYTES,
        dependencies=["MSVC2019", "DirectX"],
    )
    world.add_patch(SAMPLE_PRODUCT_ID, build_a, build_b)

    world.set_dependencies(
        "59705672826648994",
        {
            "MSVC2019": {"__redist\\MSVC2019\\VC_redist.x64.exe": random_bytes(300 * _KIB, s + 12)},
            "DirectX": {
                "__redist\\DirectX\\DXSETUP.exe": random_bytes(150 * _KIB, s + 13),
                "__redist\\DirectX\\dxupdate.cab": random_bytes(90 * _KIB, s + 14),
            },
        },
        executable_paths={"DirectX": "__redist/DirectX/DXSETUP.exe"},
    )

    world.add_v2_build(
        SECOND_PRODUCT_ID,
        "windows",
        files={
            "bin\\second.exe": FileSpec(random_bytes(150 * _KIB, s + 15), flags=("executable",)),
            "data\\second.pak": random_bytes(250 * _KIB, s + 16),
        },
        version_name="2.31a",
        link_style="collector",
        chunk_size=SAMPLE_CHUNK_SIZE_BYTES,
        dependencies=["MSVC2019"],
    )
    return world
