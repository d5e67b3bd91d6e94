"""Party dues (党费): the monthly due from the national rates (data), payments accruing to the organisation's
party_dues budget line, statements, arrears and the branch's recorded decisions.

Rules:
- A profile, effective from a month, fixes the member's category and base; its monthly due is computed then from
  the rates valid in that month and stored with its basis (a new profile records a change).
- Employed and retired members pay ONE rate on the WHOLE base, the rate of the bracket the base falls in (brackets
  are inclusive upper bounds: 3,000.00 → 0.5 %, 3,000.01 → 1 %); not a progressive tax. Rounded half up to the fen.
- Farmers pay a fixed amount the branch chooses within the rate's range (0.20–1.00); students, the unemployed and
  members on relief pay the fixed 0.20.
- A hardship reduction or exemption applies only once approved by the level above, with the approving document's
  number; its maker cannot approve it.
- Months are due from the later of the first profile and the month the member was admitted (probationary members
  pay from admission), until the member leaves the roll.
- A payment covers consecutive months, each at most once (unique in the database), and may add a voluntary extra;
  a single extra at or above the remit-to-centre threshold (1,000 yuan, data) is flagged 上缴中央.
- Arrears flag members with a run of consecutive unpaid months at or above the threshold (six, data): the system
  flags, the branch decides, and the decision is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, cast, extract, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.aggregate import joined_text
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid
from app.core.money import fmt_yuan, from_fen, round_fen, to_fen
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope, subtree_org_ids
from app.models.funds.common import month_str, months_between
from app.models.funds.dues import (
    ArrearsDecisionCreate,
    ArrearsDecisionPublic,
    ArrearsRow,
    DuesArrearsDecision,
    DuesCategory,
    DuesPayment,
    DuesPaymentCreate,
    DuesPaymentMonth,
    DuesPaymentPublic,
    DuesProfile,
    DuesProfileCreate,
    DuesProfilePublic,
    DuesRate,
    DuesRatePublic,
    DuesReduction,
    DuesReductionCreate,
    DuesReductionPublic,
    DuesStatement,
    DuesThreshold,
    DuesThresholdCode,
    ReductionDecision,
    ReductionStatus,
    StatementMonth,
)
from app.models.organizations import Organization
from app.models.people import MemberStatus, Person, PersonStatus
from app.services.funds import ledger
from app.services.funds.budgets import dues_line
from app.services.responsibilities import clock  # the business date (Beijing), which tests patch

MAX_MONTHS_PER_PAYMENT = 36
PROFILE_SORTABLE = {"id": DuesProfile.id, "effective_from": DuesProfile.effective_from}
PAYMENT_SORTABLE = {"id": DuesPayment.id, "paid_on": DuesPayment.paid_on, "amount": DuesPayment.amount_fen,
                    "month_from": DuesPayment.month_from}
REDUCTION_SORTABLE = {"id": DuesReduction.id, "from_month": DuesReduction.from_month, "status": DuesReduction.status}
DECISION_SORTABLE = {"id": DuesArrearsDecision.id, "decided_on": DuesArrearsDecision.decided_on}


# --- rates and thresholds --------------------------------------------------------------


def _valid_on(model: Any, day: dt.date) -> Any:
    return (model.valid_from <= day) & or_(model.valid_to.is_(None), model.valid_to >= day)


def rate_public(r: DuesRate) -> DuesRatePublic:
    return DuesRatePublic(
        id=r.id, category=r.category, valid_from=r.valid_from, valid_to=r.valid_to,
        upper=from_fen(r.upper_fen) if r.upper_fen is not None else None,
        rate_percent=str((Decimal(r.rate_bp) / 100).quantize(Decimal("0.01"))) if r.rate_bp is not None else None,
        fixed_min=from_fen(r.fixed_min_fen) if r.fixed_min_fen is not None else None,
        fixed_max=from_fen(r.fixed_max_fen) if r.fixed_max_fen is not None else None,
    )


def list_rates(session: Session, *, on: dt.date | None, category: str | None) -> list[DuesRate]:
    stmt = select(DuesRate).order_by(DuesRate.category, DuesRate.valid_from,
                                     col(DuesRate.upper_fen).is_(None), DuesRate.upper_fen, DuesRate.id)
    if on is not None:
        stmt = stmt.where(_valid_on(DuesRate, on))
    if category:
        stmt = stmt.where(DuesRate.category == category)
    return list(session.scalars(stmt))


def threshold(session: Session, code: str, on: dt.date) -> int:
    value = session.scalar(select(DuesThreshold.value).where(DuesThreshold.code == code, _valid_on(DuesThreshold, on))
                           .order_by(col(DuesThreshold.valid_from).desc()).limit(1))
    if value is None:
        raise ProblemError(422, "no_rate", f"No dues threshold '{code}' is valid on {on.isoformat()}.")
    return int(value)


def monthly_due(session: Session, category: str, base_fen: int | None, fixed_fen: int | None, month: dt.date
                ) -> tuple[int, str]:
    """The monthly due and its basis from the rates valid in `month`."""
    rates = list_rates(session, on=month, category=category)
    if not rates:
        raise ProblemError(422, "no_rate", f"No party dues rate for {category} is valid in {month_str(month)}.")
    percent = [r for r in rates if r.rate_bp is not None]
    if percent:
        if base_fen is None:
            raise invalid(["body", "base"], f"a {category} member's due is a rate of the monthly base: send base")
        chosen = next(r for r in sorted(percent, key=lambda r: (r.upper_fen is None, r.upper_fen or 0))
                      if r.upper_fen is None or base_fen <= r.upper_fen)
        assert chosen.rate_bp is not None
        due = round_fen(from_fen(base_fen) * Decimal(chosen.rate_bp) / Decimal(10000))
        pct = (Decimal(chosen.rate_bp) / 100).normalize()
        bracket = f"≤ {fmt_yuan(chosen.upper_fen)}" if chosen.upper_fen is not None else "above the last bracket"
        return due, f"{category}: {pct}% of the whole base {fmt_yuan(base_fen)} (bracket {bracket})"
    rate = rates[0]
    lo, hi = rate.fixed_min_fen, rate.fixed_max_fen
    assert lo is not None
    if hi is not None and lo == hi:
        if fixed_fen is not None and fixed_fen != lo:
            raise invalid(["body", "fixed"], f"a {category} member pays {fmt_yuan(lo)} a month")
        return lo, f"{category}: fixed {fmt_yuan(lo)} a month"
    if fixed_fen is None or fixed_fen < lo or (hi is not None and fixed_fen > hi):
        span = f"{fmt_yuan(lo)}–{fmt_yuan(hi)}" if hi is not None else f"at least {fmt_yuan(lo)}"
        raise invalid(["body", "fixed"], f"a {category} member pays a fixed amount chosen by the branch: {span}")
    return fixed_fen, f"{category}: fixed {fmt_yuan(fixed_fen)} a month chosen by the branch"


# --- members -------------------------------------------------------------------------


def get_member(session: Session, actor: Actor, member_id: int) -> tuple[Person, str]:
    """A party member in scope, with their organisation's path (404 otherwise)."""
    person, path = get_in_scope(session, actor, Person, member_id, "Member")
    if person.member_status == MemberStatus.none:
        raise invalid(["body", "member_id"], "the person is not a party member")
    return person, path


