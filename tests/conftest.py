"""Shared fixtures: a fake Galaxy on 127.0.0.1, an archive configured against it, the CLI.

Tests never reach the internet: a guard refuses any socket connection that is not loopback.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from galaxy_archive.cli.main import cli
from tests.fakegalaxy import FakeGalaxy, World

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"

settings.register_profile("default", deadline=None, max_examples=50)
settings.register_profile("ci", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise OSError(f"tests may only connect to loopback, not {host!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@dataclass
class Archive:
    """An archive root plus a config pointing every endpoint at one fake server."""

    root: Path
    config_path: Path
    token_file: Path
    server: FakeGalaxy
    extra_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write_config(self, **sections: dict[str, Any]) -> None:
        for name, values in sections.items():
            self.extra_config.setdefault(name, {}).update(values)
        config: dict[str, dict[str, Any]] = {
            "archive": {"root": str(self.root)},
            "auth": {"token_file": str(self.token_file)},
            "endpoints": {
                "auth": self.server.auth_url,
                "embed": self.server.embed_url,
                "content_system": self.server.content_system_url,
                "cdn": self.server.cdn_url,
            },
            "http": {"backoff": 0.01, "retries": 5, "timeout": 10},
            "sync": {"workers": 4},
        }
        for name, values in self.extra_config.items():
            config.setdefault(name, {}).update(values)
        lines = []
        for name, values in config.items():
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        self.config_path.write_text("\n".join(lines) + "\n")

    def run(self, *args: str, input: str | None = None) -> Result:
        """The CLI in-process, like a user would call it."""
        return CliRunner().invoke(cli, ["--config", str(self.config_path), *args], input=input)

    def run_process(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The CLI as a separate process (for signals, kill -9 and real stdin)."""
        return subprocess.run(
            [sys.executable, "-m", "galaxy_archive", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            timeout=kwargs.pop("timeout", 120),
            check=False,
            **kwargs,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "galaxy_archive", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )

    def login(self) -> None:
        result = self.run("login", "--code", "test-code")
        assert result.exit_code == 0, result.output

    def tree(self) -> dict[str, bytes]:
        """Every file under v1/ and v2/ (the archived objects), relative path -> bytes."""
        files = {}
        for top in ("v1", "v2"):
            base = self.root / top
            if base.exists():
                for path in base.rglob("*"):
                    if path.is_file():
                        files[path.relative_to(self.root).as_posix()] = path.read_bytes()
        return files

    def db_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "archive.db") as conn:
            return conn.execute(sql, params).fetchall()

    def db_dump(self) -> str:
        with sqlite3.connect(self.root / "archive.db") as conn:
            return "\n".join(conn.iterdump())


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeGalaxy]]:
    servers: list[FakeGalaxy] = []

    def start(world: World, **options: Any) -> FakeGalaxy:
        server = FakeGalaxy(world, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_archive(tmp_path: Path) -> Callable[..., Archive]:
    def make(server: FakeGalaxy, *, login: bool = True, name: str = "archive") -> Archive:
        archive = Archive(
            root=tmp_path / name,
            config_path=tmp_path / f"{name}.toml",
            token_file=tmp_path / f"{name}-token.json",
            server=server,
        )
        archive.write_config()
        if login:
            archive.login()
        return archive

    return make


# --- the S3 backend's server (tests/s3_server.py): started only by the tests that ask ---


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One `rclone serve s3` for the session; each test keeps to its own key prefix."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server's keys in the environment, where boto3's standard chain finds them."""
    for name, value in s3_server.credentials_env().items():
        monkeypatch.setenv(name, value)
    return s3_server
