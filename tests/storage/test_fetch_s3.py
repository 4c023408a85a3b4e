"""s3:// against moto's S3 on loopback (IAM auth enforced), and a scripted S3 for faults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MIB, S3_OBJECTS
from fetch_servers import (
    REGION,
    Credentials,
    MotoS3,
    ScriptedHandler,
    recording_relay,
    refusing_port,
    scripted_server,
)

from pgqueue.errors import (
    AccessDenied,
    FileNotFound,
    FileTooLarge,
    InvalidFileUrl,
    NotConfigured,
    StorageUnavailable,
)
from pgqueue.settings import Settings
from pgqueue.storage import fetch
from pgqueue.storage.s3 import _region_from_endpoint, parse_s3_url


def s3_url(moto: MotoS3, key: str) -> str:
    return f"s3://{moto.bucket}/{key}"


@pytest.mark.parametrize(
    "key",
    [
        "drawings/plate.pdf",
        "drawings/plate 1.pdf",
        "ünïcode/çødé ✓ plan.dxf",
        "a%20b.txt",
        "odd #?&+=.txt",
        "empty.bin",
    ],
)
def test_fetches_the_object_bytes_with_raw_keys(
    moto: MotoS3, s3_settings: Settings, spool_dir: Path, key: str
) -> None:
    with fetch(s3_url(moto, key), s3_settings) as path:
        assert path.parent == spool_dir
        assert path.read_bytes() == S3_OBJECTS[key]
    assert list(spool_dir.iterdir()) == []


def test_keeps_the_key_extension_on_the_temp_file(moto: MotoS3, s3_settings: Settings) -> None:
    with fetch(s3_url(moto, "drawings/plate 1.pdf"), s3_settings) as path:
        assert path.suffix == ".pdf"


def test_missing_key_is_file_not_found(
    moto: MotoS3, s3_settings: Settings, spool_dir: Path
) -> None:
    url = s3_url(moto, "drawings/nope.pdf")
    with pytest.raises(FileNotFound, match="no such object") as caught, fetch(url, s3_settings):
        pass
    assert url in str(caught.value)
    assert list(spool_dir.iterdir()) == []


def test_only_listed_buckets_are_read_when_a_bucket_list_is_set(
    moto: MotoS3, s3_settings: Settings
) -> None:
    # The worker's credentials may reach every bucket of the account; a row may not.
    listed = s3_settings.model_copy(update={"s3_buckets": (moto.bucket, "archive")})
    with fetch(s3_url(moto, "drawings/plate.pdf"), listed) as path:
        assert path.read_bytes() == S3_OBJECTS["drawings/plate.pdf"]
    with (
        pytest.raises(AccessDenied, match="PGQUEUE_S3_BUCKETS"),
        fetch("s3://no-such-bucket/a.pdf", listed),
    ):
        pass


def test_missing_bucket_is_file_not_found(s3_settings: Settings) -> None:
    with pytest.raises(FileNotFound), fetch("s3://no-such-bucket/a.pdf", s3_settings):
        pass


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("wrong secret", "SignatureDoesNotMatch"),
        ("unknown key", "InvalidAccessKeyId"),
        ("no permission", "AccessDenied"),
    ],
)
def test_refused_credentials_are_access_denied(
    moto: MotoS3,
    s3_settings: Settings,
    login: Callable[[Credentials], None],
    who: str,
    code: str,
) -> None:
    credentials = {
        "wrong secret": Credentials(moto.reader.access_key_id, "not-the-secret"),
        "unknown key": Credentials("AKIAUNKNOWNUNKNOWN00", "whatever"),
        "no permission": moto.outsider,
    }[who]
    login(credentials)
    with (
        pytest.raises(AccessDenied, match=code) as caught,
        fetch(s3_url(moto, "drawings/plate.pdf"), s3_settings),
    ):
        pass
    assert credentials.secret_access_key not in str(caught.value)
    assert not caught.value.retryable


def test_missing_credentials_are_not_configured(moto: MotoS3, aws_env: pytest.MonkeyPatch) -> None:
    settings = Settings(s3_endpoint=moto.endpoint, s3_region=REGION)
    with (
        pytest.raises(NotConfigured, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        fetch(s3_url(moto, "drawings/plate.pdf"), settings),
    ):
        pass


def test_object_over_the_limit_is_refused_before_its_body_is_asked_for(
    moto: MotoS3, s3_settings: Settings, spool_dir: Path
) -> None:
    # The relay records each request before passing it on: the HEAD answer alone must refuse
    # the object, so no GET (which would start the body) is ever sent.
    port = int(moto.endpoint.rsplit(":", 1)[1])
    with recording_relay(port) as relay:
        settings = s3_settings.model_copy(
            update={"s3_endpoint": f"http://127.0.0.1:{relay.port}", "max_file_size": MIB}
        )
        with (
            pytest.raises(FileTooLarge, match=r"4194304 bytes .* over the limit of 1048576"),
            fetch(s3_url(moto, "large.bin"), settings),
        ):
            pass
    assert relay.methods == ["HEAD"]
    assert list(spool_dir.iterdir()) == []


def test_the_recording_relay_sees_the_get_of_an_object_within_the_limit(
    moto: MotoS3, s3_settings: Settings
) -> None:
    # The check above means something only if the relay would have seen a GET.
    port = int(moto.endpoint.rsplit(":", 1)[1])
    with recording_relay(port) as relay:
        settings = s3_settings.model_copy(
            update={"s3_endpoint": f"http://127.0.0.1:{relay.port}", "max_file_size": 4 * MIB}
        )
        with fetch(s3_url(moto, "large.bin"), settings) as path:
            assert path.stat().st_size == len(S3_OBJECTS["large.bin"])
    assert relay.methods == ["HEAD", "GET"]


def test_object_within_a_raised_limit_is_fetched(moto: MotoS3, s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"max_file_size": 4 * MIB})
    with fetch(s3_url(moto, "large.bin"), settings) as path:
        assert path.read_bytes() == S3_OBJECTS["large.bin"]


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:bucket/key",
        "s3://bucket",
        "s3://bucket/",
        "s3://Bucket/key",
        "s3://my_bucket/key",
        "s3://ab/key",
        "s3://192.168.1.1/key",
        "s3://a..b/key",
        "s3://evil.com:80@x/key",
        "s3://bucket//key",
        "s3://bucket/a/../key",
        "s3://bucket/dir/",
        "s3://bucket/./key",
    ],
)
def test_malformed_s3_urls_are_refused_before_any_request(
    url: str, aws_env: pytest.MonkeyPatch
) -> None:
    # No endpoint and no credentials: reaching the network would fail differently.
    with pytest.raises(InvalidFileUrl), fetch(url, Settings()):
        pass


def test_keys_are_taken_raw() -> None:
    location = parse_s3_url("s3://files/a%20b/plate 1.pdf?x#y")
    assert (location.bucket, location.key) == ("files", "a%20b/plate 1.pdf?x#y")


def test_b2_endpoints_name_their_region() -> None:
    assert _region_from_endpoint("https://s3.us-west-004.backblazeb2.com") == "us-west-004"
    assert _region_from_endpoint("http://127.0.0.1:9000") is None


def test_endpoint_must_be_an_http_url(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"s3_endpoint": "ftp://127.0.0.1:21"})
    with (
        pytest.raises(NotConfigured, match="PGQUEUE_S3_ENDPOINT"),
        fetch("s3://files/a.pdf", settings),
    ):
        pass


def test_refused_connection_is_storage_unavailable(s3_settings: Settings) -> None:
    with refusing_port() as port:
        settings = s3_settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{port}"})
        with pytest.raises(StorageUnavailable) as caught, fetch("s3://files/a.pdf", settings):
            pass
    assert caught.value.retryable


# --- faults moto does not make: a scripted S3 -----------------------------------------------


def _object_head(size: int) -> dict[str, str]:
    return {
        "Content-Length": str(size),
        "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT",
        "ETag": '"0123"',
    }


def _status(status: int, code: str) -> Callable[[ScriptedHandler], None]:
    def route(handler: ScriptedHandler) -> None:
        body = f"<Error><Code>{code}</Code><Message>fault</Message></Error>".encode()
        handler.reply(status, body, {"Content-Type": "application/xml"})

    return route


def _lies_about_size(handler: ScriptedHandler) -> None:
    if handler.command == "HEAD":
        handler.reply(200, b"", _object_head(10))
    else:
        handler.reply(200, b"x" * (3 * MIB), {**_object_head(10), "Content-Length": str(3 * MIB)})


def _stalls(handler: ScriptedHandler) -> None:
    handler.reply(200, b"", _object_head(100))
    if handler.command == "GET":
        handler.wfile.write(b"x" * 10)
        handler.wfile.flush()
        handler.script.release.wait()


FAULTS = {
    "/files/slow-down": _status(503, "SlowDown"),
    "/files/internal": _status(500, "InternalError"),
    "/files/throttled": _status(429, "TooManyRequests"),
    "/files/liar": _lies_about_size,
    "/files/stall": _stalls,
}


@pytest.mark.parametrize("key", ["slow-down", "internal", "throttled"])
def test_server_faults_and_throttling_are_transient(
    s3_settings: Settings, spool_dir: Path, key: str
) -> None:
    with scripted_server(FAULTS) as server:
        settings = s3_settings.model_copy(update={"s3_endpoint": server.url("")})
        with pytest.raises(StorageUnavailable) as caught, fetch(f"s3://files/{key}", settings):
            pass
    assert caught.value.retryable
    assert list(spool_dir.iterdir()) == []


def test_size_is_checked_again_when_the_object_grew_after_head(
    s3_settings: Settings, spool_dir: Path
) -> None:
    # The byte count while streaming is the last guard; obstore itself refuses a body without
    # Content-Length, so the announced size of the GET is what catches a grown object here.
    with scripted_server(FAULTS) as server:
        settings = s3_settings.model_copy(update={"s3_endpoint": server.url("")})
        with (
            pytest.raises(FileTooLarge, match="3145728 bytes"),
            fetch("s3://files/liar", settings),
        ):
            pass
        assert [method for method, _path, _headers in server.requests] == ["HEAD", "GET"]
    assert list(spool_dir.iterdir()) == []


def test_stalled_download_times_out(s3_settings: Settings, spool_dir: Path) -> None:
    with scripted_server(FAULTS) as server:
        settings = s3_settings.model_copy(
            update={"s3_endpoint": server.url(""), "fetch_timeout": 0.5}
        )
        with pytest.raises(StorageUnavailable), fetch("s3://files/stall", settings):
            pass
    assert list(spool_dir.iterdir()) == []
