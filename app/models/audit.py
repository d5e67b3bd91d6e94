"""The append-only, hash-chained audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
        Index("ix_audit_log_at", "at"),
    )

    # Assigned from the chain head, never by the database: the chain order is the id order.
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: dt.datetime = Field(sa_type=UTCDateTime)
    user_id: int | None = Field(default=None, index=True)
    username: str | None = Field(default=None, max_length=100)
    role: str | None = Field(default=None, max_length=32)
    actor_org_id: int | None = None
    org_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64, index=True)
    entity: str = Field(max_length=64)
    entity_id: str | None = Field(default=None, max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    request_id: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditChainHead(SQLModel, table=True):
    """A single row: the last id and hash. Locking it serialises appends."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    last_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_hash: str = Field(default="0" * 64, max_length=64)


class AuditLogPublic(SQLModel):
    id: int
    at: dt.datetime
    user_id: int | None
    username: str | None
    role: str | None
    actor_org_id: int | None = Field(description="The acting user's organisation")
    org_id: int | None = Field(description="The organisation the change was about")
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    prev_hash: str
    hash: str


class AuditVerification(SQLModel):
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