# --- profiles ---------------------------------------------------------------------------


def profile_public(p: DuesProfile) -> DuesProfilePublic:
    return DuesProfilePublic(
        id=p.id, member_id=p.person_id, effective_from=p.effective_from, category=p.category,
        base=from_fen(p.base_fen) if p.base_fen is not None else None,
        fixed=from_fen(p.fixed_fen) if p.fixed_fen is not None else None, monthly_due=from_fen(p.monthly_due_fen),
        basis=p.basis, note=p.note, created_by=p.created_by, created_at=p.created_at,
    )


def create_profile(session: Session, actor: Actor, data: DuesProfileCreate) -> DuesProfile:
    """Record a member's category and base from a month; the due follows the national rates."""
    person, _ = get_member(session, actor, data.member_id)
    exists = session.scalar(select(DuesProfile.id).where(DuesProfile.person_id == person.id,
                                                         DuesProfile.effective_from == data.effective_from))
    if exists is not None:
        raise conflict("duplicate_profile", f"Member {person.id} already has profile {exists} from "
                       f"{month_str(data.effective_from)}; record the change from another month.")
    base = to_fen(data.base) if data.base is not None else None
    fixed = to_fen(data.fixed) if data.fixed is not None else None
    due, basis = monthly_due(session, data.category, base, fixed, data.effective_from)
    if data.category in (DuesCategory.student, DuesCategory.unemployed, DuesCategory.relief):
        fixed = due
    profile = DuesProfile(person_id=person.id, effective_from=data.effective_from, category=data.category,
                          base_fen=base, fixed_fen=fixed, monthly_due_fen=due, basis=basis, note=data.note,
                          created_by=actor.user_id)
    session.add(profile)
    session.flush()
    audit.record(session, actor=actor, action="dues_profile.create", entity="dues_profile", entity_id=profile.id,
                 org_id=person.org_id, after={**audit.snapshot(profile), "monthly_due": fmt_yuan(due)})
    return profile


