"""archive.toml: parsed into frozen dataclasses, validated key by key.

``parse(mapping)`` is pure; ``load(path)`` reads the file. Every unknown key and every value of
the wrong type is a ConfigError naming the key, so a typo never silently becomes a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from galaxy_archive.errors import ConfigError

OPERATING_SYSTEMS = ("windows", "osx")
GENERATIONS = (1, 2)
DEPENDENCY_MODES = ("referenced", "all", "none")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any archive will live: beyond it a duration is a typo, and would overflow the
# date arithmetic (a --max-age reaching before year 1) or a socket timeout.
MAX_DURATION_S = 100 * 365.25 * 86400


def parse_duration_s(text: str) -> float:
    """'90', '45s', '30m', '2h', '7d', '1w' -> seconds (at most MAX_DURATION_S: 100 years)."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 7d)")
    return check_duration_s(float(match.group(1)) * _DURATION_UNITS_S[match.group(2)], text)


def check_duration_s(seconds: float, shown: object) -> float:
    """`seconds`, if it is a sane duration: finite, not negative, at most 100 years."""
    if not 0 <= seconds <= MAX_DURATION_S:  # also false for NaN
        raise ValueError(f"{shown!r} is not a duration from 0 to 100 years")
    return seconds


@dataclass(frozen=True)
class ArchiveSection:
    root: Path = Path("~/galaxy-archive")
    database: Path | None = None  # default: <root>/archive.db


@dataclass(frozen=True)
class SyncSection:
    products: tuple[str, ...] = ()
    owned: bool = False
    os: tuple[str, ...] = OPERATING_SYSTEMS
    generations: tuple[int, ...] = GENERATIONS
    patches: bool = True
    patch_recheck_s: float = 7 * 86400
    dependencies: str = "referenced"  # "referenced", "all" or "none" (TOML false)
    dlc: bool = True
    workers: int = 8
    v1_range_size: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class HttpSection:
    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 0.5  # first retry delay; doubles per retry, with jitter
    limit_rate: int = 0  # bytes per second for the whole run; 0 = unlimited
    proxy: str = ""
    insecure_hosts: tuple[str, ...] = ()  # extra hosts allowed over plain http://


@dataclass(frozen=True)
class Endpoints:
    auth: str = "https://auth.gog.com"
    embed: str = "https://embed.gog.com"
    content_system: str = "https://content-system.gog.com"
    cdn: str = "https://cdn.gog.com"


@dataclass(frozen=True)
class AuthSection:
    token_file: Path = Path("~/.config/galaxy-archive/token.json")
    # The public Galaxy OAuth client every tool uses (protocol.md 1.1). The redirect URI is
    # registered with the client (any other is refused), so it does not follow [endpoints].
    client_id: str = "46899977096215655"
    client_secret: str = "9d85c43b1482497dbbce61f6e4aa173a433796eeae2ca8c5f6129f2dc4de46d9"
    redirect_uri: str = "https://embed.gog.com/on_login_success?origin=client"


@dataclass(frozen=True)
class LogSection:
    file: Path | None = None


STORAGE_KINDS = ("local", "s3")
S3_ADDRESSING = ("path", "virtual")


@dataclass(frozen=True)
class S3Section:
    """Where an S3-API bucket is. No credential here: boto3's standard chain finds them
    (environment, shared credentials file, `profile`), so none is in archive.toml."""

    endpoint: str = ""  # empty: AWS's own endpoint for `region`
    bucket: str = ""
    prefix: str = ""  # keys are <prefix>/<the tree's relative path>
    region: str = ""
    addressing: str = "path"  # "path" (most self-hosted servers) or "virtual"
    profile: str = ""  # a profile of the shared credentials file; empty: the default chain


@dataclass(frozen=True)
class StorageSection:
    kind: str = "local"  # "local" (the tree under [archive] root) or "s3"
    s3: S3Section = field(default_factory=S3Section)


