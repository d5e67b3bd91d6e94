"""Field helpers shared by every area's models."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy import Column, Integer, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


def enum_field(default: Any = ..., *, index: bool = False, length: int = 32, **kw: Any) -> Any:
    """An enum stored as a plain string column (new values need no type migration)."""
    return Field(default=default, sa_type=String(length), index=index, **kw)


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_column_kwargs={"nullable": False}, sa_type=UTCDateTime)


def updated_at_field() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"nullable": False, "onupdate": utcnow},
    )


def version_column() -> Any:
    return Field(default=1, sa_column=Column(Integer, nullable=False, default=1))


def _reject_nul(value: Any, loc: str = "body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{loc}: NUL characters are not allowed in text")
    elif isinstance(value, dict):
        for k, v in value.items():
            _reject_nul(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            _reject_nul(v, loc)


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array",
               type(None): "null"}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_contract_types: dict[type, dict[str, tuple[set[str], set[str]]]] = {}


def _property_types(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The JSON types and string formats a property's schema allows (empty: not stated, e.g. a $ref)."""
    branches = schema.get("anyOf") or schema.get("oneOf") or [schema]
    types: set[str] = set()
    formats: set[str] = set()
    for branch in branches:
        kind = branch.get("type")
        if kind is None:
            return set(), set()  # a branch the check cannot read alone: leave the property to pydantic
        types.update(kind if isinstance(kind, list) else [kind])
        if "format" in branch:
            formats.add(branch["format"])
    return types, formats


def _contract_type_errors(model: type, data: dict[str, Any]) -> list[tuple[str, str]]:
    """Each body field takes only the JSON type its contract names (found by the contract fuzzer).

    Pydantic's lax mode took `false` for an integer, `0` for a boolean or a date (a Unix timestamp) and a JSON
    number for a yuan or decimal string; a date or date-time in a string is ISO 8601 only (not "0", and a date is
    not a date-time at midnight). The rule is the model's own JSON schema, so it cannot drift from the contract.
    """
    rules = _contract_types.get(model)
    if rules is None:
        properties = model.model_json_schema(mode="validation").get("properties", {})  # type: ignore[attr-defined]
        rules = {name: _property_types(schema) for name, schema in properties.items()}
        _contract_types[model] = rules
    errors = []
    for name, value in data.items():
        types, formats = rules.get(name, (set(), set()))
        kind = _JSON_TYPES.get(type(value))
        if kind == "number" and value.is_integer():
            kind = "integer"  # JSON Schema: 912.0 is an integer
        if not types or kind is None:
            continue
        if kind not in types and not (kind == "integer" and "number" in types):
            errors.append((name, f"expected {' or '.join(sorted(types))}, got {kind}"))
        elif kind == "string" and formats and not any(
            (f == "date" and _ISO_DATE.fullmatch(value)) or (f == "date-time" and _ISO_DATETIME.match(value))
            or f not in ("date", "date-time") for f in formats
        ):
            errors.append((name, f"expected an ISO 8601 {' or '.join(sorted(formats))}"))
    return errors


class CreateModel(SQLModel):
    """Base for request bodies: unknown fields rejected, no NUL characters in any text."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _reject_nul(data)
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _contract_types(cls, data: Any, handler: Any) -> Any:
        """Each field's JSON type as the contract names it, reported with the fields' own errors."""
        mismatches = _contract_type_errors(cls, data) if isinstance(data, dict) else []
        if not mismatches:
            return handler(data)
        try:
            handler(data)
            errors: list[Any] = []
        except ValidationError as exc:
            errors = [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"])
                      for e in exc.errors() if e["loc"][:1] not in [(name,) for name, _ in mismatches]]
        errors += [InitErrorDetails(type=PydanticCustomError("contract_type", msg), loc=(name,), input=data[name])
                   for name, msg in mismatches]
        raise ValidationError.from_exception_data(cls.__name__, errors)


class UpdateModel(CreateModel):
    """Base for PATCH bodies: every field optional, unknown fields rejected."""


def date_in_range(value: dt.date | None) -> dt.date | None:
    if value is not None and not (dt.date(1900, 1, 1) <= value <= dt.date(2100, 12, 31)):
        raise ValueError("date must be between 1900-01-01 and 2100-12-31")
    return value


_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _instant_in_range(value: dt.datetime) -> dt.datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 1970-01-01 and 2100-01-01")
    return value


def _iso_text(pattern: re.Pattern[str], what: str) -> Any:
    """A query's date or time is ISO 8601 text: pydantic's lax mode read "0" or "0.5" as a Unix timestamp."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and not (pattern.fullmatch(value) if pattern is _ISO_DATE else pattern.match(value)):
            raise ValueError(f"expected an ISO 8601 {what}")
        if isinstance(value, int | float):
            raise ValueError(f"expected an ISO 8601 {what}, not a number")
        return value

    return BeforeValidator(check)


# A point in time in a query (`from`, `updated_since`, `as_of`): ISO 8601 with an offset (a naive time is a 422).
Timestamp = Annotated[AwareDatetime, _iso_text(_ISO_DATETIME, "date-time"), AfterValidator(_instant_in_range)]
# A day in a query: YYYY-MM-DD only, 1900-01-01..2100-12-31 like the days in bodies.
IsoDate = Annotated[dt.date, _iso_text(_ISO_DATE, "date"), AfterValidator(date_in_range)]


# Ids fit PostgreSQL's INTEGER; anything larger is a 422, never a database error.
MAX_ID = 2_147_483_647


def id_field(**kw: Any) -> Any:
    """A reference to another record in a request body."""
    return Field(ge=1, le=MAX_ID, **kw)
