"""login / logout / token refresh against the fake auth server (protocol.md §1)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable

from galaxy_archive.errors import ExitCode
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"


def small_world() -> World:
    world = World(seed=4)
    world.add_v2_build(PID, files={"a.bin": random_bytes(50_000, 1)})
    return world


def test_login_with_code_stores_tokens_with_mode_0600(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()), login=False)
    result = archive.run("login", "--code", "abc")
    assert result.exit_code == 0, result.output
    assert "client_id=46899977096215655" in result.output  # the login URL is printed
    assert stat.S_IMODE(archive.token_file.stat().st_mode) == 0o600
    tokens = json.loads(archive.token_file.read_text())
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["expires_at"] > 0
    assert not list(archive.token_file.parent.glob(".*tmp"))


def test_login_with_redirect_url_extracts_the_code(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    server = serve(small_world())
    archive = make_archive(server, login=False)
    url = "https://embed.gog.com/on_login_success?origin=client&code=xyz-123"
    assert archive.run("login", "--redirect-url", url).exit_code == 0
    assert server.count("/token", role="auth") == 1
    bad = archive.run("login", "--redirect-url", "https://embed.gog.com/nothing")
    assert bad.exit_code == ExitCode.NOT_LOGGED_IN and "code" in bad.output


def test_login_refused_code_exits_3(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()), login=False)
    result = archive.run("login", "--code", "bad")
    assert result.exit_code == ExitCode.NOT_LOGGED_IN
    assert "login" in result.output and not archive.token_file.exists()


def test_login_never_prompts_without_a_terminal(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()), login=False)
    result = archive.run_process("login", timeout=20)
    assert result.returncode == ExitCode.USAGE
    assert "--code" in result.stderr


def test_sync_without_login_exits_3_saying_how_to_log_in(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()), login=False)
    result = archive.run_process("sync", PID, timeout=20)
    assert result.returncode == ExitCode.NOT_LOGGED_IN
    assert "galaxy-archive login" in result.stderr
    assert not (archive.root / "archive.db").exists()


def test_expired_token_is_refreshed_and_rotated_refresh_token_kept(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    server = serve(small_world(), token_ttl_s=60)  # inside the 5-minute refresh margin
    archive = make_archive(server)
    before = json.loads(archive.token_file.read_text())
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    after = json.loads(archive.token_file.read_text())
    assert after["refresh_token"] != before["refresh_token"]  # the server rotates them
    assert archive.run("sync", PID).exit_code == 0  # the kept refresh token still works


def test_token_rejected_with_401_is_refreshed_once(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    server = serve(small_world())
    archive = make_archive(server)
    server.expire_access_tokens()  # the client still believes its token is valid
    result = archive.run("sync", PID)
    assert result.exit_code == 0, result.output
    assert server.count("/token", role="auth") == 2  # login + exactly one refresh


def test_revoked_login_exits_3(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    server = serve(small_world())
    archive = make_archive(server)
    server.revoke_all_tokens()
    result = archive.run("sync", PID)
    assert result.exit_code == ExitCode.NOT_LOGGED_IN, result.output
    assert "login" in result.output


def test_logout_deletes_the_tokens(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    archive = make_archive(serve(small_world()))
    assert archive.run("logout").exit_code == 0
    assert not archive.token_file.exists()
    assert archive.run("logout").exit_code == 0
