"""Technical drawings read by the Werk24 API, through the official ``werk24`` client.

The client is an optional extra (``pip install pgqueue[werk24]``) and is imported only here,
inside ``extract``. It is asynchronous; ``extract`` runs it to completion on an event loop of
its own, within the job's time budget.

Credentials come from settings only. The token (``PGQUEUE_WERK24_TOKEN``) is handed to the
client explicitly, which makes it skip its own search (a ``.werk24`` or ``werk24_license.txt``
file in the working or home folder, the ``W24TECHREAD_AUTH_TOKEN`` variable). The endpoint is
``PGQUEUE_WERK24_URL``, or else the production endpoint the client ships with, passed
explicitly too, so a stray ``WSS_SERVER`` variable cannot send the token elsewhere.

Options (``Options``):

- ``asks``: what to read, any of ``dimensions``, ``gdt_annotations``, ``threads``,
  ``surface_finishes`` (Werk24's FEATURES ask), ``materials`` and ``title_block`` (its
  META_DATA ask). Default: all of them. Each name is also the key of its result.
- ``confidence_threshold``: items whose confidence Werk24 gives and is below it are dropped
  (dimensions, GD&T, threads, surface finishes; materials and title blocks carry none).

Result keys: ``dimensions`` (``results.Dimension``, radii included), ``gdt_annotations``,
``threads``, ``surface_finishes``, ``materials`` (the shapes below), ``title_block``
(``results.TitleBlock``, ``None`` unless asked), ``metadata`` (Werk24's request id, the asks,
how many items the threshold dropped), ``errors`` and ``warnings``. An ask not asked for
leaves its list empty. Pages are numbered from 1.

Failures: no token, an unusable token or URL, or a missing client -> ``NotConfigured`` (no
network call is made); a refused token or a spent quota -> ``AccessDenied``; a drawing Werk24
refuses -> ``UnsupportedFormat``, ``FileTooLarge`` or ``CorruptFile``; Werk24 unreachable,
failing, or ending a read early -> ``ServiceUnavailable`` (retried); the budget used up ->
``ExtractionTimeout`` (retried). Other problems Werk24 attaches to its answers land in
``errors`` or ``warnings`` by their level; when no ask got a result, ``ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypedDict, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from pgqueue.errors import (
    AccessDenied,
    CorruptFile,
    ExtractionTimeout,
    FileTooLarge,
    InvalidOptions,
    JobError,
    NotConfigured,
    ServiceUnavailable,
    UnsupportedFormat,
)
from pgqueue.extractors import context
from pgqueue.extractors.options import OptionsModel, parse_options
from pgqueue.extractors.results import Dimension, TitleBlock, empty_title_block

# Our ask names, each mapped to the Werk24 ask that answers it.
ASKS: dict[str, str] = {
    "dimensions": "FEATURES",
    "gdt_annotations": "FEATURES",
    "threads": "FEATURES",
    "surface_finishes": "FEATURES",
    "materials": "META_DATA",
    "title_block": "META_DATA",
}

# The client retries a failed connection itself; the queue retries the job with backoff, so a
# short burst here is enough to ride out a blip.
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_DELAY = 0.5  # seconds, doubled after each failed attempt

# A read cancelled at the deadline gets this long to close its connection cleanly.
CANCEL_GRACE = 2.0

# Part of the time budget the read itself may take; the rest is for connecting, uploading
# and closing, so that the client's own timeout, with its clearer message, fires first.
READ_SHARE = 0.9

# Refusals of the drawing itself (Werk24's exception types at level ERROR): retrying cannot help.
_REFUSALS: dict[str, tuple[type[JobError], str]] = {
    "DRAWING_FILE_FORMAT_UNSUPPORTED": (UnsupportedFormat, "werk24 does not read this file format"),
    "DRAWING_FILE_SIZE_TOO_LARGE": (FileTooLarge, "the drawing is larger than werk24 accepts"),
    "DRAWING_PAPER_SIZE_TOO_LARGE": (FileTooLarge, "the paper size is larger than werk24 accepts"),
    "DRAWING_PAGE_COUNT_TOO_LARGE": (FileTooLarge, "the drawing has more pages than werk24 accepts"),
    "DRAWING_RESOLUTION_TOO_LOW": (CorruptFile, "the resolution is too low for werk24 to read"),
    "DRAWING_CONTENT_NOT_UNDERSTOOD": (UnsupportedFormat, "werk24 found no technical drawing in it"),
    "CONFIGURATION_INCORRECT": (InvalidOptions, "werk24 refused the request's configuration"),
}

_UNITS = {
    "millimeter": "mm", "millimetre": "mm", "mm": "mm",
    "centimeter": "cm", "centimetre": "cm", "cm": "cm",
    "meter": "m", "metre": "m", "m": "m",
    "micrometer": "µm", "micrometre": "µm", "micron": "µm", "um": "µm", "μm": "µm", "µm": "µm",
    "inch": "in", "in": "in", '"': "in",
    "microinch": "µin", "µin": "µin",
    "degree": "deg", "deg": "deg", "°": "deg",
}

_DIMENSION_TYPES = {
    "LINEAR": "linear", "DIAMETER": "diameter", "SPHERICAL_DIAMETER": "diameter",
    "ANGULAR": "angular", "WIDTH_ACROSS_FLATS": "linear", "SQUARE": "linear",
}


class GdtAnnotation(TypedDict):
    characteristic: str  # flatness, position, ... (Werk24's name, lower case)
    symbol: str
    tolerance: float | None  # width of the tolerance zone
    unit: str | None
    datums: list[str]
    material_condition: str | None  # maximum, minimum, reciprocity
    label: str
    confidence: float | None
    page: int


class Thread(TypedDict):
    thread_type: str  # ISO_METRIC, UTS, WHITWORTH, NPT, ACME, SM, KNUCKLE
    label: str
    diameter: float | None
    unit: str | None
    pitch_mm: float | None
    threads_per_inch: float | None
    handedness: str | None  # left, right
    quantity: float | None
    confidence: float | None
    page: int


class SurfaceCondition(TypedDict):
    parameter: str | None  # Ra, Rz, ...
    value: float | None
    unit: str | None
    limit: str | None  # upper, lower, average
    grade: str | None  # N6, ...


class SurfaceFinish(TypedDict):
    label: str
    parameter: str | None  # of the first condition with a value
    value: float | None
    unit: str | None
    standard: str | None
    material_removal: str | None  # required, prohibited, unspecified
    applies_all_around: bool
    conditions: list[SurfaceCondition]
    confidence: float | None
    page: int


class Material(TypedDict):
    designation: str
    standard: str | None
    raw_text: str | None
    category: list[str]
    origin: str | None  # title_block, canvas_note, bill_of_material
    option: int  # alternatives are numbered 0, 1, ...; materials of one option go together
    page: int


class Options(OptionsModel):
    asks: list[str] = Field(
        default_factory=lambda: list(ASKS),
        min_length=1,
        description="What to read: " + ", ".join(ASKS) + ". Default: all.",
    )
    confidence_threshold: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Drop items whose confidence (where Werk24 gives one) is below this.",
    )

    @field_validator("asks")
    @classmethod
    def _known_asks(cls, asks: list[str]) -> list[str]:
        unknown = [ask for ask in asks if ask not in ASKS]
        if unknown:
            raise ValueError(f"unknown ask {unknown[0]!r} (known: {', '.join(ASKS)})")
        return list(dict.fromkeys(asks))


def extract(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = parse_options(Options, options)
    settings = context.current()
    if not settings.werk24_token:
        raise NotConfigured("werk24 is not configured: set PGQUEUE_WERK24_TOKEN")
    try:
        import werk24.techread as techread
        from werk24.models.v2 import asks as werk24_asks
        from werk24.models.v2 import enums as werk24_enums
        from werk24.utils import defaults
        from werk24.utils import exceptions as werk24_errors
    except ImportError:
        raise NotConfigured("werk24 support is not installed: pip install pgqueue[werk24]") from None
    endpoint = _endpoint(settings.werk24_url, str(defaults.Settings.model_fields["wss_server"].default))

    size = path.stat().st_size
    if size == 0:
        raise CorruptFile("empty file")
    limit: int = techread.DRAWING_UPLOAD_LIMIT_BYTES
    if size > limit:
        raise FileTooLarge(f"the drawing is {size} bytes; werk24 accepts at most {limit} bytes")
    drawing = path.read_bytes()

    wanted = sorted({ASKS[ask] for ask in chosen.asks})
    ask_models = {"FEATURES": werk24_asks.AskFeatures, "META_DATA": werk24_asks.AskMetaData}
    budget = settings.time_budget
    try:
        client = techread.Werk24Client(
            wss_server=endpoint,
            token=settings.werk24_token,
            max_reconnect_attempts=CONNECT_ATTEMPTS,
            reconnect_delay=CONNECT_RETRY_DELAY,
        )
        read = _read(client, drawing, [ask_models[name]() for name in wanted], budget * READ_SHARE)
        messages = _run_within(read, budget)
    except JobError:
        raise
    except Exception as exc:
        raise _translate(exc, werk24_errors, endpoint) from exc

    names = _SymbolNames(
        characteristics={m.value: m.name.lower() for m in werk24_enums.GDnTCharacteristic},
        conditions={m.value: m.name.lower() for m in werk24_enums.GDnTMaterialCondition},
    )
    return _Result(chosen, wanted, names).build(messages)


# --- talking to Werk24 ---------------------------------------------------------------------


@dataclass
class _Message:
    """One message of a read, reduced to JSON values so that mapping it needs no werk24 types."""

    kind: str  # PROGRESS, ASK, ERROR
    subtype: str  # INITIALIZATION_SUCCESS, STARTED, COMPLETED, or the ask type
    page: int
    request_id: str
    payload: Any
    exceptions: list[dict[str, Any]]


async def _read(client: Any, drawing: bytes, asks: list[Any], read_timeout: float) -> list[_Message]:
    """Run one read to its end, refusing the drawing as soon as Werk24 does."""
    messages: list[_Message] = []
    async with client:
        stream = client.read_drawing(drawing, asks, total_timeout=read_timeout)
        async with aclosing(stream) as reading:
            async for raw in reading:
                message = _plain(raw)
                _raise_for_refusal(message)
                messages.append(message)
    if not any(m.kind == "PROGRESS" and m.subtype == "COMPLETED" for m in messages):
        raise ServiceUnavailable("the werk24 server ended the read before it completed")
    return messages


def _plain(message: Any) -> _Message:
    payload = message.payload_dict
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="json")
    exceptions = [item.model_dump(mode="json") for item in message.exceptions]
    if isinstance(payload, dict) and isinstance(payload.get("exceptions"), list):
        # The answer to INITIALIZE carries its refusals inside the payload.
        exceptions += [item for item in payload["exceptions"] if isinstance(item, dict)]
    return _Message(
        kind=_enum_value(message.message_type),
        subtype=_enum_value(message.message_subtype),
        page=int(message.page_number or 0),
        request_id=str(message.request_id),
        payload=payload,
        exceptions=exceptions,
    )


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _raise_for_refusal(message: _Message) -> None:
    if message.kind == "ERROR":
        raise ServiceUnavailable(
            f"werk24 failed while reading the drawing (request {message.request_id})"
        )
    for item in message.exceptions:
        if item.get("exception_level") != "ERROR":
            continue
        refusal = _REFUSALS.get(str(item.get("exception_type")))
        if refusal is not None:
            error, text = refusal
            raise error(f"{text} (werk24 request {message.request_id})")


T = TypeVar("T")


def _run_within(coroutine: Coroutine[Any, Any, T], budget: float) -> T:
    """Run ``coroutine`` on a loop of its own; past ``budget`` seconds, ``ExtractionTimeout``.

    Not ``asyncio.wait_for``: it waits without limit for the cancelled read to unwind, and
    the client closes its connection with a timeout of minutes.
    """

    async def bounded() -> T:
        task = asyncio.ensure_future(coroutine)
        await asyncio.wait({task}, timeout=budget)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so that asyncio does not log it
        raise ExtractionTimeout(f"werk24 did not finish reading the drawing within {budget:g} s")

    return asyncio.run(bounded())


def _endpoint(configured: str | None, default: str) -> str:
    if configured is None:
        return default
    parts = urlsplit(configured)
    if parts.scheme != "wss" or not parts.hostname:
        raise NotConfigured(
            "PGQUEUE_WERK24_URL must be a wss:// URL (the werk24 client always uses TLS), "
            f"got {configured!r}"
        )
    return configured


def _translate(exc: Exception, werk24_errors: Any, endpoint: str) -> Exception:
    """Our error for a failure of the client; anything unknown is returned as it is."""
    if isinstance(exc, werk24_errors.InvalidLicenseException):
        reason = getattr(exc, "reason", "") or "it is not a token"
        return NotConfigured(f"PGQUEUE_WERK24_TOKEN is not a usable werk24 token: {reason}")
    if isinstance(exc, werk24_errors.ApiTokenRejectedException):
        suffix = getattr(exc, "token_suffix", None)
        which = f"the token ending in {suffix!r}" if suffix else "the token"
        return AccessDenied(f"werk24 at {endpoint} rejected {which}: check PGQUEUE_WERK24_TOKEN")
    if isinstance(exc, werk24_errors.InsufficientCreditsException):
        return AccessDenied("werk24 refused the read: the account's request quota is used up")
    if isinstance(exc, werk24_errors.UnauthorizedException):
        return AccessDenied(f"werk24 refused the read as unauthorized: {_details(exc)}")
    if isinstance(exc, werk24_errors.ReadTimeoutError):
        return ExtractionTimeout(f"werk24 did not finish reading the drawing: {_details(exc)}")
    if isinstance(exc, werk24_errors.RequestTooLargeException):
        return FileTooLarge(f"werk24 refused the drawing as too large: {_details(exc)}")
    if isinstance(exc, werk24_errors.UnsupportedMediaType):
        return UnsupportedFormat(f"werk24 refused the drawing's media type: {_details(exc)}")
    # The client wraps most network failures in its own errors, but not all of them.
    from_network = type(exc).__module__.split(".")[0] in ("aiohttp", "websockets")
    if from_network or isinstance(exc, werk24_errors.TechreadException | OSError):
        return ServiceUnavailable(f"werk24 at {endpoint} is unavailable: {_details(exc)}")
    return exc


def _details(exc: BaseException) -> str:
    """The specific part of a client error; its messages open with paragraphs of advice."""
    text = str(exc)
    if "Details: " in text:
        text = text.rsplit("Details: ", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- mapping the answers -------------------------------------------------------------------


@dataclass(frozen=True)
class _SymbolNames:
    characteristics: dict[str, str]  # GD&T symbol -> name
    conditions: dict[str, str]  # material-condition symbol -> name


@dataclass
class _Result:
    options: Options
    wanted: list[str]
    names: _SymbolNames
    dimensions: list[Dimension] = field(default_factory=list)
    gdt_annotations: list[GdtAnnotation] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)
    surface_finishes: list[SurfaceFinish] = field(default_factory=list)
    materials: list[Material] = field(default_factory=list)
    title_block: TitleBlock | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped: int = 0  # items below the confidence threshold

    def build(self, messages: list[_Message]) -> dict[str, Any]:
        replied: set[str] = set()  # asks with an answer, with or without a result
        results = 0
        for message in messages:
            for item in message.exceptions:
                self._note(message, item)
            if message.kind != "ASK":
                continue
            replied.add(message.subtype)
            payload, page = message.payload, message.page + 1
            if isinstance(payload, dict) and payload.get("ask_type") == "FEATURES":
                self._features(payload, page)
                results += 1
            elif isinstance(payload, dict) and payload.get("ask_type") == "META_DATA":
                self._meta_data(payload, page)
                results += 1
            elif payload is not None:
                self.errors.append(f"werk24 sent a {message.subtype} answer of an unknown shape")
        if self.errors and not results:
            # Nothing was read, for reasons this extractor does not know: maybe passing.
            raise ServiceUnavailable("werk24 answered no ask: " + "; ".join(self.errors))
        for name in self.wanted:
            if name not in replied:
                self.warnings.append(f"werk24 sent no {name} answer")
        asked = set(self.options.asks)
        if "title_block" in asked and self.title_block is None:
            self.warnings.append("werk24 found no title block data")
        return {
            "dimensions": self.dimensions if "dimensions" in asked else [],
            "gdt_annotations": self.gdt_annotations if "gdt_annotations" in asked else [],
            "threads": self.threads if "threads" in asked else [],
            "surface_finishes": self.surface_finishes if "surface_finishes" in asked else [],
            "materials": self.materials if "materials" in asked else [],
            "title_block": self.title_block if "title_block" in asked else None,
            "metadata": {
                "request_id": messages[-1].request_id if messages else None,
                "asks": list(self.options.asks),
                "confidence_threshold": self.options.confidence_threshold,
                "below_confidence_threshold": self.dropped,
            },
            # One note per read, though Werk24 may repeat it on every answer.
            "errors": list(dict.fromkeys(self.errors)),
            "warnings": list(dict.fromkeys(self.warnings)),
        }

    def _note(self, message: _Message, item: dict[str, Any]) -> None:
        """Record an exception Werk24 attached that does not refuse the drawing."""
        kind = str(item.get("exception_type"))
        about = item.get("ask_type") or (message.subtype if message.kind == "ASK" else None)
        text = kind.lower().replace("_", " ")
        if about:
            text += f" ({about})"
        if item.get("reason"):
            text += f": {item['reason']}"
        if item.get("exception_level") == "ERROR":
            self.errors.append(text)
        else:
            self.warnings.append(text)

    def _confident(self, item: dict[str, Any]) -> tuple[bool, float | None]:
        """Whether ``item`` passes the threshold, and its confidence where Werk24 gives one."""
        confidence = _number((item.get("confidence") or {}).get("score"))
        if confidence is not None and confidence < self.options.confidence_threshold:
            self.dropped += 1
            return False, confidence
        return True, confidence

    def _features(self, payload: dict[str, Any], page: int) -> None:
        for key, dimension_type in (("dimensions", None), ("radii", "radius")):
            for item in _items(payload, key):
                if self._confident(item)[0]:
                    self._dimension(item, dimension_type, page)
        for item in _items(payload, "gdnts"):
            keep, confidence = self._confident(item)
            if keep:
                self.gdt_annotations.append(self._gdt(item, confidence, page))
        for item in _items(payload, "threads"):
            keep, confidence = self._confident(item)
            if keep:
                self.threads.append(_thread(item, confidence, page))
        for item in _items(payload, "roughnesses"):
            keep, confidence = self._confident(item)
            if keep:
                self.surface_finishes.append(_surface_finish(item, confidence, page))

    def _dimension(self, item: dict[str, Any], dimension_type: str | None, page: int) -> None:
        size = item.get("size") or {}
        value = _number(size.get("value"))
        dimension_type = dimension_type or _DIMENSION_TYPES.get(str(size.get("size_type")), "unknown")
        label = str(item.get("label") or "")
        if value is None:
            self.warnings.append(f"dimension {label!r} on page {page} has no finite value; left out")
            return
        self.dimensions.append(Dimension(
            value=value,
            unit=_unit(size.get("unit")),
            tolerance=_tolerance(size.get("tolerance")),
            dimension_type=dimension_type,
            label=label or None,
            page=page,
        ))

    def _gdt(self, item: dict[str, Any], confidence: float | None, page: int) -> GdtAnnotation:
        symbol = str(item.get("characteristic") or "")
        zone = (item.get("zone") or {}).get("value") or {}
        condition = item.get("material_condition")
        datums = [str(datum["label"]) for datum in _items(item, "datums") if datum.get("label")]
        return GdtAnnotation(
            characteristic=self.names.characteristics.get(symbol, symbol),
            symbol=symbol,
            tolerance=_number(zone.get("value")),
            unit=_unit(zone.get("unit")),
            datums=datums,
            material_condition=self.names.conditions.get(condition, condition) if condition else None,
            label=str(item.get("label") or ""),
            confidence=confidence,
            page=page,
        )

    def _meta_data(self, payload: dict[str, Any], page: int) -> None:
        for option, combination in enumerate(_items(payload, "material_options")):
            for material in _items(combination, "material_combination"):
                self.materials.append(Material(
                    designation=str(material.get("designation") or ""),
                    standard=material.get("standard"),
                    raw_text=material.get("raw_ocr"),
                    category=[str(part) for part in material.get("material_category") or [] if part],
                    origin=str(material["origin"]).lower() if material.get("origin") else None,
                    option=option,
                    page=page,
                ))
        if self.title_block is None:
            self.title_block = _title_block(payload, self.materials)


def _items(payload: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [item for item in payload.get(key) or [] if isinstance(item, dict)]


def _thread(item: dict[str, Any], confidence: float | None, page: int) -> Thread:
    diameter = item.get("diameter") or {}
    spacing = item.get("spacing") or {}
    handedness = item.get("handedness")
    return Thread(
        thread_type=str(item.get("thread_type") or "unknown"),
        label=str(item.get("label") or ""),
        diameter=_number(diameter.get("value")),
        unit=_unit(diameter.get("unit")),
        pitch_mm=_number(spacing.get("pitch_in_mm")),
        threads_per_inch=_number(spacing.get("threads_per_inch")),
        handedness=str(handedness).lower() if handedness else None,
        quantity=_number(item.get("quantity")),
        confidence=confidence,
        page=page,
    )


def _surface_finish(item: dict[str, Any], confidence: float | None, page: int) -> SurfaceFinish:
    conditions = []
    for condition in _items(item, "conditions"):
        value = condition.get("value") or {}
        limit = condition.get("condition_type")
        conditions.append(SurfaceCondition(
            parameter=condition.get("parameter"),
            value=_number(value.get("value")),
            unit=_unit(value.get("unit")),
            limit=str(limit).lower() if limit else None,
            grade=condition.get("roughness_grade"),
        ))
    first = next((c for c in conditions if c["value"] is not None), None)
    removal = item.get("material_removal_type")
    return SurfaceFinish(
        label=str(item.get("label") or ""),
        parameter=first["parameter"] if first else None,
        value=first["value"] if first else None,
        unit=first["unit"] if first else None,
        standard=item.get("standard"),
        material_removal=str(removal).lower() if removal else None,
        applies_all_around=bool(item.get("applies_all_around")),
        conditions=conditions,
        confidence=confidence,
        page=page,
    )


def _title_block(payload: dict[str, Any], materials: list[Material]) -> TitleBlock | None:
    block = empty_title_block()
    fields: dict[str, str] = {}
    for identifier in _items(payload, "identifiers"):
        kind, value = str(identifier.get("identifier_type") or ""), identifier.get("value")
        if not kind or not value:
            continue
        if kind == "DRAWING_NUMBER" and block["drawing_number"] is None and (
            identifier.get("period") in (None, "CURRENT")
        ):
            block["drawing_number"] = str(value)
            continue
        key = kind.lower()
        if identifier.get("period") not in (None, "CURRENT"):
            key += "_" + str(identifier["period"]).lower()
        fields[key] = f"{fields[key]}; {value}" if key in fields else str(value)
    designations = [str(e["value"]) for e in _items(payload, "designation") if e.get("value")]
    if designations:
        block["title"] = designations[0]
        if len(designations) > 1:
            fields["designation_other_languages"] = "; ".join(designations[1:])
    chosen = [m["designation"] for m in materials if m["option"] == 0 and m["designation"]]
    if chosen:
        block["material"] = " + ".join(chosen)
    tolerances = payload.get("general_tolerances")
    if isinstance(tolerances, dict) and tolerances.get("tolerance_standard"):
        parts = (tolerances["tolerance_standard"], tolerances.get("tolerance_class"))
        fields["general_tolerances"] = " ".join(str(part) for part in parts if part)
    weight = payload.get("weight")
    if isinstance(weight, dict) and _number(weight.get("value")) is not None:
        fields["weight"] = f"{_decimal_text(weight['value'])} {weight.get('unit') or ''}".strip()
    projection = payload.get("projection_method")
    if isinstance(projection, dict) and projection.get("projection_method"):
        fields["projection_method"] = str(projection["projection_method"]).lower()
    systems = [
        str(system["unit_system_type"]).lower()
        for system in _items(payload, "unit_systems") if system.get("unit_system_type")
    ]
    if systems:
        fields["unit_system"] = ", ".join(systems)
    block["custom_fields"] = fields
    if block == empty_title_block():
        return None
    return block


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or a decimal string, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _decimal_text(value: Any) -> str:
    """A decimal as written, without exponent or float noise: '0.021', '-0.05', '0'."""
    number = Decimal(str(value))
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _signed(value: Any) -> str:
    text = _decimal_text(value)
    return text if text.startswith("-") or text == "0" else "+" + text


def _tolerance(tolerance: Any) -> str | None:
    """Werk24's tolerance as a drawing would write it: 'H7 +0.021/0', '±0.1', 'basic'."""
    if not isinstance(tolerance, dict):
        return None
    parts = []
    if tolerance.get("fit"):
        parts.append(str(tolerance["fit"]))
    upper, lower = tolerance.get("deviation_upper"), tolerance.get("deviation_lower")
    if _number(upper) is not None or _number(lower) is not None:
        upper = upper if _number(upper) is not None else 0
        lower = lower if _number(lower) is not None else 0
        if Decimal(str(upper)) == -Decimal(str(lower)) != 0:
            parts.append("±" + _decimal_text(upper))
        else:
            parts.append(f"{_signed(upper)}/{_signed(lower)}")
    for flag, word in (
        ("is_theoretically_exact", "basic"), ("is_reference", "reference"),
        ("is_approximation", "approx."),
    ):
        if tolerance.get(flag):
            parts.append(word)
    return " ".join(parts) or None


def _unit(unit: Any) -> str | None:
    if not unit:
        return None
    text = str(unit).strip()
    return _UNITS.get(text.lower(), text)
