"""Budget lines, allocations down the tree, maker-checker disbursements and reversals, the execution report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from app.core import audit
from app.core.aggregate import child_of
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.money import fmt_yuan, from_fen, to_fen
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope, subtree_org_ids
from app.models.funds.budgets import (
    AllocationCreate,
    AllocationPublic,
    BudgetAllocation,
    BudgetCategory,
    BudgetLine,
    BudgetLineCreate,
    BudgetLinePublic,
    Disbursement,
    DisbursementCreate,
    DisbursementPublic,
    DisbursementReversal,
    DisbursementReversalPublic,
    DisbursementStatus,
    ExecutionReport,
    ExecutionRow,
)
from app.models.organizations import Organization
from app.models.people import Person
from app.services.funds import ledger

LINE_SORTABLE = {
    "id": BudgetLine.id, "fiscal_year": BudgetLine.fiscal_year, "org_id": BudgetLine.org_id,
    "category": BudgetLine.category, "name": BudgetLine.name, "allocated": BudgetLine.allocated_fen,
    "available": BudgetLine.allocated_fen - BudgetLine.committed_fen, "created_at": BudgetLine.created_at,
}
ALLOCATION_SORTABLE = {
    "id": BudgetAllocation.id, "amount": BudgetAllocation.amount_fen, "created_at": BudgetAllocation.created_at,
}
DISBURSEMENT_SORTABLE = {
    "id": Disbursement.id, "amount": Disbursement.amount_fen, "disbursed_on": Disbursement.disbursed_on,
    "status": Disbursement.status, "created_at": Disbursement.created_at,
}


# --- presenting ---------------------------------------------------------------


def line_public(line: BudgetLine, org_name: str | None = None) -> BudgetLinePublic:
    return BudgetLinePublic(
        id=line.id, fiscal_year=line.fiscal_year, org_id=line.org_id, org_name=org_name, category=line.category,
        name=line.name, source=line.source, parent_line_id=line.parent_line_id,
        allocated=from_fen(line.allocated_fen), allocated_down=from_fen(line.allocated_down_fen),
        approved=from_fen(line.approved_fen), paid=from_fen(line.paid_fen), committed=from_fen(line.committed_fen),
        available=from_fen(line.available_fen), version=line.version, created_at=line.created_at,
        updated_at=line.updated_at,
    )


def allocation_public(a: BudgetAllocation) -> AllocationPublic:
    return AllocationPublic(
        id=a.id, fiscal_year=a.fiscal_year, category=a.category, from_line_id=a.from_line_id,
        to_line_id=a.to_line_id, from_org_id=a.from_org_id, to_org_id=a.to_org_id, amount=from_fen(a.amount_fen),
        note=a.note, created_by=a.created_by, created_at=a.created_at,
    )


def disbursement_public(d: Disbursement, reversal: DisbursementReversal | None = None) -> DisbursementPublic:
    rev = None
    if reversal is not None:
        rev = DisbursementReversalPublic(id=reversal.id, amount=from_fen(reversal.amount_fen), reason=reversal.reason,
                                         created_by=reversal.created_by, created_at=reversal.created_at)
    return DisbursementPublic(
        id=d.id, line_id=d.line_id, org_id=d.org_id, payee_kind=d.payee_kind, payee_org_id=d.payee_org_id,
        payee_person_id=d.payee_person_id, payee_name=d.payee_name, purpose=d.purpose, disbursed_on=d.disbursed_on,
        amount=from_fen(d.amount_fen), status=d.status, created_by=d.created_by, approved_by=d.approved_by,
        approved_at=d.approved_at, paid_by=d.paid_by, paid_at=d.paid_at, cancelled_by=d.cancelled_by,
        cancelled_at=d.cancelled_at, cancel_reason=d.cancel_reason, reversal=rev, version=d.version,
        created_at=d.created_at,
    )


def lines_public(session: Session, lines: Sequence[BudgetLine]) -> list[BudgetLinePublic]:
    names = org_names(session, {i.org_id for i in lines})
    return [line_public(i, names.get(i.org_id)) for i in lines]


def disbursements_public(session: Session, items: Sequence[Disbursement]) -> list[DisbursementPublic]:
    reversals = reversals_for(session, [d.id for d in items if d.id is not None])
    return [disbursement_public(d, reversals.get(d.id)) for d in items]


def org_names(session: Session, org_ids: set[int]) -> dict[int, str]:
    if not org_ids:
        return {}
    rows = session.execute(select(Organization.id, Organization.name).where(col(Organization.id).in_(org_ids)))
    return {r.id: r.name for r in rows}


# --- budget lines -------------------------------------------------------------


def get_line(session: Session, actor: Actor, line_id: int) -> BudgetLine:
    """The line, or 404 when it is absent or its owner is outside the actor's scope."""
    return get_in_scope(session, actor, BudgetLine, line_id, "Budget line")[0]


