"""Objects in R2 (SeaweedFS locally) through boto3's S3 client.

Presigned PUTs sign content type and length, so the store itself refuses an upload that
differs from what the API agreed to; presigned GETs are short-lived.
"""

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pipeline import redact
from pipeline.errors import Unavailable
from pipeline.settings import Settings

log = logging.getLogger(__name__)
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
CHUNK_BYTES = 1024 * 1024


class ObjectChanged(Exception):
    """The object is no longer the one recorded (another eTag, other bytes, or too large)."""


@dataclass(frozen=True)
class PresignedUpload:
    url: str
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str | None
    last_modified: datetime | None


def _client(endpoint_url: str, settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region_name=settings.s3_region,
        config=Config(
            signature_version="s3v4",
            # R2 rejects the newer default CRC checksums on some operations.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def _status(exc: Any) -> int | None:
    code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(code) if code else None


def _transient(exc: Exception) -> bool:
    """The store was unreachable, timed out or failed on its side: worth another try."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, S3UploadFailedError):  # boto3's transfer wraps the ClientError
        cause = exc.__cause__ or exc.__context__
        return not isinstance(cause, Exception) or _transient(cause)
    if isinstance(exc, ClientError):
        status = _status(exc)
        return status is None or status >= 500
    return isinstance(exc, BotoCoreError | ConnectionError | TimeoutError)


def _outage(exc: Exception) -> bool:
    """The store was unreachable, timed out or answered with an error: for a client, our
    outage (`Unavailable`: a 503 with Retry-After), never a 500."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, BotoCoreError | ClientError | ConnectionError | TimeoutError)


@contextmanager
def _outages_unavailable() -> Iterator[None]:
    """A store failure inside becomes `Unavailable`; anything else passes as it is."""
    try:
        yield
    except Exception as exc:
        if not _outage(exc):
            raise
        raise Unavailable("Object storage is not answering. Please try again in a moment.") from exc


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.upload_patience = settings.upload_patience_seconds
        self._s3 = _client(settings.s3_endpoint_url, settings)
        # URLs handed to browsers are signed for the host the browser will reach.
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self._presigner = (
            self._s3 if public == settings.s3_endpoint_url else _client(public, settings)
        )

    def presign_put(
        self, key: str, content_type: str, content_length: int, expires_in: int
    ) -> PresignedUpload:
        url = self._presigner.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": content_length,
            },
            ExpiresIn=expires_in,
        )
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        return PresignedUpload(url, {"Content-Type": content_type}, expires_at)

    def presign_get(self, key: str, expires_in: int, download_name: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if download_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
        return self._presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in
        )

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        with _outages_unavailable():
            try:
                meta = self._s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:  # an answer, not an outage: missing, or refused
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise Unavailable("Object storage refused the request.") from exc
        return ObjectInfo(
            key=key,
            size=int(meta["ContentLength"]),
            etag=str(meta.get("ETag", "")).strip('"'),
            content_type=meta.get("ContentType"),
            last_modified=meta.get("LastModified"),
        )

    def open_stream(self, key: str) -> BinaryIO:
        """A streaming body: read it in chunks, never whole."""
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]

    def read_head(self, key: str, size: int, etag: str) -> bytes:
        """The first `size` bytes of exactly the object with `etag`."""
        from botocore.exceptions import ClientError

        try:
            response = self._s3.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{size - 1}", IfMatch=f'"{etag}"'
            )
        except ClientError as exc:
            if _status(exc) == 412:
                raise ObjectChanged(key) from exc
            raise
        return response["Body"].read(size)

    def download_sealed(self, key: str, path: Path, etag: str, max_bytes: int) -> int:
        """Streams the object to `path` only if it is still the one with `etag`: the store is
        asked with If-Match, and the bytes are checked against the eTag's MD5 (a single-part
        upload's eTag, which is all a presigned PUT makes), so a store that ignores If-Match
        cannot hand over a swapped object either. Never more than `max_bytes`. Returns the size.
        """
        from botocore.exceptions import ClientError

        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"')["Body"]
        except ClientError as exc:
            if _status(exc) in (404, 412):
                raise ObjectChanged(key) from exc
            raise
        digest, size = hashlib.md5(usedforsecurity=False), 0
        with body, path.open("wb") as out:
            while chunk := body.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise ObjectChanged(key)
                digest.update(chunk)
                out.write(chunk)
        if _MD5_ETAG.match(etag.lower()) and digest.hexdigest() != etag.lower():
            raise ObjectChanged(key)
        return size

    def download_file(self, key: str, path: Path) -> None:
        self._s3.download_file(self.bucket, key, str(path))

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        """Uploads a worker's result, trying again (backing off up to 10 s) for
        `upload_patience_seconds` while the store is unreachable or failing (5xx): boto3's own
        three quick attempts end inside a short incident, and a result lost at the end of a
        job costs its whole GPU time. A 4xx (a refused request) is raised at once."""
        deadline = time.monotonic() + self.upload_patience
        delay = 1.0
        while True:
            try:
                self._s3.upload_file(
                    str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
                )
                return
            except Exception as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "upload of %s failed (%s); trying again in %.0fs", redact.key(key), exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def delete(self, key: str) -> None:
        with _outages_unavailable():
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def list_prefix(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under a prefix, page by page (retention's orphan sweep, erasure). The
        store failing (at any page) is `Unavailable`: a 503 with Retry-After, never a 500."""
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        while True:
            with _outages_unavailable():
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=str(item.get("ETag", "")).strip('"'),
                    content_type=None,
                    last_modified=item.get("LastModified"),
                )

    def delete_many(self, keys: list[str]) -> list[str]:
        """Deletes in batches of 1000 (the S3 limit); a missing key counts as deleted.
        Returns the keys that are gone, so a caller acknowledges only those. The store failing
        is `Unavailable` (a 503 with Retry-After); the keys not yet deleted stay where the
        caller keeps them (the deletion queue) for the retry."""
        gone: list[str] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            with _outages_unavailable():
                answer = self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            failed = {e["Key"] for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"}
            gone += [k for k in batch if k not in failed]
        return gone

    def ping(self) -> bool:
        self._s3.head_bucket(Bucket=self.bucket)
        return True

    def ensure_bucket(self, cors_origins: list[str]) -> None:
        """Creates the bucket with a browser-upload CORS rule (local stack; R2 is set up once)."""
        from botocore.exceptions import ClientError

        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._s3.create_bucket(Bucket=self.bucket)
        self._s3.put_bucket_cors(
            Bucket=self.bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": cors_origins,
                        "AllowedMethods": ["GET", "PUT", "HEAD"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 3600,
                    }
                ]
            },
        )
