#!/usr/bin/env python3
"""Benchmark `export` / `import` (issue 15): against `tar --zstd` over the same files, peak RSS.

The world and the synced archive are bench_restore's (one V2 build of random files in 10 MiB
chunks, --mib of game bytes; the goal figure is >= 1 GiB); then the server is stopped. In one
run, alternating (ABBA) for --rounds:
  export: (a) `galaxy-archive export` vs (b) `tar --zstd -cf` of the archive's v2/ tree;
  import: (a) `galaxy-archive import` into an empty archive vs (b) `tar --zstd -xf` of (b)'s
  file into an empty directory.
The median of the per-round speed ratios a/b is printed for each (goal: >= 0.7), with the peak
RSS of each galaxy-archive child (goal: < 200 MB).

    python scripts/bench_transfer.py [--mib 1024] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_restore import PID, make_world
from benchlib import ensure_tools, galaxy_archive, precompile, run_timed, write_config

from tests.fakegalaxy import FakeGalaxy, World

MIB = 2**20


def sync_archives(workdir: Path, world: World) -> tuple[Path, Path]:
    """Archive A synced from the fake Galaxy, and the config of an archive B to import into."""
    source, target = workdir / "a.toml", workdir / "b.toml"
    with FakeGalaxy(world) as fake:
        write_config(source, workdir / "a", fake, workers=4)
        write_config(target, workdir / "b", fake, workers=4)
        for args in (("login", "--code", "bench"), ("sync", PID, "--generation", "2")):
            if run_timed(galaxy_archive(source, *args)).returncode != 0:
                sys.exit(f"{' '.join(args)} failed")
    return source, target


def one_round(workdir: Path, source: Path, target: Path, order: tuple[str, str]) -> dict[str, Any]:
    quiet = {"stdout": open(os.devnull, "w")}  # noqa: SIM115
    ours, theirs = workdir / "ours.tar.zst", workdir / "theirs.tar.zst"
    out: dict[str, Any] = {}
    for which in order:
        if which == "a":
            ours.unlink(missing_ok=True)
            done = run_timed(
                galaxy_archive(source, "--json", "export", PID, "-o", str(ours)), **quiet
            )
            out["export"], out["export_rss"] = done.seconds, done.peak_rss_bytes
            shutil.rmtree(workdir / "b", ignore_errors=True)
            done = run_timed(galaxy_archive(target, "--json", "import", str(ours)), **quiet)
            out["import"], out["import_rss"] = done.seconds, done.peak_rss_bytes
        else:
            theirs.unlink(missing_ok=True)
            done = run_timed(["tar", "--zstd", "-cf", str(theirs), "-C", str(workdir / "a"), "v2"])
            out["tar_c"] = done.seconds
            shutil.rmtree(workdir / "untar", ignore_errors=True)
            (workdir / "untar").mkdir()
            done = run_timed(["tar", "--zstd", "-xf", str(theirs), "-C", str(workdir / "untar")])
            out["tar_x"] = done.seconds
        if done.returncode != 0:
            sys.exit(f"{which} failed ({done.returncode})")
    out["sizes"] = (ours.stat().st_size, theirs.stat().st_size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="game bytes (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    ensure_tools("tar", "zstd")
    precompile()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    world, _ = make_world(args.mib * MIB)
    source, target = sync_archives(workdir, world)
    del world
    rounds = []
    for number in range(args.rounds):
        order = ("a", "b") if number % 2 == 0 else ("b", "a")
        result = one_round(workdir, source, target, order)
        rounds.append(result)
        print(
            f"round {number + 1}: export {result['export']:.2f}s vs tar -c {result['tar_c']:.2f}s,"
            f" import {result['import']:.2f}s vs tar -x {result['tar_x']:.2f}s",
            flush=True,
        )
    print(
        json.dumps(
            {
                "game_mib": args.mib,
                "rounds": args.rounds,
                "ratio_export_to_tar_median": _median(rounds, "tar_c", "export"),
                "ratio_import_to_tar_median": _median(rounds, "tar_x", "import"),
                "export_peak_rss_mib": round(max(r["export_rss"] for r in rounds) / MIB, 1),
                "import_peak_rss_mib": round(max(r["import_rss"] for r in rounds) / MIB, 1),
                "file_bytes_ours_vs_tar": rounds[-1]["sizes"],
            }
        )
    )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def _median(rounds: list[dict[str, Any]], floor: str, ours: str) -> float:
    """Median of speed(ours) / speed(tar) = time(tar) / time(ours)."""
    return round(statistics.median(r[floor] / r[ours] for r in rounds), 3)


if __name__ == "__main__":
    main()
