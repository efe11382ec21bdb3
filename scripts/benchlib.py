"""Shared helpers for the benchmarks: a throwaway nginx on loopback, timed child processes.

Benchmarks measure ratios against a reference tool run side by side on the same machine and
data, never absolute numbers; they are developer tools and the package never imports them.
"""

from __future__ import annotations

import compileall
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def ensure_tools(*names: str) -> None:
    """Install missing Debian packages (nginx-light, aria2, ...) the first time."""
    packages = {"nginx": "nginx-light", "aria2c": "aria2", "xdelta3": "xdelta3"}
    missing = [packages.get(n, n) for n in names if shutil.which(n) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """nginx serving `root` on 127.0.0.1, dropping the fastly `/token=…` path segment."""

    def __init__(self, root: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        # nginx's workers drop root; the tree (often under a 0700 tempdir) must be readable.
        for directory in (root, *root.parents):
            if directory == Path("/"):
                break
            directory.chmod(directory.stat().st_mode | 0o055)
        self._conf = workdir / "nginx.conf"
        self._conf.write_text(
            f"""
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir}/access.log;  # counted by benchmarks (what a no-op run asked for)
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
        rewrite ^/token=[^/]*(/.*)$ $1 last;
    }}
}}
"""
        )
        self.access_log = workdir / "access.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        self._process = subprocess.Popen(["nginx", "-c", str(self._conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_bytes: int
    returncode: int


# Linux keeps a process's peak RSS across exec, so a child forked straight from a benchmark
# that holds a large world in memory would report that size. A small Python process in
# between forks the measured command, and reports the command's own peak.
_RSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_timed(command: list[str], **kwargs: object) -> Timed:
    """Run a command; its wall time and its own peak RSS."""
    kwargs.setdefault("cwd", REPO)  # `python -m galaxy_archive` from a source checkout too
    with tempfile.NamedTemporaryFile("r") as rss_file:
        started = time.monotonic()
        completed = subprocess.run(  # type: ignore[call-overload]
            [sys.executable, "-c", _RSS_WRAPPER, rss_file.name, *command], check=False, **kwargs
        )
        elapsed = time.monotonic() - started
        peak = int(rss_file.read() or 0)
    return Timed(elapsed, peak, completed.returncode)


def write_config(path: Path, root: Path, server: object, *, workers: int = 8) -> None:
    path.write_text(
        f'[archive]\nroot = "{root}"\n'
        f'[auth]\ntoken_file = "{path.parent / "token.json"}"\n'
        f"[sync]\nworkers = {workers}\n"
        "[endpoints]\n"
        f'auth = "{server.auth_url}"\n'  # type: ignore[attr-defined]
        f'embed = "{server.embed_url}"\n'  # type: ignore[attr-defined]
        f'content_system = "{server.content_system_url}"\n'  # type: ignore[attr-defined]
        f'cdn = "{server.cdn_url}"\n'  # type: ignore[attr-defined]
    )


def precompile() -> None:
    """Compile the package's bytecode once, as `pip install` does: the commands timed are run
    from the source tree, where an environment with PYTHONDONTWRITEBYTECODE would otherwise
    compile every module again in every run (~20 ms of start-up no installed copy pays)."""
    compileall.compile_dir(REPO / "galaxy_archive", quiet=1)


def galaxy_archive(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "galaxy_archive", "--config", str(config), *args]


def mib_per_s(size: int, seconds: float) -> float:
    return size / seconds / 2**20


def requests_served(nginx: Nginx) -> int:
    """How many requests nginx has logged so far (its access log's lines)."""
    try:
        with nginx.access_log.open("rb") as log:
            return sum(1 for _ in log)
    except FileNotFoundError:
        return 0


def spread(values: list[float]) -> str:
    """'median (min-max)' of a benchmark's samples."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
