"""Fixtures of the storage tests. Every server here listens on 127.0.0.1 only."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fetch_servers import REGION, Credentials, MotoS3, moto_s3

from pgqueue.settings import Settings

MIB = 1024 * 1024
S3_OBJECTS: dict[str, bytes] = {
    "drawings/plate.pdf": b"%PDF-1.7 plate" * 100,
    "drawings/plate 1.pdf": b"%PDF-1.7 plate with a space",
    "ünïcode/çødé ✓ plan.dxf": "0\nSECTION ✓".encode(),
    "a%20b.txt": b"the key is literally a%20b.txt",
    "odd #?&+=.txt": b"hash, question mark and friends",
    "empty.bin": b"",
    "large.bin": bytes(range(256)) * (4 * MIB // 256),
}
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_PROFILE",
)


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of the test's own, so leftovers of a download can be seen."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    # Module scope: moto's auth switch is process-wide, so it is on only while S3 tests run.
    with moto_s3(S3_OBJECTS) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No AWS variable of the machine leaks into a test."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def login(aws_env: pytest.MonkeyPatch) -> Callable[[Credentials], None]:
    """Put a user's keys where the worker reads them: the standard AWS variables."""

    def use(credentials: Credentials) -> None:
        aws_env.setenv("AWS_ACCESS_KEY_ID", credentials.access_key_id)
        aws_env.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key)

    return use


@pytest.fixture
def s3_settings(moto: MotoS3, login: Callable[[Credentials], None]) -> Settings:
    login(moto.reader)
    return Settings(s3_endpoint=moto.endpoint, s3_region=REGION, max_file_size=MIB, fetch_timeout=5)
