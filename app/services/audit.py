"""Reading the audit log and proving its hash chain is intact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.audit import GENESIS_HASH, hashed_fields, row_digest
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, require_org_in_scope, scoped, subtree_org_ids
from app.models.audit import AuditChainHead, AuditLog, AuditVerification

SORTABLE = {"id": AuditLog.id, "at": AuditLog.at}
VERIFY_BATCH = 500


@dataclass
class AuditFilters:
    entity: str | None = None
    entity_id: str | None = None
    user_id: int | None = None
    action: str | None = None
    at_from: dt.datetime | None = None
    at_to: dt.datetime | None = None
    org_id: int | None = None
    subtree: bool = False


def list_page(
    session: Session, actor: Actor, filters: AuditFilters, params: PageParams
) -> tuple[list[AuditLog], int]:
    """Audit rows about organisations in scope (rows without an organisation only for the city level)."""
    stmt = scoped(select(AuditLog), AuditLog.org_id, actor)
    if filters.entity:
        stmt = stmt.where(AuditLog.entity == filters.entity)
    if filters.entity_id:
        stmt = stmt.where(AuditLog.entity_id == filters.entity_id)
    if filters.user_id is not None:
        stmt = stmt.where(AuditLog.user_id == filters.user_id)
    if filters.action:
        stmt = stmt.where(AuditLog.action == filters.action)
    if filters.at_from is not None:
        stmt = stmt.where(AuditLog.at >= filters.at_from)
    if filters.at_to is not None:
        stmt = stmt.where(AuditLog.at < filters.at_to)
    if filters.org_id is not None:
        path = require_org_in_scope(session, actor, filters.org_id)
        if filters.subtree:
            stmt = stmt.where(col(AuditLog.org_id).in_(subtree_org_ids(path)))
        else:
            stmt = stmt.where(AuditLog.org_id == filters.org_id)
    return fetch_page(session, stmt, params, allowed=SORTABLE, default=[col(AuditLog.id).desc()], tiebreak=AuditLog.id)


def verify(session: Session, *, batch_size: int = VERIFY_BATCH) -> AuditVerification:
    """Recompute the chain from the first row, a batch at a time (memory stays bounded).

    The chain head is read first: rows appended while we check are past it and are left for the
    next check. Appends are serialised, so the committed rows always form an unbroken prefix.
    """
    head = session.execute(select(AuditChainHead.last_id, AuditChainHead.last_hash)
                           .where(AuditChainHead.id == 1)).first()
    last_id, last_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
    expected_id, prev_hash, checked = 1, GENESIS_HASH, 0
    while True:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.id >= expected_id, AuditLog.id <= last_id)
            .order_by(AuditLog.id).limit(batch_size)
            .execution_options(populate_existing=True)  # the stored values, never a cached object
        ).all()
        for row in rows:
            if row.id != expected_id:
                return _broken(checked, expected_id, f"row {expected_id} is missing")
            if row.prev_hash != prev_hash:
                return _broken(checked, row.id, "prev_hash does not match the previous row's hash")
            if row_digest(row.prev_hash, hashed_fields(row)) != row.hash:
                return _broken(checked, row.id, "the row's content does not match its hash")
            prev_hash, expected_id, checked = row.hash, row.id + 1, checked + 1
            session.expunge(row)  # keep the identity map from growing with the log
        if len(rows) < batch_size:
            break
    if checked != last_id:
        return _broken(checked, expected_id, f"row {expected_id} is missing (the chain head is at {last_id})")
    if prev_hash != last_hash:
        return _broken(checked, last_id or None, "the chain head's hash does not match the last row")
    return AuditVerification(ok=True, checked=checked)


def _broken(checked: int, row_id: int | None, reason: str) -> AuditVerification:
    return AuditVerification(ok=False, checked=checked, first_broken_id=row_id, reason=reason)
