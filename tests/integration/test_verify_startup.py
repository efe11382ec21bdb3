"""A verify process starts light: commands without network load neither the HTTP stack nor the
sync or repair code, and a plain verify not even sqlite-utils (which imports numpy when numpy is
installed). The fixed cost of every start counts against verify's throughput (issue 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"
NETWORK_STACK = {
    "requests",
    "urllib3",
    "galaxy_archive.upstream.http_client",
    "galaxy_archive.upstream.auth",
}
SYNC_AND_REPAIR = {
    "galaxy_archive.sync.syncer",
    "galaxy_archive.fetch.downloader",
    "galaxy_archive.verify.repair",
}

# Runs the CLI in a fresh interpreter, then records which modules that process had loaded.
_PROBE = """
import json, sys
from galaxy_archive.cli.main import cli
code = None
try:
    cli.main(sys.argv[2:], prog_name="galaxy-archive")
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"exit_code": code, "modules": sorted(sys.modules)}, out)
"""


def loaded_modules(archive: Archive, tmp_path: Path, *args: str) -> set[str]:
    """The modules a `galaxy-archive <args>` process loaded; asserts it exited 0."""
    report = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), "--config", str(archive.config_path), *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(report.read_text())
    assert doc["exit_code"] == 0, doc["exit_code"]
    return set(doc["modules"])


def test_verify_without_repair_loads_no_network_sync_or_sqlite_utils(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world = World(seed=5)
    world.add_v2_build(PID, files={"game.bin": random_bytes(300_000, 1), "readme.txt": b"hi"})
    archive = make_archive(serve(world))
    assert archive.run("sync", PID, "--generation", "2").exit_code == 0
    assert archive.db_rows("SELECT count(*) FROM objects WHERE state = 'verified'")[0][0] > 3

    not_for_verify = NETWORK_STACK | SYNC_AND_REPAIR | {"sqlite_utils", "numpy"}
    for args in (("verify",), ("verify", "--quick"), ("verify", "--deep")):
        loaded = loaded_modules(archive, tmp_path, *args)
        assert "galaxy_archive.verify.verifier" in loaded
        assert sorted(loaded & not_for_verify) == [], args
    status = loaded_modules(archive, tmp_path, "status")
    assert sorted(status & (NETWORK_STACK | SYNC_AND_REPAIR)) == []
    assert "sqlite_utils" in status  # its dict-row queries
    # --repair does need the network: the probe sees what a command loads.
    assert loaded_modules(archive, tmp_path, "verify", "--repair") >= NETWORK_STACK
