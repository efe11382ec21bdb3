"""A real client installs from `serve`: lgogdownloader `--galaxy-install` (issue 14).

lgogdownloader talks only to `https://…gog.com` names, so it runs inside private namespaces
that change nothing on the machine (`unshare --mount --net --fork`): a loopback of its own,
a private /etc/hosts bind-mounted over the real one, and `serve` with TLS on 127.0.0.1:443
under a certificate from a throwaway CA made here and handed over with `--cacert`.

Every file lgogdownloader writes must have the manifest's MD5. Its known gaps (Debian's 3.9)
are reported as gaps, never as passes: it does not write files without chunks (empty files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, Archive
from tests.fakegalaxy import FakeGalaxy
from tests.fakegalaxy.sample import SAMPLE_DLC_ID, SAMPLE_PRODUCT_ID, sample_world

GOG_HOSTS = (
    "auth.gog.com", "embed.gog.com", "content-system.gog.com", "cdn.gog.com",
    "gog-cdn-fastly.gog.com", "api.gog.com", "www.gog.com", "login.gog.com",
    "downloadable-manifests-collector.gog.com", "remote-config.gog.com",
)  # fmt: skip
LANGUAGES = {"*", "en-US", "Neutral", "en"}


def _namespaces_refused() -> str | None:
    if os.geteuid() != 0:
        return "needs root for unshare --mount --net"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if probe.returncode == 0 else f"unshare is refused here: {probe.stderr.strip()}"


def _lgogdownloader() -> str:
    found = shutil.which("lgogdownloader")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("lgogdownloader is not installed (.ci/run installs it)")
        pytest.skip("lgogdownloader is not installed (apt-get install lgogdownloader)")
    return found


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _throwaway_ca(work: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for the GOG names and 127.0.0.1."""
    ca_key, ca, key, csr, cert = (work / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr",
                                                     "srv.pem"))  # fmt: skip
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=galaxy-archive test CA", "-keyout", str(ca_key), "-out", str(ca),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gog.com",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    names = ",".join(f"DNS:{host}" for host in GOG_HOSTS) + ",IP:127.0.0.1"
    (work / "ext.cnf").write_text(f"subjectAltName={names}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(work / "ext.cnf"),
             "-out", str(cert))  # fmt: skip
    return ca, cert, key


def _script(work: Path, archive: Archive, cert: Path, key: Path, ca: Path, target: str) -> Path:
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in GOG_HOSTS))
    serve = (
        f"{sys.executable} -m galaxy_archive --config {archive.config_path} -v serve "
        f"--host 127.0.0.1 --port 443 --tls-cert {cert} --tls-key {key}"
    )
    script = work / "install.sh"
    script.write_text(
        f"""set -u
ip link set lo up
mount --bind {hosts} /etc/hosts
cd {REPO}
{serve} 2> {work}/serve.log &
SERVE=$!
for i in $(seq 100); do
  curl -sf --cacert {ca} https://cdn.gog.com/galaxy-archive/heartbeat && break; sleep 0.1
done
XDG_CONFIG_HOME={work}/xdg XDG_CACHE_HOME={work}/cache timeout 300 lgogdownloader \\
  --cacert {ca} --galaxy-install {target} --galaxy-platform w --galaxy-language en \\
  --directory {work}/out > {work}/lgog.log 2>&1
CODE=$?
kill -TERM $SERVE; wait $SERVE
exit $CODE
"""
    )
    return script


def _galaxy_tokens(work: Path) -> None:
    """An authorization_code grant against serve's /token is what lgogdownloader keeps; the
    file it reads holds the same shape (plus its own `expires_at`)."""
    tokens = work / "xdg" / "lgogdownloader" / "galaxy_tokens.json"
    tokens.parent.mkdir(parents=True)
    tokens.write_text(json.dumps({
        "access_token": "anything", "refresh_token": "anything", "token_type": "bearer",
        "expires_in": 3600, "expires_at": int(time.time()) + 3600, "scope": "",
        "session_id": "0", "user_id": "0",
    }))  # fmt: skip


def test_lgogdownloader_galaxy_install_from_serve_writes_the_manifests_md5s(
    make_archive: object, tmp_path: Path
) -> None:
    refused = _namespaces_refused()
    if refused:
        pytest.skip(refused)
    _lgogdownloader()
    if shutil.which("openssl") is None or shutil.which("curl") is None:
        pytest.skip("needs the openssl and curl commands")
    world = sample_world()
    world.owned.update({int(SAMPLE_PRODUCT_ID), int(SAMPLE_DLC_ID)})
    builds = [b for b in world.builds_for(SAMPLE_PRODUCT_ID, "windows") if b.generation == 2]
    build = next(b for b in builds if b.version_name == "1.0")  # its SFC members are served
    fake = FakeGalaxy(world).start()
    try:
        archive = make_archive(fake)  # type: ignore[operator]
        assert archive.run("sync", SAMPLE_PRODUCT_ID).exit_code == 0
    finally:
        fake.stop()

    ca, cert, key = _throwaway_ca(tmp_path)
    _galaxy_tokens(tmp_path)
    index = [b.build_id for b in world.builds_for(SAMPLE_PRODUCT_ID, "windows")].index(
        build.build_id
    )
    script = _script(tmp_path, archive, cert, key, ca, f"{SAMPLE_PRODUCT_ID}/{index}")
    run = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "bash", str(script)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    log = (tmp_path / "lgog.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:] + run.stderr

    expected: dict[str, bytes] = {}
    for depot in build.depots:
        if depot.product_id in (SAMPLE_PRODUCT_ID, SAMPLE_DLC_ID) and (
            LANGUAGES & set(depot.languages)
        ):
            expected.update(depot.files)
    deps = world.latest_dependencies()
    assert deps is not None
    for name in build.dependencies:
        expected.update(deps.depots[name].files)
    expected = {path.replace("\\", "/"): data for path, data in expected.items()}

    install_dirs = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert len(install_dirs) == 1, install_dirs
    written = {
        p.relative_to(install_dirs[0]).as_posix(): p.read_bytes()
        for p in install_dirs[0].rglob("*")
        if p.is_file()
    }
    wrong = {
        path
        for path, data in written.items()
        if path not in expected
        or hashlib.md5(data).hexdigest() != hashlib.md5(expected[path]).hexdigest()
    }
    assert not wrong, f"lgogdownloader wrote files that do not match the manifest: {wrong}"
    assert any(path.startswith("dlc/") for path in written)  # the DLC came
    assert any(path.startswith("__redist/") for path in written)  # and the dependencies
    gaps = {path for path in expected if path not in written}
    # lgogdownloader 3.9's known gap: a file without chunks (empty) is never written.
    assert gaps <= {path for path, data in expected.items() if not data}, gaps
    print(f"lgogdownloader gaps (known, not passes): {sorted(gaps)}")
