"""The S3 backend against a real S3 server on loopback (rclone serve s3): every Protocol
method, mirroring test_storage.py's tests of the local tree."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from galaxy_archive.config import S3Section
from galaxy_archive.errors import DigestMismatch, IntegrityError, PathRefused, StorageError
from galaxy_archive.storage import s3_client
from galaxy_archive.storage.interface import WalkStopped
from galaxy_archive.storage.s3 import S3Store
from tests.s3_server import BUCKET, SECRET_KEY, S3Server


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"t/{request.node.name[:60].replace('[', '-').replace(']', '')}"


@pytest.fixture
def store(s3_env: S3Server, tmp_path: Path, prefix: str) -> S3Store:
    section = S3Section(endpoint=s3_env.endpoint, bucket=BUCKET, prefix=prefix)
    return S3Store.from_config(section, spool_dir=tmp_path / "spool", retries=1, timeout_s=5)


def _on_disk(server: S3Server, prefix: str, relative: str) -> Path:
    return server.bucket_dir / prefix / relative


def _write(store: S3Store, relative: str, data: bytes) -> None:
    store.write_verified(relative, [data], expected_md5=_md5(data), expected_size=len(data))


def test_s3_write_verified_uploads_the_bytes_under_the_prefix(
    store: S3Store, s3_env: S3Server, prefix: str, tmp_path: Path
) -> None:
    data = b"x" * 5000
    stored = store.write_verified(
        "v2/store/aa/bb/obj", _pieces(data, 700), expected_md5=_md5(data), expected_size=5000
    )
    assert (stored.md5, stored.size) == (_md5(data), 5000)
    assert _on_disk(s3_env, prefix, "v2/store/aa/bb/obj").read_bytes() == data
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []  # the spool file is gone


@pytest.mark.parametrize(
    ("body", "md5", "size", "error"),
    [
        (b"abc", _md5(b"abd"), 3, DigestMismatch),
        (b"abc", _md5(b"abc"), 4, IntegrityError),
        (b"abcde", _md5(b"abcde"), 3, IntegrityError),
    ],
)
def test_s3_a_mismatch_is_never_uploaded(
    store: S3Store,
    s3_env: S3Server,
    prefix: str,
    tmp_path: Path,
    body: bytes,
    md5: str,
    size: int,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        store.write_verified("v2/store/aa/bb/obj", [body], expected_md5=md5, expected_size=size)
    assert not _on_disk(s3_env, prefix, "v2/store/aa/bb/obj").exists()
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []


def test_s3_a_failing_check_keeps_the_old_object(store: S3Store) -> None:
    _write(store, "v2/meta/aa/bb/m", b"old")

    def refuse(reader: Any) -> None:
        assert reader.read() == b"new"
        raise ValueError("does not parse")

    with pytest.raises(ValueError, match="does not parse"):
        store.write_verified(
            "v2/meta/aa/bb/m", [b"new"], expected_md5=None, expected_size=None, check=refuse
        )
    assert store.open_read("v2/meta/aa/bb/m").read() == b"old"


def test_s3_the_server_refuses_a_body_damaged_on_the_way(
    store: S3Store, tmp_path: Path, s3_env: S3Server, prefix: str
) -> None:
    staged = tmp_path / "staged"
    staged.write_bytes(b"what arrived")
    # a Content-MD5 that the body does not match: what a body damaged in transit looks like
    with pytest.raises(StorageError, match=r"BadDigest|InvalidDigest"):
        store.publish("v1/depots/p/main.bin", staged, size=12, md5=_md5(b"what was sent"))
    assert not _on_disk(s3_env, prefix, "v1/depots/p/main.bin").exists()


def test_s3_stat_size_of_and_md5_of(store: S3Store) -> None:
    _write(store, "v2/store/aa/bb/obj", b"hello")
    assert store.stat("v2/store/aa/bb/obj") == 5
    assert store.size_of("v2/store/aa/bb/obj") == 5
    assert store.md5_of("v2/store/aa/bb/obj") == (_md5(b"hello"), 5)
    with pytest.raises(FileNotFoundError):
        store.stat("v2/store/aa/bb/none")
    with pytest.raises(FileNotFoundError):
        store.md5_of("v2/store/aa/bb/none")
    assert store.size_of("v2/store/aa/bb/none") is None
    with pytest.raises(PathRefused, match="not a plain relative path"):
        store.stat("v2/../../etc/passwd")


def test_s3_open_read_streams_a_large_object_from_the_start(store: S3Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    _write(store, "v2/store/aa/bb/big", data)
    with store.open_read("v2/store/aa/bb/big") as handle:
        assert handle.read(10) == data[:10]
        assert handle.read() == data[10:]
    with pytest.raises(FileNotFoundError):
        store.open_read("v2/store/aa/bb/none")
    with pytest.raises(PathRefused):
        store.open_read("/etc/passwd")


def test_s3_local_path_is_none(store: S3Store) -> None:
    _write(store, "v2/store/aa/bb/obj", b"x")
    assert store.local_path("v2/store/aa/bb/obj") is None


def test_s3_quarantine_copies_aside_then_deletes_and_keeps_every_copy(store: S3Store) -> None:
    _write(store, "v2/store/aa/bb/obj", b"first")
    first = store.quarantine("v2/store/aa/bb/obj", 0.0)
    _write(store, "v2/store/aa/bb/obj", b"second")
    second = store.quarantine("v2/store/aa/bb/obj", 0.0)
    assert first == "quarantine/v2/store/aa/bb/obj.19700101T000000Z"
    assert second == first + ".2"
    assert store.open_read(first).read() == b"first"
    assert store.open_read(second).read() == b"second"
    assert store.size_of("v2/store/aa/bb/obj") is None


def test_s3_delete_removes_the_object_and_tolerates_an_absent_one(store: S3Store) -> None:
    _write(store, "v2/store/aa/bb/one", b"1")
    _write(store, "v2/store/aa/bb/two", b"2")
    store.delete("v2/store/aa/bb/one")
    store.delete("v2/store/aa/bb/one")
    assert store.size_of("v2/store/aa/bb/one") is None
    assert store.size_of("v2/store/aa/bb/two") == 1
    with pytest.raises(PathRefused):
        store.delete("v2/../x")


def test_s3_list_files_pages_in_the_dbs_path_order(store: S3Store) -> None:
    names = ["v2/store/a/b", "v2/store/a.b/c", "v2/store/a/a", "v2/meta/x", "v1/depots/y"]
    for name in names:
        _write(store, name, b"-")
    listed = [entry.path for entry in store.list_files("v2", lambda: False)]
    assert listed == sorted(name for name in names if name.startswith("v2/"))
    assert all(entry.is_listed for entry in store.list_files("v1", lambda: False))
    with pytest.raises(WalkStopped):
        list(store.list_files("v2", lambda: True))


def test_s3_list_files_follows_the_continuation_of_a_page(
    s3_env: S3Server, tmp_path: Path, prefix: str
) -> None:
    section = S3Section(endpoint=s3_env.endpoint, bucket=BUCKET, prefix=prefix)
    store = S3Store.from_config(section, spool_dir=tmp_path, retries=1, timeout_s=5)
    names = [f"v2/store/aa/{number:04d}" for number in range(1005)]  # more than one page
    for name in names:
        _write(store, name, b"")
    assert [entry.path for entry in store.list_files("v2", lambda: False)] == names


def test_s3_publish_uploads_the_staged_file_and_removes_it(store: S3Store) -> None:
    staged = store.staging_path("v1/depots/p/main.bin")
    assert staged.parent.is_dir() and staged.name.endswith(".galaxy-partial")
    staged.write_bytes(b"blob")
    with pytest.raises(IntegrityError):
        store.publish("v1/depots/p/main.bin", staged, size=5)
    store.publish("v1/depots/p/main.bin", staged, size=4)
    assert not staged.exists()
    assert store.open_read("v1/depots/p/main.bin").read() == b"blob"


def test_s3_publish_above_the_threshold_is_a_multipart_upload(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_client, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(s3_client, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    parts: list[tuple[int, str]] = []
    real_upload_part = store._client.upload_part

    def record_part(**kwargs: Any) -> Any:
        parts.append((kwargs["PartNumber"], kwargs["ContentMD5"]))
        return real_upload_part(**kwargs)

    monkeypatch.setattr(store._client, "upload_part", record_part)
    data = os.urandom(12 * 1024 * 1024 + 3)
    staged = store.staging_path("v1/depots/p/main.bin")
    staged.write_bytes(data)
    store.publish("v1/depots/p/main.bin", staged, size=len(data))
    # rclone's ETag is the whole file's MD5 even then: the parts sent tell it was multipart
    part = 5 * 1024 * 1024
    expected = [data[:part], data[part : 2 * part], data[2 * part :]]
    assert parts == [(n + 1, s3_client.content_md5(_md5(b))) for n, b in enumerate(expected)]
    assert store.md5_of("v1/depots/p/main.bin") == (_md5(data), len(data))


def test_s3_a_failed_multipart_upload_is_aborted(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_client, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(s3_client, "PART_SIZE", 5 * 1024 * 1024)
    aborted: list[str] = []
    real_abort = store._client.abort_multipart_upload

    def record_abort(**kwargs: Any) -> Any:
        aborted.append(kwargs["UploadId"])
        return real_abort(**kwargs)

    real_upload_part = store._client.upload_part

    def fail_the_second_part(**kwargs: Any) -> Any:
        if kwargs["PartNumber"] == 2:
            raise KeyboardInterrupt  # the run is interrupted in the middle of the upload
        return real_upload_part(**kwargs)

    monkeypatch.setattr(store._client, "abort_multipart_upload", record_abort)
    monkeypatch.setattr(store._client, "upload_part", fail_the_second_part)
    staged = store.staging_path("v1/depots/p/main.bin")
    staged.write_bytes(b"z" * (11 * 1024 * 1024))
    with pytest.raises(KeyboardInterrupt):
        store.publish("v1/depots/p/main.bin", staged, size=11 * 1024 * 1024)
    assert len(aborted) == 1
    assert store.size_of("v1/depots/p/main.bin") is None
    assert staged.exists()  # kept: the next run publishes it again


def test_s3_sweep_removes_spool_leftovers_keeps_staging_and_tolerates_no_upload_listing(
    store: S3Store, tmp_path: Path
) -> None:
    staged = store.staging_path("v1/depots/p/main.bin")
    staged.write_bytes(b"resumable")
    store.check_writable("v1/depots/p/main.bin")
    leftover = tmp_path / "spool" / "tmp" / ".obj.1234abcd.galaxy-tmp"
    leftover.write_bytes(b"half")
    # rclone answers ListMultipartUploads with an error: the sweep goes on without it
    assert store.sweep_temp_files() == 1
    assert not leftover.exists() and staged.exists()


def test_s3_check_writable_refuses_a_path_outside_the_tree_tops(store: S3Store) -> None:
    with pytest.raises(PathRefused, match="not below"):
        store.check_writable("quarantine/x")
    with pytest.raises(PathRefused):
        store.write_verified("../x", [b""], expected_md5=None, expected_size=None)


def test_s3_concurrent_writes_of_one_content_addressed_key_are_harmless(store: S3Store) -> None:
    data = os.urandom(256 * 1024)
    threads = [
        threading.Thread(target=_write, args=(store, "v2/store/aa/bb/same", data)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.md5_of("v2/store/aa/bb/same") == (_md5(data), len(data))


def test_s3_an_unreachable_server_is_a_storage_error_naming_the_endpoint_not_the_key(
    s3_env: S3Server, tmp_path: Path
) -> None:
    gone = S3Section(endpoint="http://127.0.0.1:9", bucket=BUCKET, prefix="p")
    store = S3Store.from_config(gone, spool_dir=tmp_path, retries=0, timeout_s=2)
    with pytest.raises(StorageError) as raised:
        _write(store, "v2/store/aa/bb/obj", b"x")
    message = str(raised.value)
    assert "http://127.0.0.1:9 bucket archive" in message and "v2/store/aa/bb/obj" in message
    assert SECRET_KEY not in message and "GATESTACCESSKEY" not in message
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9"):
        store.stat("v2/store/aa/bb/obj")
