"""Run one test as an unprivileged user, so that EACCES handling is exercised under root too.

Root reads and writes through any permission bits, so a test of a chmod 000 directory proves
nothing there, and CI runs as root. Under root, `rerun_unprivileged` runs the calling test again
in a pytest subprocess as `nobody` (util-linux `setpriv`), in a temporary directory `nobody` can
reach and own, and asserts it passed; the caller then returns. Under any other user it returns
False and the test runs in-process as before.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT_MARK = "GALAXY_ARCHIVE_TEST_DROPPED_PRIVILEGES"


def rerun_unprivileged(request: pytest.FixtureRequest) -> bool:
    """True when the test already ran (and passed) as `nobody`; False: run it here."""
    if os.geteuid() != 0:
        return False
    if os.environ.get(ROOT_MARK):  # setpriv gave us root back: do not loop
        pytest.fail("the unprivileged rerun still runs as root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux setpriv is missing: cannot drop privileges")
    import pwd

    nobody = pwd.getpwnam("nobody")
    # tmp_path's parents are 0700 root: nobody needs a directory of its own under /tmp.
    base = Path(tempfile.mkdtemp(prefix="galaxy-archive-nobody-"))
    try:
        base.chmod(0o755)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        result = subprocess.run(
            [
                setpriv,
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={base / 'pytest'}",
                request.node.nodeid,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={
                **os.environ,
                "HOME": str(base),
                ROOT_MARK: "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "TMPDIR": str(base),
            },
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    passed = re.search(r"^1 passed\b", result.stdout, re.M)  # ran, not skipped or deselected
    assert result.returncode == 0 and passed, result.stdout + result.stderr
    return True
