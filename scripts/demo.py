#!/usr/bin/env python3
"""Offline demo: serve the bundled sample product from the fake Galaxy server and mirror it.

Runs `galaxy-archive login`, `sync` and `status` as a user would, against a local server on
127.0.0.1 (no account, no internet). The archive is left in ./demo-archive, with its config
./demo-archive.toml (and login token) beside it, so the offline commands printed at the end
work on it; anything that needs the network (verify --repair) needs the demo server, which
stops with the demo.

    python scripts/demo.py [--root DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
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
    config = root.with_name(root.name + ".toml")
    token = root.with_name(root.name + "-token.json")
    shutil.rmtree(root, ignore_errors=True)
    with FakeGalaxy(sample_world()) as server:
        write_config(config, root, token, server)
        for step in STEPS:
            command = [sys.executable, "-m", "galaxy_archive", "--config", str(config), *step]
            print(f"$ galaxy-archive {' '.join(step)}", flush=True)
            result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                print(f"demo: `{' '.join(step)}` exited {result.returncode}", file=sys.stderr)
                return result.returncode
    print_next_steps(root, config)
    return 0


STEPS = [
    ["login", "--code", "demo"],
    ["sync", *PRODUCTS],
    ["sync", *PRODUCTS],  # the second run finds everything in place
    ["status"],
]


def write_config(config: Path, root: Path, token: Path, server: FakeGalaxy) -> None:
    config.write_text(
        f'[archive]\nroot = "{root}"\n'
        f'[auth]\ntoken_file = "{token}"\n'
        "[endpoints]\n"
        f'auth = "{server.auth_url}"\n'
        f'embed = "{server.embed_url}"\n'
        f'content_system = "{server.content_system_url}"\n'
        f'cdn = "{server.cdn_url}"\n'
    )


def print_next_steps(root: Path, config: Path) -> None:
    """The commands to try next on the demo archive (restore and serve once they exist)."""
    from galaxy_archive.cli.main import cli  # the package registers every command

    tries = [["status", PRODUCTS[0]], ["verify"], ["verify", "--deep"]]
    tries += [[name, "--help"] for name in ("restore", "serve") if name in cli.commands]
    print(f"\nThe archive is in {root}, its config in {config}. Try:")
    for args in tries:
        print(f"  galaxy-archive --config {config} {' '.join(args)}")


if __name__ == "__main__":
    sys.exit(main())
