"""``s3://bucket/key`` links: AWS, or Backblaze B2 and MinIO through ``settings.s3_endpoint``.

Keys are **raw**, not percent-encoded: everything after ``s3://bucket/`` is the key exactly as
stored (PyBase stores raw keys), so ``s3://b/drawings/plate 1.pdf`` names the key
``drawings/plate 1.pdf`` and ``s3://b/a%20b`` names the key ``a%20b``; ``?`` and ``#`` are part
of the key too. Keys that obstore cannot address (an empty segment from ``//`` or a leading or
trailing ``/``, a ``.`` or ``..`` segment) are refused rather than silently fetching another key.

Addressing: with an endpoint (B2, MinIO) requests are path-style, which both accept (MinIO
needs it unless it has a domain configured); on AWS they are virtual-hosted, except for bucket
names with dots, whose host names the AWS certificate does not cover. http is used only when
the configured endpoint itself says http. The endpoint is trusted (the operator set it); the
bucket name from the link must be a valid bucket name, so it cannot change the host.

Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or from
a web-identity or container credential source that obstore reads itself. Without any, the job
fails as NotConfigured instead of letting the client probe the instance-metadata address.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from pgqueue.errors import (
    AccessDenied,
    FileNotFound,
    InvalidFileUrl,
    JobError,
    NotConfigured,
    StorageUnavailable,
)
from pgqueue.settings import Settings
from pgqueue.storage.spool import check_announced_size, copy_limited

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

CHUNK_SIZE = 1024 * 1024
RETRIES = 2

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DOTTED_QUAD = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_REGION_IN_HOST = re.compile(r"^s3[.-]([a-z0-9-]+)\.(?:backblazeb2\.com|amazonaws\.com)$")
_ERROR_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidObjectState",
        "InvalidToken",
        "SignatureDoesNotMatch",
    }
)
_REGION_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "PermanentRedirect"}
)
_SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
_DELEGATED_SOURCES = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(url: str) -> S3Location:
    """Split ``s3://bucket/key`` (raw key) and check both parts."""
    if url[3:5] != "//":
        raise InvalidFileUrl(f"{url}: expected s3://bucket/key")
    bucket, _slash, key = url[5:].partition("/")
    if (
        not _BUCKET.match(bucket)
        or ".." in bucket
        or ".-" in bucket
        or "-." in bucket
        or _DOTTED_QUAD.match(bucket)
    ):
        raise InvalidFileUrl(
            f"{url}: {bucket!r} is not a valid bucket name "
            "(3-63 lower-case letters, digits, dots and hyphens)"
        )
    if not key:
        raise InvalidFileUrl(f"{url}: the URL names a bucket but no object key")
    segments = key.split("/")
    if "" in segments or "." in segments or ".." in segments:
        raise InvalidFileUrl(
            f"{url}: keys with empty, '.' or '..' segments (//, a leading or trailing /) "
            "cannot be fetched"
        )
    return S3Location(bucket, key)


def download_s3(url: str, settings: Settings, destination: BinaryIO) -> None:
    """Stream the object into ``destination`` after checking its size with a HEAD request."""
    location = parse_s3_url(url)
    if settings.s3_buckets and location.bucket not in settings.s3_buckets:
        # The worker's credentials may reach more buckets than jobs should read from.
        raise AccessDenied(
            f"{url}: bucket {location.bucket!r} is not one of PGQUEUE_S3_BUCKETS"
        )
    store = _store(location.bucket, settings, url)
    limit = settings.max_file_size
    try:
        # HEAD first: an object over the limit is refused without a single body byte sent.
        check_announced_size(_head_size(store, location.key), limit, url)
        result = obstore.get(store, location.key)
        check_announced_size(result.meta["size"], limit, url)
        chunks = (memoryview(chunk) for chunk in result.stream(min_chunk_size=CHUNK_SIZE))
        copy_limited(chunks, destination, limit, url)
    except JobError:
        raise
    except (BaseError, FileNotFoundError, ValueError) as exc:
        raise classify_s3_error(exc, url) from None


def _head_size(store: S3Store, key: str) -> int | None:
    try:
        return obstore.head(store, key)["size"]
    except (BaseError, FileNotFoundError):
        # A HEAD answer has no body, so no S3 error code (SignatureDoesNotMatch or
        # AccessDenied?); the GET that follows fails the same way and says which.
        return None


