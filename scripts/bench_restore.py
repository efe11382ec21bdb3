#!/usr/bin/env python3
"""Benchmark `restore` (issue 13): restore against the floor of inflate + MD5, peak RSS.

A world of one V2 build (random files in 10 MiB chunks, --mib of game bytes; the goal figure
is >= 1 GiB) is synced from the fake Galaxy into a fresh archive, then the server is stopped.
In one run, alternating (ABBA) for --rounds: (a) `galaxy-archive restore` into an empty DEST,
(b) the floor: one process that only inflates and MD5s the same stored chunks on all cores
(a thread per core: zlib and hashlib release the GIL) and writes nothing. The median of the
per-round speed ratios a/b is printed (goal: >= 0.8), with restore's peak RSS (goal: < 200 MB).
(c) where this runs as root with unshare and lgogdownloader (Debian's), a real client installing
the same build from the same archive over loopback: `galaxy-archive serve` with TLS inside
private namespaces, as tests/integration/test_serve_lgogdownloader.py sets it up, and
`lgogdownloader --galaxy-install` with its defaults; once a round, its bytes written checked
against the build's. Goal: (a) faster than (c).

    python scripts/bench_restore.py [--mib 1024] [--rounds 3] [--workdir DIR] [--no-client]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from benchlib import galaxy_archive, mib_per_s, precompile, run_timed, write_config

from tests.fakegalaxy import FakeGalaxy, World, random_bytes

# The namespace, certificate and token setup of the real-client test, reused as it is.
from tests.integration.test_serve_lgogdownloader import (
    _galaxy_tokens,
    _namespaces_refused,
    _script,
    _throwaway_ca,
)

PID = "1207658930"
MIB = 2**20

# The floor, run as its own process so that its peak RSS and start-up are like restore's.
_FLOOR = """
import hashlib, os, sys, zlib
from concurrent.futures import ThreadPoolExecutor

def one(path):
    inflater = zlib.decompressobj()
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(inflater.decompress(block))
    digest.update(inflater.flush())
    return digest.hexdigest()

paths = [line.rstrip("\\n") for line in open(sys.argv[1])]
with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
    list(pool.map(one, paths))
"""


def make_world(game_bytes: int) -> tuple[World, str]:
    world = World(seed=13, compress_level=1, workers=2)
    per_file = 64 * MIB
    files: dict[str, bytes] = {}
    left, index = game_bytes, 0
    while left > 0:
        size = min(per_file, left)
        files[f"data\\pack{index:03}.pak"] = random_bytes(size, 100 + index)
        left -= size
        index += 1
    build = world.add_v2_build(PID, files=files, chunk_size=10 * MIB)
    return world, build.build_id


def sync_archive(workdir: Path, world: World) -> Path:
    config = workdir / "archive.toml"
    with FakeGalaxy(world) as fake:
        write_config(config, workdir / "archive", fake, workers=4)
        for args in (("login", "--code", "bench"), ("sync", PID, "--generation", "2")):
            done = run_timed(galaxy_archive(config, *args))
            if done.returncode != 0:
                sys.exit(f"{' '.join(args)} failed ({done.returncode})")
    return config  # the server is stopped: restore runs with no network at all


def chunk_list(workdir: Path) -> tuple[Path, int]:
    """The stored chunks of the build, and the bytes they inflate to."""
    root = workdir / "archive"
    with sqlite3.connect(root / "archive.db") as conn:
        rows = conn.execute("SELECT path FROM objects WHERE kind = 'store'").fetchall()
    listing = workdir / "chunks.txt"
    listing.write_text("".join(f"{root / path}\n" for (path,) in rows))
    return listing, len(rows)


def _client_refused() -> str | None:
    if shutil.which("lgogdownloader") is None:
        return "lgogdownloader is not installed"
    return _namespaces_refused()


def lgogdownloader_install(workdir: Path, config: Path, size: int) -> float:
    """Seconds lgogdownloader takes to install the build from serve (TLS, own namespaces)."""
    work = workdir / "client"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    ca, cert, key = _throwaway_ca(work)
    _galaxy_tokens(work)
    script = _script(work, SimpleNamespace(config_path=config), cert, key, ca, f"{PID}/0")  # type: ignore[arg-type]
    started = time.monotonic()
    run = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "bash", str(script)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    written = sum(p.stat().st_size for p in (work / "out").rglob("*") if p.is_file())
    if run.returncode != 0 or written < size:
        sys.exit(f"lgogdownloader failed ({run.returncode}, {written} of {size} bytes written)")
    shutil.rmtree(work / "out")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="game bytes (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-client", action="store_true", help="skip (c), lgogdownloader")
    args = parser.parse_args()
    precompile()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-restore-"))
    world, build_id = make_world(args.mib * MIB)
    config = sync_archive(workdir, world)
    del world
    listing, chunks = chunk_list(workdir)
    dest = workdir / "dest"
    size = args.mib * MIB
    ratios, peaks, client_ratios = [], [], []
    can_run_client = not args.no_client and _client_refused() is None
    for round_number in range(args.rounds):
        order = ("a", "b") if round_number % 2 == 0 else ("b", "a")
        seconds = {}
        for which in order:
            shutil.rmtree(dest, ignore_errors=True)
            if which == "a":
                command = galaxy_archive(config, "--json", "restore", PID, build_id, str(dest))
                done = run_timed(command, stdout=open(os.devnull, "w"))  # noqa: SIM115
                peaks.append(done.peak_rss_bytes)
            else:
                done = run_timed([sys.executable, "-c", _FLOOR, str(listing)])
            if done.returncode != 0:
                sys.exit(f"round {round_number} {which} failed ({done.returncode})")
            seconds[which] = done.seconds
        ratios.append(seconds["b"] / seconds["a"])  # speed a / speed b
        client = ""
        if can_run_client:
            seconds["c"] = lgogdownloader_install(workdir, config, size)
            client_ratios.append(seconds["c"] / seconds["a"])
            client = (
                f", lgogdownloader {mib_per_s(size, seconds['c']):.0f} MiB/s "
                f"(restore {client_ratios[-1]:.2f}x its speed)"
            )
        print(
            f"round {round_number + 1}: restore {mib_per_s(size, seconds['a']):.0f} MiB/s, "
            f"floor {mib_per_s(size, seconds['b']):.0f} MiB/s, ratio {ratios[-1]:.2f}{client}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "game_mib": args.mib,
                "chunks": chunks,
                "rounds": args.rounds,
                "ratio_restore_to_floor_median": round(statistics.median(ratios), 3),
                "restore_peak_rss_mib": round(max(peaks) / MIB, 1),
                "restore_to_lgogdownloader_median": (
                    round(statistics.median(client_ratios), 2)
                    if client_ratios
                    else f"not measured: {_client_refused() or '--no-client'}"
                ),
            }
        )
    )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
