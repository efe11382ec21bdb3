"""One V1 blob fetched for sync or `verify --repair`: its records read from the DB, the
ranges recorded as they become durable (the BlobFetcher does the HTTP and the checks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from galaxy_archive.errors import StorageError
from galaxy_archive.fetch.downloader import Downloader
from galaxy_archive.fetch.tasks import FetchResult
from galaxy_archive.fetch.v1_blob_job import BlobJob
from galaxy_archive.fetch.v1_blobs import DEFAULT_RANGE_SIZE_BYTES, BlobFetcher
from galaxy_archive.models.layout import split_v1_path
from galaxy_archive.models.v1_ranges import ByteRange
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.v1_state import (
    blob_extents,
    blob_record,
    save_blob_progress,
    set_blob_stored,
)
from galaxy_archive.storage.interface import ObjectStore


def download_blob(
    db: StateDB,
    store: ObjectStore,
    downloader: Downloader,
    blob_object_id: int,
    *,
    range_size: int = DEFAULT_RANGE_SIZE_BYTES,
    clock: Callable[[], float] = time.time,
) -> FetchResult:
    """Fetch (resume, or adopt) one V1 blob by parallel ranges, check every file record inside
    it, and rename it into place. For sync and `verify --repair` alike: the run's downloader
    lends its HTTP client, link cache, workers, stop event, sleep and byte counter.

    The blob's file records must be in v1_extents (sync records them from the manifests).
    The ranges done are recorded and committed as they become durable; the object's own
    state is not: the caller records the returned FetchResult like any other download's
    (``result.size`` is the blob's size; what proves its bytes is recorded here).
    """
    record = blob_record(db, blob_object_id)
    where = split_v1_path(record.path) if record is not None else None
    if record is None or where is None:
        raise StorageError(f"object {blob_object_id} is not a V1 blob this archive knows")
    job = BlobJob(
        object_id=record.object_id,
        path=record.path,
        product_id=record.product_id,
        os=record.os,
        legacy_build_id=record.legacy_build_id,
        name=record.name,
        extents=tuple(blob_extents(db, blob_object_id)),
    )

    def save(total: int | None, used_range_size: int | None, done: Sequence[ByteRange]) -> None:
        save_blob_progress(
            db, blob_object_id, total_size=total, range_size=used_range_size, done=done, now=clock()
        )
        db.conn.commit()

    def stored(total: int, uncovered_md5: str) -> None:
        save_blob_progress(
            db, blob_object_id, total_size=total, range_size=None, done=(), now=clock()
        )
        set_blob_stored(db, blob_object_id, uncovered_md5)
        db.conn.commit()

    fetcher = BlobFetcher(
        downloader.http,
        downloader.links,
        store,
        workers=downloader.workers,
        range_size=range_size,
        save=save,
        stored=stored,
        stop=downloader.stop,
        sleep=downloader.sleep,
        on_bytes=downloader.on_bytes,
    )
    return fetcher.fetch(
        job,
        known_total=record.total_size,
        done=record.done,
        recorded_uncovered_md5=record.uncovered_md5,
    )
