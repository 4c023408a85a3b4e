"""A local stand-in for the Werk24 API, speaking what the official ``werk24`` 2.8 client speaks.

The protocol, as the client (``werk24/techread.py``) uses it:

1. A WebSocket to ``wss://.../v2`` with ``Authorization: Token <token>`` on the handshake. A
   refused token is answered with HTTP 403 before the upgrade.
2. Client -> server commands are ``{"action": ..., "message": {...}}``. ``INITIALIZE`` carries
   the asks (``[{"ask_version": "v2", "ask_type": "FEATURES"}, ...]``) and ``max_pages``.
3. The answer is a message (``request_id``, ``message_type``, ``message_subtype``,
   ``page_number``, ``payload_dict``, ``exceptions``) of type PROGRESS / INITIALIZATION_SUCCESS
   whose payload holds a presigned POST (``url`` and form ``fields``) for the drawing.
4. The client posts the drawing there as multipart form data (the fields, then ``file``).
   Storage refuses an upload over its size limit with 400 and an S3 ``EntityTooLarge`` body.
5. ``READ`` starts the reading: PROGRESS / STARTED, then one ASK message per ask and page
   (subtype = the ask type, the result inline in ``payload_dict``), then PROGRESS / COMPLETED.
   A drawing that cannot be read gets, per ask, an ERROR-level exception instead of a result.

Results are inline because the client downloads a ``payload_url`` only from public HTTPS
hosts. Both servers use TLS with a certificate of a throwaway authority (``ca_file``), because
the client always passes an SSL context, which a ``ws://`` URL refuses.

The results are fixed (``FEATURES`` and ``META_DATA`` below) except what comes from the
uploaded bytes: one FEATURES answer per PDF page, and the drawing number, which is ``D-`` and
the first 10 hex digits of the drawing's SHA-256, so a test can see which bytes arrived.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import re
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")

Failure = Literal["drop", "close", "internal_error", "stall"]


@dataclass
class Behaviour:
    """What the server does. Tests set it before a read."""

    tokens: set[str] = field(default_factory=set)  # accepted tokens
    failure: Failure | None = None  # what goes wrong after READ
    upload_limit: int = 10 * 1024 * 1024  # bytes storage accepts
    # Attached to every answer; one at level ERROR replaces the answer's result.
    ask_exceptions: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Seen:
    """What the server received, for tests to check."""

    handshakes: list[str] = field(default_factory=list)  # Authorization headers, in order
    asks: list[list[str]] = field(default_factory=list)  # ask types per INITIALIZE
    uploads: dict[str, bytes] = field(default_factory=dict)  # drawing by request id


# --- the answers ---------------------------------------------------------------------------


def _size(value: str, unit: str, size_type: str, **tolerance: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, "size_type": size_type, "tolerance": tolerance or None}


def _confidence(score: str | None) -> dict[str, str] | None:
    return None if score is None else {"score": score}


def features(reference: int = 1) -> dict[str, Any]:
    """The FEATURES answer for one page of any readable drawing."""
    return {
        "ask_version": "v2",
        "ask_type": "FEATURES",
        "page_type": "COMPONENT_DRAWING",
        "dimensions": [
            {"reference_id": reference, "label": "Ø20 H7", "confidence": _confidence("0.95"),
             "quantity": 1, "size": _size("20", "millimeter", "DIAMETER", fit="H7",
                                          deviation_upper="0.021", deviation_lower="0")},
            {"reference_id": reference + 1, "label": "50 ±0.1", "confidence": _confidence("0.9"),
             "quantity": 1, "size": _size("50", "millimeter", "LINEAR", deviation_upper="0.1",
                                          deviation_lower="-0.1")},
            {"reference_id": reference + 2, "label": "45°", "confidence": _confidence("0.4"),
             "quantity": 1, "size": _size("45", "degree", "ANGULAR")},
            {"reference_id": reference + 3, "label": "12", "confidence": None,
             "quantity": 2, "size": _size("12", "millimeter", "LINEAR")},
        ],
        "radii": [
            {"reference_id": reference + 4, "label": "R5", "confidence": _confidence("0.85"),
             "quantity": 1, "size": _size("5", "millimeter", "LINEAR")},
        ],
        "gdnts": [
            {"reference_id": reference + 5, "label": "[⏥|0.05]", "confidence": _confidence("0.88"),
             "characteristic": "⏥", "zone": {"value": _size("0.05", "millimeter", "LINEAR")},
             "feature": None, "reference": None, "datums": []},
            {"reference_id": reference + 6, "label": "[⌖|Ø0.1Ⓜ|A|B]", "confidence": _confidence("0.3"),
             "characteristic": "⌖", "zone": {"value": _size("0.1", "millimeter", "DIAMETER")},
             "feature": None, "reference": None, "material_condition": "Ⓜ",
             "datums": [{"label": "A"}, {"label": "B"}]},
        ],
        "threads": [
            {"reference_id": reference + 7, "label": "M8x1.25-6H", "confidence": _confidence("0.92"),
             "thread_type": "ISO_METRIC", "quantity": "1",
             "diameter": _size("8", "millimeter", "DIAMETER"),
             "spacing": {"pitch_in_mm": "1.25", "threads_per_inch": "20.32"},
             "handedness": "RIGHT"},
        ],
        "roughnesses": [
            {"reference_id": reference + 8, "label": "Ra 1.6", "confidence": _confidence("0.7"),
             "standard": "ISO 1302:2002", "material_removal_type": "REQUIRED",
             "applies_all_around": False,
             "conditions": [{"condition_type": "UPPER", "filter_type": None, "parameter": "Ra",
                             "acceptance_criterion": None,
                             "value": _size("1.6", "micrometer", "LINEAR")}]},
        ],
    }


def meta_data(drawing: bytes) -> dict[str, Any]:
    """The META_DATA answer for ``drawing``."""
    number = "D-" + hashlib.sha256(drawing).hexdigest()[:10].upper()
    material = {"raw_ocr": "S235JR EN 10025-2", "standard": "EN 10025-2", "designation": "S235JR",
                "material_category": ["FERROUS_ALLOY", None, None], "origin": "TITLE_BLOCK"}
    alternative = {"raw_ocr": "or 1.4301", "standard": "EN 10088-3", "designation": "1.4301",
                   "material_category": ["FERROUS_ALLOY", None, None], "origin": "CANVAS_NOTE"}
    return {
        "ask_version": "v2",
        "ask_type": "META_DATA",
        "page_type": "COMPONENT_DRAWING",
        "identifiers": [
            {"reference_id": 101, "value": number, "identifier_type": "DRAWING_NUMBER",
             "period": "CURRENT"},
            {"reference_id": 102, "value": "P-4711", "identifier_type": "PART_NUMBER"},
        ],
        "designation": [{"reference_id": 103, "value": "Flange plate", "language": "ENG"}],
        "material_options": [
            {"reference_id": 104, "material_combination": [material]},
            {"reference_id": 105, "material_combination": [alternative]},
        ],
        "general_tolerances": {"reference_id": 106, "tolerance_standard": "ISO 2768",
                               "tolerance_class": "m", "principle": None},
        "weight": {"reference_id": 107, "value": "1.25", "unit": "kg"},
    }


def page_count(drawing: bytes) -> int:
    if drawing.startswith(b"%PDF-"):
        return max(1, len(PDF_PAGE.findall(drawing)))
    return 1


def readable(drawing: bytes) -> bool:
    return drawing.startswith((b"%PDF-", PNG_SIGNATURE))


def message(request_id: str, kind: str, subtype: str, payload: Any = None, page: int = 0,
            exceptions: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({
        "request_id": request_id, "message_type": kind, "message_subtype": subtype,
        "page_number": page, "payload_dict": payload, "exceptions": exceptions or [],
    })


# --- TLS -----------------------------------------------------------------------------------


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway authority and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pgqueue test authority")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


# --- the server ----------------------------------------------------------------------------


class Werk24Server:
    """The WebSocket API and the upload storage, on 127.0.0.1, in a thread of their own."""

    def __init__(self, folder: Path) -> None:
        self.ca_file, certificate, key = make_certificates(folder)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(certificate, key)
        self.behaviour = Behaviour()
        self.seen = Seen()
        self.url = ""
        self._upload_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="werk24-test-server", daemon=True)

    def __enter__(self) -> Werk24Server:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the werk24 test server did not start within 30 s")
        if self._failed is not None:
            raise RuntimeError("the werk24 test server failed to start") from self._failed
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        storage = web.Application()
        storage.router.add_post("/upload", self._upload)
        runner = web.AppRunner(storage)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        storage_port = runner.addresses[0][1]
        self._upload_url = f"https://127.0.0.1:{storage_port}/upload"
        try:
            async with serve(self._session, "127.0.0.1", 0, ssl=self._tls,
                             process_request=self._handshake) as api:
                api_port = next(iter(api.sockets)).getsockname()[1]
                self.url = f"wss://127.0.0.1:{api_port}/v2"
                self._ready.set()
                await self._stop.wait()
        finally:
            await runner.cleanup()

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization", "")
        self.seen.handshakes.append(authorization)
        scheme, _, token = authorization.partition(" ")
        if scheme != "Token" or token not in self.behaviour.tokens:
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        drawing = form.get("file")
        if not isinstance(drawing, web.FileField) or not isinstance(form.get("key"), str):
            return web.Response(status=400, text="<Error><Code>InvalidArgument</Code></Error>")
        content = drawing.file.read()
        if len(content) > self.behaviour.upload_limit:
            return web.Response(status=400, content_type="application/xml", text=(
                "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload exceeds the "
                f"maximum allowed size</Message><MaxSizeAllowed>{self.behaviour.upload_limit}"
                "</MaxSizeAllowed></Error>"))
        self.seen.uploads[str(form["key"])] = content
        return web.Response(status=204)

    async def _session(self, connection: ServerConnection) -> None:
        request_id, asks, max_pages = "", [], 1
        try:
            async for raw in connection:
                command = json.loads(raw)
                body = command.get("message") or {}
                if isinstance(body, str):
                    body = json.loads(body)
                if command.get("action") == "INITIALIZE":
                    request_id = str(uuid.uuid4())
                    asks = [str(ask["ask_type"]) for ask in body.get("asks", [])]
                    max_pages = int(body.get("max_pages", 1))
                    self.seen.asks.append(asks)
                    post = {"url": self._upload_url, "fields": {"key": request_id, "policy": "test"}}
                    await connection.send(message(
                        request_id, "PROGRESS", "INITIALIZATION_SUCCESS",
                        {"drawing_presigned_post": post, "exceptions": []}))
                elif command.get("action") == "READ":
                    await self._answer(connection, request_id, asks, max_pages)
        except ConnectionClosed:
            pass  # the failures above end connections on purpose

    async def _answer(self, connection: ServerConnection, request_id: str, asks: list[str],
                      max_pages: int) -> None:
        await connection.send(message(request_id, "PROGRESS", "STARTED"))
        failure = self.behaviour.failure
        if failure == "drop":
            connection.transport.abort()
            return
        if failure == "close":
            await connection.close()
            return
        if failure == "internal_error":
            await connection.send(message(request_id, "ERROR", "INTERNAL"))
            await connection.close()
            return
        if failure == "stall":
            assert self._stop is not None
            await self._stop.wait()
            return
        drawing = self.seen.uploads.get(request_id, b"")
        attached = self.behaviour.ask_exceptions
        if not readable(drawing):
            attached = [{"exception_level": "ERROR", "exception_type": "DRAWING_FILE_FORMAT_UNSUPPORTED"}]
        failed = any(item["exception_level"] == "ERROR" for item in attached)
        for ask in asks:
            if failed:
                await connection.send(message(request_id, "ASK", ask, exceptions=attached))
            elif ask == "FEATURES":
                for page in range(min(page_count(drawing), max_pages)):
                    await connection.send(message(
                        request_id, "ASK", ask, features(100 * page), page, attached))
            elif ask == "META_DATA":
                await connection.send(message(request_id, "ASK", ask, meta_data(drawing), 0, attached))
        await connection.send(message(request_id, "PROGRESS", "COMPLETED"))
