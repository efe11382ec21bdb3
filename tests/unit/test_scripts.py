"""The cron line and the systemd units in scripts/ call the CLI with options that exist."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from galaxy_archive.cli.main import cli
from galaxy_archive.errors import ExitCode

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _cron_command() -> list[str]:
    lines = (SCRIPTS / "cron" / "galaxy-archive.crontab").read_text().splitlines()
    (entry,) = [x for x in lines if re.match(r"^[0-9*]", x)]
    return shlex.split(entry.split(None, 5)[5])


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SCRIPTS / "systemd" / name)
    return parser


def _invoke(argv: list[str], tmp_path: Path) -> int:
    """Run the command line against an empty archive and no login: exit 3, not 2 (usage)."""
    assert Path(argv[0]).name == "galaxy-archive"
    args = [a.replace("$HOME", str(tmp_path)) for a in argv[1:]]
    config = tmp_path / "archive.toml"
    config.write_text(
        f'[archive]\nroot = "{tmp_path / "root"}"\n[auth]\ntoken_file = "{tmp_path / "t.json"}"\n'
        '[sync]\nproducts = ["1207658930"]\n'
    )
    return CliRunner().invoke(cli, ["--config", str(config), *args]).exit_code


def test_scripts_cron_line_is_a_valid_quiet_logged_sync(tmp_path: Path) -> None:
    argv = _cron_command()
    assert "--quiet" in argv and "--log-file" in argv and argv[-1] == "sync"
    assert _invoke(argv, tmp_path) == ExitCode.NOT_LOGGED_IN


def test_scripts_systemd_service_and_timer(tmp_path: Path) -> None:
    service = _unit("galaxy-archive.service")["Service"]
    assert service["Type"] == "oneshot"
    assert "130" in service["SuccessExitStatus"].split()
    assert _invoke(shlex.split(service["ExecStart"]), tmp_path) == ExitCode.NOT_LOGGED_IN
    timer = _unit("galaxy-archive.timer")["Timer"]
    assert timer["Persistent"] == "true" and timer["RandomizedDelaySec"]


@pytest.mark.parametrize("name", ["galaxy-archive.service", "galaxy-archive.timer"])
def test_scripts_units_are_in_the_readme(name: str) -> None:
    readme = (SCRIPTS.parent / "README.md").read_text()
    assert f"scripts/systemd/{name}" in readme
