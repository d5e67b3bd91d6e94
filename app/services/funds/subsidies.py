"""Subsidy policies and entitlement runs: draft (preview), recompute, commit by a second user drawing on the
budget lines in the same transaction, pay whole or by line, reverse line by line."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.money import fmt_yuan, from_fen, to_fen
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope, subtree_org_ids
from app.models.funds.budgets import BudgetLine
from app.models.funds.subsidies import (
    KIND_CATEGORY,
    MONTHLY_KINDS,
    LineStatus,
    PolicyClose,
    RatePublic,
    RunKindPublic,
    RunStatus,
    SubsidyGranularity,
    SubsidyLine,
    SubsidyLinePublic,
    SubsidyPolicy,
    SubsidyPolicyCreate,
    SubsidyPolicyPublic,
    SubsidyRate,
    SubsidyRun,
    SubsidyRunCreate,
    SubsidyRunKind,
    SubsidyRunPublic,
    SubsidySummary,
    SummaryRow,
)
from app.models.organizations import Organization
from app.models.people import Person
from app.services.funds import entitlements, ledger
from app.services.funds.budgets import get_line, org_names

POLICY_SORTABLE = {"id": SubsidyPolicy.id, "kind": SubsidyPolicy.kind, "valid_from": SubsidyPolicy.valid_from}
RUN_SORTABLE = {"id": SubsidyRun.id, "year": SubsidyRun.year, "status": SubsidyRun.status,
                "total": SubsidyRun.total_fen, "created_at": SubsidyRun.created_at}
LINE_SORTABLE = {"id": SubsidyLine.id, "kind": SubsidyLine.kind, "amount": SubsidyLine.amount_fen,
                 "org_id": SubsidyLine.org_id, "beneficiary_id": SubsidyLine.beneficiary_id,
                 "status": SubsidyLine.status}


# --- policies -------------------------------------------------------------------------


def policy_public(policy: SubsidyPolicy, rates: list[SubsidyRate]) -> SubsidyPolicyPublic:
    return SubsidyPolicyPublic(
        id=policy.id, kind=policy.kind, name=policy.name, valid_from=policy.valid_from, valid_to=policy.valid_to,
        note=policy.note, version=policy.version, created_at=policy.created_at,
        rates=[RatePublic(title=r.title, band_min=r.band_min, band_max=r.band_max, amount=from_fen(r.amount_fen))
               for r in rates],
    )


def rates_of(session: Session, policy_ids: list[int]) -> dict[int, list[SubsidyRate]]:
    out: dict[int, list[SubsidyRate]] = defaultdict(list)
    if policy_ids:
        for r in session.scalars(select(SubsidyRate).where(col(SubsidyRate.policy_id).in_(policy_ids))
                                 .order_by(SubsidyRate.id)):
            out[r.policy_id].append(r)
    return out


def get_policy(session: Session, policy_id: int) -> SubsidyPolicy:
    policy = session.get(SubsidyPolicy, policy_id)
    if policy is None:
        raise not_found("Subsidy policy", policy_id)
    return policy


def _overlapping(session: Session, kind: str, start: dt.date, end: dt.date | None, own_id: int | None = None
                 ) -> SubsidyPolicy | None:
    stmt = select(SubsidyPolicy).where(
        SubsidyPolicy.kind == kind, or_(col(SubsidyPolicy.valid_to).is_(None), col(SubsidyPolicy.valid_to) >= start))
    if end is not None:
        stmt = stmt.where(SubsidyPolicy.valid_from <= end)
    if own_id is not None:
        stmt = stmt.where(SubsidyPolicy.id != own_id)
    return session.scalar(stmt.limit(1))


def create_policy(session: Session, actor: Actor, data: SubsidyPolicyCreate) -> SubsidyPolicy:
    """New rates of a kind from a date; a kind's periods never overlap (close the current policy first)."""
    other = _overlapping(session, data.kind, data.valid_from, data.valid_to)
    if other is not None:
        raise conflict("policy_overlap", f"Policy {other.id} ({other.name}) of {data.kind} is valid from "
                       f"{other.valid_from} to {other.valid_to or 'open'}: close it before this one starts.")
    policy = SubsidyPolicy(kind=data.kind, name=data.name, valid_from=data.valid_from, valid_to=data.valid_to,
                           note=data.note, created_by=actor.user_id)
    session.add(policy)
    session.flush()
    for r in data.rates:
        session.add(SubsidyRate(policy_id=policy.id, title=r.title, band_min=r.band_min, band_max=r.band_max,
                                amount_fen=to_fen(r.amount)))
    session.flush()
    audit.record(session, actor=actor, action="subsidy_policy.create", entity="subsidy_policy", entity_id=policy.id,
                 after={**audit.snapshot(policy),
                        "rates": [{**r.model_dump(mode="json")} for r in data.rates]})
    return policy