def list_profiles(session: Session, actor: Actor, *, member_id: int | None, org_id: int | None, subtree: bool,
                  params: PageParams) -> tuple[list[DuesProfile], int]:
    stmt = (select(DuesProfile).join(Person, Person.id == DuesProfile.person_id)
            .where(col(Person.org_id).in_(subtree_org_ids(actor.org_path))))
    if member_id is not None:
        stmt = stmt.where(DuesProfile.person_id == member_id)
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = (stmt.where(col(Person.org_id).in_(subtree_org_ids(path))) if subtree
                else stmt.where(Person.org_id == org_id))
    return fetch_page(session, stmt, params, allowed=PROFILE_SORTABLE,
                      default=[DuesProfile.person_id, DuesProfile.effective_from], tiebreak=DuesProfile.id)


# --- reductions --------------------------------------------------------------------------


def reduction_public(r: DuesReduction) -> DuesReductionPublic:
    return DuesReductionPublic(
        id=r.id, member_id=r.person_id, org_id=r.org_id, from_month=r.from_month, to_month=r.to_month,
        monthly_due=from_fen(r.monthly_due_fen), reason=r.reason, status=r.status, requested_by=r.requested_by,
        decided_by=r.decided_by, decided_at=r.decided_at, approval_ref=r.approval_ref, created_at=r.created_at,
    )


def request_reduction(session: Session, actor: Actor, data: DuesReductionCreate) -> DuesReduction:
    """A hardship reduction or exemption, pending until the level above approves it. It must be below what the
    member's profile makes due in its first month (422 otherwise): a reduction never raises the dues."""
    person, _ = get_member(session, actor, data.member_id)
    due, _basis = _dues_of(session, person).regular_due(data.from_month)  # a reduction in force may be replaced
    if due is None:
        raise invalid(["body", "from_month"], f"nothing is due from {month_str(data.from_month)} to reduce: "
                      "record the member's dues profile first")
    if to_fen(data.monthly_due) >= due:
        raise invalid(["body", "monthly_due"], f"a reduction is below the {fmt_yuan(due)} due from "
                      f"{month_str(data.from_month)}")
    r = DuesReduction(person_id=person.id, org_id=person.org_id, from_month=data.from_month, to_month=data.to_month,
                      monthly_due_fen=to_fen(data.monthly_due), reason=data.reason, requested_by=actor.user_id)
    session.add(r)
    session.flush()
    audit.record(session, actor=actor, action="dues_reduction.request", entity="dues_reduction", entity_id=r.id,
                 org_id=r.org_id, after=audit.snapshot(r))
    return r


def get_reduction(session: Session, actor: Actor, reduction_id: int) -> tuple[DuesReduction, str]:
    return get_in_scope(session, actor, DuesReduction, reduction_id, "Dues reduction")


