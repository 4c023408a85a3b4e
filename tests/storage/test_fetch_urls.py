"""URL checks common to every scheme, redaction, and the size-limited spool."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from pgqueue.errors import FileTooLarge, InvalidFileUrl
from pgqueue.settings import Settings
from pgqueue.storage import fetch
from pgqueue.storage.spool import copy_limited, spooled
from pgqueue.storage.urls import MAX_URL_LENGTH, conceal, file_suffix, redact, scheme_of


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://files.example/plate.pdf", "unsupported URL scheme 'ftp'"),
        ("gopher://files.example/1", "unsupported URL scheme 'gopher'"),
        ("javascript:alert(1)", "unsupported URL scheme"),
        ("drawings/plate.pdf", "no scheme"),
        ("://nothing", "no scheme"),
        ("not a url at all", "no scheme"),
        ("https://files.example/a\nb", "control characters"),
        ("s3://bucket/" + "k" * MAX_URL_LENGTH, "at most 2048"),
    ],
)
def test_unfetchable_urls_are_invalid(url: str, message: str, spool_dir: Path) -> None:
    with pytest.raises(InvalidFileUrl, match=message), fetch(url, Settings()):
        pass
    assert list(spool_dir.iterdir()) == []


def test_a_url_that_is_not_a_string_is_invalid() -> None:
    with pytest.raises(InvalidFileUrl), fetch(None, Settings()):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize(
    "url", ["https://[::1", "https://files.example:99999/a.pdf", "https:///a.pdf"]
)
def test_malformed_https_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidFileUrl), fetch(url, Settings()):
        pass


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@files.example/a.pdf?X-Amz-Signature=abc#p1",
            "https://files.example/a.pdf",
        ),
        ("HTTP://files.example:8080/a.pdf?token=1", "HTTP://files.example:8080/a.pdf"),
        ("s3://bucket/odd ?name#1.pdf", "s3://bucket/odd ?name#1.pdf"),
        ("s3://bucket/odd #?&+=.txt", "s3://bucket/odd #?&+=.txt"),
        (
            "s3://bucket/a?b.pdf?X-Amz-Algorithm=AWS4&X-Amz-Signature=abc",
            "s3://bucket/a?b.pdf",
        ),
        ("s3://bucket/a.pdf?versionId=3&AWSAccessKeyId=AKIA&Signature=x", "s3://bucket/a.pdf"),
        ("s3://key:secret@bucket/a.pdf", "s3://bucket/a.pdf"),
        ("file:///data/a.pdf", "file:///data/a.pdf"),
    ],
)
def test_redact_drops_user_info_and_signatures(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_conceal_masks_every_secret_piece_a_message_quotes() -> None:
    url = "https://alice:p%40ss-word@files.example/a.pdf?X-Amz-Signature=abc123def&ok=1#frag-ment"
    message = f"GET {url} failed: user alice, password p@ss-word, signature abc123def, frag-ment"
    concealed = conceal(message, url)
    assert concealed.startswith("GET https://files.example/a.pdf failed: user [redacted]")
    for secret in ("alice", "p@ss-word", "p%40ss-word", "abc123def", "frag-ment"):
        assert secret not in concealed
    assert conceal("plain words", "s3://bucket/a.pdf") == "plain words"


def test_s3_links_with_user_info_are_refused_before_any_use() -> None:
    with pytest.raises(InvalidFileUrl, match="must not carry credentials") as refused:
        scheme_of("s3://AKIAKEY:secretvalue@bucket/a.pdf")
    assert "secretvalue" not in str(refused.value) and "AKIAKEY" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("drawings/plate 1.PDF", ".pdf"),
        ("model.ifc", ".ifc"),
        ("noext", ""),
        (".hidden", ""),
        ("a/b.c/d", ""),
        ("weird.p$f", ""),
        ("x.averyveryverylongsuffix", ""),
    ],
)
def test_file_suffix(name: str, suffix: str) -> None:
    assert file_suffix(name) == suffix


def test_copy_limited_stops_at_the_first_chunk_past_the_limit() -> None:
    produced: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(100):
            produced.append(index)
            yield b"x" * 10

    destination = io.BytesIO()
    with pytest.raises(FileTooLarge, match="more than 25 bytes"):
        copy_limited(chunks(), destination, 25, "s3://b/k")
    assert produced == [0, 1, 2]
    assert destination.getvalue() == b"x" * 20


def test_copy_limited_accepts_exactly_the_limit() -> None:
    destination = io.BytesIO()
    assert copy_limited([b"x" * 10, b"y" * 15], destination, 25, "s3://b/k") == 25


def test_spooled_removes_the_file_when_writing_fails(spool_dir: Path) -> None:
    def write(handle: BinaryIO) -> None:
        handle.write(b"partial")
        raise FileTooLarge("too large")

    with pytest.raises(FileTooLarge), spooled(write, ".pdf"):
        pass
    assert list(spool_dir.iterdir()) == []