def close_policy(session: Session, actor: Actor, policy: SubsidyPolicy, data: PolicyClose) -> SubsidyPolicy:
    """End a policy's validity (the next one may then start the day after)."""
    if data.valid_to < policy.valid_from:
        raise invalid(["body", "valid_to"], "valid_to must not be before the policy's valid_from")
    if policy.valid_to is not None and data.valid_to > policy.valid_to:
        raise invalid(["body", "valid_to"], "closing can only shorten a policy; record a new policy instead")
    before = {"valid_to": policy.valid_to}
    policy.valid_to = data.valid_to
    policy.version += 1
    session.flush()
    audit.record(session, actor=actor, action="subsidy_policy.close", entity="subsidy_policy", entity_id=policy.id,
                 before=before, after={"valid_to": policy.valid_to})
    return policy


def list_policies(session: Session, *, kind: str | None, on: dt.date | None, params: PageParams
                  ) -> tuple[list[SubsidyPolicy], int]:
    stmt = select(SubsidyPolicy)
    if kind:
        stmt = stmt.where(SubsidyPolicy.kind == kind)
    if on is not None:
        stmt = stmt.where(SubsidyPolicy.valid_from <= on,
                          or_(col(SubsidyPolicy.valid_to).is_(None), col(SubsidyPolicy.valid_to) >= on))
    return fetch_page(session, stmt, params, allowed=POLICY_SORTABLE,
                      default=[SubsidyPolicy.kind, SubsidyPolicy.valid_from], tiebreak=SubsidyPolicy.id)


# --- runs ---------------------------------------------------------------------------------


def run_period(run: SubsidyRun) -> str:
    return f"{run.year}-{run.month:02d}" if run.month is not None else str(run.year)


def run_public(run: SubsidyRun, kinds: list[SubsidyRunKind]) -> SubsidyRunPublic:
    return SubsidyRunPublic(
        id=run.id, year=run.year, month=run.month, period=run_period(run), org_id=run.org_id,
        reference_date=run.reference_date, status=run.status, total=from_fen(run.total_fen),
        line_count=run.line_count, note=run.note, created_by=run.created_by, computed_at=run.computed_at,
        committed_by=run.committed_by, committed_at=run.committed_at, version=run.version, created_at=run.created_at,
        kinds=[RunKindPublic(kind=k.kind, budget_line_id=k.budget_line_id, total=from_fen(k.total_fen),
                             beneficiaries=k.beneficiaries) for k in sorted(kinds, key=lambda k: k.kind)],
    )


def kinds_of(session: Session, run_ids: list[int]) -> dict[int, list[SubsidyRunKind]]:
    out: dict[int, list[SubsidyRunKind]] = defaultdict(list)
    if run_ids:
        for k in session.scalars(select(SubsidyRunKind).where(col(SubsidyRunKind.run_id).in_(run_ids))):
            out[k.run_id].append(k)
    return out


def _kinds(session: Session, run: SubsidyRun) -> list[SubsidyRunKind]:
    assert run.id is not None
    return kinds_of(session, [run.id])[run.id]


def get_run(session: Session, actor: Actor, run_id: int) -> SubsidyRun:
    return get_in_scope(session, actor, SubsidyRun, run_id, "Subsidy run")[0]


def _org_path(session: Session, org_id: int) -> str:
    path = session.scalar(select(Organization.path).where(Organization.id == org_id))
    assert path is not None
    return path