@dataclass
class LineFilters:
    fiscal_year: int | None = None
    category: str | None = None
    org_id: int | None = None
    subtree: bool = False
    parent_line_id: int | None = None


def list_lines(session: Session, actor: Actor, f: LineFilters, params: PageParams) -> tuple[list[BudgetLine], int]:
    stmt = select(BudgetLine).where(col(BudgetLine.org_id).in_(subtree_org_ids(actor.org_path)))
    if f.fiscal_year is not None:
        stmt = stmt.where(BudgetLine.fiscal_year == f.fiscal_year)
    if f.category:
        stmt = stmt.where(BudgetLine.category == f.category)
    if f.parent_line_id is not None:
        stmt = stmt.where(BudgetLine.parent_line_id == f.parent_line_id)
    if f.org_id is not None:
        path = require_org_in_scope(session, actor, f.org_id)
        stmt = (stmt.where(col(BudgetLine.org_id).in_(subtree_org_ids(path))) if f.subtree
                else stmt.where(BudgetLine.org_id == f.org_id))
    return fetch_page(session, stmt, params, allowed=LINE_SORTABLE,
                      default=[col(BudgetLine.fiscal_year).desc(), BudgetLine.org_id, BudgetLine.category],
                      tiebreak=BudgetLine.id)


def _check_dues_line_free(session: Session, year: int, org_id: int) -> None:
    other = session.scalar(select(BudgetLine.id).where(
        BudgetLine.fiscal_year == year, BudgetLine.org_id == org_id, BudgetLine.category == BudgetCategory.party_dues))
    if other is not None:
        raise conflict("duplicate_dues_line", f"Organisation {org_id} already has party_dues line {other} for "
                       f"{year}: dues accrue to one line.")


def create_line(session: Session, actor: Actor, data: BudgetLineCreate) -> BudgetLine:
    """A line with money from a source outside the ledger (city finance, a grant)."""
    require_org_in_scope(session, actor, data.org_id)
    if data.category == BudgetCategory.party_dues:
        _check_dues_line_free(session, data.fiscal_year, data.org_id)
    fen = to_fen(data.allocated)
    line = BudgetLine(fiscal_year=data.fiscal_year, org_id=data.org_id, category=data.category, name=data.name,
                      source=data.source, allocated_fen=fen, created_by=actor.user_id)
    session.add(line)
    session.flush()
    audit.record(session, actor=actor, action="budget_line.create", entity="budget_line", entity_id=line.id,
                 org_id=line.org_id, after={**audit.snapshot(line), **ledger.amounts(line)})
    return line


# --- allocations ----------------------------------------------------------------


def _target_line(session: Session, src: BudgetLine, data: AllocationCreate) -> BudgetLine | None:
    """The existing line the allocation goes to, or None when a new one is to be created."""
    if data.to_line_id is not None:
        target = session.get(BudgetLine, data.to_line_id)
        if target is None or target.org_id != data.to_org_id:
            raise invalid(["body", "to_line_id"], "the target line must belong to to_org_id")
        if (target.fiscal_year, target.category) != (src.fiscal_year, src.category):
            raise invalid(["body", "to_line_id"], "the target line must have the same year and category")
        return target
    existing = list(session.scalars(select(BudgetLine).where(
        BudgetLine.fiscal_year == src.fiscal_year, BudgetLine.org_id == data.to_org_id,
        BudgetLine.category == src.category).order_by(BudgetLine.id).limit(2)))
    if len(existing) > 1:
        raise invalid(["body", "to_line_id"],
                      "the target organisation has several lines of this year and category: name one")
    return existing[0] if existing else None


