"""Field helpers shared by every area's models."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, ConfigDict, model_validator
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


class CreateModel(SQLModel):
    """Base for request bodies: unknown fields rejected, no NUL characters in any text."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _reject_nul(data)
        return data


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


# A point in time in a query (`from`, `updated_since`, `as_of`): ISO 8601 with an offset (a naive time is a 422).
Timestamp = Annotated[AwareDatetime, AfterValidator(_instant_in_range)]


# Ids fit PostgreSQL's INTEGER; anything larger is a 422, never a database error.
MAX_ID = 2_147_483_647


def id_field(**kw: Any) -> Any:
    """A reference to another record in a request body."""
    return Field(ge=1, le=MAX_ID, **kw)