def _compute_into(session: Session, run: SubsidyRun, kinds: list[SubsidyRunKind]) -> None:
    """(Re)write the run's draft lines and totals: one bulk INSERT."""
    scope_path = _org_path(session, run.org_id)
    session.execute(delete(SubsidyLine).where(SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.draft))
    rows: list[dict[str, Any]] = []
    for k in kinds:
        lines = entitlements.compute(session, kind=k.kind, scope_path=scope_path, year=run.year, month=run.month,
                                     reference_date=run.reference_date)
        lines = [ln for ln in lines if ln["amount_fen"] > 0]
        k.total_fen = sum(ln["amount_fen"] for ln in lines)
        k.beneficiaries = len(lines)
        rows.extend(lines)
    if rows:  # Core executemany (batched multi-row INSERTs on PostgreSQL): no ORM work per line
        session.connection().execute(insert(SubsidyLine.__table__), [  # type: ignore[attr-defined]
            {**r, "run_id": run.id, "status": LineStatus.draft, "claimed": False, "paid_by": None, "paid_at": None,
             "reversed_by": None, "reversed_at": None, "reversal_reason": None} for r in rows])
    run.total_fen = sum(k.total_fen for k in kinds)
    run.line_count = len(rows)
    run.computed_at = utcnow()
    session.flush()


def create_run(session: Session, actor: Actor, data: SubsidyRunCreate) -> tuple[SubsidyRun, list[SubsidyRunKind]]:
    """Compute a draft: one line per beneficiary and kind, with its basis. Nothing else changes."""
    run_path = require_org_in_scope(session, actor, data.org_id)
    for i, k in enumerate(data.kinds):
        line = get_line(session, actor, k.budget_line_id)
        loc: list[str | int] = ["body", "kinds", i, "budget_line_id"]
        if line.category != KIND_CATEGORY[k.kind]:
            raise invalid(loc, f"{k.kind} draws on a {KIND_CATEGORY[k.kind]} line, not {line.category}")
        if line.fiscal_year != data.year:
            raise invalid(loc, f"the line is of {line.fiscal_year}, the run of {data.year}")
        if not run_path.startswith(_org_path(session, line.org_id)):
            raise invalid(loc, "the line's owner must be the run's organisation or above it")
    run = SubsidyRun(year=data.year, month=data.month, org_id=data.org_id,
                     reference_date=data.reference_date or dt.date(data.year, 1, 1), note=data.note,
                     created_by=actor.user_id)
    session.add(run)
    session.flush()
    kinds = [SubsidyRunKind(run_id=run.id, kind=k.kind, budget_line_id=k.budget_line_id) for k in data.kinds]
    session.add_all(kinds)
    session.flush()
    _compute_into(session, run, kinds)
    audit.record(session, actor=actor, action="subsidy_run.create", entity="subsidy_run", entity_id=run.id,
                 org_id=run.org_id, after={**audit.snapshot(run), "total": fmt_yuan(run.total_fen),
                                           "kinds": {k.kind: fmt_yuan(k.total_fen) for k in kinds}})
    return run, kinds


def _require_status(run: SubsidyRun, *statuses: str) -> None:
    if run.status not in statuses:
        raise conflict("invalid_status",
                       f"Subsidy run {run.id} is {run.status}; this needs it {' or '.join(statuses)}.")


def recompute_run(session: Session, actor: Actor, run: SubsidyRun) -> tuple[SubsidyRun, list[SubsidyRunKind]]:
    """Recompute a draft from the current positions and policies (draft lines are working copies). The draft is
    claimed first (its row, until the end of the transaction): a commit of the same run, begun at the same time,
    either comes first and this is a 409, or waits and commits the recomputed lines."""
    _require_status(run, RunStatus.draft)
    before = {"total": fmt_yuan(run.total_fen), "line_count": run.line_count}
    _set_run_status(session, run, (RunStatus.draft,), {})
    kinds = _kinds(session, run)
    _compute_into(session, run, kinds)
    audit.record(session, actor=actor, action="subsidy_run.recompute", entity="subsidy_run", entity_id=run.id,
                 org_id=run.org_id, before=before, after={"total": fmt_yuan(run.total_fen),
                                                           "line_count": run.line_count})
    return run, kinds


def cancel_run(session: Session, actor: Actor, run: SubsidyRun) -> SubsidyRun:
    _require_status(run, RunStatus.draft)
    _set_run_status(session, run, (RunStatus.draft,), {"status": RunStatus.cancelled})
    audit.record(session, actor=actor, action="subsidy_run.cancel", entity="subsidy_run", entity_id=run.id,
                 org_id=run.org_id, before={"status": "draft"}, after={"status": run.status})
    return run


