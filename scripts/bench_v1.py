#!/usr/bin/env python3
"""Benchmark: a V1 main.bin fetched by `galaxy-archive sync` vs aria2c vs the disk, one run.

Builds a fake world with one generation-1 build whose main.bin is --size-mib MiB, exports the
CDN tree and serves it with nginx on 127.0.0.1 (a rewrite drops the secure link's
``/token=…`` segment); the content-system API stays on the fake Galaxy server, whose secure
links point at nginx. Then, on the same disk and in the same run, it times:

* ``disk``: a sequential write of the same size in 8 MiB blocks, then fsync;
* ``aria2c``: ``aria2c -x 8 -s 8`` on the blob's URL (and, for reference, its file fsynced);
* ``ours``: ``galaxy-archive sync <pid> --generation 1`` into a fresh archive: HEAD, parallel
  ranges, every file record's MD5 and the whole blob's MD5 checked, fsync, rename;

and prints the throughputs, the ratios ours/aria2c and ours/disk, and the client's peak RSS.

    python scripts/bench_v1.py [--size-mib 1024] [--runs 1] [--dir /path/on/the/disk]

Needs nginx (Debian's nginx-light) and aria2c on PATH.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the fake server lives in tests/fakegalaxy

from tests.fakegalaxy import FakeGalaxy, V1Build, World, random_bytes  # noqa: E402

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


@dataclass
class Timing:
    seconds: float
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


def time_disk(target: Path, size: int) -> Timing:
    block = os.urandom(BLOCK_BYTES)
    start = time.perf_counter()
    with open(target, "wb", buffering=0) as out:
        written = 0
        while written < size:
            written += out.write(block[: min(BLOCK_BYTES, size - written)])
        os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    target.unlink()
    return Timing(seconds)


def time_aria2c(url: str, directory: Path) -> tuple[Timing, Timing]:
    """aria2c alone, and aria2c plus an fsync of what it wrote (the same durability as ours)."""
    directory.mkdir(exist_ok=True)
    command = ["aria2c", "-q", "-x", "8", "-s", "8", "--allow-overwrite=true",
               "-d", str(directory), "-o", "main.bin", url]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    alone = time.perf_counter() - start
    with open(directory / "main.bin", "rb") as handle:
        os.fsync(handle.fileno())
    synced = time.perf_counter() - start
    shutil.rmtree(directory)
    return Timing(alone), Timing(synced)


# Runs a command and writes its peak RSS (KiB) to a file. The client is started by this small
# process, not by the benchmark itself: a child forked from a process holding the whole world
# in memory would count that memory as its own until it execs.
PEAK_RSS_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def time_ours(config: Path, scratch: Path) -> Timing:
    peak_file = scratch / "peak-rss"
    command = [sys.executable, "-c", PEAK_RSS_LAUNCHER, str(peak_file),
               sys.executable, "-m", "galaxy_archive", "--config", str(config),
               "sync", PID, "--generation", "1", "--os", "windows"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"galaxy-archive sync exited {result.returncode}")
    return Timing(seconds, int(peak_file.read_text()) / 1024)


def write_config(
    scratch: Path, run: int, server: FakeGalaxy, cdn: str, args: argparse.Namespace
) -> Path:
    root = scratch / f"archive-{run}"
    config = scratch / f"archive-{run}.toml"
    config.write_text(
        f'[archive]\nroot = "{root}"\n'
        f'[auth]\ntoken_file = "{scratch / "token.json"}"\n'
        f"[sync]\nworkers = {args.workers}\nv1_range_size = {args.range_mib * MIB}\n"
        "[http]\ntimeout = 60\n"
        "[endpoints]\n"
        f'auth = "{server.auth_url}"\nembed = "{server.embed_url}"\n'
        f'content_system = "{server.content_system_url}"\ncdn = "{cdn}"\n'
    )
    return config


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


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
        size = len(build.blobs[PID])
        expected_md5 = world.v1_blob_md5[build.manifest_dir()]
        world.export_cdn_tree(scratch / "www")
        nginx, cdn = start_nginx(scratch, scratch / "www")
        blob_url = f"{cdn}/content-system/v1/depots/{build.manifest_dir()}/main.bin"
        with FakeGalaxy(world, cdn_base_url=cdn) as server:
            server.endpoints = ["fastly"]
            login = write_config(scratch, 0, server, cdn, args)
            subprocess.run([sys.executable, "-m", "galaxy_archive", "--config", str(login),
                            "login", "--code", "bench"], cwd=REPO, check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
            results = []
            for run in range(1, args.runs + 1):
                os.sync()
                disk = time_disk(scratch / "disk-test.bin", size)
                os.sync()
                aria, aria_synced = time_aria2c(blob_url, scratch / "aria2c")
                os.sync()
                config = write_config(scratch, run, server, cdn, args)
                ours = time_ours(config, scratch)
                stored = scratch / f"archive-{run}" / f"v1/depots/{build.manifest_dir()}/main.bin"
                if md5_of(stored) != expected_md5:
                    raise SystemExit("the archived blob is not the served one")
                shutil.rmtree(scratch / f"archive-{run}")
                results.append((disk, aria, aria_synced, ours))
                print(
                    f"run {run}: disk {disk.rate(size):.0f} MiB/s, "
                    f"aria2c {aria.rate(size):.0f} MiB/s "
                    f"(+fsync {aria_synced.rate(size):.0f}), "
                    f"ours {ours.rate(size):.0f} MiB/s, peak RSS {ours.peak_rss_mib:.0f} MiB; "
                    f"ours/aria2c {aria.seconds / ours.seconds:.2f}, "
                    f"ours/(aria2c+fsync) {aria_synced.seconds / ours.seconds:.2f}, "
                    f"ours/disk {disk.seconds / ours.seconds:.2f}",
                    flush=True,
                )
        if args.runs > 1:
            vs_aria = statistics.median(a.seconds / o.seconds for _, a, _, o in results)
            vs_disk = statistics.median(d.seconds / o.seconds for d, _, _, o in results)
            print(f"median of {args.runs} runs: ours/aria2c {vs_aria:.2f}, ours/disk {vs_disk:.2f}")
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
