"""The per-run context: config plus the factories for session, auth, DB, store and clock.

The store is built once per App and cached: everything in a run reads and writes the tree
through that one `ObjectStore`.

Commands get everything through an App, so tests can swap the clock or the migrations
directory without patching globals. The network factories import the HTTP stack (requests,
urllib3) when first called: commands without network (plain verify, status) never load it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from galaxy_archive.config import Config
from galaxy_archive.state.db import StateDB, open_db
from galaxy_archive.storage.interface import ObjectStore
from galaxy_archive.storage.local import ArchiveStore

if TYPE_CHECKING:
    from galaxy_archive.fetch.downloader import Downloader
    from galaxy_archive.upstream.auth import Authenticator
    from galaxy_archive.upstream.galaxy_api import GalaxyApi
    from galaxy_archive.upstream.http_client import HttpClient

log = logging.getLogger(__name__)


def _local_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _bucket_free(path: Path) -> int:
    """An S3 archive's objects do not land on local disk (only one spool file per worker
    does): the free-space check before a product has nothing to compare against."""
    del path
    return 1 << 62


@dataclass
class App:
    config: Config
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    is_json: bool = False
    verbosity: int = 0
    migrations_dir: Path | None = None
    stop: threading.Event = field(default_factory=threading.Event)  # first signal: wind down
    abort: threading.Event = field(default_factory=threading.Event)  # second: drop what's in flight
    disk_free: Callable[[Path], int] = field(default=_local_free)
    _store: ObjectStore | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.config.storage.kind == "s3" and self.disk_free is _local_free:
            self.disk_free = _bucket_free

    def http(self, workers: int) -> HttpClient:
        # local: requests only for network commands
        from galaxy_archive.upstream.http_client import (
            HttpClient,
            RateLimiter,
            build_retry,
            build_session,
        )

        http_config = self.config.http
        session = build_session(
            workers=workers,
            retry=build_retry(http_config.retries, backoff_factor=http_config.backoff_s),
            proxy=http_config.proxy,
        )
        return HttpClient(
            session,
            timeout_s=http_config.timeout_s,
            plain_http_hosts=self.config.plain_http_hosts(),
            # An abort cuts a rate-limit pause short: the object in flight is dropped anyway.
            limiter=RateLimiter(http_config.limit_rate, sleep=self._pause),
        )

    def _pause(self, seconds: float) -> None:
        self.abort.wait(seconds)

    def authenticator(self, http: HttpClient) -> Authenticator:
        from galaxy_archive.upstream.auth import (  # local: see the module docstring
            Authenticator,
            TokenStore,
        )

        return Authenticator(
            http,
            auth_url=self.config.endpoints.auth,
            client=self.config.auth,
            store=TokenStore(self.config.auth.token_file),
            clock=self.clock,
        )

    def api(self, http: HttpClient) -> GalaxyApi:
        from galaxy_archive.upstream.galaxy_api import GalaxyApi  # local: see the module docstring

        return GalaxyApi(http, self.config.endpoints, self.authenticator(http))

    def store(self) -> ObjectStore:
        """The run's one store: built on first use, then shared by every part of the run (its
        directory checks are cached per store, so one store checks each directory once)."""
        if self._store is None:
            if self.config.storage.kind == "s3":
                from galaxy_archive.storage.s3 import S3Store  # local: boto3 only for S3

                self._store = S3Store.from_config(
                    self.config.storage.s3,
                    spool_dir=self.config.root / "s3-spool",
                    retries=self.config.http.retries,
                    timeout_s=self.config.http.timeout_s,
                )
            else:
                self._store = ArchiveStore(self.config.root)
        return self._store

    def open_db(self) -> StateDB:
        """The state DB; on a read-only archive (a backup disk) a copy that records nothing
        (it says so: a verify there proves, but stamps nothing)."""
        path = self.config.database_path
        is_read_only = path.exists() and not (
            os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
        )
        if is_read_only:
            log.warning("%s is read-only: this run reads the archive and records nothing", path)
        return open_db(
            path, now=self.clock(), migrations_dir=self.migrations_dir, is_read_only=is_read_only
        )

    def downloader(
        self,
        http: HttpClient,
        api: GalaxyApi,
        workers: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Downloader:
        from galaxy_archive.fetch.downloader import Downloader  # local: see the module docstring
        from galaxy_archive.upstream.link_cache import LinkCache

        links = LinkCache(api.link, clock=self.clock)
        return Downloader(
            http,
            self.store(),
            links,
            workers=workers,
            stop=self.stop,
            abort=self.abort,
            sleep=self.sleep,
            on_bytes=on_bytes,
        )

    @property
    def pid(self) -> int:
        return os.getpid()
