"""Serve the sample world for the offline demo: ``python -m tests.fakegalaxy [--port N]``."""

from __future__ import annotations

import argparse
import contextlib
import threading

from .sample import sample_world
from .server import FakeGalaxy


def main() -> None:
    """Run the fake Galaxy on 127.0.0.1 until interrupted, printing the endpoints to use."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakegalaxy", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample world")
    args = parser.parse_args()
    with FakeGalaxy(sample_world(args.seed), port=args.port) as server:
        print("[endpoints]")
        print(f'auth = "{server.auth_url}"')
        print(f'embed = "{server.embed_url}"')
        print(f'content_system = "{server.content_system_url}"')
        print(f'cdn = "{server.cdn_url}"')
        print(f"# login page: {server.auth_url}/auth  (any code but 'bad' is accepted)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
