#!/usr/bin/env python3
"""Benchmark V1 blobs (issue 3): `galaxy-archive sync` vs aria2c vs the disk, in one run.

Builds a fake world with one generation-1 build whose main.bin is --size-mib MiB, exports the
CDN tree and serves it with nginx on 127.0.0.1 (the rewrite drops the secure link's
``/token=…`` segment); the content-system API stays on the fake Galaxy, whose secure links
point at nginx. Then, on the same disk and in the same run, it times:

* ``disk``: the blob's bytes written sequentially in 8 MiB blocks, then fsync (as
  ``dd bs=8M conv=fsync`` does: through the page cache); and, for reference, the same with
  O_DIRECT (``dd oflag=direct``), which ours uses for blobs where the file system allows;
* ``aria2c``: ``aria2c -x 8 -s 8`` on the blob's URL (and, for reference, with its file
  fsynced afterwards: the durability ours has);
* ``ours``: the whole ``galaxy-archive sync <pid> --generation 1`` command into a fresh
  archive (start-up, API, manifests, then the blob: HEAD, parallel ranges, every file record's
  MD5 and the MD5 of the bytes between them checked, fsync, rename);

and prints the throughputs, the ratios ours/aria2c and ours/disk (the reference's time over
ours: above 1 means ours is faster), CPU seconds and the client's peak RSS. With --runs N the
three are repeated N times in a rotating order, and the medians are printed too.

Run it with the project's virtualenv (``.venv/bin/python scripts/bench_v1.py``): the
interpreter and packages a user gets from ``pip install``, not whatever else the system
Python has (numpy, if present, is imported by sqlite-utils and costs start-up time).

    .venv/bin/python scripts/bench_v1.py [--size-mib 1024] [--runs 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib import REPO, Nginx, ensure_tools, galaxy_archive, mib_per_s, precompile, run_timed

from tests.fakegalaxy import FakeGalaxy, V1Build, World, md5_hex, random_bytes

PID = "1207658930"
MIB = 2**20
BLOCK_BYTES = 8 * MIB


@dataclass(frozen=True)
class Timing:
    seconds: float
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0


def build_world(size: int, files: int) -> tuple[World, V1Build]:
    world = World(seed=1)
    per_file = size // files
    contents = {f"data\\part{i:03}.bin": random_bytes(per_file, 100 + i) for i in range(files)}
    return world, world.add_v1_build(PID, files=contents, redists=[])


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> Timing:
    """Wall time, CPU seconds and peak RSS of a command (run_timed's wrapper waits for it,
    so its CPU time lands in our children's)."""
    cpu_before = children_cpu_s()
    result = run_timed(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} exited {result.returncode}")
    return Timing(result.seconds, children_cpu_s() - cpu_before, result.peak_rss_bytes / MIB)


def time_disk(target: Path, blob: bytes) -> Timing:
    """The disk's sequential, fsynced write rate for these bytes (not one repeated block,
    which a virtual disk might deduplicate)."""
    view = memoryview(blob)
    start = time.perf_counter()
    with open(target, "wb", buffering=0) as out:
        for offset in range(0, len(view), BLOCK_BYTES):
            out.write(view[offset : offset + BLOCK_BYTES])
        os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    target.unlink()
    return Timing(seconds)


def time_disk_direct(target: Path, blob: bytes) -> Timing:
    """The same with O_DIRECT from one page-aligned buffer: the device's rate without the
    page cache (where the file system has no O_DIRECT: the buffered rate again)."""
    buffer = mmap.mmap(-1, BLOCK_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_DIRECT", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except OSError:
        return time_disk(target, blob)
    start = time.perf_counter()
    try:
        for offset in range(0, len(blob) - len(blob) % BLOCK_BYTES, BLOCK_BYTES):
            buffer[:] = blob[offset : offset + BLOCK_BYTES]
            os.pwrite(fd, buffer, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    target.unlink()
    return Timing(seconds)


def time_aria2c(url: str, workdir: Path) -> tuple[Timing, Timing]:
    """aria2c alone, and aria2c plus an fsync of what it wrote."""
    directory = workdir / "aria2c"
    directory.mkdir()
    alone = timed(["aria2c", "-q", "-x", "8", "-s", "8", "--allow-overwrite=true",
                   "-d", str(directory), "-o", "main.bin", url])  # fmt: skip
    start = time.perf_counter()
    with open(directory / "main.bin", "rb") as handle:
        os.fsync(handle.fileno())
    synced = Timing(alone.seconds + time.perf_counter() - start, alone.cpu_s)
    shutil.rmtree(directory)
    return alone, synced


def write_config(
    path: Path, root: Path, server: FakeGalaxy, cdn: str, args: argparse.Namespace
) -> Path:
    path.write_text(
        f'[archive]\nroot = "{root}"\n'
        f'[auth]\ntoken_file = "{path.parent / "token.json"}"\n'
        f"[sync]\nworkers = {args.workers}\nv1_range_size = {args.range_mib * MIB}\n"
        "[http]\ntimeout = 60\n"
        "[endpoints]\n"
        f'auth = "{server.auth_url}"\nembed = "{server.embed_url}"\n'
        f'content_system = "{server.content_system_url}"\ncdn = "{cdn}"\n'
    )
    return path


@dataclass(frozen=True)
class Run:
    disk: Timing
    disk_direct: Timing
    aria: Timing
    aria_synced: Timing
    ours: Timing

    def line(self, number: int, size: int) -> str:
        return (
            f"run {number}: disk {mib_per_s(size, self.disk.seconds):.0f} MiB/s "
            f"(O_DIRECT {mib_per_s(size, self.disk_direct.seconds):.0f} MiB/s), "
            f"aria2c {mib_per_s(size, self.aria.seconds):.0f} MiB/s "
            f"({self.aria.cpu_s:.1f} CPU s; +fsync "
            f"{mib_per_s(size, self.aria_synced.seconds):.0f} MiB/s), "
            f"ours {mib_per_s(size, self.ours.seconds):.0f} MiB/s ({self.ours.cpu_s:.1f} CPU s, "
            f"peak RSS {self.ours.peak_rss_mib:.0f} MiB); "
            f"ours/aria2c {self.aria.seconds / self.ours.seconds:.2f}, "
            f"ours/(aria2c+fsync) {self.aria_synced.seconds / self.ours.seconds:.2f}, "
            f"ours/disk {self.disk.seconds / self.ours.seconds:.2f} "
            f"(ours/disk-O_DIRECT {self.disk_direct.seconds / self.ours.seconds:.2f})"
        )


def measure(
    number: int, blob: bytes, blob_url: str, workdir: Path, ours: Callable[[Path], Timing]
) -> Run:
    """The three measurements, in an order rotated by run number (none always goes first)."""
    timings: dict[str, object] = {}
    archive = workdir / f"archive-{number}"
    scratch = workdir / "disk-test.bin"
    steps: list[tuple[str, Callable[[], object]]] = [
        ("disk", lambda: (time_disk(scratch, blob), time_disk_direct(scratch, blob))),
        ("aria2c", lambda: time_aria2c(blob_url, workdir)),
        ("ours", lambda: ours(archive)),
    ]
    shift = (number - 1) % len(steps)
    for name, step in steps[shift:] + steps[:shift]:
        os.sync()
        timings[name] = step()
    stored = next(archive.glob("v1/depots/*/*/*/main.bin"))
    if md5_hex(stored.read_bytes()) != md5_hex(blob):
        raise SystemExit("the archived blob is not the served one")
    shutil.rmtree(archive)
    disk, aria, mine = timings["disk"], timings["aria2c"], timings["ours"]
    assert isinstance(disk, tuple) and isinstance(aria, tuple) and isinstance(mine, Timing)
    return Run(disk[0], disk[1], aria[0], aria[1], mine)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=16, help="file records in the blob")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--range-mib", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1, help="repeat the three measurements")
    parser.add_argument("--workdir", type=Path, help="scratch dir, on the disk to measure")
    args = parser.parse_args()
    ensure_tools("nginx", "aria2c")
    precompile()
    workdir = Path(tempfile.mkdtemp(prefix="bench-v1-", dir=args.workdir))
    try:
        print(f"building a {args.size_mib} MiB main.bin ({args.files} files)...", flush=True)
        world, build = build_world(args.size_mib * MIB, args.files)
        blob = build.blobs[PID]
        world.export_cdn_tree(workdir / "www")
        with (
            Nginx(workdir / "www", workdir / "nginx") as nginx,
            FakeGalaxy(world, cdn_base_url=nginx.url) as server,
        ):
            server.endpoints = ["fastly"]  # every secure link points at nginx
            config = workdir / "archive.toml"
            blob_url = f"{nginx.url}/content-system/v1/depots/{build.manifest_dir()}/main.bin"

            def ours(root: Path) -> Timing:
                write_config(config, root, server, nginx.url, args)
                return timed(galaxy_archive(config, "sync", PID, "--generation", "1"))

            write_config(config, workdir / "login", server, nginx.url, args)
            subprocess.run(galaxy_archive(config, "login", "--code", "bench"), cwd=REPO,
                           check=True, stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
            print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
            runs = []
            for number in range(1, args.runs + 1):
                runs.append(measure(number, blob, blob_url, workdir, ours))
                print(runs[-1].line(number, len(blob)), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.runs > 1:
            vs_aria = statistics.median(r.aria.seconds / r.ours.seconds for r in runs)
            vs_disk = statistics.median(r.disk.seconds / r.ours.seconds for r in runs)
            vs_direct = statistics.median(r.disk_direct.seconds / r.ours.seconds for r in runs)
            rss = max(r.ours.peak_rss_mib for r in runs)
            print(f"median of {args.runs} runs: ours/aria2c {vs_aria:.2f}, ours/disk "
                  f"{vs_disk:.2f} (ours/disk-O_DIRECT {vs_direct:.2f}); "
                  f"client peak RSS at most {rss:.0f} MiB")  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