def allocate(session: Session, actor: Actor, data: AllocationCreate) -> BudgetAllocation:
    """Pass money from a line to a line of the same year and category owned below the line's owner."""
    src = get_line(session, actor, data.from_line_id)
    src_path = session.scalar(select(Organization.path).where(Organization.id == src.org_id))
    to_path = require_org_in_scope(session, actor, data.to_org_id)
    assert src_path is not None
    if not (to_path.startswith(src_path) and to_path != src_path):
        raise invalid(["body", "to_org_id"], "money is allocated to an organisation below the line's owner")
    amount = to_fen(data.amount)
    target = _target_line(session, src, data)
    created = target is None
    if target is None:
        target = BudgetLine(fiscal_year=src.fiscal_year, org_id=data.to_org_id, category=src.category,
                            name=data.name or src.name, source=f"allocation from budget line {src.id}",
                            parent_line_id=src.id, created_by=actor.user_id)
        session.add(target)
        session.flush()
    assert target.id is not None and src.id is not None
    src_before, src_after = ledger.take(session, src.id, amount, into="allocated_down", what="Allocation")
    tgt_before, tgt_after = ledger.receive(session, target.id, amount)
    allocation = BudgetAllocation(
        fiscal_year=src.fiscal_year, category=src.category, from_line_id=src.id, to_line_id=target.id,
        from_org_id=src.org_id, to_org_id=target.org_id, amount_fen=amount, note=data.note, created_by=actor.user_id)
    session.add(allocation)
    session.flush()
    audit.record(session, actor=actor, action="allocation.create", entity="budget_allocation",
                 entity_id=allocation.id, org_id=src.org_id, after=audit.snapshot(allocation))
    audit.record(session, actor=actor, action="budget_line.allocate_down", entity="budget_line", entity_id=src.id,
                 org_id=src.org_id, before=src_before, after=src_after)
    if created:
        session.refresh(target)
        audit.record(session, actor=actor, action="budget_line.create", entity="budget_line", entity_id=target.id,
                     org_id=target.org_id, after={**audit.snapshot(target), **tgt_after})
    else:
        audit.record(session, actor=actor, action="budget_line.receive", entity="budget_line", entity_id=target.id,
                     org_id=target.org_id, before=tgt_before, after=tgt_after)
    return allocation


def list_allocations(
    session: Session, actor: Actor, *, fiscal_year: int | None, line_id: int | None, org_id: int | None,
    subtree: bool, params: PageParams,
) -> tuple[list[BudgetAllocation], int]:
    """Allocations from or to an organisation in scope."""
    mine = subtree_org_ids(actor.org_path)
    stmt = select(BudgetAllocation).where(or_(col(BudgetAllocation.from_org_id).in_(mine),
                                              col(BudgetAllocation.to_org_id).in_(mine)))
    if fiscal_year is not None:
        stmt = stmt.where(BudgetAllocation.fiscal_year == fiscal_year)
    if line_id is not None:
        stmt = stmt.where(or_(BudgetAllocation.from_line_id == line_id, BudgetAllocation.to_line_id == line_id))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        orgs: Any = subtree_org_ids(path) if subtree else [org_id]
        stmt = stmt.where(or_(col(BudgetAllocation.from_org_id).in_(orgs), col(BudgetAllocation.to_org_id).in_(orgs)))
    return fetch_page(session, stmt, params, allowed=ALLOCATION_SORTABLE, default=[col(BudgetAllocation.id).desc()],
                      tiebreak=BudgetAllocation.id)


# --- disbursements ----------------------------------------------------------------


def get_disbursement(session: Session, actor: Actor, disbursement_id: int) -> Disbursement:
    return get_in_scope(session, actor, Disbursement, disbursement_id, "Disbursement")[0]


def reversal_of(session: Session, disbursement_id: int) -> DisbursementReversal | None:
    return session.scalar(select(DisbursementReversal).where(DisbursementReversal.disbursement_id == disbursement_id))