def classify_s3_error(exc: Exception, url: str) -> JobError:
    """Turn an obstore error into the job error it means, with a short, secret-free message."""
    text = str(exc)
    code_match = _ERROR_CODE.search(text)
    status_match = _STATUS.search(text)
    code = code_match.group(1) if code_match else None
    status = int(status_match.group(1)) if status_match else None
    detail = ", ".join(part for part in (status and f"HTTP {status}", code) if part)
    if isinstance(exc, FileNotFoundError) or status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
        return FileNotFound(f"{url}: no such object ({detail or 'not found'})")
    if (
        isinstance(exc, PermissionDeniedError | UnauthenticatedError)
        or status in (401, 403)
        or code in _DENIED_CODES
    ):
        return AccessDenied(f"{url}: the storage refused access ({detail or _reason(text)})")
    if status == 301 or code in _REGION_CODES:
        return NotConfigured(
            f"{url}: the bucket is in another region than the one configured ({detail}); "
            "set PGQUEUE_S3_REGION"
        )
    if isinstance(exc, ValueError):
        return InvalidFileUrl(f"{url}: the key cannot be fetched ({_reason(text)})")
    # Everything else (5xx, throttling, 429, connection refused or reset, timeouts, and
    # statuses we do not know) may pass: retried with backoff, as unknown errors are.
    return StorageUnavailable(f"{url}: the storage is unavailable ({detail or _reason(text)})")


def _reason(text: str) -> str:
    """The useful end of obstore's first message line (it is followed by a debug dump)."""
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first.rpartition(" - ")[2].strip()[:300] or first[:300]


def _store(bucket: str, settings: Settings, url: str) -> S3Store:
    # obstore reads the AWS endpoint variables itself; taking them here keeps addressing
    # (path-style with an endpoint) consistent with whichever endpoint is in force.
    endpoint = settings.s3_endpoint or next(
        (os.environ[name] for name in _ENDPOINT_VARIABLES if os.environ.get(name)), None
    )
    region = settings.s3_region or _region_from_endpoint(endpoint)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _cached_store(
        bucket, endpoint, region or "us-east-1", settings.fetch_timeout, _credentials(url)
    )


@functools.lru_cache(maxsize=32)
def _cached_store(
    bucket: str,
    endpoint: str | None,
    region: str,
    timeout: float,
    credentials: tuple[tuple[str, str], ...],
) -> S3Store:
    # Cached so that jobs run by one process reuse the client's connection pool.
    config: S3Config = {"region": region}
    allow_http = False
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotConfigured(
                f"PGQUEUE_S3_ENDPOINT must be an http:// or https:// URL, got {endpoint!r}"
            )
        config["endpoint"] = endpoint.rstrip("/")
        config["virtual_hosted_style_request"] = False
        allow_http = parts.scheme == "http"
    else:
        config["virtual_hosted_style_request"] = "." not in bucket
    for name, value in credentials:
        config[name] = value  # type: ignore[literal-required]
    stall = timedelta(seconds=timeout)
    client_options: ClientConfig = {
        "allow_http": allow_http,
        "connect_timeout": stall,
        "read_timeout": stall,
        # The whole download is bounded by the job's wall-clock limit, not here: a large
        # file on a slow link may take long as long as it keeps moving.
        "timeout": timedelta(days=1),
    }
    retry_config: RetryConfig = {
        "max_retries": RETRIES,
        "retry_timeout": stall,
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
        },
    }
    return S3Store(bucket, config=config, client_options=client_options, retry_config=retry_config)


def _region_from_endpoint(endpoint: str | None) -> str | None:
    """B2 (and regional AWS) endpoints name their region; signing needs it to match."""
    if not endpoint:
        return None
    match = _REGION_IN_HOST.match(urlsplit(endpoint).hostname or "")
    return match.group(1) if match else None


def _credentials(url: str) -> tuple[tuple[str, str], ...]:
    environ = os.environ
    if all(environ.get(name) for name in _SECRET_VARIABLES):
        found = [
            ("access_key_id", environ["AWS_ACCESS_KEY_ID"]),
            ("secret_access_key", environ["AWS_SECRET_ACCESS_KEY"]),
        ]
        if environ.get("AWS_SESSION_TOKEN"):
            found.append(("session_token", environ["AWS_SESSION_TOKEN"]))
        return tuple(found)
    if any(environ.get(name) for name in _DELEGATED_SOURCES):
        return ()
    missing = " and ".join(name for name in _SECRET_VARIABLES if not environ.get(name))
    raise NotConfigured(f"{url}: no S3 credentials; set {missing}")
