"""The CLI surface: exit codes pinned, every command helped and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from galaxy_archive.cli.main import cli
from galaxy_archive.errors import ExitCode

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_cli_exit_codes_are_pinned() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "PROBLEMS": 1,
        "USAGE": 2,
        "NOT_LOGGED_IN": 3,
        "LOCKED": 4,
        "INTERRUPTED": 130,
    }
    table = re.findall(r"^\| (\d+) \|", README, re.M)
    assert sorted(int(code) for code in table) == sorted(int(code) for code in ExitCode)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_cli_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) > 3
    assert f"`{command}" in README, f"README does not document `{command}`"


def test_cli_config_error_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text("[sync]\nworkers = 'many'\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == ExitCode.USAGE
    assert "sync.workers" in result.output


def test_cli_sync_needs_products(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(f'[archive]\nroot = "{tmp_path}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "sync"])
    assert result.exit_code == ExitCode.USAGE and "sync.products" in result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "sync", "../1"])
    assert result.exit_code == ExitCode.USAGE


def test_cli_status_without_an_archive_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(tmp_path / "none"), "status"])
    assert result.exit_code == ExitCode.USAGE and "no archive" in result.output


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_cli_every_command_takes_the_output_options_after_it(command: str) -> None:
    """`galaxy-archive restore ... -q` is what people type: every command, new ones too."""
    shown = CliRunner().invoke(cli, [command, "--help"]).output
    for option in ("--json", "-q, --quiet", "-v, --verbose"):
        assert option in shown, f"{command} does not take {option} after the command"