def create_disbursement(session: Session, actor: Actor, data: DisbursementCreate) -> Disbursement:
    """A request to pay from a line; it waits for another user's approval."""
    line = get_line(session, actor, data.line_id)
    payee_name = data.payee_name
    if data.payee_org_id is not None:
        require_org_in_scope(session, actor, data.payee_org_id)
        payee_name = session.scalar(select(Organization.name).where(Organization.id == data.payee_org_id))
    if data.payee_person_id is not None:
        row = session.execute(select(Person.name, Organization.path).join(Organization, Organization.id ==
                              Person.org_id).where(Person.id == data.payee_person_id)).first()
        if row is None or not actor.covers(row.path):
            raise not_found("Person", data.payee_person_id)
        payee_name = row.name
    assert payee_name is not None
    d = Disbursement(line_id=line.id, org_id=line.org_id, payee_kind=data.payee_kind, payee_org_id=data.payee_org_id,
                     payee_person_id=data.payee_person_id, payee_name=payee_name, purpose=data.purpose,
                     disbursed_on=data.disbursed_on, amount_fen=to_fen(data.amount), created_by=actor.user_id)
    session.add(d)
    session.flush()
    audit.record(session, actor=actor, action="disbursement.create", entity="disbursement", entity_id=d.id,
                 org_id=d.org_id, after={**audit.snapshot(d), "amount": fmt_yuan(d.amount_fen)})
    return d


