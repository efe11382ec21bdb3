"""`galaxy-archive serve` as a real process on 127.0.0.1 and a free port, for the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.conftest import REPO, Archive

READY_MARK = "galaxy-archive: serving on "


class ServeProcess:
    """Started on construction; `url` is where it listens; `stop()` sends SIGTERM and returns
    the exit code; `stderr` is everything it wrote (after stop)."""

    def __init__(self, config_path: Path, *args: str, verbose: bool = True) -> None:
        command = [sys.executable, "-m", "galaxy_archive", "--config", str(config_path)]
        command += ["-v"] if verbose else []
        command += ["serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        self._lines: list[str] = []
        self.url = self._wait_ready()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _wait_ready(self) -> str:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)
            if line.startswith(READY_MARK):
                return line[len(READY_MARK) :].strip()
        self.process.wait(10)
        raise AssertionError("serve did not start:\n" + "".join(self._lines))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(20)
        self._reader.join(5)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self._lines)


def endpoints_at(url: str) -> Any:
    """A stand-in for FakeGalaxy in `Archive`: every [endpoints] URL at `url`."""
    return SimpleNamespace(auth_url=url, embed_url=url, content_system_url=url, cdn_url=url)


def archive_against(url: str, root: Path, name: str) -> Archive:
    archive = Archive(
        root=root / name,
        config_path=root / f"{name}.toml",
        token_file=root / f"{name}-token.json",
        server=endpoints_at(url),
    )
    archive.write_config()
    return archive


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
