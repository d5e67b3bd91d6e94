"""The change feed: the audit log read in commit order, resumable with an opaque cursor.

Why the id order is the commit order: app.core.audit.record takes the chain head row before it assigns the next
id and keeps it until the transaction ends (SELECT … FOR UPDATE on PostgreSQL; on SQLite the transaction holds the
database's only write lock). Another writer gets the head, and so the next id, only after the holder committed or
rolled back (a rollback gives its ids back, unused). So the committed audit rows are always the ids 1..n with no
hole, and a reader that saw row n has seen every row before it: "the rows after the last id I saw" misses nothing
and repeats nothing (tests/test_changes.py checks it with concurrent writers on PostgreSQL).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.pagination import invalid_cursor
from app.core.scope import Actor, scoped_to
from app.models.audit import AuditChainHead, AuditLog

_CURSOR_PREFIX = "c1:"


@dataclass
class FeedFilters:
    entity: str | None = None
    org_id: int | None = None
    subtree: bool = False


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The last audit id a cursor stands for (0: from the beginning); 422 invalid_cursor if it is not ours."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        value = text.removeprefix(_CURSOR_PREFIX)
        if not value.isdigit() or len(value) > 19:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None


def feed(session: Session, actor: Actor, filters: FeedFilters, after: int, limit: int) -> tuple[list[AuditLog], int]:
    """Up to `limit` changes after audit id `after` about organisations in scope, oldest first, and the cursor
    position to resume from. Three statements whatever the batch size (the org filter's scope check, the head,
    the batch).

    The position moves past rows the filters skip too: it is the last row returned, or, when fewer than `limit`
    rows matched, the chain head read before the batch (every row up to it was committed and visible to the
    batch's query, which ran later)."""
    stmt = scoped_to(session, select(AuditLog), AuditLog.org_id, actor, filters.org_id, subtree=filters.subtree)
    stmt = stmt.where(AuditLog.id > after)
    if filters.entity:
        stmt = stmt.where(AuditLog.entity == filters.entity)
    head = session.scalar(select(AuditChainHead.last_id).where(AuditChainHead.id == 1)) or 0
    rows = list(session.scalars(stmt.order_by(col(AuditLog.id)).limit(limit)))
    if len(rows) == limit:
        return rows, rows[-1].id
    return rows, max([after, head, *(r.id for r in rows)])
