"""https:// and http:// against scripted servers on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from fetch_servers import (
    Route,
    ScriptedHandler,
    ScriptedServer,
    SelfSignedCertificate,
    certificate_for,
    loopback_resolver,
    refusing_port,
    scripted_server,
)

from pgqueue.errors import (
    AccessDenied,
    FileNotFound,
    FileTooLarge,
    InvalidFileUrl,
    StorageUnavailable,
)
from pgqueue.jobrun import JobInput, run_job
from pgqueue.settings import Settings
from pgqueue.storage import fetch
from pgqueue.storage.addresses import AddressPolicy
from pgqueue.storage.web import download_web

LIMIT = 64 * 1024
PLATE = b"%PDF-1.7 " + bytes(range(256)) * 100
LOCAL = Settings(
    allow_hosts="127.0.0.0/8,::1", allow_http=True, max_file_size=LIMIT, fetch_timeout=5
)
STRICT = Settings(max_file_size=LIMIT, fetch_timeout=5)


def _file(handler: ScriptedHandler) -> None:
    handler.reply(200, PLATE, {"Content-Type": "application/pdf"})


def _echo_host(handler: ScriptedHandler) -> None:
    handler.reply(200, handler.headers["Host"].encode())


def _redirect(handler: ScriptedHandler) -> None:
    target = handler.path.partition("?to=")[2]
    handler.reply(302, b"", {"Location": target})


def _loop(handler: ScriptedHandler) -> None:
    handler.reply(307, b"", {"Location": "/loop"})


def _announces_too_much(handler: ScriptedHandler) -> None:
    # Headers only: a client that waits for the body hangs until its stall timeout.
    handler.reply(200, b"", {"Content-Length": str(10 * LIMIT)})
    handler.script.release.wait()


def _chunked_flood(handler: ScriptedHandler) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"z" * 8192
    for _ in range(4 * LIMIT // len(chunk)):
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    handler.wfile.write(b"0\r\n\r\n")


def _unannounced_flood(handler: ScriptedHandler) -> None:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    for _ in range(4 * LIMIT // 8192):
        handler.wfile.write(b"z" * 8192)


def _cut_short(handler: ScriptedHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"only ten b")
    handler.close_connection = True


def _stall(handler: ScriptedHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"x" * 10)
    handler.wfile.flush()
    handler.script.release.wait()


def _status(status: int) -> Route:
    def route(handler: ScriptedHandler) -> None:
        handler.reply(status, b"status page")

    return route


ROUTES = {
    "/plate.pdf": _file,
    "/host": _echo_host,
    "/redirect": _redirect,
    "/loop": _loop,
    "/announces-too-much": _announces_too_much,
    "/chunked-flood": _chunked_flood,
    "/unannounced-flood": _unannounced_flood,
    "/cut-short": _cut_short,
    "/stall": _stall,
    "/forbidden": _status(403),
    "/unauthorized": _status(401),
    "/gone": _status(410),
    "/broken": _status(500),
    "/unavailable": _status(503),
    "/throttled": _status(429),
    "/teapot": _status(418),
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server(ROUTES) as running:
        yield running


def test_fetches_the_file_into_a_temp_file_that_is_removed_after(
    server: ScriptedServer, spool_dir: Path
) -> None:
    with fetch(server.url("/plate.pdf"), LOCAL) as path:
        assert path.parent == spool_dir
        assert path.suffix == ".pdf"
        assert path.read_bytes() == PLATE
    assert list(spool_dir.iterdir()) == []
    [(_method, _path, headers)] = server.requests
    assert headers["Accept-Encoding"] == "identity"


def test_not_found_names_the_url_without_its_query(server: ScriptedServer) -> None:
    url = server.url("/missing.pdf?X-Amz-Signature=SECRET123")
    with pytest.raises(FileNotFound, match="404") as caught, fetch(url, LOCAL):
        pass
    assert server.url("/missing.pdf") in str(caught.value)
    assert "SECRET123" not in str(caught.value)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/gone", FileNotFound),
        ("/forbidden", AccessDenied),
        ("/unauthorized", AccessDenied),
        ("/broken", StorageUnavailable),
        ("/unavailable", StorageUnavailable),
        ("/throttled", StorageUnavailable),
        ("/teapot", InvalidFileUrl),
    ],
)
def test_status_codes_map_to_job_errors(
    server: ScriptedServer, spool_dir: Path, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught, fetch(server.url(path), LOCAL):
        pass
    assert path in str(caught.value)
    assert list(spool_dir.iterdir()) == []


def test_announced_size_over_the_limit_is_refused_without_reading_the_body(
    server: ScriptedServer,
) -> None:
    with (
        pytest.raises(FileTooLarge, match="655360 bytes"),
        fetch(server.url("/announces-too-much"), LOCAL),
    ):
        pass


@pytest.mark.parametrize("path", ["/chunked-flood", "/unannounced-flood"])
def test_bytes_past_the_limit_stop_the_download(
    server: ScriptedServer, spool_dir: Path, path: str
) -> None:
    with (
        pytest.raises(FileTooLarge, match="more than 65536 bytes"),
        fetch(server.url(path), LOCAL),
    ):
        pass
    assert list(spool_dir.iterdir()) == []


def test_body_shorter_than_announced_is_transient(server: ScriptedServer) -> None:
    with pytest.raises(StorageUnavailable), fetch(server.url("/cut-short"), LOCAL):
        pass


def test_stalled_download_times_out(server: ScriptedServer, spool_dir: Path) -> None:
    settings = LOCAL.model_copy(update={"fetch_timeout": 0.3})
    with (
        pytest.raises(StorageUnavailable, match=r"sent nothing for 0\.3 s"),
        fetch(server.url("/stall"), settings),
    ):
        pass
    assert list(spool_dir.iterdir()) == []


def test_refused_connection_is_transient() -> None:
    with (
        refusing_port() as port,
        pytest.raises(StorageUnavailable, match="could not connect") as caught,
        fetch(f"http://127.0.0.1:{port}/plate.pdf", LOCAL),
    ):
        pass
    assert caught.value.retryable


def test_follows_relative_redirects(server: ScriptedServer) -> None:
    with fetch(server.url("/redirect?to=/plate.pdf"), LOCAL) as path:
        assert path.read_bytes() == PLATE
    assert server.paths() == ["/redirect?to=/plate.pdf", "/plate.pdf"]


def test_stops_after_five_redirects(server: ScriptedServer) -> None:
    with (
        pytest.raises(InvalidFileUrl, match="more than 5 redirects"),
        fetch(server.url("/loop"), LOCAL),
    ):
        pass
    assert len(server.requests) == 6


# --- where links may lead --------------------------------------------------------------------

# The first hop is a loopback server the test owns; everything else stays refused.
ONLY_THE_TEST_SERVER = AddressPolicy(
    allow_http=True, allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),)
)


@pytest.mark.parametrize(
    "target",
    # Loopback targets only: should the check ever regress, nothing leaves the machine.
    [
        "http://127.0.0.2:{port}/plate.pdf",
        "http://[::1]:{port}/plate.pdf",
        "http://2130706434:{port}/plate.pdf",
        "http://0x7f.0.0.3:{port}/plate.pdf",
    ],
)
def test_redirect_to_a_private_address_is_refused(
    server: ScriptedServer, tmp_path: Path, target: str
) -> None:
    url = server.url("/redirect?to=" + target.format(port=server.port))
    with (
        (tmp_path / "out").open("wb") as destination,
        pytest.raises(AccessDenied, match="redirected to"),
    ):
        download_web(url, STRICT, destination, policy=ONLY_THE_TEST_SERVER)
    assert len(server.requests) == 1


def test_redirect_to_another_scheme_is_refused(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.url("/redirect?to=file:///etc/passwd")
    with (
        (tmp_path / "out").open("wb") as destination,
        pytest.raises(InvalidFileUrl, match="https://"),
    ):
        download_web(url, LOCAL, destination)


@pytest.mark.parametrize(
    "target",
    [
        "data:application/pdf;base64,JVBERi0xLjQ=",
        "DATA:,plate",
        "javascript:alert(1)",
        "gopher://127.0.0.1:70/x",
    ],
)
def test_redirect_to_something_never_downloadable_is_permanent(
    server: ScriptedServer, target: str
) -> None:
    url = server.url("/redirect?to=" + target)
    outcome = run_job(JobInput("data", url, "pdf"), LOCAL)
    assert (outcome.error_type, outcome.retryable) == ("InvalidFileUrl", False)
    assert "links may only lead to https://" in (outcome.error_message or "")
    assert len(server.requests) == 1


def test_plain_http_needs_its_own_switch(server: ScriptedServer) -> None:
    loopback_only = Settings(allow_hosts="127.0.0.1", max_file_size=LIMIT, fetch_timeout=5)
    with (
        pytest.raises(InvalidFileUrl, match="PGQUEUE_ALLOW_HTTP"),
        fetch(server.url("/plate.pdf"), loopback_only),
    ):
        pass
    with (
        pytest.raises(InvalidFileUrl, match="https is required"),
        fetch(server.url("/plate.pdf"), STRICT),
    ):
        pass
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/plate.pdf",
        "https://2130706433:{port}/plate.pdf",
        "https://0x7f.1:{port}/plate.pdf",
        "https://[::ffff:127.0.0.1]:{port}/plate.pdf",
    ],
)
def test_loopback_links_are_refused_before_connecting(server: ScriptedServer, url: str) -> None:
    with (
        pytest.raises(AccessDenied, match="PGQUEUE_ALLOW_HOSTS"),
        fetch(url.format(port=server.port), STRICT),
    ):
        pass
    assert server.requests == []


def test_connects_to_the_checked_address_with_the_original_host_header(
    server: ScriptedServer, tmp_path: Path
) -> None:
    # The system cannot resolve files.test: a client that looked the name up again, instead
    # of using the checked address, would fail to connect.
    calls: list[str] = []
    resolve = loopback_resolver({"files.test": ["127.0.0.1"]}, calls)
    destination_path = tmp_path / "out"
    with destination_path.open("wb") as destination:
        download_web(server.url("/host", host="files.test"), LOCAL, destination, resolve=resolve)
    assert destination_path.read_bytes() == f"files.test:{server.port}".encode()
    assert calls == ["files.test"]


def test_every_resolved_address_must_be_allowed(server: ScriptedServer, tmp_path: Path) -> None:
    resolve = loopback_resolver({"files.test": ["127.0.0.1", "127.0.0.2"]})
    with (
        (tmp_path / "out").open("wb") as destination,
        pytest.raises(AccessDenied, match=r"127\.0\.0\.2"),
    ):
        download_web(
            server.url("/plate.pdf", host="files.test"),
            STRICT,
            destination,
            policy=ONLY_THE_TEST_SERVER,
            resolve=resolve,
        )
    assert server.requests == []


# --- TLS to a pinned address -----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate() -> SelfSignedCertificate:
    return certificate_for("files.test")


def test_tls_uses_the_link_host_for_sni_and_certificate_check(
    certificate: SelfSignedCertificate, tmp_path: Path
) -> None:
    resolve = loopback_resolver({"files.test": ["127.0.0.1"]})
    with scripted_server(ROUTES, tls=certificate.server_context) as tls_server:
        destination_path = tmp_path / "out"
        with destination_path.open("wb") as destination:
            download_web(
                tls_server.url("/plate.pdf", host="files.test"),
                LOCAL,
                destination,
                resolve=resolve,
                verify=certificate.client_context,
            )
        assert destination_path.read_bytes() == PLATE
        assert tls_server.server_names == ["files.test"]


def test_tls_certificate_for_another_name_is_refused(
    certificate: SelfSignedCertificate, tmp_path: Path
) -> None:
    resolve = loopback_resolver({"other.test": ["127.0.0.1"]})
    with scripted_server(ROUTES, tls=certificate.server_context) as tls_server:
        with (
            (tmp_path / "out").open("wb") as destination,
            pytest.raises(StorageUnavailable, match=r"CERTIFICATE_VERIFY_FAILED"),
        ):
            download_web(
                tls_server.url("/plate.pdf", host="other.test"),
                LOCAL,
                destination,
                resolve=resolve,
                verify=certificate.client_context,
            )
        assert tls_server.requests == []


# --- the temp file, however the block is left --------------------------------------------------


def test_temp_file_is_removed_when_the_block_raises(
    server: ScriptedServer, spool_dir: Path
) -> None:
    with pytest.raises(RuntimeError), fetch(server.url("/plate.pdf"), LOCAL) as path:
        assert path.exists()
        raise RuntimeError("extractor failed")
    assert list(spool_dir.iterdir()) == []


def test_temp_file_is_removed_when_an_enclosing_generator_is_closed(
    server: ScriptedServer, spool_dir: Path
) -> None:
    def holder() -> Generator[Path, None, None]:
        with fetch(server.url("/plate.pdf"), LOCAL) as path:
            yield path

    running = holder()
    path = next(running)
    assert path.exists()
    running.close()
    assert list(spool_dir.iterdir()) == []