def decide_reduction(session: Session, actor: Actor, reduction_id: int, data: ReductionDecision) -> DuesReduction:
    """Approve or reject: the level above the member's organisation, never the user who asked."""
    r, path = get_reduction(session, actor, reduction_id)
    if not actor.strictly_covers(path):
        raise ProblemError(403, "level_above_required", "Only the level above the member's organisation may "
                           "approve a dues reduction.")
    if r.requested_by is not None and r.requested_by == actor.user_id:
        raise ProblemError(403, "maker_checker", "You asked for this reduction; another user must decide it.")
    if r.status != ReductionStatus.pending:
        raise conflict("invalid_status", f"Dues reduction {r.id} is already {r.status}.")
    # Conditional: of two deciders who both read it pending (PostgreSQL), the second finds it decided.
    decided = session.execute(
        update(DuesReduction).where(DuesReduction.id == r.id, DuesReduction.status == ReductionStatus.pending)
        .values(status=ReductionStatus.approved if data.approve else ReductionStatus.rejected,
                decided_by=actor.user_id, decided_at=utcnow(), approval_ref=data.approval_ref)
        .execution_options(synchronize_session=False))
    session.refresh(r)
    if decided.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("invalid_status", f"Dues reduction {r.id} is already {r.status}.")
    audit.record(session, actor=actor, action=f"dues_reduction.{'approve' if data.approve else 'reject'}",
                 entity="dues_reduction", entity_id=r.id, org_id=r.org_id, before={"status": "pending"},
                 after={"status": r.status, "approval_ref": r.approval_ref,
                        "monthly_due": fmt_yuan(r.monthly_due_fen)})
    return r


def list_reductions(session: Session, actor: Actor, *, member_id: int | None, status: str | None,
                    org_id: int | None, subtree: bool, params: PageParams) -> tuple[list[DuesReduction], int]:
    stmt = select(DuesReduction).where(col(DuesReduction.org_id).in_(subtree_org_ids(actor.org_path)))
    if member_id is not None:
        stmt = stmt.where(DuesReduction.person_id == member_id)
    if status:
        stmt = stmt.where(DuesReduction.status == status)
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = (stmt.where(col(DuesReduction.org_id).in_(subtree_org_ids(path))) if subtree
                else stmt.where(DuesReduction.org_id == org_id))
    return fetch_page(session, stmt, params, allowed=REDUCTION_SORTABLE, default=[col(DuesReduction.id).desc()],
                      tiebreak=DuesReduction.id)


# --- what is due, month by month ----------------------------------------------------------


@dataclass
class MemberDues:
    """Everything needed to say what a member owes for any month (loaded set-based for many members)."""

    person_id: int
    joined: dt.date | None
    left: dt.date | None
    profiles: list[DuesProfile]
    reductions: list[DuesReduction]

    def due(self, month: dt.date) -> tuple[int | None, str]:
        """(due in fen, basis) of a month; None when nothing is due (before admission/profile, after leaving)."""
        regular, basis = self.regular_due(month)
        if regular is None:
            return None, basis
        for r in self.reductions:
            # A reduction lowers what is due, never raises it (the profile may have fallen below it since).
            if r.from_month <= month and (r.to_month is None or month <= r.to_month) and r.monthly_due_fen < regular:
                kind = "exempt" if r.monthly_due_fen == 0 else "reduced"
                return r.monthly_due_fen, f"{kind} (approval {r.approval_ref})"
        return regular, basis

    def regular_due(self, month: dt.date) -> tuple[int | None, str]:
        """What the profile in force makes due in a month, reductions left out."""
        if self.joined is not None and month < self.joined.replace(day=1):
            return None, "not yet admitted"
        if self.left is not None and month > self.left.replace(day=1):
            return None, "left the roll"
        profile = None
        for p in self.profiles:
            if p.effective_from <= month:
                profile = p
        if profile is None:
            return None, "no dues profile yet"
        return profile.monthly_due_fen, profile.basis


def load_member_dues(session: Session, person_ids: list[int] | Any) -> dict[int, MemberDues]:
    """Profiles, approved reductions and admission of the members: three queries, whatever their number."""
    people = session.execute(select(Person.id, Person.joined_party_on, Person.status, Person.left_on)
                             .where(col(Person.id).in_(person_ids)))
    out = {r.id: MemberDues(r.id, r.joined_party_on, r.left_on if r.status != PersonStatus.active else None, [], [])
           for r in people}
    for p in session.scalars(select(DuesProfile).where(col(DuesProfile.person_id).in_(person_ids))
                             .order_by(DuesProfile.effective_from)):
        out[p.person_id].profiles.append(p)
    for r in session.scalars(select(DuesReduction).where(col(DuesReduction.person_id).in_(person_ids),
                                                         DuesReduction.status == ReductionStatus.approved)
                             .order_by(col(DuesReduction.id).desc())):
        out[r.person_id].reductions.append(r)
    return out


