#!/usr/bin/env python3
"""Offline demo: serve the bundled sample product from the fake Galaxy server and mirror it.

Runs `galaxy-archive login`, `sync` and `status` as a user would, against a local server on
127.0.0.1 (no account, no internet). The archive is left in ./demo-archive to look at.

    python scripts/demo.py [--root DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the fake server lives in tests/fakegalaxy

from tests.fakegalaxy import FakeGalaxy, sample_world  # noqa: E402

PRODUCTS = ["1207658930", "1423049311"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("demo-archive"))
    args = parser.parse_args()
    root: Path = args.root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch, FakeGalaxy(sample_world()) as server:
        config = Path(scratch) / "archive.toml"
        config.write_text(
            f'[archive]\nroot = "{root}"\n'
            f'[auth]\ntoken_file = "{Path(scratch) / "token.json"}"\n'
            "[endpoints]\n"
            f'auth = "{server.auth_url}"\n'
            f'embed = "{server.embed_url}"\n'
            f'content_system = "{server.content_system_url}"\n'
            f'cdn = "{server.cdn_url}"\n'
        )
        steps = [
            ["login", "--code", "demo"],
            ["sync", *PRODUCTS],
            ["sync", *PRODUCTS],  # the second run finds everything in place
            ["status"],
        ]
        for step in steps:
            command = [sys.executable, "-m", "galaxy_archive", "--config", str(config), *step]
            print(f"$ galaxy-archive {' '.join(step)}", flush=True)
            result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                print(f"demo: `{' '.join(step)}` exited {result.returncode}", file=sys.stderr)
                return result.returncode
    print(f"\nThe archive is in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
