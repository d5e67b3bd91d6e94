"""Field helpers shared by every area's models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ConfigDict
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


class UpdateModel(SQLModel):
    """Base for PATCH bodies: every field optional, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class CreateModel(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


def date_in_range(value: dt.date | None) -> dt.date | None:
    if value is not None and not (dt.date(1900, 1, 1) <= value <= dt.date(2100, 12, 31)):
        raise ValueError("date must be between 1900-01-01 and 2100-12-31")
    return value


# Ids fit PostgreSQL's INTEGER; anything larger is a 422, never a database error.
MAX_ID = 2_147_483_647


def id_field(**kw: Any) -> Any:
    """A reference to another record in a request body."""
    return Field(ge=1, le=MAX_ID, **kw)