def _dues_of(session: Session, person: Person) -> MemberDues:
    assert person.id is not None
    return load_member_dues(session, [person.id])[person.id]


def paid_months(session: Session, person_ids: list[int] | Any, first: dt.date | None = None,
                last: dt.date | None = None) -> dict[int, dict[dt.date, int]]:
    stmt = select(DuesPaymentMonth.person_id, DuesPaymentMonth.month, DuesPaymentMonth.due_fen).where(
        col(DuesPaymentMonth.person_id).in_(person_ids))
    if first is not None:
        stmt = stmt.where(DuesPaymentMonth.month >= first)
    if last is not None:
        stmt = stmt.where(DuesPaymentMonth.month <= last)
    out: dict[int, dict[dt.date, int]] = defaultdict(dict)
    for r in session.execute(stmt):
        out[r.person_id][r.month] = r.due_fen
    return out


# --- payments ---------------------------------------------------------------------------------


def payment_public(p: DuesPayment) -> DuesPaymentPublic:
    return DuesPaymentPublic(
        id=p.id, member_id=p.person_id, org_id=p.org_id, month_from=p.month_from, month_to=p.month_to,
        amount=from_fen(p.amount_fen), due=from_fen(p.due_fen), extra=from_fen(p.extra_fen),
        remit_to_centre=p.remit_to_centre, paid_on=p.paid_on, method=p.method, receipt_no=p.receipt_no,
        budget_line_id=p.budget_line_id, recorded_by=p.recorded_by, created_at=p.created_at,
    )


def record_payment(session: Session, actor: Actor, data: DuesPaymentCreate) -> DuesPayment:
    """A member pays the dues of consecutive months, perhaps with a voluntary extra; the money accrues to the
    organisation's party_dues line of the payment's year."""
    person, _ = get_member(session, actor, data.member_id)
    last = data.month_to or data.month_from
    months = months_between(data.month_from, last)
    if len(months) > MAX_MONTHS_PER_PAYMENT:
        raise invalid(["body", "month_to"], f"a payment covers at most {MAX_MONTHS_PER_PAYMENT} months")
    dues = _dues_of(session, person)
    due_by_month: dict[dt.date, int] = {}
    for m in months:
        due, why = dues.due(m)
        if due is None:
            raise invalid(["body", "month_from"], f"nothing is due for {month_str(m)}: {why}")
        due_by_month[m] = due
    already = sorted(paid_months(session, [person.id], months[0], months[-1]).get(person.id, {}))
    if already:
        raise conflict("already_paid", f"Member {person.id} has already paid {', '.join(map(month_str, already))}.")
    amount = to_fen(data.amount)
    due_total = sum(due_by_month.values())
    if amount < due_total:
        raise invalid(["body", "amount"], f"the dues of these months are {fmt_yuan(due_total)}; "
                      f"{fmt_yuan(amount)} does not cover them")
    extra = amount - due_total
    remit = extra > 0 and extra >= threshold(session, DuesThresholdCode.remit_to_centre, data.paid_on)
    line = dues_line(session, actor, org_id=person.org_id, year=data.paid_on.year)
    assert line.id is not None
    payment = DuesPayment(person_id=person.id, org_id=person.org_id, month_from=months[0], month_to=months[-1],
                          amount_fen=amount, due_fen=due_total, extra_fen=extra, remit_to_centre=remit,
                          paid_on=data.paid_on, method=data.method, receipt_no=data.receipt_no,
                          budget_line_id=line.id, recorded_by=actor.user_id)
    session.add(payment)
    session.flush()
    session.execute(insert(DuesPaymentMonth), [{"payment_id": payment.id, "person_id": person.id, "month": m,
                                                "due_fen": d} for m, d in due_by_month.items()])
    before, after = ledger.receive(session, line.id, amount)
    audit.record(session, actor=actor, action="dues_payment.create", entity="dues_payment", entity_id=payment.id,
                 org_id=person.org_id, after={**audit.snapshot(payment), "amount": fmt_yuan(amount),
                                              "extra": fmt_yuan(extra)})
    audit.record(session, actor=actor, action="budget_line.receive", entity="budget_line", entity_id=line.id,
                 org_id=person.org_id, before=before, after={**after, "dues_payment_id": payment.id})
    return payment


