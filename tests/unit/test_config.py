import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from galaxy_archive import config
from galaxy_archive.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[2]


def test_config_example_parses_to_the_defaults() -> None:
    with open(REPO / "archive.toml.example", "rb") as handle:
        parsed = config.parse(tomllib.load(handle))
    defaults = config.Config()
    assert parsed.sync == defaults.sync
    assert parsed.http == defaults.http
    assert parsed.endpoints == defaults.endpoints
    assert parsed.archive.root.name == "galaxy-archive"


def _example_with_commented_keys_enabled() -> dict[str, Any]:
    """archive.toml.example parsed as TOML, its commented-out `# key = ...` lines and
    `# [table]` headers switched on (not prose like `# s3 = { ... } or`): what a user who
    uncommented everything would get."""
    text = (REPO / "archive.toml.example").read_text()
    enabled = re.sub(r"(?m)^# (?=\[[\w.]+\]$|\w+ = [\"\[\dtf])", "", text)
    return tomllib.loads(enabled)


def test_config_example_documents_every_key() -> None:
    # Parsed, not grepped: a substring check found `file =` inside `token_file =`.
    example = _example_with_commented_keys_enabled()
    for section, (_cls, keys) in config._SCHEMA.items():
        assert section in example, f"[{section}] undocumented"
        for key in keys:
            assert key in example[section], f"{section}.{key} undocumented"
    config.parse(example)  # and every documented value is one the tool accepts


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"sync": {"wrokers": 4}}, "sync.wrokers"),
        ({"sink": {}}, "[sink]"),
        ({"sync": {"workers": "8"}}, "sync.workers"),
        ({"sync": {"workers": True}}, "sync.workers"),
        ({"sync": {"os": ["linux"]}}, "sync.os"),
        ({"sync": {"generations": [3]}}, "sync.generations"),
        ({"sync": {"dependencies": True}}, "sync.dependencies"),
        ({"sync": {"patch_recheck": "soon"}}, "sync.patch_recheck"),
        ({"http": {"timeout": "30"}}, "http.timeout"),
        ({"endpoints": {"cdn": "ftp://x"}}, "endpoints.cdn"),
        ({"sync": {"products": ["abc"]}}, "sync.products"),
        ({"sync": {"v1_range_size": 1024}}, "sync.v1_range_size"),
        ({"sync": {"v1_range_size": 64 * 2**20}}, "sync.v1_range_size"),  # a buffer each
    ],
)
def test_config_rejects_bad_keys_naming_them(doc: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")) as info:
        config.parse(doc)
    assert info.value.exit_code == ExitCode.USAGE


def test_config_values_are_converted() -> None:
    parsed = config.parse(
        {
            "sync": {"products": [1207658930, "42"], "dependencies": False, "patch_recheck": "2h"},
            "endpoints": {"cdn": "http://127.0.0.1:8080/"},
        }
    )
    assert parsed.sync.products == ("1207658930", "42")
    assert parsed.sync.dependencies == "none"
    assert parsed.sync.patch_recheck_s == 7200
    assert parsed.endpoints.cdn == "http://127.0.0.1:8080"
    assert "127.0.0.1" in parsed.plain_http_hosts()
    assert "cdn.gog.com" not in config.Config().plain_http_hosts()


def test_config_load_applies_root_override_and_env_path(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[archive]\nroot = "/somewhere"\n')
    assert config.load(path).root == Path("/somewhere")
    assert config.load(path, root_override=tmp_path / "r").root == tmp_path / "r"
    assert config.default_config_path({"GALAXY_ARCHIVE_CONFIG": str(path)}) == path
    xdg = tmp_path / "xdg"
    assert config.default_config_path({"XDG_CONFIG_HOME": str(xdg)}) is None
    (xdg / "galaxy-archive").mkdir(parents=True)
    (xdg / "galaxy-archive" / "archive.toml").write_text("")
    assert config.default_config_path({"XDG_CONFIG_HOME": str(xdg)}) == (
        xdg / "galaxy-archive" / "archive.toml"
    )


def test_config_load_reports_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sync\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("45s", 45), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800)],
)
def test_config_parse_duration(text: str, seconds: float) -> None:
    assert config.parse_duration_s(text) == seconds


def test_config_no_gog_host_outside_the_defaults() -> None:
    """Every URL comes from [endpoints] (or the OAuth client in [auth]): nothing hard-coded."""
    package = REPO / "galaxy_archive"
    for source in package.rglob("*.py"):
        if source.name == "config.py":
            continue
        assert "gog.com" not in source.read_text(), f"{source.name} names a GOG host"
