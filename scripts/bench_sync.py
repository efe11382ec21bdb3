#!/usr/bin/env python3
"""Benchmark `sync` (issue 2): throughput against `aria2c -j 8`, peak RSS, no-op re-sync.

On loopback, nginx serves a product of realistic chunks (10 MiB chunks and many small ones,
>= 1 GB on the wire). In one run: aria2c -j 8 fetches every chunk URL, then galaxy-archive
syncs the product from the same nginx (API from the fake Galaxy, secure links pointing at
nginx), in --rounds ABAB pairs (neither side always first), each tree checked against the
world's bytes; the median and range of the throughput ratios are printed. Then a product of
50,000 small chunks is synced and synced again: the second (no-op) run must take under 5 s
and ask the CDN for nothing (nginx's access log is counted).

    python scripts/bench_sync.py [--gib 1.0] [--small-chunks 50000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchlib import (
    REPO,
    Nginx,
    Timed,
    ensure_tools,
    galaxy_archive,
    mib_per_s,
    precompile,
    requests_served,
    run_timed,
    spread,
    write_config,
)

from tests.fakegalaxy import FakeGalaxy, World, galaxy_path, random_bytes

PID = "1207658930"
MIB = 2**20


def big_world(wire_bytes: int) -> World:
    """10 MiB chunks (random_bytes deflate to about half) plus 2,000 small files."""
    world = World(seed=7, compress_level=1, workers=2)
    files: dict[str, bytes] = {}
    raw_target = wire_bytes * 2
    index = 0
    while sum(len(v) for v in files.values()) < raw_target:
        files[f"data\\pack{index:03d}.dat"] = random_bytes(10 * MIB + (index % 3) * MIB, index)
        index += 1
    for small in range(2000):
        files[f"small\\f{small:04d}.txt"] = random_bytes(1000 + small * 7, 10_000 + small)
    world.add_v2_build(PID, files=files, chunk_size=10 * MIB)
    return world


def small_chunk_world(count: int) -> World:
    world = World(seed=8, compress_level=1, workers=2)
    files = {f"f\\{i:06d}.bin": i.to_bytes(4, "big") * 64 for i in range(count)}
    world.add_v2_build("1423049311", files=files, chunk_size=1 * MIB)
    return world


def chunk_urls(world: World, base: str) -> list[tuple[str, str]]:
    return [
        (f"{base}/content-system/v2/store/{PID}/{galaxy_path(h)}", h)
        for h in sorted(world.store)
        if PID in world.store_owners[h]
    ]


def _aria2c(listing: Path, out: Path) -> Timed:
    return run_timed(
        [
            "aria2c", "-j", "8", "-i", str(listing), "-d", str(out),
            "--allow-overwrite=true", "--auto-file-renaming=false", "--file-allocation=none",
            "--console-log-level=error", "--summary-interval=0",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _check_chunks(files: dict[str, Path], world: World, who: str) -> None:
    """Every chunk present with the bytes the world serves, or the figure does not count."""
    expected = {h for h in world.store if PID in world.store_owners[h]}
    assert set(files) == expected, f"{who}: {len(set(files) ^ expected)} chunks missing or extra"
    for name, path in files.items():
        assert hashlib.md5(path.read_bytes()).hexdigest() == name, f"{who}: {name} is wrong"


def _sync_once(workdir: Path, fake: FakeGalaxy, number: int) -> Timed:
    config = workdir / f"archive-{number}.toml"
    root = workdir / f"archive-{number}"
    write_config(config, root, fake, workers=8)
    if not (workdir / "token.json").exists():  # one login: the token file is shared
        login = galaxy_archive(config, "login", "--code", "bench")
        subprocess.run(login, check=True, capture_output=True, cwd=REPO)
    ours = run_timed(galaxy_archive(config, "-q", "sync", PID, "--generation", "2"))
    assert ours.returncode == 0, "galaxy-archive sync failed"
    return ours


def bench_throughput(workdir: Path, wire_bytes: int, rounds: int) -> None:
    """ABAB rounds of aria2c and sync from the same nginx, each tree checked, then deleted."""
    print(f"building a world of about {wire_bytes / 2**30:.2f} GiB on the wire ...", flush=True)
    world = big_world(wire_bytes)
    cdn = workdir / "cdn"
    world.export_cdn_tree(cdn)
    chunk_bytes = sum(len(world.store[h]) for _, h in chunk_urls(world, ""))
    aria_runs: list[Timed] = []
    our_runs: list[Timed] = []
    with Nginx(cdn, workdir / "nginx") as nginx, FakeGalaxy(world, cdn_base_url=nginx.url) as fake:
        fake.endpoints = ["fastly"]
        urls = chunk_urls(world, nginx.url)
        listing = workdir / "aria2.txt"
        listing.write_text("".join(f"{url}\n  out={h}\n" for url, h in urls))
        for number in range(1, rounds + 1):
            aria_dir, root = workdir / "aria2-out", workdir / f"archive-{number}"
            for side in ("aria", "ours") if number % 2 else ("ours", "aria"):
                if side == "aria":
                    aria = _aria2c(listing, aria_dir)
                    assert aria.returncode == 0, "aria2c failed"
                    _check_chunks({p.name: p for p in aria_dir.iterdir()}, world, "aria2c")
                    aria_runs.append(aria)
                    shutil.rmtree(aria_dir)
                else:
                    our_runs.append(_sync_once(workdir, fake, number))
                    stored = {p.name: p for p in (root / "v2/store").rglob("*") if p.is_file()}
                    _check_chunks(stored, world, "galaxy-archive")
                    shutil.rmtree(root)
            print(
                f"round {number}: aria2c {aria_runs[-1].seconds:6.2f} s, "
                f"galaxy-archive {our_runs[-1].seconds:6.2f} s (both trees checked)",
                flush=True,
            )
    ratios = [a.seconds / o.seconds for a, o in zip(aria_runs, our_runs, strict=True)]
    print(f"chunks: {len(urls)} objects, {chunk_bytes / MIB:.0f} MiB on the wire")
    aria_rates = [mib_per_s(chunk_bytes, a.seconds) for a in aria_runs]
    our_rates = [mib_per_s(chunk_bytes, o.seconds) for o in our_runs]
    print(f"aria2c -j 8 MiB/s:     median (range) {spread(aria_rates)}")
    print(
        f"galaxy-archive MiB/s:  median (range) {spread(our_rates)} "
        "(fsync per object, manifests and lists included)"
    )
    print(
        f"RATIO sync/aria2c throughput, {rounds} ABAB rounds: median (range) {spread(ratios)}"
        "  (target >= 1.00)"
    )
    peak = max(o.peak_rss_bytes for o in our_runs)
    print(f"peak RSS of sync: {peak / MIB:.0f} MiB  (target < 200 MiB)")
    shutil.rmtree(cdn)


def bench_noop(workdir: Path, count: int) -> None:
    print(f"building a product of {count} small chunks ...", flush=True)
    world = small_chunk_world(count)
    cdn = workdir / "cdn-small"
    world.export_cdn_tree(cdn)
    with (
        Nginx(cdn, workdir / "nginx-small") as nginx,
        FakeGalaxy(world, cdn_base_url=nginx.url) as fake,
    ):
        fake.endpoints = ["fastly"]
        config = workdir / "small.toml"
        write_config(config, workdir / "small-archive", fake, workers=8)
        subprocess.run(
            galaxy_archive(config, "login", "--code", "bench"),
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        first = run_timed(galaxy_archive(config, "-q", "sync", "1423049311"))
        assert first.returncode == 0, "first sync failed"
        before = requests_served(nginx)
        again = run_timed(galaxy_archive(config, "-q", "sync", "1423049311"))
        assert again.returncode == 0, "no-op sync failed"
        asked = requests_served(nginx) - before
        assert asked == 0, f"the no-op re-sync asked the CDN for {asked} objects"
    print(
        f"first sync of {count} chunks: {first.seconds:.1f} s, "
        f"peak RSS {first.peak_rss_bytes / MIB:.0f} MiB"
    )
    print(
        f"no-op re-sync: {again.seconds:.2f} s, 0 CDN requests (target < 5 s; RATIO to target "
        f"{again.seconds / 5:.2f}), peak RSS {again.peak_rss_bytes / MIB:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="GiB of chunks on the wire")
    parser.add_argument("--small-chunks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="ABAB pairs of aria2c and sync")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    ensure_tools("nginx", "aria2c")
    precompile()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        workdir = Path(scratch)
        bench_throughput(workdir, int(args.gib * 2**30), args.rounds)
        bench_noop(workdir, args.small_chunks)


if __name__ == "__main__":
    main()