def list_payments(session: Session, actor: Actor, *, member_id: int | None, year: int | None,
                  remit_to_centre: bool | None, org_id: int | None, subtree: bool, params: PageParams
                  ) -> tuple[list[DuesPayment], int]:
    stmt = select(DuesPayment).where(col(DuesPayment.org_id).in_(subtree_org_ids(actor.org_path)))
    if member_id is not None:
        stmt = stmt.where(DuesPayment.person_id == member_id)
    if year is not None:
        stmt = stmt.where(DuesPayment.paid_on >= dt.date(year, 1, 1), DuesPayment.paid_on <= dt.date(year, 12, 31))
    if remit_to_centre is not None:
        stmt = stmt.where(col(DuesPayment.remit_to_centre).is_(remit_to_centre))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = (stmt.where(col(DuesPayment.org_id).in_(subtree_org_ids(path))) if subtree
                else stmt.where(DuesPayment.org_id == org_id))
    return fetch_page(session, stmt, params, allowed=PAYMENT_SORTABLE, default=[col(DuesPayment.id).desc()],
                      tiebreak=DuesPayment.id)


# --- statement and arrears --------------------------------------------------------------------


def statement(session: Session, actor: Actor, *, member_id: int, year: int) -> DuesStatement:
    """Due, paid and balance per month of the year."""
    person, _ = get_member(session, actor, member_id)
    months = [dt.date(year, m, 1) for m in range(1, 13)]
    dues = _dues_of(session, person)
    paid = paid_months(session, [person.id], months[0], months[-1]).get(person.id, {})
    extra = session.scalar(select(func.coalesce(func.sum(DuesPayment.extra_fen), 0)).where(
        DuesPayment.person_id == person.id, DuesPayment.month_from >= months[0],
        DuesPayment.month_from <= months[-1])) or 0
    rows = []
    total_due = total_paid = 0
    for m in months:
        due, basis = dues.due(m)
        got = paid.get(m)
        if due is None:
            status, due_fen = "not_due", 0
        elif got is not None:
            status, due_fen = "paid", due
        elif due == 0:
            status, due_fen = "exempt", 0
        else:
            status, due_fen = "unpaid", due
        got_fen = got or 0
        total_due += due_fen
        total_paid += got_fen
        rows.append(StatementMonth(month=m, due=from_fen(due_fen), paid=from_fen(got_fen),
                                   balance=from_fen(due_fen - got_fen), status=status, basis=basis))
    return DuesStatement(member_id=person.id, member_name=person.name, year=year, months=rows,
                         due=from_fen(total_due), paid=from_fen(total_paid), balance=from_fen(total_due - total_paid),
                         voluntary_extra=from_fen(int(extra)))


_STREAM = 2000  # rows per fetch of the streamed arrears queries


