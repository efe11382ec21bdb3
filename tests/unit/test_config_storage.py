"""[storage] and [storage.s3]: parsed, validated, and never a place for credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy_archive import config
from galaxy_archive.app import App
from galaxy_archive.errors import ConfigError
from galaxy_archive.storage.local import ArchiveStore


def test_storage_defaults_to_the_local_tree(tmp_path: Path) -> None:
    parsed = config.parse({"archive": {"root": str(tmp_path)}})
    assert parsed.storage.kind == "local"
    assert isinstance(App(parsed).store(), ArchiveStore)


def test_an_s3_section_is_parsed_key_by_key() -> None:
    parsed = config.parse(
        {
            "storage": {
                "kind": "s3",
                "s3": {
                    "endpoint": "http://127.0.0.1:9000/",
                    "bucket": "b",
                    "prefix": "/mirror/gog/",
                    "region": "eu-1",
                    "addressing": "virtual",
                    "profile": "archive",
                },
            }
        }
    )
    assert parsed.storage.s3 == config.S3Section(
        endpoint="http://127.0.0.1:9000",
        bucket="b",
        prefix="mirror/gog",
        region="eu-1",
        addressing="virtual",
        profile="archive",
    )


@pytest.mark.parametrize(
    ("storage", "named"),
    [
        ({"kind": "ftp"}, "storage.kind"),
        ({"kind": "s3"}, "storage.s3.bucket"),
        ({"kind": "s3", "s3": {"bucket": "b", "addressing": "dns"}}, "storage.s3.addressing"),
        ({"s3": {"bucket": "b", "endpoint": "s3.example.net"}}, "storage.s3.endpoint"),
        ({"s3": {"bucket": "b", "prefix": "a/../b"}}, "storage.s3.prefix"),
        # a credential has no key: a secret put here is a typo the parser names, never stored
        ({"s3": {"bucket": "b", "secret_access_key": "x" * 40}}, "storage.s3.secret_access_key"),
    ],
)
def test_a_bad_storage_value_is_named(storage: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config.parse({"storage": storage})