def _transition(session: Session, d: Disbursement, from_: tuple[str, ...], values: dict[str, Any]) -> None:
    """Move the status in one conditional UPDATE: two concurrent requests cannot both move it."""
    result = session.execute(
        update(Disbursement).where(Disbursement.id == d.id, col(Disbursement.status).in_(from_))
        .values(**values, version=Disbursement.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(d)
        raise conflict("invalid_status", f"Disbursement {d.id} is {d.status}; this needs it "
                       f"{' or '.join(from_)}.")
    session.refresh(d)


def approve_disbursement(session: Session, actor: Actor, d: Disbursement) -> Disbursement:
    """Maker-checker: a user other than its maker commits the amount on the line (409 when over budget)."""
    if d.created_by is not None and d.created_by == actor.user_id:
        raise ProblemError(403, "maker_checker", "You created this disbursement; another user must approve it.")
    _transition(session, d, (DisbursementStatus.pending,),
                {"status": DisbursementStatus.approved, "approved_by": actor.user_id, "approved_at": utcnow()})
    before, after = ledger.take(session, d.line_id, d.amount_fen, into="approved", what="Approving a disbursement")
    audit.record(session, actor=actor, action="disbursement.approve", entity="disbursement", entity_id=d.id,
                 org_id=d.org_id, before={"status": "pending"},
                 after={"status": d.status, "amount": fmt_yuan(d.amount_fen)})
    audit.record(session, actor=actor, action="budget_line.approve", entity="budget_line", entity_id=d.line_id,
                 org_id=d.org_id, before=before, after=after)
    return d


def pay_disbursement(session: Session, actor: Actor, d: Disbursement) -> Disbursement:
    """Record that approved money went out."""
    _transition(session, d, (DisbursementStatus.approved,),
                {"status": DisbursementStatus.paid, "paid_by": actor.user_id, "paid_at": utcnow()})
    before, after = ledger.pay(session, d.line_id, d.amount_fen)
    audit.record(session, actor=actor, action="disbursement.pay", entity="disbursement", entity_id=d.id,
                 org_id=d.org_id, before={"status": "approved"},
                 after={"status": d.status, "amount": fmt_yuan(d.amount_fen)})
    audit.record(session, actor=actor, action="budget_line.pay", entity="budget_line", entity_id=d.line_id,
                 org_id=d.org_id, before=before, after=after)
    return d


def cancel_disbursement(session: Session, actor: Actor, d: Disbursement, reason: str, *, may_approve: bool
                        ) -> Disbursement:
    """Cancel before payment: its maker, or a user who may approve it. An approved amount goes back to the line."""
    if d.created_by != actor.user_id and not may_approve:
        raise ProblemError(403, "not_maker", "Only the user who created the request, or an approver, may cancel it.")
    was = d.status
    _transition(session, d, (DisbursementStatus.pending, DisbursementStatus.approved),
                {"status": DisbursementStatus.cancelled, "cancelled_by": actor.user_id, "cancelled_at": utcnow(),
                 "cancel_reason": reason})
    line_change = None
    if was == DisbursementStatus.approved:
        line_change = ledger.release(session, d.line_id, d.amount_fen, from_="approved")
    audit.record(session, actor=actor, action="disbursement.cancel", entity="disbursement", entity_id=d.id,
                 org_id=d.org_id, before={"status": was},
                 after={"status": d.status, "reason": reason, "amount": fmt_yuan(d.amount_fen)})
    if line_change is not None:
        audit.record(session, actor=actor, action="budget_line.release", entity="budget_line", entity_id=d.line_id,
                     org_id=d.org_id, before=line_change[0], after=line_change[1])
    return d


def reverse_disbursement(session: Session, actor: Actor, d: Disbursement, reason: str
                         ) -> tuple[Disbursement, DisbursementReversal]:
    """A paid disbursement is never deleted: a reversal entry gives its money back to the line."""
    _transition(session, d, (DisbursementStatus.paid,), {"status": DisbursementStatus.reversed})
    reversal = DisbursementReversal(disbursement_id=d.id, amount_fen=d.amount_fen, reason=reason,
                                    created_by=actor.user_id)
    session.add(reversal)
    session.flush()
    before, after = ledger.release(session, d.line_id, d.amount_fen, from_="paid")
    audit.record(session, actor=actor, action="disbursement.reverse", entity="disbursement", entity_id=d.id,
                 org_id=d.org_id, before={"status": "paid"},
                 after={"status": d.status, "reversal_id": reversal.id, "reason": reason,
                        "amount": fmt_yuan(d.amount_fen)})
    audit.record(session, actor=actor, action="budget_line.reverse", entity="budget_line", entity_id=d.line_id,
                 org_id=d.org_id, before=before, after=after)
    return d, reversal


@dataclass
class DisbursementFilters:
    status: str | None = None
    line_id: int | None = None
    fiscal_year: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_disbursements(session: Session, actor: Actor, f: DisbursementFilters, params: PageParams
                       ) -> tuple[list[Disbursement], int]:
    stmt = select(Disbursement).where(col(Disbursement.org_id).in_(subtree_org_ids(actor.org_path)))
    if f.status:
        stmt = stmt.where(Disbursement.status == f.status)
    if f.line_id is not None:
        stmt = stmt.where(Disbursement.line_id == f.line_id)
    if f.fiscal_year is not None:
        stmt = stmt.where(col(Disbursement.line_id).in_(select(BudgetLine.id).where(BudgetLine.fiscal_year ==
                                                                             f.fiscal_year)))
    if f.org_id is not None:
        path = require_org_in_scope(session, actor, f.org_id)
        stmt = (stmt.where(col(Disbursement.org_id).in_(subtree_org_ids(path))) if f.subtree
                else stmt.where(Disbursement.org_id == f.org_id))
    return fetch_page(session, stmt, params, allowed=DISBURSEMENT_SORTABLE, default=[col(Disbursement.id).desc()],
                      tiebreak=Disbursement.id)


def reversals_for(session: Session, ids: list[int]) -> dict[int, DisbursementReversal]:
    if not ids:
        return {}
    rows = session.scalars(select(DisbursementReversal).where(col(DisbursementReversal.disbursement_id).in_(ids)))
    return {r.disbursement_id: r for r in rows}


# --- the execution report -----------------------------------------------------------


_FIELDS = ("allocated_fen", "allocated_down_fen", "approved_fen", "paid_fen", "committed_fen")


def _row(row_type: str, sums: dict[str, int], **extra: Any) -> ExecutionRow:
    net = sums["allocated_fen"] - sums["allocated_down_fen"]
    rate = None
    if net > 0:
        rate = str((Decimal(sums["paid_fen"]) / Decimal(net)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return ExecutionRow(
        row_type=row_type, allocated=from_fen(sums["allocated_fen"]),
        allocated_down=from_fen(sums["allocated_down_fen"]), net=from_fen(net), approved=from_fen(sums["approved_fen"]),
        paid=from_fen(sums["paid_fen"]), committed=from_fen(sums["committed_fen"]),
        available=from_fen(sums["allocated_fen"] - sums["committed_fen"]), execution_rate=rate, **extra,
    )


@cached_report()
def execution_report(
    session: Session, actor: Actor, *, fiscal_year: int, org_id: int | None, subtree: bool, category: str | None
) -> ExecutionReport:
    """The report of one organisation (org_id, default the caller's own): its own lines one by one; per
    organisation its own row plus, over the subtree (`subtree`, always without org_id), one row per direct
    child totalling that child's whole subtree; per category and the total over the same scope. Summed in the
    database: four statements and a bounded answer whatever the number of lines and organisations below."""
    root_id = org_id if org_id is not None else actor.org_id
    if root_id is None:
        root_id = session.scalar(select(Organization.id).where(col(Organization.parent_id).is_(None)).limit(1))
        if root_id is None:
            return ExecutionReport(fiscal_year=fiscal_year, lines=[], by_organization=[], by_category=[],
                                   total=_row("total", dict.fromkeys(_FIELDS, 0), lines=0))
    path = require_org_in_scope(session, actor, root_id)
    if org_id is None:
        subtree = True
    conditions: list[Any] = [BudgetLine.fiscal_year == fiscal_year]
    if category:
        conditions.append(BudgetLine.category == category)
    counted = in_subtree(Organization.path, path) if subtree else Organization.id == root_id
    sums = [func.coalesce(func.sum(getattr(BudgetLine, f)), 0).label(f) for f in _FIELDS]

    lines: list[ExecutionRow] = []
    for line, name in session.execute(
        select(BudgetLine, Organization.name).join(Organization, Organization.id == BudgetLine.org_id)
        .where(BudgetLine.org_id == root_id, *conditions).order_by(BudgetLine.category, BudgetLine.id)
    ):
        lines.append(_row("line", {f: getattr(line, f) for f in _FIELDS}, line_id=line.id, org_id=line.org_id,
                          org_name=name, category=line.category, name=line.name))

    key = child_of(Organization.path, path, root_id) if subtree else Organization.id
    grouped = (select(key.label("row_id"), func.count().label("n"), *sums).select_from(BudgetLine)
               .join(Organization, Organization.id == BudgetLine.org_id).where(counted, *conditions)
               .group_by(key).subquery())
    row_org = aliased(Organization, name="row_org")
    by_organization = [
        _row("organization", {f: int(r._mapping[f]) for f in _FIELDS}, org_id=r.row_id, org_name=r.name,
             lines=r.n)
        for r in session.execute(select(grouped, row_org.name).join(row_org, row_org.id == grouped.c.row_id)
                                 .order_by(row_org.path))
    ]
    by_category = []
    total = dict.fromkeys(_FIELDS, 0)
    count = 0
    for r in session.execute(
        select(BudgetLine.category, func.count().label("n"), *sums).select_from(BudgetLine)
        .join(Organization, Organization.id == BudgetLine.org_id).where(counted, *conditions)
        .group_by(BudgetLine.category).order_by(BudgetLine.category)
    ):
        amounts = {f: int(r._mapping[f]) for f in _FIELDS}
        by_category.append(_row("category", amounts, category=r.category, lines=r.n))
        for f in _FIELDS:
            total[f] += amounts[f]
        count += r.n
    return ExecutionReport(fiscal_year=fiscal_year, lines=lines, by_organization=by_organization,
                           by_category=by_category, total=_row("total", total, lines=count))


# --- party dues accrual (used by the dues service) -----------------------------------


def dues_line(session: Session, actor: Actor, *, org_id: int, year: int) -> BudgetLine:
    """The organisation's party_dues line of the year, created empty when it has none."""
    line = session.scalar(select(BudgetLine).where(
        BudgetLine.fiscal_year == year, BudgetLine.org_id == org_id, BudgetLine.category == BudgetCategory.party_dues))
    if line is not None:
        return line
    line = BudgetLine(fiscal_year=year, org_id=org_id, category=BudgetCategory.party_dues, name=f"党费 {year}",
                      source="party dues collected", created_by=actor.user_id)
    session.add(line)
    session.flush()
    audit.record(session, actor=actor, action="budget_line.create", entity="budget_line", entity_id=line.id,
                 org_id=org_id, after={**audit.snapshot(line), **ledger.amounts(line)})
    return line


def line_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(BudgetLine)) or 0)