@cached_report(skip=lambda arguments: arguments.get("limit") is None)  # a whole export
def arrears_page(session: Session, actor: Actor, *, org_id: int | None, subtree: bool, as_of: dt.date,
                 flagged_only: bool = False, limit: int | None = None, offset: int = 0,
                 member_id: int | None = None) -> tuple[list[ArrearsRow], int]:
    """Members in scope with unpaid months up to `as_of`, flagged first, then by the longest run: the page
    (`limit` None = all) and the total. A fixed number of statements whatever the number of members: the
    members, their profiles and their paid months come as three streams ordered by member (server-side
    cursors, read in chunks) and are merged here, so memory holds one member at a time plus one small sort key
    per member in arrears; names and decisions are read for the page only.

    Not a GROUP BY: what a month owes depends on the profile and reduction in force that month, and the order
    needs each member's longest run of unpaid months."""
    members = (select(Person.id).join(Organization, Organization.id == Person.org_id)
               .where(in_subtree(Organization.path, actor.org_path), Person.member_status != MemberStatus.none,
                      col(Person.id).in_(select(DuesProfile.person_id))))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        members = members.where(in_subtree(Organization.path, path)) if subtree else members.where(
            Person.org_id == org_id)
    if member_id is not None:
        members = members.where(Person.id == member_id)
    flag_at = threshold(session, DuesThresholdCode.arrears_flag_months, as_of)
    reductions: dict[int, list[Any]] = defaultdict(list)
    for r in session.execute(select(DuesReduction.person_id, DuesReduction.from_month, DuesReduction.to_month,
                                    DuesReduction.monthly_due_fen, DuesReduction.approval_ref)
                             .where(col(DuesReduction.person_id).in_(members),
                                    DuesReduction.status == ReductionStatus.approved)
                             .order_by(col(DuesReduction.id).desc())):
        reductions[r.person_id].append(r)
    # Core rows straight from the connection (no ORM row processing); months as integers year * 12 + month - 1.
    conn = session.connection()
    stream = {"yield_per": _STREAM}  # per statement: a server-side cursor on PostgreSQL
    people = conn.execute(
        select(Person.id, Person.joined_party_on, Person.status, Person.left_on).where(col(Person.id).in_(members))
        .order_by(Person.id).execution_options(**stream))
    profiles = _Grouped(conn.execute(
        select(DuesProfile.person_id, DuesProfile.effective_from, DuesProfile.monthly_due_fen, DuesProfile.basis)
        .where(col(DuesProfile.person_id).in_(members))
        .order_by(DuesProfile.person_id, DuesProfile.effective_from, DuesProfile.id).execution_options(**stream)))
    paid = _Grouped(conn.execute(  # one row per member: the paid months' indexes as text
        select(DuesPaymentMonth.person_id, joined_text(_month_index(DuesPaymentMonth.month)))
        .where(col(DuesPaymentMonth.person_id).in_(members), DuesPaymentMonth.month <= as_of)
        .group_by(DuesPaymentMonth.person_id).order_by(DuesPaymentMonth.person_id).execution_options(**stream)))
    keys: list[tuple[bool, int, int, int, int, dt.date, dt.date]] = []
    last_index = _index(as_of)
    for person in people:
        left = person.left_on if person.status != PersonStatus.active else None
        mine = {int(m) for r in paid.take(person.id) for m in r[1].split(",")}
        member_profiles = profiles.take(person.id)
        if not member_profiles:
            continue
        start = member_profiles[0].effective_from
        if person.joined_party_on is not None:
            start = max(start, person.joined_party_on.replace(day=1))
        member_reductions = reductions.get(person.id)
        md = MemberDues(person.id, person.joined_party_on, left, member_profiles, member_reductions or [])
        # Without reductions a month owes the profile in force, up to leaving; with them, MemberDues.due decides.
        changes = [(_index(p.effective_from), p.monthly_due_fen) for p in member_profiles]
        end = min(last_index, _index(left)) if left is not None and not member_reductions else last_index
        run = best = n_unpaid = owed = 0
        first = last = -1
        k, due = 0, 0
        for m in range(_index(start), end + 1):
            if member_reductions:
                due = md.due(_month_of(m))[0] or 0
            else:
                while k < len(changes) and changes[k][0] <= m:
                    due = changes[k][1]
                    k += 1
            if due and m not in mine:
                n_unpaid += 1
                owed += due
                if first < 0:
                    first = m
                last = m
                run += 1
                best = max(best, run)
            else:
                run = 0
        if not n_unpaid or (flagged_only and best < flag_at):
            continue
        keys.append((best < flag_at, -best, person.id, n_unpaid, owed, _month_of(first), _month_of(last)))
    keys.sort(key=lambda k: k[:3])
    window = keys[offset:] if limit is None else keys[offset:offset + limit]
    ids = [k[2] for k in window]
    names = {r.id: (r.name, r.org_id) for r in session.execute(
        select(Person.id, Person.name, Person.org_id).where(col(Person.id).in_(ids)))}
    decisions: dict[int, DuesArrearsDecision] = {}
    for d in session.scalars(select(DuesArrearsDecision).where(col(DuesArrearsDecision.person_id).in_(ids))
                             .order_by(DuesArrearsDecision.decided_on, DuesArrearsDecision.id)):
        decisions[d.person_id] = d
    out = []
    for not_flagged, neg_run, pid, n_unpaid, owed, first_unpaid, last_unpaid in window:
        name, org = names[pid]
        decision = decisions.get(pid)
        out.append(ArrearsRow(member_id=pid, member_name=name, org_id=org, unpaid_months=n_unpaid,
                              owed=from_fen(owed), first_unpaid=first_unpaid, last_unpaid=last_unpaid,
                              consecutive_unpaid=-neg_run,
                              flagged=not not_flagged, last_decision=decision.decision if decision else None,
                              last_decision_on=decision.decided_on if decision else None))
    return out, len(keys)


