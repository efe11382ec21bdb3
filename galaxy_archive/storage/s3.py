"""The archive tree in an S3-API bucket, the second backend of `interface.ObjectStore`.

Keys are the tree's relative paths under the configured prefix, one to one
(`<prefix>/v2/store/aa/bb/<md5>`), so a copy of the bucket to a directory is a valid local
archive. Nothing else lives under the prefix: spool and staging files stay on local disk
(`spool_dir`, below the archive root), as do archive.db and the lock.

Invariant: nothing unverified is ever visible at a key. `write_verified` spools the pieces to
a local temp file while hashing them and runs the caller's check on it; only then is it
uploaded, with `Content-MD5` so the server refuses a body damaged in transit. A PUT is atomic
on S3: readers see the old object or the new one. Nothing relies on conditional writes or on
a lock held in the store: keys are content-addressed, so a double upload is harmless.

Every failure of the bucket is a StorageError naming the object and the endpoint (scheme,
host, port, bucket), never a credential (see s3_client).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from galaxy_archive.config import S3Section
from galaxy_archive.errors import IntegrityError, PathRefused, StorageError
from galaxy_archive.storage import s3_client
from galaxy_archive.storage.containment import path_problem
from galaxy_archive.storage.interface import (
    Check,
    StoredEntry,
    StoredObject,
    WalkStopped,
    md5_of_stream,
)
from galaxy_archive.storage.local import _check_digest  # one rule for both backends
from galaxy_archive.storage.names import PARTIAL_SUFFIX, QUARANTINE_DIR, TEMP_SUFFIX, TREE_TOPS


class S3Store:
    """An `ObjectStore` in one bucket under one prefix. Thread-safe (boto3 clients are)."""

    def __init__(self, client: Any, *, bucket: str, prefix: str, spool_dir: Path, label: str):
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._spool = spool_dir
        self._label = label

    @classmethod
    def from_config(
        cls, section: S3Section, *, spool_dir: Path, retries: int, timeout_s: float
    ) -> S3Store:
        client = s3_client.make_client(section, retries=retries, timeout_s=timeout_s)
        label = s3_client.endpoint_label(section)
        return cls(
            client, bucket=section.bucket, prefix=section.prefix, spool_dir=spool_dir, label=label
        )

    def key(self, relative: str) -> str:
        return self._prefix + relative

    # --- reading ---------------------------------------------------------------------------

    def stat(self, relative: str) -> int:
        """The object's size by HEAD: FileNotFoundError when absent."""
        self._refuse_odd(relative, "looked at")
        return int(self._head(relative)["ContentLength"])

    def size_of(self, relative: str) -> int | None:
        try:
            return self.stat(relative)
        except (OSError, StorageError):
            return None

    def open_read(self, relative: str) -> BinaryIO:
        """A streaming GET of the whole object."""
        self._refuse_odd(relative, "read")
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        with s3_client.s3_errors(f"{relative}: cannot read", self._label):
            try:
                answer = self._client.get_object(Bucket=self._bucket, Key=self.key(relative))
            except ClientError as exc:
                if s3_client.is_not_found(exc):
                    raise FileNotFoundError(2, "no such object", relative) from None
                raise
        return io.BufferedReader(_BodyReader(answer["Body"], relative, self._label), 1 << 20)

    def md5_of(self, relative: str) -> tuple[str, int]:
        with self.open_read(relative) as handle:
            return md5_of_stream(handle)

    def local_path(self, relative: str) -> Path | None:
        del relative  # no object of the bucket has a local path: read it with open_read
        return None

    def list_files(self, top: str, is_over: Callable[[], bool]) -> Iterator[StoredEntry]:
        """Every key under `top` by ListObjectsV2 pages; S3 lists keys in UTF-8 binary order,
        which is SQLite's binary order of the same paths."""
        unsafe = path_problem(top)
        if unsafe is not None:
            raise PathRefused(f"not listed: {unsafe}")
        cut = len(self._prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self.key(top) + "/"
        )
        with s3_client.s3_errors(f"{top}: cannot list", self._label):
            for page in pages:
                for item in page.get("Contents", ()):
                    if is_over():
                        raise WalkStopped
                    yield StoredEntry(item["Key"][cut:])

    # --- writing ---------------------------------------------------------------------------

    def write_verified(
        self,
        relative: str,
        pieces: Iterable[bytes],
        *,
        expected_md5: str | None,
        expected_size: int | None,
        check: Check | None = None,
    ) -> StoredObject:
        """Spool and hash the pieces locally, check them, then upload with Content-MD5."""
        self._refuse_unwritable(relative)
        temp = self._spool_file(relative)
        try:
            md5, size = _spool(relative, pieces, temp, expected_size)
            _check_digest(relative, md5, size, expected_md5, expected_size)
            if check is not None:
                with open(temp, "rb") as reader:
                    check(reader)
            self._upload(relative, temp, size=size, md5=md5)
        finally:
            temp.unlink(missing_ok=True)
        return StoredObject(md5=md5, size=size)

    def staging_path(self, relative: str) -> Path:
        """A local file below the spool's `staging/`, named after the object; kept across
        runs so a V1 blob resumes."""
        self._refuse_unwritable(relative)
        parent, _, name = relative.rpartition("/")
        path = self._spool / "staging" / parent / f".{name}{PARTIAL_SUFFIX}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PathRefused(f"{relative}: cannot make its staging directory") from exc
        return path

    def publish(self, relative: str, staged: Path, *, size: int, md5: str | None = None) -> None:
        """Upload the checked staged file (multipart above the threshold), then remove it."""
        self._refuse_unwritable(relative)
        try:
            found = os.lstat(staged)
        except OSError as exc:
            raise StorageError(f"{relative}: cannot read the staged file ({exc.strerror})") from exc
        if not stat.S_ISREG(found.st_mode):
            raise PathRefused(f"{relative}: not written: {staged.name} is not a plain file")
        if found.st_size != size:
            raise IntegrityError(f"{relative}: staged {found.st_size} bytes, expected {size}")
        self._upload(relative, staged, size=size, md5=md5)
        staged.unlink(missing_ok=True)

    def check_writable(self, relative: str) -> None:
        """The path is a plain one below a tree top and the local spool takes files."""
        self._refuse_unwritable(relative)
        try:
            spool = self._spool_dir("tmp")
        except OSError as exc:
            raise PathRefused(f"{relative}: cannot make the local spool ({exc.strerror})") from exc
        if not os.access(spool, os.W_OK | os.X_OK):
            raise PathRefused(f"{relative}: cannot write into the local spool directory")

    def quarantine(self, relative: str, now: float) -> str:
        """Copy the object to `quarantine/<relative>.<UTC stamp>` (under the prefix), then
        delete it; return that path."""
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"cannot move to {QUARANTINE_DIR}/: {unsafe}")
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        target = f"{QUARANTINE_DIR}/{relative}.{stamp}"
        number = 1
        while self.size_of(target) is not None:  # two repairs of one object in a second
            number += 1
            target = f"{QUARANTINE_DIR}/{relative}.{stamp}.{number}"
        with s3_client.s3_errors(f"cannot move {relative} to {target}", self._label):
            source = {"Bucket": self._bucket, "Key": self.key(relative)}
            self._client.copy(source, self._bucket, self.key(target))
            self._client.delete_object(Bucket=self._bucket, Key=self.key(relative))
        return target

    def delete(self, relative: str) -> None:
        """DELETE the key; S3 answers success for an absent one too."""
        self._refuse_odd(relative, "deleted")
        with s3_client.s3_errors(f"{relative}: cannot delete", self._label):
            self._client.delete_object(Bucket=self._bucket, Key=self.key(relative))

    def sweep_temp_files(self) -> int:
        """Remove dead runs' spool files and abort their multipart uploads under the prefix;
        staged (resumable) files are kept."""
        removed = 0
        tmp = self._spool / "tmp"
        if tmp.is_dir():
            for leftover in tmp.iterdir():
                if leftover.name.endswith(TEMP_SUFFIX):
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed + s3_client.abort_stale_uploads(self._client, self._bucket, self._prefix)

    # --- helpers ---------------------------------------------------------------------------

    def _head(self, relative: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        with s3_client.s3_errors(f"{relative}: cannot stat", self._label):
            try:
                answer: dict[str, Any] = self._client.head_object(
                    Bucket=self._bucket, Key=self.key(relative)
                )
            except ClientError as exc:
                if s3_client.is_not_found(exc):
                    raise FileNotFoundError(2, "no such object", relative) from None
                raise
        return answer

    def _upload(self, relative: str, path: Path, *, size: int, md5: str | None) -> None:
        with s3_client.s3_errors(f"{relative}: cannot upload", self._label):
            s3_client.upload_file(
                self._client, self._bucket, self.key(relative), path, size=size, md5=md5
            )

    def _spool_dir(self, name: str) -> Path:
        directory = self._spool / name
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _spool_file(self, relative: str) -> Path:
        name = relative.rpartition("/")[2]
        try:
            return self._spool_dir("tmp") / f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        except OSError as exc:
            raise StorageError(f"{relative}: cannot make the local spool ({exc.strerror})") from exc

    @staticmethod
    def _refuse_odd(relative: str, verb: str) -> None:
        unsafe = path_problem(relative)
        if unsafe is not None:
            raise PathRefused(f"not {verb}: {unsafe}")

    @staticmethod
    def _refuse_unwritable(relative: str) -> None:
        unsafe = path_problem(relative)
        top, sep, _ = relative.partition("/") if unsafe is None else ("", "", "")
        if unsafe is None and (not sep or top not in TREE_TOPS):
            unsafe = f"recorded path {relative!r} is not below {' or '.join(TREE_TOPS)}"
        if unsafe is not None:
            raise PathRefused(f"not written: {unsafe}")


class _BodyReader(io.RawIOBase):
    """A GET's streaming body as a raw stream; a connection lost mid-body is a StorageError."""

    def __init__(self, body: Any, relative: str, label: str) -> None:
        self._body = body
        self._what = f"{relative}: cannot read"
        self._label = label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with s3_client.s3_errors(self._what, self._label):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _spool(
    relative: str, pieces: Iterable[bytes], temp: Path, expected_size: int | None
) -> tuple[str, int]:
    """Write the pieces to a new local file, hashing them; stop once past `expected_size`."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        out = open(temp, "xb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StorageError(f"{relative}: cannot write the local spool ({exc.strerror})") from exc
    with out:
        for piece in pieces:
            digest.update(piece)
            size += len(piece)
            if expected_size is not None and size > expected_size:
                raise IntegrityError(f"{relative}: body longer than the expected {expected_size}")
            try:
                out.write(piece)
            except OSError as exc:
                raise StorageError(f"{relative}: cannot write the local spool") from exc
    return digest.hexdigest(), size
