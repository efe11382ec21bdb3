"""The boto3 client an `S3Store` talks through, its one retry policy, and the uploads.

Choices made here, once, for every S3 call the archive makes:
- checksums `when_required`: newer botocore adds CRC32 trailers and validates response
  checksums by default, which several S3-compatible servers (rclone, older MinIO, Ceph RGW,
  Garage) reject or do not send; the archive checks every object's MD5 itself and sends
  `Content-MD5`, so the server still refuses a body damaged on the way;
- retries in botocore's `standard` mode with a bounded number of attempts (`[http] retries`
  plus one): throttling and 5xx answers are retried with backoff, and a server that is gone
  fails the object after a bounded time instead of hanging the run;
- credentials only from boto3's standard chain (environment, shared credentials file,
  profile): never in archive.toml, and no message made here carries one: errors are
  rebuilt from the operation, the error code and the endpoint's scheme, host and port.

Uploads: a body up to `MULTIPART_THRESHOLD` is one PUT with `Content-MD5`; a larger one (a
V1 blob) a multipart upload of `PART_SIZE` parts, each with its own `Content-MD5`, aborted
when any part fails or the run is interrupted (a kill -9 leaves it open: `abort_stale_uploads`
cleans up at the next run).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from galaxy_archive.config import S3Section
from galaxy_archive.errors import StorageError

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 * 1024 * 1024
# A part is read into memory to hash it before it is sent: 16 MiB keeps a few concurrent
# V1 publishes well inside the RSS budget and still allows blobs up to 160 GB (10,000 parts).
PART_SIZE = 16 * 1024 * 1024
_BLOCK = 1 << 20


def make_client(section: S3Section, *, retries: int, timeout_s: float, pool_size: int = 32) -> Any:
    """A thread-safe boto3 S3 client for `section` (see the module docstring)."""
    import boto3  # type: ignore[import-untyped]  # local: only an S3 archive loads it
    from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]

    session = boto3.session.Session(profile_name=section.profile or None)
    config = BotoConfig(
        region_name=section.region or None,
        s3={"addressing_style": section.addressing},
        retries={"mode": "standard", "max_attempts": retries + 1},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        max_pool_connections=pool_size,
    )
    return session.client("s3", endpoint_url=section.endpoint or None, config=config)


def endpoint_label(section: S3Section) -> str:
    """The endpoint as errors name it: scheme, host and port only (never a userinfo part)."""
    if not section.endpoint:
        return f"AWS S3 ({section.region or 'default region'}) bucket {section.bucket}"
    parts = urlsplit(section.endpoint)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port} bucket {section.bucket}"


def is_not_found(exc: BaseException) -> bool:
    """A ClientError that means "no such object" (HEAD answers a bare 404)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404


def describe(exc: BaseException) -> str:
    """What went wrong, without the exception's own text (it may quote a request)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "?")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return f"the server answered {code} (HTTP {status})"
    return f"cannot reach the server ({type(exc).__name__})"


@contextlib.contextmanager
def s3_errors(what: str, label: str) -> Iterator[None]:
    """A boto3/botocore failure is a StorageError naming the object and the endpoint.
    FileNotFoundError for an absent object is the caller's to map (see `is_not_found`)."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"{what} on {label}: {describe(exc)}") from None


def content_md5(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


def md5_of_path(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def upload_file(
    client: Any, bucket: str, key: str, path: Path, *, size: int, md5: str | None
) -> None:
    """Upload the local file at `path` to `key`: visible only once the whole body arrived
    and the server checked its Content-MD5."""
    if size > MULTIPART_THRESHOLD:
        _upload_multipart(client, bucket, key, path)
        return
    digest = md5 or md5_of_path(path)
    with open(path, "rb") as body:
        client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentLength=size, ContentMD5=content_md5(digest)
        )


def _upload_multipart(client: Any, bucket: str, key: str, path: Path) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        parts = []
        with open(path, "rb") as handle:
            number = 1
            while part := handle.read(PART_SIZE):
                digest = hashlib.md5(part, usedforsecurity=False).hexdigest()
                answer = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ContentMD5=content_md5(digest),
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                number += 1
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        _abort_quietly(client, bucket, key, upload_id)
        raise


def _abort_quietly(client: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:  # the upload is already failing; the next run's sweep retries
        log.warning("could not abort the upload of %s (%s)", key, describe(exc))


def abort_stale_uploads(client: Any, bucket: str, prefix: str) -> int:
    """Abort every multipart upload open under `prefix` (left by a killed run; only called
    under the archive lock). A server without ListMultipartUploads (rclone) counts 0."""
    from botocore.exceptions import BotoCoreError, ClientError

    aborted = 0
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=prefix
        )
        for page in pages:
            for upload in page.get("Uploads", ()):
                _abort_quietly(client, bucket, upload["Key"], upload["UploadId"])
                aborted += 1
    except (BotoCoreError, ClientError) as exc:
        log.info("cannot list open multipart uploads (%s); none aborted", describe(exc))
    return aborted