@dataclass(frozen=True)
class Config:
    archive: ArchiveSection = field(default_factory=ArchiveSection)
    sync: SyncSection = field(default_factory=SyncSection)
    http: HttpSection = field(default_factory=HttpSection)
    endpoints: Endpoints = field(default_factory=Endpoints)
    auth: AuthSection = field(default_factory=AuthSection)
    log: LogSection = field(default_factory=LogSection)
    storage: StorageSection = field(default_factory=StorageSection)

    @property
    def root(self) -> Path:
        return self.archive.root

    @property
    def database_path(self) -> Path:
        return self.archive.database or self.archive.root / "archive.db"

    def plain_http_hosts(self) -> frozenset[str]:
        """Hosts allowed over http://: endpoints configured as http:// plus insecure_hosts."""
        urls = [urlsplit(url) for url in dataclasses.astuple(self.endpoints)]
        hosts = {parts.hostname or "" for parts in urls if parts.scheme == "http"}
        return frozenset(hosts | set(self.http.insecure_hosts))


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- parsing -------------------------------------------------------------------------------


def _expect(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    # bool is an int in Python; a config that says `workers = true` is still wrong.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"config key {key}: expected {what}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"config key {key}: expected {what}, got {type(value).__name__}")
    return value


def _path(key: str, value: Any) -> Path:
    return Path(os.path.expanduser(_expect(key, value, str, "a path string")))


def _str_list(key: str, value: Any, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = _expect(key, value, list, "a list of strings")
    for item in items:
        _expect(key, item, str, "a list of strings")
        if allowed is not None and item not in allowed:
            raise ConfigError(f"config key {key}: {item!r} is not one of {', '.join(allowed)}")
    return tuple(items)


def _positive_int(key: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    number = _expect(key, value, int, "an integer")
    if number < minimum:
        raise ConfigError(f"config key {key}: must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"config key {key}: must be at most {maximum}")
    return int(number)


def _range_size(key: str, value: Any) -> int:
    # Each range in flight passes through a buffer of its size: capped, so memory stays flat.
    return _positive_int(key, value, 64 * 1024, 32 * 1024 * 1024)


def _duration(key: str, value: Any) -> float:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return check_duration_s(float(value), value)
        return parse_duration_s(_expect(key, value, str, "a duration such as '7d'"))
    except (ValueError, OverflowError) as exc:  # float() of a huge TOML integer overflows
        raise ConfigError(f"config key {key}: {exc}") from None


def _seconds(key: str, value: Any) -> float:
    """A number of seconds (TOML int or float; inf and nan are refused)."""
    try:
        return check_duration_s(float(_expect(key, value, (int, float), "seconds")), value)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"config key {key}: {exc}") from None


def _endpoint_url(key: str, value: Any) -> str:
    url: str = _expect(key, value, str, "a URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"config key {key}: {url!r} is not an http(s) URL")
    return url.rstrip("/")


def _product_ids(key: str, value: Any) -> tuple[str, ...]:
    items = _expect(key, value, list, "a list of product ids")
    ids = []
    for item in items:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or not text.isdigit():
            raise ConfigError(f"config key {key}: {item!r} is not a product id")
        ids.append(text)
    return tuple(ids)


def _dependencies_mode(key: str, value: Any) -> str:
    if value is False:
        return "none"
    if value in ("referenced", "all"):
        return str(value)
    raise ConfigError(f'config key {key}: expected "referenced", "all" or false')


def _generations(key: str, value: Any) -> tuple[int, ...]:
    items = _expect(key, value, list, "a list of generations")
    for item in items:
        if isinstance(item, bool) or item not in GENERATIONS:
            raise ConfigError(f"config key {key}: {item!r} is not 1 or 2")
    return tuple(items)


def _choice(allowed: tuple[str, ...]) -> _Converter:
    def convert(key: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigError(f"config key {key}: expected one of {', '.join(allowed)}")
        return str(value)

    return convert


def _s3_prefix(key: str, value: Any) -> str:
    prefix: str = _expect(key, value, str, "a key prefix")
    parts = prefix.strip("/").split("/")
    if prefix.strip("/") and any(part in ("", ".", "..") for part in parts):
        raise ConfigError(f"config key {key}: {prefix!r} has an empty, . or .. segment")
    return prefix.strip("/")


_S3_KEYS: dict[str, _Converter] = {
    "endpoint": lambda k, v: _endpoint_url(k, v) if v != "" else "",
    "bucket": lambda k, v: _expect(k, v, str, "a bucket name"),
    "prefix": _s3_prefix,
    "region": lambda k, v: _expect(k, v, str, "a region name"),
    "addressing": _choice(S3_ADDRESSING),
    "profile": lambda k, v: _expect(k, v, str, "a profile name"),
}


def _s3_section(key: str, value: Any) -> S3Section:
    table = _expect(f"[{key}]", value, dict, "a table")
    values = {}
    for name, raw in table.items():
        if name not in _S3_KEYS:
            raise ConfigError(f"unknown config key {key}.{name}")
        values[name] = _S3_KEYS[name](f"{key}.{name}", raw)
    return S3Section(**values)


# section -> key -> (dataclass field, converter)
_Converter = Any
_SCHEMA: dict[str, tuple[type, dict[str, tuple[str, _Converter]]]] = {
    "archive": (
        ArchiveSection,
        {"root": ("root", _path), "database": ("database", _path)},
    ),
    "sync": (
        SyncSection,
        {
            "products": ("products", _product_ids),
            "owned": ("owned", lambda k, v: _expect(k, v, bool, "true or false")),
            "os": ("os", lambda k, v: _str_list(k, v, OPERATING_SYSTEMS)),
            "generations": ("generations", _generations),
            "patches": ("patches", lambda k, v: _expect(k, v, bool, "true or false")),
            "patch_recheck": ("patch_recheck_s", _duration),
            "dependencies": ("dependencies", _dependencies_mode),
            "dlc": ("dlc", lambda k, v: _expect(k, v, bool, "true or false")),
            "workers": ("workers", _positive_int),
            "v1_range_size": ("v1_range_size", _range_size),
        },
    ),
    "http": (
        HttpSection,
        {
            "timeout": ("timeout_s", _seconds),
            "retries": ("retries", lambda k, v: _positive_int(k, v, 0)),
            "backoff": ("backoff_s", _seconds),
            "limit_rate": ("limit_rate", lambda k, v: _positive_int(k, v, 0)),
            "proxy": ("proxy", lambda k, v: _expect(k, v, str, "a URL or empty string")),
            "insecure_hosts": ("insecure_hosts", _str_list),
        },
    ),
    "endpoints": (
        Endpoints,
        {name: (name, _endpoint_url) for name in ("auth", "embed", "content_system", "cdn")},
    ),
    "auth": (
        AuthSection,
        {
            "token_file": ("token_file", _path),
            "client_id": ("client_id", lambda k, v: _expect(k, v, str, "a string")),
            "client_secret": ("client_secret", lambda k, v: _expect(k, v, str, "a string")),
            "redirect_uri": ("redirect_uri", _endpoint_url),
        },
    ),
    "log": (LogSection, {"file": ("file", _path)}),
    "storage": (
        StorageSection,
        {"kind": ("kind", _choice(STORAGE_KINDS)), "s3": ("s3", _s3_section)},
    ),
}


def parse(mapping: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document and build a Config. Pure."""
    sections: dict[str, Any] = {}
    for section_name, section_value in mapping.items():
        if section_name not in _SCHEMA:
            raise ConfigError(f"unknown config section [{section_name}]")
        cls, keys = _SCHEMA[section_name]
        _expect(f"[{section_name}]", section_value, dict, "a table")
        values: dict[str, Any] = {}
        for key, raw in section_value.items():
            if key not in keys:
                raise ConfigError(f"unknown config key {section_name}.{key}")
            field_name, convert = keys[key]
            values[field_name] = convert(f"{section_name}.{key}", raw)
        sections[section_name] = cls(**values)
    config = Config(**sections)
    if config.http.timeout_s <= 0:
        raise ConfigError("config key http.timeout: must be positive")
    if config.storage.kind == "s3" and not config.storage.s3.bucket:
        raise ConfigError('config key storage.s3.bucket: needed with storage.kind = "s3"')
    return config


def default_config_path(environ: Mapping[str, str]) -> Path | None:
    """$GALAXY_ARCHIVE_CONFIG, else $XDG_CONFIG_HOME/galaxy-archive/archive.toml if it exists."""
    if environ.get("GALAXY_ARCHIVE_CONFIG"):
        return Path(environ["GALAXY_ARCHIVE_CONFIG"]).expanduser()
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
    candidate = Path(xdg).expanduser() / "galaxy-archive" / "archive.toml"
    return candidate if candidate.is_file() else None


def load(path: Path | None, *, root_override: Path | None = None) -> Config:
    """Read archive.toml (built-in defaults when path is None) and apply --root."""
    mapping: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                mapping = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:  # a directory, unreadable: one line naming it, not a traceback
            raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    config = parse(mapping)
    archive = config.archive
    if root_override is not None:
        archive = dataclasses.replace(archive, root=root_override)
    archive = dataclasses.replace(archive, root=archive.root.expanduser().absolute())
    return dataclasses.replace(config, archive=archive)
