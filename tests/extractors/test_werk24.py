"""The werk24 extractor: the official client against a local Werk24 server over real sockets.

The server (``werk24_server.py``) speaks TLS with a throwaway authority; the one thing patched
is the client's trust store (``werk24.techread._default_ssl_context``), so that the client
trusts that authority as it trusts the public ones. Everything else is the client as shipped.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from pgqueue import extractors
from pgqueue.errors import (
    AccessDenied,
    CorruptFile,
    ExtractionTimeout,
    FileTooLarge,
    InvalidOptions,
    NotConfigured,
    ServiceUnavailable,
    UnsupportedFormat,
)
from pgqueue.extractors import werk24
from pgqueue.extractors.context import ExtractionContext, using

TOKEN = "w24-settings-token-0001"
STRAY_TOKEN = "w24-stray-license-token-9999"

# The client posts the drawing as bytes, which aiohttp 3 warns about; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes:DeprecationWarning")

needs_client = pytest.mark.skipif(
    find_spec("werk24") is None, reason="the werk24 client (pgqueue[werk24]) is not installed"
)

if find_spec("werk24") is not None:
    from werk24_server import Werk24Server, features, message, meta_data


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Werk24Server]:
    import werk24.techread

    folder = tmp_path / "server"
    folder.mkdir()
    with Werk24Server(folder) as running:
        trusted = ssl.create_default_context(cafile=str(running.ca_file))
        monkeypatch.setattr(werk24.techread, "_default_ssl_context", lambda: trusted)
        running.behaviour.tokens = {TOKEN}
        yield running


def run(path: Path, options: dict[str, Any] | None = None, *, token: str | None = TOKEN,
        url: str | None = None, budget: float = 30.0) -> dict[str, Any]:
    settings = ExtractionContext(werk24_token=token, werk24_url=url, time_budget=budget)
    with using(settings):
        return werk24.extract(path, options or {})


def make_pdf(path: Path, pages: int = 1) -> Path:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen import canvas

    sheet = canvas.Canvas(str(path), pagesize=landscape(A4))
    for number in range(1, pages + 1):
        sheet.rect(40, 40, 760, 515)
        sheet.line(200, 300, 600, 300)
        sheet.drawString(380, 310, "50 ±0.1")
        sheet.drawString(560, 60, f"D-TEST  sheet {number}/{pages}")
        sheet.showPage()
    sheet.save()
    return path


# --- reading ---------------------------------------------------------------------------------


@needs_client
def test_a_drawing_is_read_into_our_shapes(server: Werk24Server, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "plate.pdf")

    result = run(path, url=server.url)

    assert server.seen.handshakes == [f"Token {TOKEN}"]
    assert server.seen.asks == [["FEATURES", "META_DATA"]]
    assert list(server.seen.uploads.values()) == [path.read_bytes()]
    assert result["dimensions"] == [
        {"value": 20.0, "unit": "mm", "tolerance": "H7 +0.021/0", "dimension_type": "diameter",
         "label": "Ø20 H7", "page": 1},
        {"value": 50.0, "unit": "mm", "tolerance": "±0.1", "dimension_type": "linear",
         "label": "50 ±0.1", "page": 1},
        {"value": 45.0, "unit": "deg", "tolerance": None, "dimension_type": "angular",
         "label": "45°", "page": 1},
        {"value": 12.0, "unit": "mm", "tolerance": None, "dimension_type": "linear",
         "label": "12", "page": 1},
        {"value": 5.0, "unit": "mm", "tolerance": None, "dimension_type": "radius",
         "label": "R5", "page": 1},
    ]
    assert result["gdt_annotations"] == [
        {"characteristic": "flatness", "symbol": "⏥", "tolerance": 0.05, "unit": "mm", "datums": [],
         "material_condition": None, "label": "[⏥|0.05]", "confidence": 0.88, "page": 1},
        {"characteristic": "position", "symbol": "⌖", "tolerance": 0.1, "unit": "mm",
         "datums": ["A", "B"], "material_condition": "maximum", "label": "[⌖|Ø0.1Ⓜ|A|B]",
         "confidence": 0.3, "page": 1},
    ]
    assert result["threads"] == [
        {"thread_type": "ISO_METRIC", "label": "M8x1.25-6H", "diameter": 8.0, "unit": "mm",
         "pitch_mm": 1.25, "threads_per_inch": 20.32, "handedness": "right", "quantity": 1.0,
         "confidence": 0.92, "page": 1},
    ]
    assert result["surface_finishes"] == [
        {"label": "Ra 1.6", "parameter": "Ra", "value": 1.6, "unit": "µm",
         "standard": "ISO 1302:2002", "material_removal": "required", "applies_all_around": False,
         "conditions": [{"parameter": "Ra", "value": 1.6, "unit": "µm", "limit": "upper",
                         "grade": None}],
         "confidence": 0.7, "page": 1},
    ]
    assert [(m["designation"], m["standard"], m["option"], m["origin"]) for m in result["materials"]] == [
        ("S235JR", "EN 10025-2", 0, "title_block"), ("1.4301", "EN 10088-3", 1, "canvas_note"),
    ]
    # The drawing number is derived by the server from the bytes it received.
    number = "D-" + hashlib.sha256(path.read_bytes()).hexdigest()[:10].upper()
    assert result["title_block"] == {
        "drawing_number": number, "title": "Flange plate", "revision": None, "date": None,
        "author": None, "company": None, "scale": None, "sheet": None, "material": "S235JR",
        "custom_fields": {"part_number": "P-4711", "general_tolerances": "ISO 2768 m",
                          "weight": "1.25 kg"},
    }
    assert result["metadata"]["request_id"] == next(iter(server.seen.uploads))
    assert result["errors"] == [] and result["warnings"] == []


@needs_client
def test_the_registry_runs_this_extractor(server: Werk24Server, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "plate.pdf")
    with using(ExtractionContext(werk24_token=TOKEN, werk24_url=server.url)):
        result = extractors.get("werk24")(path, {"asks": ["threads"]})
    assert [thread["label"] for thread in result["threads"]] == ["M8x1.25-6H"]


@needs_client
def test_every_page_is_read_and_numbered_from_one(server: Werk24Server, tmp_path: Path) -> None:
    result = run(make_pdf(tmp_path / "two.pdf", pages=2), {"asks": ["dimensions"]}, url=server.url)
    assert [d["page"] for d in result["dimensions"]] == [1] * 5 + [2] * 5


@needs_client
def test_only_what_is_asked_is_asked_and_returned(server: Werk24Server, tmp_path: Path) -> None:
    result = run(make_pdf(tmp_path / "plate.pdf"), {"asks": ["dimensions", "threads"]},
                 url=server.url)

    assert server.seen.asks == [["FEATURES"]]
    assert len(result["dimensions"]) == 5 and len(result["threads"]) == 1
    assert result["gdt_annotations"] == result["surface_finishes"] == result["materials"] == []
    assert result["title_block"] is None
    assert result["metadata"]["asks"] == ["dimensions", "threads"]


@needs_client
def test_materials_alone_ask_only_for_meta_data(server: Werk24Server, tmp_path: Path) -> None:
    result = run(make_pdf(tmp_path / "plate.pdf"), {"asks": ["materials"]}, url=server.url)
    assert server.seen.asks == [["META_DATA"]]
    assert len(result["materials"]) == 2 and result["dimensions"] == []
    assert result["title_block"] is None


@needs_client
def test_confidence_threshold_drops_items_below_it(server: Werk24Server, tmp_path: Path) -> None:
    result = run(make_pdf(tmp_path / "plate.pdf"), {"confidence_threshold": 0.5}, url=server.url)

    # 45° (0.4) and the position tolerance (0.3) go; "12" has no confidence and stays.
    assert [d["label"] for d in result["dimensions"]] == ["Ø20 H7", "50 ±0.1", "12", "R5"]
    assert [g["characteristic"] for g in result["gdt_annotations"]] == ["flatness"]
    assert len(result["threads"]) == 1 and len(result["surface_finishes"]) == 1
    assert result["metadata"]["below_confidence_threshold"] == 2

    strict = run(make_pdf(tmp_path / "plate.pdf"), {"confidence_threshold": 0.9}, url=server.url)
    assert [d["label"] for d in strict["dimensions"]] == ["Ø20 H7", "50 ±0.1", "12"]
    assert [t["label"] for t in strict["threads"]] == ["M8x1.25-6H"]
    assert strict["gdt_annotations"] == strict["surface_finishes"] == []


# --- credentials -----------------------------------------------------------------------------


@needs_client
def test_no_token_fails_at_once_without_a_connection(server: Werk24Server, tmp_path: Path) -> None:
    with pytest.raises(NotConfigured) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), token=None, url=server.url)
    assert str(raised.value) == "werk24 is not configured: set PGQUEUE_WERK24_TOKEN"
    assert not raised.value.retryable
    assert server.seen.handshakes == []


def test_no_token_fails_even_without_the_client(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="set PGQUEUE_WERK24_TOKEN"):
        run(tmp_path / "never-read.pdf", token="")


@needs_client
def test_a_rejected_token_is_a_permanent_error(server: Werk24Server, tmp_path: Path) -> None:
    wrong = "w24-revoked-token-abcd"
    with pytest.raises(AccessDenied) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), token=wrong, url=server.url)

    assert not raised.value.retryable
    assert "rejected the token ending in 'abcd'" in str(raised.value)
    assert "PGQUEUE_WERK24_TOKEN" in str(raised.value)
    assert wrong not in str(raised.value)
    assert server.seen.handshakes == [f"Token {wrong}"]  # refused once, not retried


@needs_client
def test_an_unusable_token_fails_without_a_connection(server: Werk24Server, tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="PGQUEUE_WERK24_TOKEN is not a usable werk24 token"):
        run(make_pdf(tmp_path / "plate.pdf"), token="Token abc", url=server.url)
    assert server.seen.handshakes == []


@needs_client
def test_stray_license_files_and_variables_do_not_override_settings(
    server: Werk24Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from werk24.utils.license import locate_license

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".werk24").write_text(f"W24TECHREAD_AUTH_TOKEN={STRAY_TOKEN}\n")
    (work / ".werk24").write_text(f"W24TECHREAD_AUTH_TOKEN={STRAY_TOKEN}\n")
    (work / "werk24_license.txt").write_text(STRAY_TOKEN + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("W24TECHREAD_AUTH_TOKEN", STRAY_TOKEN)
    monkeypatch.chdir(work)
    server.behaviour.tokens = {TOKEN, STRAY_TOKEN}
    # The premise: left to itself, the client would pick the stray token.
    assert locate_license().license.token == STRAY_TOKEN

    run(make_pdf(tmp_path / "plate.pdf"), url=server.url)

    assert server.seen.handshakes == [f"Token {TOKEN}"]


# --- the service failing ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@needs_client
def test_a_server_that_is_down_is_a_transient_error(server: Werk24Server, tmp_path: Path) -> None:
    url = f"wss://127.0.0.1:{_closed_port()}/v2"
    with pytest.raises(ServiceUnavailable) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), url=url)
    assert raised.value.retryable
    assert url in str(raised.value)


@needs_client
@pytest.mark.parametrize("failure", ["drop", "close", "internal_error"])
def test_a_read_failing_midway_is_a_transient_error(
    server: Werk24Server, tmp_path: Path, failure: str
) -> None:
    server.behaviour.failure = failure
    with pytest.raises(ServiceUnavailable) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), url=server.url)
    assert raised.value.retryable
    assert len(server.seen.uploads) == 1  # it did fail after the upload, mid-read


@needs_client
def test_a_stalled_read_ends_within_the_time_budget(server: Werk24Server, tmp_path: Path) -> None:
    server.behaviour.failure = "stall"
    started = time.monotonic()
    with pytest.raises(ExtractionTimeout) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), url=server.url, budget=1.0)
    assert raised.value.retryable
    assert time.monotonic() - started < 1.0 + werk24.CANCEL_GRACE + 1.0


@needs_client
def test_a_server_that_never_answers_ends_within_the_time_budget(
    server: Werk24Server, tmp_path: Path
) -> None:
    # A socket that listens but never accepts: the TLS handshake hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"wss://127.0.0.1:{silent.getsockname()[1]}/v2"
        started = time.monotonic()
        with pytest.raises(ExtractionTimeout, match="within 1 s"):
            run(make_pdf(tmp_path / "plate.pdf"), url=url, budget=1.0)
        assert time.monotonic() - started < 1.0 + werk24.CANCEL_GRACE + 1.0


# --- drawings Werk24 refuses -----------------------------------------------------------------


@needs_client
def test_a_file_werk24_cannot_read_is_unsupported(server: Werk24Server, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a drawing at all\n" * 10)
    with pytest.raises(UnsupportedFormat, match="werk24 does not read this file format") as raised:
        run(path, url=server.url)
    assert not raised.value.retryable
    assert list(server.seen.uploads.values()) == [path.read_bytes()]


@needs_client
@pytest.mark.parametrize(
    ("exception_type", "error", "text"),
    [
        ("DRAWING_CONTENT_NOT_UNDERSTOOD", UnsupportedFormat, "found no technical drawing"),
        ("DRAWING_RESOLUTION_TOO_LOW", CorruptFile, "resolution is too low"),
        ("DRAWING_PAGE_COUNT_TOO_LARGE", FileTooLarge, "more pages than werk24 accepts"),
    ],
)
def test_refusals_of_the_drawing_are_permanent(
    server: Werk24Server, tmp_path: Path, exception_type: str, error: type[Exception], text: str
) -> None:
    server.behaviour.ask_exceptions = [{"exception_level": "ERROR", "exception_type": exception_type}]
    with pytest.raises(error, match=text) as raised:
        run(make_pdf(tmp_path / "plate.pdf"), url=server.url)
    assert not getattr(raised.value, "retryable", True)


@needs_client
def test_an_error_werk24_has_no_name_for_yet_is_retried(server: Werk24Server, tmp_path: Path) -> None:
    server.behaviour.ask_exceptions = [
        {"exception_level": "ERROR", "exception_type": "BRAND_NEW_PROBLEM", "reason": "gremlins"},
    ]
    with pytest.raises(ServiceUnavailable, match=r"brand new problem \(FEATURES\): gremlins"):
        run(make_pdf(tmp_path / "plate.pdf"), url=server.url)


@needs_client
def test_an_incomplete_read_keeps_its_results_with_a_warning(
    server: Werk24Server, tmp_path: Path
) -> None:
    server.behaviour.ask_exceptions = [
        {"exception_level": "WARNING", "exception_type": "READ_INCOMPLETE", "reason": "timeout"},
    ]
    result = run(make_pdf(tmp_path / "plate.pdf"), url=server.url)
    assert len(result["dimensions"]) == 5 and result["title_block"] is not None
    assert result["errors"] == []
    assert result["warnings"] == [
        "read incomplete (FEATURES): timeout", "read incomplete (META_DATA): timeout",
    ]


@needs_client
def test_a_drawing_storage_refuses_as_too_large(server: Werk24Server, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "plate.pdf")
    server.behaviour.upload_limit = path.stat().st_size - 1
    with pytest.raises(FileTooLarge, match="larger than werk24 accepts"):
        run(path, url=server.url)
    assert server.seen.uploads == {}


@needs_client
def test_a_drawing_over_the_upload_limit_is_not_sent(server: Werk24Server, tmp_path: Path) -> None:
    import werk24.techread

    path = tmp_path / "huge.pdf"
    with path.open("wb") as huge:
        huge.truncate(werk24.techread.DRAWING_UPLOAD_LIMIT_BYTES + 1)  # sparse: nothing written
    with pytest.raises(FileTooLarge, match="werk24 accepts at most"):
        run(path, url=server.url)
    assert server.seen.handshakes == []


@needs_client
def test_an_empty_file_is_corrupt(server: Werk24Server, tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(CorruptFile, match="empty file"):
        run(path, url=server.url)
    assert server.seen.handshakes == []


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"asks": ["dimensions", "colour"]}, "'colour'"),
        ({"asks": []}, "'asks'"),
        ({"asks": "dimensions"}, "'asks'"),
        ({"confidence_threshold": 1.5}, "'confidence_threshold'"),
        ({"confidence_threshold": -0.1}, "'confidence_threshold'"),
        ({"pages": [1]}, "'pages'"),
    ],
)
def test_invalid_options_are_named(options: dict[str, Any], named: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidOptions) as raised:
        run(tmp_path / "never-read.pdf", options)
    assert named in str(raised.value)


@needs_client
@pytest.mark.parametrize("url", ["ws://127.0.0.1:1/v2", "https://api.w24.co", "wss:///v2"])
def test_a_url_the_client_cannot_use_is_not_configured(url: str, tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="PGQUEUE_WERK24_URL must be a wss:// URL"):
        run(make_pdf(tmp_path / "plate.pdf"), url=url)


def test_without_the_client_installed_the_job_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "werk24", None)  # makes `import werk24` fail
    with pytest.raises(NotConfigured) as raised:
        run(tmp_path / "never-read.pdf")
    assert str(raised.value) == "werk24 support is not installed: pip install pgqueue[werk24]"


# --- the test server speaks the client's protocol ------------------------------------------


@needs_client
def test_the_server_answers_parse_as_the_clients_own_models() -> None:
    from werk24.models.v2.internal import TechreadInitResponse, TechreadMessage
    from werk24.models.v2.responses import (
        ResponseFeaturesComponentDrawing,
        ResponseMetaDataComponentDrawing,
    )

    request_id = "6f1c3c56-9d2e-4a8e-bf6e-2f4d1f0b7a11"
    init = TechreadMessage.model_validate_json(message(
        request_id, "PROGRESS", "INITIALIZATION_SUCCESS",
        {"drawing_presigned_post": {"url": "https://127.0.0.1:1/upload", "fields": {}}}))
    answers = [
        TechreadMessage.model_validate_json(message(request_id, "ASK", "FEATURES", features())),
        TechreadMessage.model_validate_json(message(request_id, "ASK", "META_DATA", meta_data(b"x"))),
    ]
    assert isinstance(init.payload_dict, TechreadInitResponse)
    assert isinstance(answers[0].payload_dict, ResponseFeaturesComponentDrawing)
    assert isinstance(answers[1].payload_dict, ResponseMetaDataComponentDrawing)
