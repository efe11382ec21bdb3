#!/usr/bin/env python3
"""Benchmark `verify` (issue 5): throughput against `md5sum` on every core, --quick over
100,000 objects, peak RSS.

An archive of real zlib chunks (>= 2 GB stored: about 8 MiB chunks and many small ones, with
their DB rows as sync records them) is written directly, which is much faster than syncing
it. In one run, warm (the page cache holds the whole archive; nothing can drop it here) and
alternating in ABBA order, `find v2 -type f -print0 | xargs -0 -P $(nproc) -n 64 md5sum` and
`galaxy-archive verify` (the default level, every object re-hashed and re-stamped) each run
ROUNDS times; the median of the per-round throughput ratios is printed, with the CPU time of
both and the fixed cost of a verify process (a run over an empty archive) beside the bare
interpreter's start (`python -c pass`), the floor of any Python tool. --extra-gib adds the
same comparison over a larger archive as a further figure (the fixed cost weighs less there);
the headline stays the >= 2 GB one. Then an archive of 100,000 small objects is checked with
`verify --quick` (tree walk included) and, for reference, the default level.

    python scripts/bench_verify.py [--gib 2.0] [--rounds 7] [--extra-gib 0] \
        [--quick-objects 100000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchlib import REPO, galaxy_archive, mib_per_s, precompile

from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.state.db import iso, open_db

MIB = 2**20
ROUNDS = 7
CORES = os.cpu_count() or 1
BIG_CHUNK_BYTES = 8 * MIB
SMALL_CHUNKS = 3000


# Like benchlib.run_timed (a small Python process in between, so the peak RSS is the measured
# command's own), plus the CPU seconds it and its children used: on a shared machine the wall
# time is noisy, the CPU time much less so.
_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
children = os.times()
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss * 1024} {children.children_user + children.children_system}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    returncode: int


def run_measured(command: list[str]) -> Measured:
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-c", _WRAPPER, report.name, *command],
            check=False,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        elapsed = time.monotonic() - started
        rss, cpu = report.read().split()
    return Measured(elapsed, float(cpu), int(rss), completed.returncode)


def _chunk(seed: int, raw_size: int) -> tuple[bytes, str, int]:
    """A zlib chunk like GOG's: half random, half repetitive (deflates to about half)."""
    rng = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    random_part = os.urandom(raw_size // 2)
    raw = random_part + (rng * (raw_size // 64 + 1))[: raw_size - len(random_part)]
    return zlib.compress(raw, 1), hashlib.md5(raw).hexdigest(), len(raw)


def _write_chunk(root: Path, job: tuple[int, int]) -> tuple[str, str, int, str, int]:
    seed, raw_size = job
    body, raw_md5, size = _chunk(seed, raw_size)
    md5 = hashlib.md5(body).hexdigest()
    path = root / cas_path(ObjectKind.STORE, md5)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return cas_path(ObjectKind.STORE, md5), md5, len(body), raw_md5, size


def _jobs(stored_target: int) -> Iterator[tuple[int, int]]:
    """Big chunks until about the target (at about 50% deflation), then the small ones."""
    seed = 0
    for _ in range(int(stored_target / (BIG_CHUNK_BYTES * 0.5)) + 1):
        seed += 1
        yield seed, BIG_CHUNK_BYTES + (seed % 5) * 100_000
    for small in range(SMALL_CHUNKS):
        seed += 1
        yield seed, 2_000 + small * 13


def make_archive(root: Path, jobs: Iterator[tuple[int, int]], workers: int = 2) -> int:
    """Write chunk files and their DB rows (state verified, as sync leaves them)."""
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    db = open_db(root / "archive.db", now=now)
    stamp = iso(now - 90 * 86400)
    total = 0
    with ProcessPoolExecutor(workers) as pool:
        rows = []
        for path, md5, size, raw_md5, raw_size in pool.map(
            _write_chunk, itertools.repeat(root), jobs, chunksize=16
        ):
            rows.append(
                (
                    ObjectKind.STORE.value,
                    path,
                    md5,
                    size,
                    raw_md5,
                    raw_size,
                    "1207658930",
                    stamp,
                    stamp,
                    stamp,
                )
            )
            total += size
    db.conn.executemany(
        "INSERT INTO objects (kind, path, md5, size, inflated_md5, inflated_size, state, "
        "product_id, fetched_at, verified_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'verified', ?, ?, ?, ?)",
        rows,
    )
    db.conn.commit()
    db.close()
    return total


def write_config(path: Path, root: Path) -> Path:
    path.write_text(f'[archive]\nroot = "{root}"\n')
    return path


def bench_throughput(
    workdir: Path, stored_target: int, rounds: int, *, name: str = "big", is_headline: bool = True
) -> None:
    """verify against md5sum on every core (as verify uses one thread per core) over about
    `stored_target` bytes; the headline run also prints the peak RSS and runs --deep once."""
    root = workdir / name
    print(f"writing about {stored_target / 2**30:.2f} GiB of zlib chunks ...", flush=True)
    total = make_archive(root, _jobs(stored_target))
    files = sum(1 for _ in (root / "v2").rglob("*") if _.is_file())
    print(f"archive: {files} objects, {total / MIB:.0f} MiB stored")
    config = write_config(workdir / f"{name}.toml", root)
    md5sum = [
        "bash",
        "-c",
        f"find {root}/v2 -type f -print0 | xargs -0 -P {CORES} -n 64 md5sum > /dev/null",
    ]
    check_every_object_verified(config, files)
    verify = galaxy_archive(config, "-q", "verify")
    # The fixed cost of a verify run: interpreter, imports, DB open, plan, run record; and the
    # interpreter's own start, which no Python tool can go below.
    empty = workdir / "empty"
    if not empty.exists():
        open_db(empty / "archive.db", now=time.time()).close()
    verify_empty = galaxy_archive(write_config(workdir / "empty.toml", empty), "-q", "verify")
    bare_python = [sys.executable, "-c", "pass"]
    run_measured(md5sum)  # warm the page cache, then alternate (ABBA: no side always first)
    theirs_runs, ours_runs, fixed_runs, bare_runs = [], [], [], []
    for number in range(1, rounds + 1):
        if number % 2:
            theirs, ours = run_measured(md5sum), run_measured(verify)
        else:
            ours, theirs = run_measured(verify), run_measured(md5sum)
        fixed_runs.append(run_measured(verify_empty))
        bare_runs.append(run_measured(bare_python))
        assert theirs.returncode == 0 and ours.returncode == 0, "a run failed"
        theirs_runs.append(theirs)
        ours_runs.append(ours)
        print(
            f"round {number}: md5sum -P {CORES} {theirs.seconds:5.2f} s "
            f"({mib_per_s(total, theirs.seconds):6.1f} MiB/s, CPU {theirs.cpu_seconds:5.2f} s) | "
            f"verify {ours.seconds:5.2f} s ({mib_per_s(total, ours.seconds):6.1f} MiB/s, "
            f"CPU {ours.cpu_seconds:5.2f} s, peak RSS {ours.peak_rss_bytes / MIB:.0f} MiB) | "
            f"ratio {theirs.seconds / ours.seconds:.2f}  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ratios = [t.seconds / o.seconds for t, o in zip(theirs_runs, ours_runs, strict=True)]
    best = min(t.seconds for t in theirs_runs) / min(o.seconds for o in ours_runs)
    cpu = statistics.median(t.cpu_seconds for t in theirs_runs) / statistics.median(
        o.cpu_seconds for o in ours_runs
    )
    fixed = statistics.median(f.seconds for f in fixed_runs)
    bare = statistics.median(b.seconds for b in bare_runs)
    hashing = statistics.median(
        t.seconds / (o.seconds - fixed) for t, o in zip(theirs_runs, ours_runs, strict=True)
    )
    size = f"{total / 2**30:.2f} GiB"
    print(
        f"RATIO verify/md5sum throughput ({size}): median of {rounds} rounds "
        f"{statistics.median(ratios):.2f}, best against best {best:.2f}  (target >= 0.90); "
        f"CPU-time ratio {cpu:.2f}"
    )
    print(
        f"fixed cost of a verify run (0 objects: interpreter, imports, DB): {fixed:.3f} s "
        f"(bare interpreter start {bare:.3f} s); ratio without it {hashing:.2f}"
    )
    if not is_headline:
        return
    print(
        f"peak RSS of verify: {max(o.peak_rss_bytes for o in ours_runs) / MIB:.0f} MiB"
        "  (target < 200 MiB)"
    )
    deep = run_measured(galaxy_archive(config, "-q", "verify", "--deep"))
    assert deep.returncode == 0, "verify --deep failed"
    print(
        f"for reference, verify --deep (inflate every chunk too): {deep.seconds:.2f} s, "
        f"{mib_per_s(total, deep.seconds):.1f} MiB/s, peak RSS {deep.peak_rss_bytes / MIB:.0f} MiB"
    )


def check_every_object_verified(config: Path, files: int) -> None:
    """A figure counts only if verify really read every object: its own --json says so."""
    result = subprocess.run(
        galaxy_archive(config, "--json", "verify"), cwd=REPO, capture_output=True, check=False
    )
    report = json.loads(result.stdout)
    checked = report["verify"]["checked"] if "verify" in report else report["checked"]
    assert result.returncode == 0 and checked == files, f"verify checked {checked} of {files}"
    print(f"verify --json: checked {checked} of {files} objects, exit 0")


def _small_jobs(count: int) -> Iterator[tuple[int, int]]:
    for seed in range(count):
        yield 10**7 + seed, 200


def bench_quick(workdir: Path, count: int) -> None:
    root = workdir / "small"
    print(f"writing {count} small objects ...", flush=True)
    make_archive(root, _small_jobs(count))
    config = write_config(workdir / "small.toml", root)
    quick = run_measured(galaxy_archive(config, "-q", "verify", "--quick"))
    assert quick.returncode == 0, "verify --quick failed"
    print(
        f"verify --quick over {count} objects (tree walk included): {quick.seconds:.2f} s "
        f"(target < 10 s), peak RSS {quick.peak_rss_bytes / MIB:.0f} MiB"
    )
    full = run_measured(galaxy_archive(config, "-q", "verify"))
    assert full.returncode == 0, "verify failed"
    print(
        f"for reference, verify (default level) over the same: {full.seconds:.2f} s, "
        f"peak RSS {full.peak_rss_bytes / MIB:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB of stored chunks")
    parser.add_argument(
        "--extra-gib", type=float, default=0.0, help="also this many GiB, a further figure"
    )
    parser.add_argument("--quick-objects", type=int, default=100_000, help="0: skip")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    precompile()
    print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        workdir = Path(scratch)
        bench_throughput(workdir, int(args.gib * 2**30), args.rounds)
        if args.extra_gib:
            extra = int(args.extra_gib * 2**30)
            bench_throughput(workdir, extra, args.rounds, name="extra", is_headline=False)
        if args.quick_objects:
            bench_quick(workdir, args.quick_objects)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
