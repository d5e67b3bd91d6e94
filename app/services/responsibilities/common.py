"""Helpers the three lists share: per-organisation summaries, office holders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.aggregate import child_of
from app.core.scope import Actor, in_subtree, require_org_in_scope
from app.models.organizations import Organization, OrgStatus
from app.models.people import Position


def percent(part: int | float, whole: int | float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


@dataclass
class SummaryRow:
    org: Organization
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass
class SummaryScope:
    """The rows of a per-organisation summary and the SQL that puts each counted record in its row.

    Without `subtree`: one row, the organisation's own records. With `subtree`: a row per organisation
    below it (itself included). With `rollup`: a row per direct child counting its whole subtree, plus
    the organisation's own records in a row of its own. Records are grouped by `key` in the database
    (`join` adds the organisation and the scope condition), so Python only sees one row per summary row."""

    root_path: str
    rows: dict[int, SummaryRow]
    key: Any  # SQL: the id of the row a record of the joined Organization goes to
    counted: Any  # SQL condition on the joined Organization

    def join(self, stmt: Select[Any], org_id_column: Any) -> Select[Any]:
        return stmt.join(Organization, Organization.id == org_id_column).where(self.counted)

    def add(self, row_id: int, key: str, amount: int | float = 1) -> None:
        row = self.rows.get(row_id)
        if row is not None:
            row.counts[key] = row.counts.get(key, 0) + amount

    def ordered(self, *, keep: Any = None) -> list[SummaryRow]:
        """Rows in tree order; organisations that are dissolved and count nothing are left out."""
        out = []
        for row in sorted(self.rows.values(), key=lambda r: (r.org.path.count("/"), r.org.code or "", r.org.id)):
            if row.org.status == OrgStatus.active or any(row.counts.values()) or (keep and keep(row)):
                out.append(row)
        return out


def summary_scope(session: Session, actor: Actor, org_id: int | None, *, subtree: bool, rollup: bool) -> SummaryScope:
    """Two statements: the root, then the organisations that are rows (all of the subtree only without rollup)."""
    root_id = org_id if org_id is not None else actor.org_id
    if root_id is None:
        root = session.scalar(select(Organization).where(col(Organization.parent_id).is_(None)).limit(1))
        if root is None:
            return SummaryScope("/", {}, Organization.id, false())
        root_id = root.id
    assert root_id is not None
    root_path = require_org_in_scope(session, actor, root_id)
    if not subtree and not rollup:
        root = session.get(Organization, root_id)
        assert root is not None
        return SummaryScope(root_path, {root_id: SummaryRow(root)}, Organization.id, Organization.id == root_id)
    counted = in_subtree(Organization.path, root_path)
    if not rollup:
        orgs = session.scalars(select(Organization).where(counted))
        return SummaryScope(root_path, {o.id: SummaryRow(o) for o in orgs if o.id}, Organization.id, counted)
    orgs = session.scalars(select(Organization).where(or_(Organization.id == root_id,
                                                          Organization.parent_id == root_id)))
    return SummaryScope(root_path, {o.id: SummaryRow(o) for o in orgs if o.id},
                        child_of(Organization.path, root_path, root_id), counted)


def overdue_clause(deadline: Any, open_clause: Any, today: dt.date, overdue: bool) -> Any:
    """Overdue: the deadline has passed and the record is still open. Computed in the query, never stored."""
    is_overdue = and_(deadline.is_not(None), deadline < today, open_clause)
    return is_overdue if overdue else or_(deadline.is_(None), deadline >= today, ~open_clause)


def holds_office_during(year: int) -> Any:
    """A position held at some time during `year`."""
    return and_(
        Position.started_on <= dt.date(year, 12, 31),
        or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= dt.date(year, 1, 1)),
    )
