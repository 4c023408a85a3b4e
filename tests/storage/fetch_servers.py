"""Real servers on loopback for the storage tests: moto's S3, a scripted HTTP(S) server, a relay.

Plain helpers (no pytest) so that the throughput measurement can use them too.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"


# --- moto S3 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass
class MotoS3:
    endpoint: str
    bucket: str
    reader: Credentials
    """May read every object."""
    outsider: Credentials
    """A valid user with no permission at all."""
    objects: dict[str, bytes] = field(default_factory=dict)


def _boto_client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )


@contextmanager
def moto_s3(objects: dict[str, bytes], bucket: str = "pgqueue-files") -> Iterator[MotoS3]:
    """Moto's S3 on a free loopback port, with ``objects`` stored and IAM auth enforced.

    Moto checks signatures and permissions only when its no-auth budget is used up; the budget
    is set to zero after setup (and restored after), so every fetch really is authenticated.
    """
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous_budget = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    previous_count = ActionAuthenticatorMixin.request_count
    try:
        s3 = _boto_client("s3", endpoint)
        s3.create_bucket(Bucket=bucket)
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        iam = _boto_client("iam", endpoint)
        # AWS authorizes HEAD with s3:GetObject; moto asks for s3:HeadObject instead.
        reader = _iam_user(iam, "reader", ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"])
        outsider = _iam_user(iam, "outsider", [])
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        yield MotoS3(endpoint, bucket, reader, outsider, dict(objects))
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = previous_budget
        ActionAuthenticatorMixin.request_count = previous_count
        server.stop()


def _iam_user(iam: Any, name: str, actions: list[str]) -> Credentials:
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="files", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


# --- scripted HTTP server --------------------------------------------------------------------

Route = Callable[["ScriptedHandler"], None]


@dataclass
class ScriptedServer:
    """An HTTP(S) server on loopback whose paths run small scripts, recording every request."""

    routes: dict[str, Route]
    tls: ssl.SSLContext | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    """Set when the server stops: scripts that stall wait on it."""
    port: int = 0

    def url(self, path: str, scheme: str | None = None, host: str = LOOPBACK) -> str:
        scheme = scheme or ("https" if self.tls else "http")
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for _method, path, _headers in self.requests]


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        script = self.server.script
        script.requests.append((self.command, self.path, dict(self.headers.items())))
        route = script.routes.get(self.path.split("?", 1)[0])
        try:
            if route is None:
                self.reply(404, b"no such route")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            # The client hung up on purpose (size limit, refusal): nothing to answer.
            self.close_connection = True

    @property
    def script(self) -> ScriptedServer:
        return self.server.script

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: ScriptedServer


@contextmanager
def scripted_server(
    routes: dict[str, Route], tls: ssl.SSLContext | None = None
) -> Iterator[ScriptedServer]:
    script = ScriptedServer(routes, tls)
    server = _Server((LOOPBACK, 0), ScriptedHandler)
    server.script = script
    if tls is not None:
        tls.sni_callback = lambda _socket, name, _context: script.server_names.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    script.port = server.server_address[1]
    # A short poll keeps shutdown() quick; the default would add half a second to each test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield script
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


# --- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfSignedCertificate:
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    """Trusts only this certificate, and checks host names as in production."""


def certificate_for(host_name: str) -> SelfSignedCertificate:
    """A self-signed certificate valid for ``host_name`` only."""
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        # load_cert_chain reads files only.
        certificate_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        certificate_file.write_bytes(certificate_pem)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(certificate_file, key_file)
    client = ssl.create_default_context(cadata=certificate_pem.decode("ascii"))
    return SelfSignedCertificate(server, client)


# --- request-recording relay -----------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"(?:^|\r\n\r\n)([A-Z]+) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class Relay:
    """Forwards TCP connections to a target on loopback, recording each request's method.

    A request is recorded before its bytes are passed on, so by the time the client has any
    answer, every request it sent is in ``methods``: no timing or buffer size decides it.
    Meant for requests without bodies (HEAD, GET).
    """

    port: int
    methods: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, head: bytes) -> None:
        with self.lock:
            self.methods.extend(m.group(1).decode() for m in _REQUEST_LINE.finditer(head))


@contextmanager
def recording_relay(target_port: int) -> Iterator[Relay]:
    listener = socket.create_server((LOOPBACK, 0))
    relay = Relay(listener.getsockname()[1])
    stopping = threading.Event()

    def pump(source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        seen = b""
        try:
            while chunk := source.recv(65536):
                if upstream:
                    # Record only the requests this chunk completes (their blank line came).
                    seen += chunk
                    complete, _separator, seen = seen.rpartition(b"\r\n\r\n")
                    if complete:
                        relay.record(complete + b"\r\n\r\n")
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _address = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, target_port))
            threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stopping.set()
        with suppress(OSError):
            # Wakes the blocked accept() on Linux; elsewhere close() alone does.
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound but never listens, so connecting is refused at once."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((LOOPBACK, 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def loopback_resolver(
    names: dict[str, list[str]], calls: list[str] | None = None
) -> Callable[[str, int], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """A resolver answering from ``names`` only, recording each question."""

    def resolve(host: str, _port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if calls is not None:
            calls.append(host)
        return [ipaddress.ip_address(address) for address in names[host]]

    return resolve
