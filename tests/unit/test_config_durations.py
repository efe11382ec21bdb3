"""Durations beyond any sane bound are a usage error, not an OverflowError later on."""

from __future__ import annotations

import tomllib

import pytest

from galaxy_archive import config
from galaxy_archive.errors import ConfigError, ExitCode


@pytest.mark.parametrize(
    "text",
    ["99999999999999999999w", "9" * 400, "36526d", "5300w"],
    ids=["20-digit-weeks", "400-digits", "36526d", "5300w"],
)
def test_config_duration_beyond_100_years_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration from 0 to 100 years"):
        config.parse_duration_s(text)


def test_config_duration_up_to_100_years_is_taken() -> None:
    assert config.parse_duration_s("36525d") == config.MAX_DURATION_S
    assert config.parse_duration_s("0") == 0.0


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[sync]\npatch_recheck = 1e300", "sync.patch_recheck"),
        ("[sync]\npatch_recheck = -5", "sync.patch_recheck"),
        ("[sync]\npatch_recheck = nan", "sync.patch_recheck"),
        pytest.param(
            f"[sync]\npatch_recheck = {10**400}", "sync.patch_recheck", id="int-of-400-digits"
        ),
        ("[sync]\npatch_recheck = '99999999999999999999w'", "sync.patch_recheck"),
        ("[http]\ntimeout = inf", "http.timeout"),
        ("[http]\ntimeout = 1e300", "http.timeout"),
        ("[http]\nbackoff = nan", "http.backoff"),
        ("[http]\nbackoff = -1", "http.backoff"),
    ],
)
def test_config_durations_and_seconds_out_of_range_are_config_errors(toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"config key {key}") as caught:
        config.parse(tomllib.loads(toml))
    assert caught.value.exit_code is ExitCode.USAGE


def test_config_sane_seconds_are_taken() -> None:
    parsed = config.parse(tomllib.loads("[http]\ntimeout = 12.5\nbackoff = 0\n"))
    assert (parsed.http.timeout_s, parsed.http.backoff_s) == (12.5, 0.0)
    parsed = config.parse(tomllib.loads("[sync]\npatch_recheck = 86400\n"))
    assert parsed.sync.patch_recheck_s == 86400.0
