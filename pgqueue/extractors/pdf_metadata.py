"""A PDF's document information (producer, title, dates...) as read by PDFium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_INFO_KEYS = {
    "Title": "title", "Author": "author", "Subject": "subject", "Keywords": "keywords",
    "Creator": "creator", "Producer": "producer",
}
_DATE = re.compile(
    r"^D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)


def document_metadata(document: Any) -> dict[str, Any]:
    """Info dictionary fields of a ``pypdfium2.PdfDocument``; empty values become None."""
    info = document.get_metadata_dict(skip_empty=False)
    metadata: dict[str, Any] = {
        field: (info.get(key) or None) for key, field in _INFO_KEYS.items()
    }
    metadata["creation_date"] = pdf_date(info.get("CreationDate") or "")
    metadata["modification_date"] = pdf_date(info.get("ModDate") or "")
    version = document.get_version()
    metadata["pdf_version"] = f"{version // 10}.{version % 10}" if version else None
    return metadata


def pdf_date(text: str) -> str | None:
    """``D:20240101120000+01'00'`` as ISO 8601; a date that does not parse is kept as written."""
    text = text.strip()
    if not text:
        return None
    match = _DATE.match(text)
    if match is None:
        return text
    year, month, day, hour, minute, second, utc, sign, offset_hours, offset_minutes = match.groups()
    try:
        zone = None
        if utc:
            zone = UTC
        elif sign:
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes or 0))
            zone = timezone(offset if sign == "+" else -offset)
        moment = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), tzinfo=zone,
        )
    except ValueError:
        return text
    return moment.isoformat()