def _set_run_status(session: Session, run: SubsidyRun, from_: tuple[str, ...], values: dict[str, Any]) -> None:
    result = session.execute(
        update(SubsidyRun).where(SubsidyRun.id == run.id, col(SubsidyRun.status).in_(from_))
        .values(**values, version=SubsidyRun.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    session.refresh(run)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("invalid_status", f"Subsidy run {run.id} is {run.status}; this needs it {' or '.join(from_)}.")


def _claim_granularity(session: Session, run: SubsidyRun, kinds: list[SubsidyRunKind]) -> None:
    """A monthly kind's year is paid either by month runs or by year runs, never both (so periods cannot overlap)."""
    monthly = run.month is not None
    for k in kinds:
        if k.kind not in MONTHLY_KINDS:
            continue
        lock = session.scalar(select(SubsidyGranularity).where(SubsidyGranularity.kind == k.kind,
                                                               SubsidyGranularity.year == run.year))
        if lock is None:
            try:
                with session.begin_nested():
                    session.add(SubsidyGranularity(kind=k.kind, year=run.year, monthly=monthly))
                    session.flush()
                continue
            except IntegrityError:
                lock = session.scalar(select(SubsidyGranularity).where(SubsidyGranularity.kind == k.kind,
                                                                       SubsidyGranularity.year == run.year))
        if lock is not None and lock.monthly != monthly:
            raise conflict("overlapping_run", f"{k.kind} of {run.year} is already paid by "
                           f"{'monthly' if lock.monthly else 'whole-year'} runs; this run would overlap them.")


def _overlaps(session: Session, run: SubsidyRun) -> list[tuple[int, int, str]]:
    """(other run, lines, its organisation's path) already claiming one of this run's beneficiary, kind and
    period."""
    other = aliased(SubsidyLine)
    rows = session.execute(
        select(other.run_id, func.count(), Organization.path).select_from(SubsidyLine)
        .join(other, (other.kind == SubsidyLine.kind) & (other.beneficiary_type == SubsidyLine.beneficiary_type)
              & (other.beneficiary_id == SubsidyLine.beneficiary_id) & (other.period == SubsidyLine.period))
        .join(SubsidyRun, SubsidyRun.id == other.run_id).join(Organization, Organization.id == SubsidyRun.org_id)
        .where(SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.draft, col(other.claimed).is_(True),
               other.run_id != run.id)
        .group_by(other.run_id, Organization.path).order_by(other.run_id).limit(10))
    return [(r[0], r[1], r[2]) for r in rows]


def commit_run(session: Session, actor: Actor, run: SubsidyRun) -> tuple[SubsidyRun, list[SubsidyRunKind]]:
    """A second user commits the draft: its total is drawn from the budget lines in this transaction, or
    nothing happens (409 with the shortfall per line). Each beneficiary, kind and period is claimed once."""
    if run.created_by is not None and run.created_by == actor.user_id:
        raise ProblemError(403, "maker_checker", "You computed this run; another user must commit it.")
    _require_status(run, RunStatus.draft)
    # Claimed before its lines are read: a recompute running at the same time has finished (or waits for this
    # commit, then finds the run committed), so what is drawn is the sum of the lines committed.
    _set_run_status(session, run, (RunStatus.draft,), {"status": RunStatus.committed, "committed_by": actor.user_id,
                                                       "committed_at": utcnow()})
    kinds = _kinds(session, run)
    totals = {r.kind: (int(r.total or 0), int(r.n)) for r in session.execute(
        select(SubsidyLine.kind, func.sum(SubsidyLine.amount_fen).label("total"), func.count().label("n"))
        .where(SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.draft).group_by(SubsidyLine.kind))}
    need: dict[int, int] = defaultdict(int)
    for k in kinds:
        k.total_fen, k.beneficiaries = totals.get(k.kind, (0, 0))
        need[k.budget_line_id] += k.total_fen
    lines = {bl.id: (bl, path) for bl, path in session.execute(
        select(BudgetLine, Organization.path).join(Organization, Organization.id == BudgetLine.org_id)
        .where(col(BudgetLine.id).in_(list(need))))}
    for line_id, (_, path) in lines.items():
        if not actor.covers(path):
            raise ProblemError(403, "level_above_required",
                               f"Budget line {line_id} is owned above your organisation: its owner commits this run.")
    shortfalls = [(lid, n, lines[lid][0].available_fen) for lid, n in sorted(need.items())
                  if n > lines[lid][0].available_fen]
    if shortfalls:
        raise _shortfall(shortfalls)
    moves: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for line_id in sorted(need):  # a fixed order: concurrent commits lock lines without deadlocking
        if need[line_id] > 0:
            moves[line_id] = ledger.take(session, line_id, need[line_id], into="approved",
                                         what=f"Committing subsidy run {run.id}")
    _claim_granularity(session, run, kinds)
    overlaps = _overlaps(session, run)
    if overlaps:
        raise _overlap_error(actor, run, overlaps)
    try:
        with session.begin_nested():
            session.execute(update(SubsidyLine).where(SubsidyLine.run_id == run.id,
                                                      SubsidyLine.status == LineStatus.draft)
                            .values(status=LineStatus.committed, claimed=True)
                            .execution_options(synchronize_session=False))
    except IntegrityError:
        raise _overlap_error(actor, run, []) from None
    run.total_fen = sum(k.total_fen for k in kinds)
    run.line_count = sum(k.beneficiaries for k in kinds)
    session.flush()
    audit.record(session, actor=actor, action="subsidy_run.commit", entity="subsidy_run", entity_id=run.id,
                 org_id=run.org_id, before={"status": "draft"},
                 after={"status": run.status, "total": fmt_yuan(run.total_fen), "line_count": run.line_count,
                        "kinds": {k.kind: {"budget_line_id": k.budget_line_id, "total": fmt_yuan(k.total_fen),
                                           "beneficiaries": k.beneficiaries} for k in kinds}})
    for line_id, (before, after) in moves.items():
        audit.record(session, actor=actor, action="budget_line.approve", entity="budget_line", entity_id=line_id,
                     org_id=lines[line_id][0].org_id, before=before, after={**after, "subsidy_run_id": run.id})
    return run, kinds


def _shortfall(shortfalls: list[tuple[int, int, int]]) -> ProblemError:
    parts = [f"line {lid} needs {fmt_yuan(n)} with {fmt_yuan(a)} available (short by {fmt_yuan(n - a)})"
             for lid, n, a in shortfalls]
    return ProblemError(
        409, "budget_exceeded", "The run cannot be committed: " + "; ".join(parts) + ". Nothing was drawn.",
        errors=[{"loc": ["budget_line", lid], "msg": f"needed {fmt_yuan(n)}, available {fmt_yuan(a)}, "
                 f"short by {fmt_yuan(n - a)}"} for lid, n, a in shortfalls],
    )


def _overlap_error(actor: Actor, run: SubsidyRun, overlaps: list[tuple[int, int, str]]) -> ProblemError:
    """Names the runs the actor may see; one of an organisation outside its scope is only "another run"."""
    named = [f"run {rid} ({n} lines)" for rid, n, path in overlaps if actor.covers(path)]
    if len(named) < len(overlaps):
        named.append("another run" if len(overlaps) - len(named) == 1 else f"{len(overlaps) - len(named)} other runs")
    return conflict("overlapping_run", f"Subsidy run {run.id} pays beneficiaries for a kind and period already "
                    f"committed in {', '.join(named) or 'another run'}; reverse those lines or leave them out.")


def _line_budget(session: Session, run: SubsidyRun) -> dict[str, int]:
    return {k.kind: k.budget_line_id for k in _kinds(session, run)}


def _settle_run_status(session: Session, run: SubsidyRun) -> None:
    """A committed run is paid once no line waits for payment."""
    waiting = session.scalar(select(func.count()).select_from(SubsidyLine).where(
        SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.committed))
    if run.status == RunStatus.committed and not waiting:
        _set_run_status(session, run, (RunStatus.committed,), {"status": RunStatus.paid})


def pay_run(session: Session, actor: Actor, run: SubsidyRun) -> tuple[SubsidyRun, int]:
    """Pay every committed line of the run; returns the number of lines paid."""
    _lock_run(session, run)
    _require_status(run, RunStatus.committed)
    budget = _line_budget(session, run)
    sums = {r.kind: (int(r.total), int(r.n)) for r in session.execute(
        select(SubsidyLine.kind, func.sum(SubsidyLine.amount_fen).label("total"), func.count().label("n"))
        .where(SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.committed).group_by(SubsidyLine.kind))}
    now = utcnow()
    session.execute(update(SubsidyLine).where(SubsidyLine.run_id == run.id, SubsidyLine.status == LineStatus.committed)
                    .values(status=LineStatus.paid, paid_by=actor.user_id, paid_at=now)
                    .execution_options(synchronize_session=False))
    per_line: dict[int, int] = defaultdict(int)
    for kind, (total, _) in sums.items():
        per_line[budget[kind]] += total
    moves = {lid: ledger.pay(session, lid, amount) for lid, amount in sorted(per_line.items()) if amount}
    paid_lines = sum(n for _, n in sums.values())
    _set_run_status(session, run, (RunStatus.committed,), {"status": RunStatus.paid})
    audit.record(session, actor=actor, action="subsidy_run.pay", entity="subsidy_run", entity_id=run.id,
                 org_id=run.org_id, before={"status": "committed"},
                 after={"status": run.status, "lines_paid": paid_lines,
                        "paid": fmt_yuan(sum(t for t, _ in sums.values()))})
    for lid, (before, after) in moves.items():
        audit.record(session, actor=actor, action="budget_line.pay", entity="budget_line", entity_id=lid,
                     before=before, after={**after, "subsidy_run_id": run.id})
    return run, paid_lines


def _lock_run(session: Session, run: SubsidyRun) -> None:
    """Payments and reversals of one run queue on its row (PostgreSQL; SQLite serialises writers anyway), each
    reading the lines as the one before left them. Without it a whole-run payment summed a line a concurrent
    reversal then took out, and paid its amount from the budget line all the same; and a line paid beside another
    reversed left the run committed with nothing waiting."""
    session.execute(select(SubsidyRun.id).where(SubsidyRun.id == run.id).with_for_update())
    session.refresh(run)


def get_line_of_run(session: Session, run: SubsidyRun, line_id: int) -> SubsidyLine:
    line = session.get(SubsidyLine, line_id)
    if line is None or line.run_id != run.id:
        raise not_found("Subsidy line", line_id)
    return line


def _line_transition(session: Session, line: SubsidyLine, from_: tuple[str, ...], values: dict[str, Any]) -> str:
    was = line.status
    result = session.execute(update(SubsidyLine).where(SubsidyLine.id == line.id, col(SubsidyLine.status).in_(from_))
                             .values(**values).execution_options(synchronize_session=False))
    session.refresh(line)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("invalid_status", f"Subsidy line {line.id} is {line.status}; this needs it "
                       f"{' or '.join(from_)}.")
    return str(was)


def pay_line(session: Session, actor: Actor, run: SubsidyRun, line: SubsidyLine) -> SubsidyLine:
    _lock_run(session, run)
    _require_status(run, RunStatus.committed)
    _line_transition(session, line, (LineStatus.committed,),
                     {"status": LineStatus.paid, "paid_by": actor.user_id, "paid_at": utcnow()})
    budget_line_id = _line_budget(session, run)[line.kind]
    before, after = ledger.pay(session, budget_line_id, line.amount_fen) if line.amount_fen else ({}, {})
    _settle_run_status(session, run)
    audit.record(session, actor=actor, action="subsidy_line.pay", entity="subsidy_line", entity_id=line.id,
                 org_id=line.org_id, before={"status": "committed"},
                 after={"status": line.status, "amount": fmt_yuan(line.amount_fen), "run_id": run.id})
    if before:
        audit.record(session, actor=actor, action="budget_line.pay", entity="budget_line", entity_id=budget_line_id,
                     before=before, after={**after, "subsidy_line_id": line.id})
    return line


def reverse_line(session: Session, actor: Actor, run: SubsidyRun, line: SubsidyLine, reason: str) -> SubsidyLine:
    """Undo one committed or paid line with a reason; its money goes back to the budget line and the
    beneficiary's period may be paid again by a later run."""
    _lock_run(session, run)
    _require_status(run, RunStatus.committed, RunStatus.paid)
    was = _line_transition(session, line, (LineStatus.committed, LineStatus.paid),
                           {"status": LineStatus.reversed, "claimed": False, "reversed_by": actor.user_id,
                            "reversed_at": utcnow(), "reversal_reason": reason})
    budget_line_id = _line_budget(session, run)[line.kind]
    moved = None
    if line.amount_fen:
        moved = ledger.release(session, budget_line_id, line.amount_fen,
                               from_="paid" if was == LineStatus.paid else "approved")
    # The run's and its kind's totals are those of the lines not reversed, as the budget line's are.
    session.execute(update(SubsidyRunKind).where(SubsidyRunKind.run_id == run.id, SubsidyRunKind.kind == line.kind)
                    .values(total_fen=SubsidyRunKind.total_fen - line.amount_fen,
                            beneficiaries=SubsidyRunKind.beneficiaries - 1)
                    .execution_options(synchronize_session=False))
    session.execute(update(SubsidyRun).where(SubsidyRun.id == run.id)
                    .values(total_fen=SubsidyRun.total_fen - line.amount_fen, line_count=SubsidyRun.line_count - 1,
                            version=SubsidyRun.version + 1, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
    session.refresh(run)
    session.scalars(select(SubsidyRunKind).where(SubsidyRunKind.run_id == run.id)  # loaded ones read again
                    .execution_options(populate_existing=True)).all()
    _settle_run_status(session, run)
    audit.record(session, actor=actor, action="subsidy_line.reverse", entity="subsidy_line", entity_id=line.id,
                 org_id=line.org_id, before={"status": was},
                 after={"status": line.status, "amount": fmt_yuan(line.amount_fen), "reason": reason,
                        "run_id": run.id, "run_total": fmt_yuan(run.total_fen), "run_line_count": run.line_count})
    if moved is not None:
        audit.record(session, actor=actor, action="budget_line.reverse", entity="budget_line",
                     entity_id=budget_line_id, before=moved[0], after={**moved[1], "subsidy_line_id": line.id})
    return line


@dataclass
class RunFilters:
    year: int | None = None
    status: str | None = None
    org_id: int | None = None
    subtree: bool = False


def list_runs(session: Session, actor: Actor, f: RunFilters, params: PageParams) -> tuple[list[SubsidyRun], int]:
    stmt = select(SubsidyRun).where(col(SubsidyRun.org_id).in_(subtree_org_ids(actor.org_path)))
    if f.year is not None:
        stmt = stmt.where(SubsidyRun.year == f.year)
    if f.status:
        stmt = stmt.where(SubsidyRun.status == f.status)
    if f.org_id is not None:
        path = require_org_in_scope(session, actor, f.org_id)
        stmt = (stmt.where(col(SubsidyRun.org_id).in_(subtree_org_ids(path))) if f.subtree
                else stmt.where(SubsidyRun.org_id == f.org_id))
    return fetch_page(session, stmt, params, allowed=RUN_SORTABLE, default=[col(SubsidyRun.id).desc()],
                      tiebreak=SubsidyRun.id)


@dataclass
class LineFilters:
    kind: str | None = None
    status: str | None = None
    person_id: int | None = None
    township_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_lines(session: Session, actor: Actor, run: SubsidyRun, f: LineFilters, params: PageParams
               ) -> tuple[list[SubsidyLine], int]:
    stmt = select(SubsidyLine).where(SubsidyLine.run_id == run.id,
                                     col(SubsidyLine.org_id).in_(subtree_org_ids(actor.org_path)))
    if f.kind:
        stmt = stmt.where(SubsidyLine.kind == f.kind)
    if f.status:
        stmt = stmt.where(SubsidyLine.status == f.status)
    if f.person_id is not None:
        stmt = stmt.where(SubsidyLine.person_id == f.person_id)
    if f.township_id is not None:
        stmt = stmt.where(SubsidyLine.township_id == f.township_id)
    if f.org_id is not None:
        path = require_org_in_scope(session, actor, f.org_id)
        stmt = (stmt.where(col(SubsidyLine.org_id).in_(subtree_org_ids(path))) if f.subtree
                else stmt.where(SubsidyLine.org_id == f.org_id))
    return fetch_page(session, stmt, params, allowed=LINE_SORTABLE, default=[SubsidyLine.kind, SubsidyLine.org_id],
                      tiebreak=SubsidyLine.id)


def lines_public(session: Session, lines: list[SubsidyLine]) -> list[SubsidyLinePublic]:
    """Public lines with beneficiary names: two queries for the whole page."""
    person_ids = {ln.person_id for ln in lines if ln.person_id is not None}
    people: dict[int, str] = {}
    if person_ids:
        people = {r.id: r.name for r in session.execute(select(Person.id, Person.name)
                                                          .where(col(Person.id).in_(person_ids)))}
    orgs = org_names(session, {ln.beneficiary_id for ln in lines if ln.beneficiary_type == "organization"})
    return [line_public(ln, people.get(ln.beneficiary_id) if ln.beneficiary_type == "person"
                        else orgs.get(ln.beneficiary_id)) for ln in lines]


def line_public(ln: SubsidyLine, name: str | None = None) -> SubsidyLinePublic:
    return SubsidyLinePublic(
        id=ln.id, run_id=ln.run_id, kind=ln.kind, beneficiary_type=ln.beneficiary_type,
        beneficiary_id=ln.beneficiary_id, person_id=ln.person_id, beneficiary_name=name, org_id=ln.org_id,
        township_id=ln.township_id, period=ln.period, months=ln.months, amount=from_fen(ln.amount_fen),
        basis=ln.basis, status=ln.status, paid_by=ln.paid_by, paid_at=ln.paid_at, reversed_by=ln.reversed_by,
        reversed_at=ln.reversed_at, reversal_reason=ln.reversal_reason,
    )


@cached_report()
def summary(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool) -> SubsidySummary:
    """Beneficiaries and totals per kind and township over the year's committed and paid lines: one query."""
    stmt = (
        select(SubsidyLine.kind, SubsidyLine.township_id, SubsidyLine.status,
               func.sum(SubsidyLine.amount_fen).label("total"))
        .join(SubsidyRun, SubsidyRun.id == SubsidyLine.run_id)
        .join(Organization, Organization.id == SubsidyLine.org_id)
        .where(SubsidyRun.year == year, col(SubsidyLine.claimed).is_(True),
               in_subtree(Organization.path, actor.org_path))
        .group_by(SubsidyLine.kind, SubsidyLine.township_id, SubsidyLine.status)
    )
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = stmt.where(in_subtree(Organization.path, path)) if subtree else stmt.where(SubsidyLine.org_id == org_id)
    cells: dict[tuple[str, int | None], dict[str, int]] = defaultdict(lambda: {"n": 0, "total": 0, "paid": 0})
    per_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "total": 0, "paid": 0})
    beneficiaries = _beneficiaries(session, stmt)
    for r in session.execute(stmt):
        cell = cells[(r.kind, r.township_id)]
        cell["total"] += int(r.total)
        if r.status == LineStatus.paid:
            cell["paid"] += int(r.total)
        kind = per_kind[r.kind]
        kind["total"] += int(r.total)
        if r.status == LineStatus.paid:
            kind["paid"] += int(r.total)
    names = org_names(session, {t for _, t in cells if t is not None})
    rows = [SummaryRow(kind=k, township_id=t, township_name=names.get(t) if t else None,
                       beneficiaries=beneficiaries.get((k, t), 0), total=from_fen(c["total"]),
                       paid=from_fen(c["paid"])) for (k, t), c in sorted(cells.items(), key=lambda x: (x[0][0],
                                                                                                      x[0][1] or 0))]
    by_kind = [SummaryRow(kind=k, township_id=None, township_name=None,
                          beneficiaries=sum(v for (kk, _), v in beneficiaries.items() if kk == k),
                          total=from_fen(c["total"]), paid=from_fen(c["paid"])) for k, c in sorted(per_kind.items())]
    return SubsidySummary(year=year, rows=rows, by_kind=by_kind,
                          total=from_fen(sum(c["total"] for c in per_kind.values())),
                          paid=from_fen(sum(c["paid"] for c in per_kind.values())))


def _beneficiaries(session: Session, stmt: Any) -> dict[tuple[str, int | None], int]:
    """Distinct beneficiaries per kind and township, whatever the lines' status: one query."""
    sub = stmt.with_only_columns(SubsidyLine.kind, SubsidyLine.township_id, SubsidyLine.beneficiary_type,
                                 SubsidyLine.beneficiary_id).group_by(None).distinct().subquery()
    rows = session.execute(select(sub.c.kind, sub.c.township_id, func.count()).group_by(sub.c.kind,
                                                                                        sub.c.township_id))
    return {(r[0], r[1]): int(r[2]) for r in rows}
