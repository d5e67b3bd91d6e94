"""The one audit writer: every change appends a hash-chained row in the transaction of the change."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.core.context import request_id_var
from app.core.db import READ_ONLY, session_scope, utcnow
from app.core.scope import Actor
from app.models.audit import AuditChainHead, AuditLog

GENESIS_HASH = "0" * 64


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


def snapshot(obj: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The columns of a row as JSON-safe values (personal data columns must be excluded by the caller)."""
    skip = set(exclude)
    return {
        col.key: jsonable(getattr(obj, col.key))
        for col in obj.__table__.columns
        if col.key not in skip
    }


def row_digest(prev_hash: str, fields: dict[str, Any]) -> str:
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def hashed_fields(row: AuditLog | AppendedRow) -> dict[str, Any]:
    """The fields a row's hash covers."""
    return {
        "id": row.id,
        "at": jsonable(row.at),
        "user_id": row.user_id,
        "username": row.username,
        "role": row.role,
        "actor_org_id": row.actor_org_id,
        "org_id": row.org_id,
        "action": row.action,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "before": row.before,
        "after": row.after,
        "request_id": row.request_id,
    }


# The chain's head, locked until the writer's commit, and the two statements of an append: built once (every
# audited write runs them). Plain table statements, not a flush of ORM objects: the unit of work's bookkeeping for
# the new row and the head was a tenth of a create's instructions (issue 8). The head is never an ORM object, so
# no session holds a stale copy of it across transactions.
_HEAD = AuditChainHead.__table__  # type: ignore[attr-defined]
_LOG = AuditLog.__table__  # type: ignore[attr-defined]
_LOCK_HEAD = select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update()
_APPEND = insert(_LOG)
_MOVE_HEAD = (update(_HEAD).where(_HEAD.c.id == 1)
              .values(last_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash")))
# PostgreSQL: both in one statement, the head's UPDATE a data-modifying WITH that runs once whatever the INSERT reads
# (a round trip less for every audited write; SQLite has no UPDATE in a WITH). The row's values are named apart
# (`row_<column>`) so none of them is taken for a column of the head's UPDATE.
_APPEND_MOVING_HEAD = (
    insert(_LOG).values({c: bindparam(f"row_{c.key}", type_=c.type) for c in _LOG.columns})
    .add_cte(_MOVE_HEAD.cte("moved_head"))
)


class AppendedRow(NamedTuple):
    """An audit row as `record` wrote it: the columns of AuditLog (a test holds the two to the same fields). A
    tuple, not an AuditLog: building the ORM object cost 5 % of a create's instructions, and it was never added to
    a session (issue 8)."""

    id: int
    at: dt.datetime
    user_id: int | None
    username: str | None
    role: str | None
    actor_org_id: int | None
    org_id: int | None
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    prev_hash: str
    hash: str


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object | None,
    org_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AppendedRow:
    """Append one audit row. Call after the change is flushed, in the same session.

    In a read-only snapshot (a streamed export, app.core.db.read_snapshot) the row commits in a short
    transaction of its own before this returns, so it is written before the data it records is sent."""
    if session.info.get(READ_ONLY):
        with session_scope() as own:
            return record(own, actor=actor, action=action, entity=entity, entity_id=entity_id, org_id=org_id,
                          before=before, after=after)
    if session.new or session.dirty or session.deleted:
        session.flush()  # the change first, as the rule above asks (callers flush already; this is the net)
    head = session.execute(_LOCK_HEAD).first()
    if head is None:
        session.execute(insert(_HEAD).values(id=1, last_id=0, last_hash=GENESIS_HASH))
        last_id, last_hash = 0, GENESIS_HASH
    else:
        last_id, last_hash = head
    row = AppendedRow(
        id=last_id + 1,
        at=utcnow(),
        user_id=actor.user_id,
        username=actor.username,
        role=actor.role,
        actor_org_id=actor.org_id,
        org_id=org_id,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        request_id=request_id_var.get(),
        prev_hash=last_hash,
        hash="",
    )
    row = row._replace(hash=row_digest(row.prev_hash, hashed_fields(row)))
    moved = {"new_last_id": row.id, "new_last_hash": row.hash}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_APPEND_MOVING_HEAD, {f"row_{key}": value for key, value in row._asdict().items()} | moved)
    else:
        session.execute(_APPEND, row._asdict())
        session.execute(_MOVE_HEAD, moved)
    return row


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that differ, for compact update rows."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
