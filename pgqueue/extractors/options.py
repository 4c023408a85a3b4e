"""Validation of a job's options against its format's typed options model.

Each format declares a pydantic model with ``extra='forbid'``; ``parse_options`` turns the raw
options dict into that model or raises ``InvalidOptions`` naming the bad option. The same models
give the JSON Schema that the README and ``pgqueue`` tools publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pgqueue.errors import InvalidOptions


class OptionsModel(BaseModel):
    """Base of every per-format options model: unknown keys and wrong types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


ModelT = TypeVar("ModelT", bound=OptionsModel)


def parse_options(model: type[ModelT], options: Mapping[str, Any] | None) -> ModelT:
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise InvalidOptions(f"options must be a JSON object, got {type(options).__name__}")
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "options"
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(model.model_fields))
                problems.append(f"unknown option {name!r} (allowed: {allowed})")
            else:
                problems.append(f"option {name!r}: {error['msg']}")
        raise InvalidOptions("; ".join(problems)) from None
