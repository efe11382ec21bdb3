"""Benchmark `galaxy-archive serve` against nginx serving the same tree (issue 14).

Builds a synthetic archive (chunks of 1 MiB under v2/store, one V1 main.bin, every object
recorded verified), then for each server on loopback: `aria2c -j 8` over the chunk URLs,
`aria2c -x 8` over the main.bin, and serve's peak RSS (VmHWM) while 64 clients download at
once. Prints one JSON document with the times and the serve/nginx throughput ratios.

Developer tool (the package never imports it). Run at full size on a quiet machine only:

    python scripts/bench_serve.py --blob-mb 1024 --chunks 2000
    python scripts/bench_serve.py --blob-mb 8 --chunks 20      # does the script work?
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from galaxy_archive.state.db import open_db  # noqa: E402

PRODUCT = "1"
CHUNK_BYTES = 1024 * 1024
BLOB_PATH = "v1/depots/1/windows/1/main.bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_archive(root: Path, chunks: int, blob_mb: int) -> list[str]:
    """The tree and its DB; returns the chunk paths."""
    db = open_db(root / "archive.db", now=time.time(), migrations_dir=REPO / "migrations")
    db.close()
    conn = sqlite3.connect(root / "archive.db")
    paths = []
    for number in range(chunks):
        data = hashlib.sha256(str(number).encode()).digest() * (CHUNK_BYTES // 32)
        md5 = hashlib.md5(data).hexdigest()
        path = f"v2/store/{md5[0:2]}/{md5[2:4]}/{md5}"
        _write(root / path, [data])
        cursor = conn.execute(
            "INSERT INTO objects (kind, path, md5, size, state, product_id, updated_at) "
            "VALUES ('store', ?, ?, ?, 'verified', ?, 'now')",
            (path, md5, len(data), PRODUCT),
        )
        conn.execute("INSERT INTO object_products VALUES (?, ?)", (cursor.lastrowid, PRODUCT))
        paths.append(path)
    block = os.urandom(CHUNK_BYTES)
    _write(root / BLOB_PATH, (block for _ in range(blob_mb)))
    conn.execute(
        "INSERT INTO objects (kind, path, size, state, product_id, updated_at) "
        "VALUES ('v1_blob', ?, ?, 'verified', ?, 'now')",
        (BLOB_PATH, blob_mb * CHUNK_BYTES, PRODUCT),
    )
    conn.commit()
    conn.close()
    return paths


def _write(path: Path, blocks: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for block in blocks:  # type: ignore[attr-defined]
            handle.write(block)


def start_serve(root: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "galaxy_archive", "--root", str(root), "serve",
         "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait(f"http://127.0.0.1:{port}/galaxy-archive/heartbeat")
    return process


def start_nginx(root: Path, port: int, work: Path) -> subprocess.Popen[bytes]:
    conf = work / "nginx.conf"
    # As root, nginx's workers would run as nobody and could not read the private temp tree.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user} daemon off; worker_processes 1; pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path {work}/t; proxy_temp_path {work}/t; fastcgi_temp_path {work}/t;
  uwsgi_temp_path {work}/t; scgi_temp_path {work}/t;
  server {{
    listen 127.0.0.1:{port}; root {root};
    location = /heartbeat {{ return 204; }}
    rewrite ^/content-system/v2/store/[0-9]+/(.*)$ /v2/store/$1 break;
    rewrite ^/content-system/(.*)$ /$1 break;
  }}
}}
""")
    process = subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)
    _wait(f"http://127.0.0.1:{port}/heartbeat")
    return process


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server did not come up: {url}")


def aria2c(args: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    started = time.perf_counter()
    subprocess.run(
        ["aria2c", "-q", "--allow-overwrite=true", "--file-allocation=none", "-d", str(out),
         *args],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def measure(base: str, paths: list[str], work: Path) -> dict[str, float]:
    urls = work / "urls.txt"
    urls.write_text(
        "".join(f"{base}/content-system/v2/store/{PRODUCT}/{p[len('v2/store/'):]}\n"
                for p in paths)
    )  # fmt: skip
    chunks_s = aria2c(["-j", "8", "-i", str(urls)], work / "out")
    blob_s = aria2c(["-x", "8", "-s", "8", f"{base}/content-system/{BLOB_PATH}"], work / "out")
    return {"chunks_s": chunks_s, "blob_s": blob_s}


def peak_rss_mb(process: subprocess.Popen[bytes], base: str, clients: int, blob_mb: int) -> float:
    """Serve's VmHWM after `clients` connections each read the main.bin at once."""

    def client() -> None:
        with urllib.request.urlopen(f"{base}/content-system/{BLOB_PATH}", timeout=600) as r:
            while r.read(256 * 1024):
                pass

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = Path(f"/proc/{process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--blob-mb", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=64)
    options = parser.parse_args()
    for tool in ("aria2c", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        work = Path(temp)
        root = work / "archive"
        paths = build_archive(root, options.chunks, options.blob_mb)
        serve_port, nginx_port = _free_port(), _free_port()
        serve = start_serve(root, serve_port)
        nginx = start_nginx(root, nginx_port, work)
        try:
            serve_base, nginx_base = (
                f"http://127.0.0.1:{serve_port}",
                f"http://127.0.0.1:{nginx_port}",
            )
            result: dict[str, object] = {
                "chunks": options.chunks,
                "blob_mb": options.blob_mb,
                "serve": measure(serve_base, paths, work),
                "nginx": measure(nginx_base, paths, work),
            }
            result["serve_peak_rss_mb"] = peak_rss_mb(
                serve, serve_base, options.clients, options.blob_mb
            )
        finally:
            serve.terminate()
            nginx.terminate()
            serve.wait(20)
            nginx.wait(20)
    serve_times, nginx_times = result["serve"], result["nginx"]
    assert isinstance(serve_times, dict) and isinstance(nginx_times, dict)
    result["throughput_ratio_chunks"] = nginx_times["chunks_s"] / serve_times["chunks_s"]
    result["throughput_ratio_blob"] = nginx_times["blob_s"] / serve_times["blob_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