def _index(month: dt.date) -> int:
    return month.year * 12 + month.month - 1


def _month_of(index: int) -> dt.date:
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_index(column: Any) -> Any:
    return cast(extract("year", column), Integer) * 12 + cast(extract("month", column), Integer) - 1


class _Grouped:
    """Rows of a stream ordered by its first column (a member id), taken member by member in that order."""

    def __init__(self, rows: Any) -> None:
        self._rows = iter(rows)
        self._next: Any = next(self._rows, None)

    def take(self, person_id: int) -> list[Any]:
        out = []
        while self._next is not None and self._next[0] <= person_id:
            if self._next[0] == person_id:
                out.append(self._next)
            self._next = next(self._rows, None)
        return out


def arrears(session: Session, actor: Actor, *, org_id: int | None, subtree: bool, as_of: dt.date,
            flagged_only: bool = False) -> list[ArrearsRow]:
    """Every row of arrears_page (for callers that need them all, e.g. the demo and a decision on one member)."""
    return arrears_page(session, actor, org_id=org_id, subtree=subtree, as_of=as_of, flagged_only=flagged_only)[0]


def record_decision(session: Session, actor: Actor, data: ArrearsDecisionCreate) -> DuesArrearsDecision:
    """The branch's decision about a member in arrears, with the run of unpaid months it was made on."""
    person, _ = get_member(session, actor, data.member_id)
    as_of = last_ended_month(data.decided_on)  # as the arrears list counts: the month decided in may still be paid
    rows, _ = arrears_page(session, actor, org_id=person.org_id, subtree=False, as_of=as_of, member_id=person.id)
    if not rows:
        raise conflict("no_arrears", f"Member {person.id} has no unpaid months up to {month_str(as_of)}.")
    d = DuesArrearsDecision(person_id=person.id, org_id=person.org_id, consecutive_months=rows[0].consecutive_unpaid,
                            decision=data.decision, note=data.note, decided_on=data.decided_on,
                            decided_by=actor.user_id)
    session.add(d)
    session.flush()
    audit.record(session, actor=actor, action="dues_arrears.decide", entity="dues_arrears_decision", entity_id=d.id,
                 org_id=d.org_id, after=audit.snapshot(d))
    return d


def decision_public(d: DuesArrearsDecision) -> ArrearsDecisionPublic:
    return ArrearsDecisionPublic(id=d.id, member_id=d.person_id, org_id=d.org_id,
                                 consecutive_months=d.consecutive_months, decision=d.decision, note=d.note,
                                 decided_on=d.decided_on, decided_by=d.decided_by, created_at=d.created_at)


def list_decisions(session: Session, actor: Actor, *, member_id: int | None, org_id: int | None, subtree: bool,
                   params: PageParams) -> tuple[list[DuesArrearsDecision], int]:
    stmt = select(DuesArrearsDecision).where(col(DuesArrearsDecision.org_id).in_(subtree_org_ids(actor.org_path)))
    if member_id is not None:
        stmt = stmt.where(DuesArrearsDecision.person_id == member_id)
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = (stmt.where(col(DuesArrearsDecision.org_id).in_(subtree_org_ids(path))) if subtree
                else stmt.where(DuesArrearsDecision.org_id == org_id))
    return fetch_page(session, stmt, params, allowed=DECISION_SORTABLE, default=[col(DuesArrearsDecision.id).desc()],
                      tiebreak=DuesArrearsDecision.id)


def last_ended_month(day: dt.date | None = None) -> dt.date:
    """The last month that ended before `day` (default: today, Beijing time): the arrears' default `as_of`. The
    month in progress may still be paid in full, and counting it made a member with five unpaid months look like
    six, the flag for leaving the Party."""
    return ((day or clock.today()).replace(day=1) - dt.timedelta(days=1)).replace(day=1)
