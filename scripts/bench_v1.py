#!/usr/bin/env python3
"""Benchmark: a V1 main.bin fetched by `galaxy-archive sync` vs aria2c vs the disk, one run.

Builds a fake world with one generation-1 build whose main.bin is --size-mib MiB, exports the
CDN tree and serves it with nginx on 127.0.0.1 (a rewrite drops the secure link's
``/token=…`` segment); the content-system API stays on the fake Galaxy server, whose secure
links point at nginx. Then, on the same disk and in the same run, it times:

* ``disk``: the blob's bytes written sequentially in 8 MiB blocks, then fsync;
* ``aria2c``: ``aria2c -x 8 -s 8`` on the blob's URL (and, for reference, with its file
  fsynced afterwards, the durability ours has);
* ``ours``: the whole ``galaxy-archive sync <pid> --generation 1`` command into a fresh
  archive (start-up, API, manifests, then the blob: HEAD, parallel ranges, every file record's
  MD5 and the whole blob's MD5 checked, fsync, rename);

and prints the throughputs, the ratios ours/aria2c and ours/disk (times of the reference over
ours: above 1 means ours is faster), CPU seconds, and the client's peak RSS. With --runs N the
three are repeated N times, in a rotating order, and the medians are printed too.

    python scripts/bench_v1.py [--size-mib 1024] [--runs 3] [--dir /path/on/the/disk]

Needs nginx (Debian's nginx-light) and aria2c on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the fake server lives in tests/fakegalaxy

from tests.fakegalaxy import FakeGalaxy, V1Build, World, md5_hex, random_bytes  # noqa: E402

PID = "1207658930"
MIB = 1024 * 1024
BLOCK_BYTES = 8 * MIB

NGINX_CONF = """
worker_processes 2;
daemon off;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {scratch}/nginx-tmp;
    proxy_temp_path {scratch}/nginx-tmp;
    fastcgi_temp_path {scratch}/nginx-tmp;
    uwsgi_temp_path {scratch}/nginx-tmp;
    scgi_temp_path {scratch}/nginx-tmp;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        # fastly-style secure links: /token=nva=…~dirs=…~token=…/content-system/…
        rewrite ^/token=[^/]+(/.*)$ $1 break;
    }}
}}
"""

# Runs a command and writes "peak-RSS-KiB user-s system-s" of it to a file. The client is
# started by this small process, not by the benchmark: a child forked from a process holding
# the whole world in memory would count that memory as its own until it execs.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


@dataclass
class Timing:
    seconds: float
    cpu_s: float | None = None
    peak_rss_mib: float | None = None

    def rate(self, size: int) -> float:
        return size / MIB / self.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_world(size: int, files: int) -> tuple[World, V1Build]:
    world = World(seed=1)
    per_file = size // files
    contents = {f"data\\part{i:03}.bin": random_bytes(per_file, 100 + i) for i in range(files)}
    build = world.add_v1_build(PID, files=contents, redists=[])
    return world, build


def start_nginx(scratch: Path, www: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (scratch / "nginx-tmp").mkdir()
    conf = scratch / "nginx.conf"
    conf.write_text(NGINX_CONF.format(scratch=scratch, www=www, port=port))
    process = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(scratch), "-e", str(scratch / "nginx-error.log")],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("nginx did not start; see " + str(scratch / "nginx-error.log"))


def run_measured(command: list[str], scratch: Path) -> Timing:
    """Wall time, CPU seconds and peak RSS of a command (via LAUNCHER)."""
    report = scratch / "usage"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(report), *command],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} exited {result.returncode}")
    rss, user, system = report.read_text().split()
    return Timing(seconds, float(user) + float(system), int(rss) / 1024)


def time_disk(target: Path, blob: bytes) -> Timing:
    """The disk's sequential, fsynced write rate for these bytes (not a repeated block, which
    a virtual disk might deduplicate)."""
    view = memoryview(blob)
    start = time.perf_counter()
    with open(target, "wb", buffering=0) as out:
        for offset in range(0, len(view), BLOCK_BYTES):
            out.write(view[offset : offset + BLOCK_BYTES])
        os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    target.unlink()
    return Timing(seconds)


def time_aria2c(url: str, scratch: Path) -> tuple[Timing, Timing]:
    """aria2c alone, and aria2c plus an fsync of what it wrote."""
    directory = scratch / "aria2c"
    directory.mkdir()
    command = ["aria2c", "-q", "-x", "8", "-s", "8", "--allow-overwrite=true",
               "-d", str(directory), "-o", "main.bin", url]  # fmt: skip
    alone = run_measured(command, scratch)
    start = time.perf_counter()
    with open(directory / "main.bin", "rb") as handle:
        os.fsync(handle.fileno())
    synced = Timing(alone.seconds + time.perf_counter() - start, alone.cpu_s)
    shutil.rmtree(directory)
    return alone, synced


def time_ours(config: Path, scratch: Path) -> Timing:
    command = [sys.executable, "-m", "galaxy_archive", "--config", str(config),
               "sync", PID, "--generation", "1", "--os", "windows"]  # fmt: skip
    return run_measured(command, scratch)


def write_config(
    scratch: Path, name: str, server: FakeGalaxy, cdn: str, args: argparse.Namespace
) -> Path:
    config = scratch / f"{name}.toml"
    config.write_text(
        f'[archive]\nroot = "{scratch / name}"\n'
        f'[auth]\ntoken_file = "{scratch / "token.json"}"\n'
        f"[sync]\nworkers = {args.workers}\nv1_range_size = {args.range_mib * MIB}\n"
        "[http]\ntimeout = 60\n"
        "[endpoints]\n"
        f'auth = "{server.auth_url}"\nembed = "{server.embed_url}"\n'
        f'content_system = "{server.content_system_url}"\ncdn = "{cdn}"\n'
    )
    return config


@dataclass
class Run:
    disk: Timing
    aria: Timing
    aria_synced: Timing
    ours: Timing

    def line(self, number: int, size: int) -> str:
        return (
            f"run {number}: disk {self.disk.rate(size):.0f} MiB/s, "
            f"aria2c {self.aria.rate(size):.0f} MiB/s ({self.aria.cpu_s:.1f} CPU s; "
            f"+fsync {self.aria_synced.rate(size):.0f} MiB/s), "
            f"ours {self.ours.rate(size):.0f} MiB/s ({self.ours.cpu_s:.1f} CPU s, "
            f"peak RSS {self.ours.peak_rss_mib:.0f} MiB); "
            f"ours/aria2c {self.aria.seconds / self.ours.seconds:.2f}, "
            f"ours/(aria2c+fsync) {self.aria_synced.seconds / self.ours.seconds:.2f}, "
            f"ours/disk {self.disk.seconds / self.ours.seconds:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=16, help="file records in the blob")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--range-mib", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1, help="repeat the three measurements")
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (on the disk to test)")
    args = parser.parse_args()
    for tool in ("nginx", "aria2c"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")

    scratch = Path(tempfile.mkdtemp(prefix="bench-v1-", dir=args.dir))
    os.chmod(scratch, 0o755)  # nginx workers may run as another user
    nginx = None
    try:
        print(f"building a {args.size_mib} MiB main.bin ({args.files} files)...", flush=True)
        world, build = build_world(args.size_mib * MIB, args.files)
        blob = build.blobs[PID]
        size = len(blob)
        world.export_cdn_tree(scratch / "www")
        nginx, cdn = start_nginx(scratch, scratch / "www")
        blob_url = f"{cdn}/content-system/v1/depots/{build.manifest_dir()}/main.bin"
        with FakeGalaxy(world, cdn_base_url=cdn) as server:
            server.endpoints = ["fastly"]  # every secure link points at nginx
            login = write_config(scratch, "login", server, cdn, args)
            subprocess.run([sys.executable, "-m", "galaxy_archive", "--config", str(login),
                            "login", "--code", "bench"], cwd=REPO, check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
            print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
            runs = []
            for number in range(1, args.runs + 1):
                timings: dict[str, object] = {}
                archive = f"archive-{number}"
                steps: list[tuple[str, Callable[[], object]]] = [
                    ("disk", lambda: time_disk(scratch / "disk-test.bin", blob)),
                    ("aria", lambda: time_aria2c(blob_url, scratch)),
                    ("ours", lambda: time_ours(
                        write_config(scratch, archive, server, cdn, args), scratch)),  # noqa: B023
                ]  # fmt: skip
                shift = (number - 1) % len(steps)  # rotate, so no tool always goes first
                for name, step in steps[shift:] + steps[:shift]:
                    os.sync()
                    timings[name] = step()
                stored = scratch / archive / f"v1/depots/{build.manifest_dir()}/main.bin"
                if md5_hex(stored.read_bytes()) != md5_hex(blob):
                    raise SystemExit("the archived blob is not the served one")
                shutil.rmtree(scratch / archive)
                aria, aria_synced = timings["aria"]  # type: ignore[misc]
                run = Run(timings["disk"], aria, aria_synced, timings["ours"])  # type: ignore[arg-type]
                runs.append(run)
                print(run.line(number, size), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.runs > 1:
            vs_aria = statistics.median(r.aria.seconds / r.ours.seconds for r in runs)
            vs_disk = statistics.median(r.disk.seconds / r.ours.seconds for r in runs)
            rss = max(r.ours.peak_rss_mib or 0 for r in runs)
            print(f"median of {args.runs} runs: ours/aria2c {vs_aria:.2f}, ours/disk "
                  f"{vs_disk:.2f}; client peak RSS at most {rss:.0f} MiB")  # fmt: skip
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
