"""Problem lists (问题清单): open → rectifying → submitted → verified, rejection, escalation, inspections."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from app.core import audit
from app.core.aggregate import days_between
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, in_subtree, require_level_above, require_org_in_scope, scoped, scoped_to
from app.core.versioning import transition_update, versioned_update
from app.models.organizations import Organization, OrgStatus
from app.models.people import Person
from app.models.responsibilities.problems import (
    InspectionCreate,
    Problem,
    ProblemCreate,
    ProblemDetail,
    ProblemPublic,
    ProblemRejection,
    ProblemRejectionPublic,
    ProblemSource,
    ProblemStatus,
    ProblemSummaryRow,
    ProblemUpdate,
    QuarterlyInspection,
)
from app.services.responsibilities import clock
from app.services.responsibilities.common import overdue_clause, summary_scope

ENTITY = "problem"
INSPECTION_LINK = "quarterly_inspection"
SORTABLE = {
    "id": Problem.id, "year": Problem.year, "deadline": Problem.deadline, "status": Problem.status,
    "created_at": Problem.created_at, "verified_at": Problem.verified_at, "escalated_at": Problem.escalated_at,
    "org_id": Problem.org_id,
}
EDITABLE = (ProblemStatus.open, ProblemStatus.rectifying)


# ---------------------------------------------------------------- reading


@dataclass
class ProblemFilters:
    year: int | None = None
    source: str | None = None
    status: str | None = None
    org_id: int | None = None
    subtree: bool = False
    overdue: bool | None = None
    escalated: bool | None = None
    responsible_person_id: int | None = None
    link_entity: str | None = None
    link_id: int | None = None


def _not_verified() -> Any:
    return Problem.status != ProblemStatus.verified


def present(problem: Problem, org_name: str, today: dt.date) -> ProblemPublic:
    """The problem as the API shows it, with overdue computed against `today`."""
    overdue = problem.deadline is not None and problem.deadline < today and problem.status != ProblemStatus.verified
    days = (today - problem.deadline).days if overdue and problem.deadline else 0
    return ProblemPublic.model_validate(problem, update={
        "org_name": org_name, "overdue": overdue, "days_overdue": days,
        "escalated": problem.escalated_at is not None,
    })


def get_with_org(session: Session, actor: Actor, problem_id: int) -> tuple[Problem, Organization]:
    row = session.execute(
        select(Problem, Organization).join(Organization, Organization.id == Problem.org_id)
        .where(Problem.id == problem_id)
    ).first()
    if row is None or not actor.covers(row[1].path):
        raise not_found("Problem", problem_id)
    return row[0], row[1]


def get(session: Session, actor: Actor, problem_id: int) -> Problem:
    """The problem, or 404 when it is absent or outside the actor's scope."""
    return get_with_org(session, actor, problem_id)[0]


def detail(session: Session, actor: Actor, problem_id: int) -> ProblemDetail:
    problem, org = get_with_org(session, actor, problem_id)
    rejections = session.scalars(
        select(ProblemRejection).where(ProblemRejection.problem_id == problem.id).order_by(ProblemRejection.id)
    )
    public = present(problem, org.name, clock.today())
    return ProblemDetail(**public.model_dump(),
                         rejections=[ProblemRejectionPublic.model_validate(r) for r in rejections])


def list_page(
    session: Session, actor: Actor, filters: ProblemFilters, params: PageParams
) -> tuple[list[ProblemPublic], int]:
    """Problems in scope; `overdue` is evaluated in the query against today's date."""
    today = clock.today()
    stmt = scoped_to(
        session, select(Problem, Organization.name).join(Organization, Organization.id == Problem.org_id),
        Problem.org_id, actor, filters.org_id, subtree=filters.subtree,
    )
    for name in ("year", "source", "status", "responsible_person_id", "link_entity", "link_id"):
        value = getattr(filters, name)
        if value is not None:
            stmt = stmt.where(getattr(Problem, name) == value)
    if filters.overdue is not None:
        stmt = stmt.where(overdue_clause(col(Problem.deadline), _not_verified(), today, filters.overdue))
    if filters.escalated is not None:
        esc = col(Problem.escalated_at)
        stmt = stmt.where(esc.is_not(None) if filters.escalated else esc.is_(None))
    return fetch_page(session, stmt, params, allowed=SORTABLE, default=[col(Problem.deadline).desc()],
                      tiebreak=Problem.id, rows=True,
                      present=lambda _s, rows: [present(p, name, today) for p, name in rows])


# ---------------------------------------------------------------- opening


def _check_person(session: Session, actor: Actor, person_id: int | None) -> None:
    if person_id is None:
        return
    path = session.scalar(
        select(Organization.path).join(Person, Person.org_id == Organization.id).where(Person.id == person_id)
    )
    if path is None or not actor.covers(path):
        raise not_found("Person", person_id)


def open_problem(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    year: int,
    source: str,
    description: str,
    cause_analysis: str | None = None,
    rectification_measures: str | None = None,
    deadline: dt.date | None = None,
    link_entity: str | None = None,
    link_id: int | None = None,
    origin_key: str | None = None,
    responsible_person_id: int | None = None,
) -> Problem:
    """Open a problem; with origin_key, a second call returns the existing problem instead of opening another."""
    if origin_key is not None:
        existing = session.scalar(select(Problem).where(Problem.origin_key == origin_key))
        if existing is not None:
            return existing
    require_org_in_scope(session, actor, org_id)
    try:
        kind = ProblemSource(source)
    except ValueError:
        raise invalid(["body", "source"], f"unknown problem source '{source}'") from None
    problem = Problem(
        org_id=org_id, year=year, source=kind, description=description,
        cause_analysis=cause_analysis, rectification_measures=rectification_measures, deadline=deadline,
        link_entity=link_entity, link_id=link_id, origin_key=origin_key,
        responsible_person_id=responsible_person_id, status=ProblemStatus.open, opened_by=actor.user_id,
    )
    if origin_key is None:
        session.add(problem)
        session.flush()
    else:
        # A concurrent caller may open the same origin first: keep theirs.
        try:
            with session.begin_nested():
                session.add(problem)
                session.flush()
        except IntegrityError:
            existing = session.scalar(select(Problem).where(Problem.origin_key == origin_key))
            if existing is None:
                raise
            return existing
    audit.record(session, actor=actor, action="problem.open", entity=ENTITY, entity_id=problem.id,
                 org_id=org_id, after=audit.snapshot(problem))
    return problem


def _require_active(session: Session, org_id: int) -> None:
    status = session.scalar(select(Organization.status).where(Organization.id == org_id))
    if status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org_id} is dissolved and takes no new problems.")


def create(session: Session, actor: Actor, data: ProblemCreate) -> Problem:
    """Open a problem of an organisation in scope (its own users or the levels above)."""
    require_org_in_scope(session, actor, data.org_id)
    _require_active(session, data.org_id)
    _check_person(session, actor, data.responsible_person_id)
    return open_problem(session, actor, **data.model_dump())


# ---------------------------------------------------------------- editing and the state machine


def _status_conflict(problem: Problem, verb: str, allowed: tuple[ProblemStatus, ...]) -> ProblemError:
    want = " or ".join(str(s) for s in allowed)
    return conflict("invalid_status", f"Problem {problem.id} is {problem.status}; only a {want} problem can be {verb}.")


def _transition(
    session: Session, actor: Actor, problem: Problem, *, action: str, allowed: tuple[ProblemStatus, ...],
    verb: str, changes: dict[str, Any], extra: dict[str, Any] | None = None,
) -> Problem:
    def still_allowed(current: Problem) -> None:
        if current.status not in allowed:
            raise _status_conflict(current, verb, allowed)

    still_allowed(problem)
    before = audit.snapshot(problem)
    # A concurrent verifier or rejecter that committed first makes this one a 409, as if it had come second.
    transition_update(session, problem, changes, still_allowed)
    b, a = audit.changed(before, audit.snapshot(problem))
    audit.record(session, actor=actor, action=f"problem.{action}", entity=ENTITY, entity_id=problem.id,
                 org_id=problem.org_id, before=b, after={**a, **(extra or {})})
    return problem


def update_fields(
    session: Session, actor: Actor, problem: Problem, org: Organization, data: ProblemUpdate, expected_version: int
) -> Problem:
    """Edit an open or rectifying problem; once set, only the level above moves its deadline."""
    changes = data.model_dump(exclude_unset=True)
    if "description" in changes and changes["description"] is None:
        raise invalid(["body", "description"], "description cannot be empty")
    if problem.status not in EDITABLE:
        raise _status_conflict(problem, "edited", EDITABLE)
    if "deadline" in changes and problem.deadline is not None and changes["deadline"] != problem.deadline:
        require_level_above(actor, org.path, "move a problem's deadline")
    _check_person(session, actor, changes.get("responsible_person_id"))
    before = audit.snapshot(problem)
    versioned_update(session, problem, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(problem))
    audit.record(session, actor=actor, action="problem.update", entity=ENTITY, entity_id=problem.id,
                 org_id=problem.org_id, before=b, after=a)
    return problem


def start_rectification(session: Session, actor: Actor, problem: Problem) -> Problem:
    """open → rectifying."""
    return _transition(session, actor, problem, action="rectify", allowed=(ProblemStatus.open,),
                       verb="put into rectification", changes={"status": ProblemStatus.rectifying})


def submit(session: Session, actor: Actor, problem: Problem, note: str | None) -> Problem:
    """rectifying → submitted: the organisation says the rectification is done."""
    return _transition(session, actor, problem, action="submit", allowed=(ProblemStatus.rectifying,),
                       verb="submitted", changes={"status": ProblemStatus.submitted, "submitted_at": utcnow(),
                                                  "submission_note": note})


def verify(session: Session, actor: Actor, problem: Problem, org: Organization) -> Problem:
    """submitted → verified, by a user whose scope strictly contains the organisation (never its own users)."""
    require_level_above(actor, org.path, "verify its rectification")
    return _transition(session, actor, problem, action="verify", allowed=(ProblemStatus.submitted,),
                       verb="verified", changes={"status": ProblemStatus.verified, "verified_at": utcnow(),
                                                 "verified_by": actor.user_id})


def reject(session: Session, actor: Actor, problem: Problem, org: Organization, reason: str) -> Problem:
    """submitted → rectifying with a reason, by the level above; rejections are counted and kept."""
    require_level_above(actor, org.path, "reject its rectification")
    if problem.status != ProblemStatus.submitted:
        raise _status_conflict(problem, "rejected", (ProblemStatus.submitted,))
    rejection = ProblemRejection(problem_id=problem.id, reason=reason, rejected_by=actor.user_id)
    session.add(rejection)
    session.flush()
    return _transition(session, actor, problem, action="reject", allowed=(ProblemStatus.submitted,),
                       verb="rejected",
                       changes={"status": ProblemStatus.rectifying, "rejection_count": problem.rejection_count + 1},
                       extra={"reason": reason, "rejection_id": rejection.id})


# ---------------------------------------------------------------- escalation (力量下沉一线)


def escalate_overdue(session: Session, actor: Actor) -> dict[str, Any]:
    """Escalate every problem in scope overdue by more than the configured days and not yet escalated.

    The organisation above the problem's takes it over for on-site guidance. Running it again the same
    day (or any day) escalates nothing twice."""
    today = clock.today()
    threshold = get_settings().problem_escalation_days
    parent = aliased(Organization)
    stmt = scoped(
        select(Problem, Organization.id, Organization.level, parent.id, parent.level)
        .join(Organization, Organization.id == Problem.org_id)
        .outerjoin(parent, parent.id == Organization.parent_id)
        .where(_not_verified(), col(Problem.escalated_at).is_(None), col(Problem.deadline).is_not(None),
               col(Problem.deadline) < today - dt.timedelta(days=threshold))
        .order_by(Problem.id),
        Problem.org_id, actor,
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Problem)
    rows = session.execute(stmt).all()
    ids: list[int] = []
    now = utcnow()
    for problem, org_id, org_level, parent_id, parent_level in rows:
        to_id, to_level = (parent_id, parent_level) if parent_id is not None else (org_id, org_level)
        result = session.execute(
            update(Problem).where(Problem.id == problem.id, col(Problem.escalated_at).is_(None))
            .values(escalated_at=today, escalation_level=to_level, escalated_to_org_id=to_id,
                    version=Problem.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        ids.append(problem.id)
        audit.record(session, actor=actor, action="problem.escalate", entity=ENTITY, entity_id=problem.id,
                     org_id=problem.org_id, before={"escalated_at": None},
                     after={"escalated_at": today, "escalation_level": to_level, "escalated_to_org_id": to_id,
                            "days_overdue": (today - problem.deadline).days})
    return {"as_of": today, "threshold_days": threshold, "escalated": len(ids), "problem_ids": ids}


# ---------------------------------------------------------------- quarterly inspections (季度调研督导)


def create_inspection(session: Session, actor: Actor, data: InspectionCreate) -> QuarterlyInspection:
    """Record a visit by the level above and open the problems it found, in one transaction."""
    path = require_org_in_scope(session, actor, data.org_id)
    require_level_above(actor, path, "inspect it")
    if data.visited_on > clock.today():
        raise invalid(["body", "visited_on"], "an inspection is recorded after the visit, not before")
    targets = {p.org_id for p in data.problems if p.org_id is not None}
    if targets:
        inside = set(session.scalars(
            select(Organization.id).where(col(Organization.id).in_(targets), in_subtree(Organization.path, path))
        ))
        for i, p in enumerate(data.problems):
            if p.org_id is not None and p.org_id not in inside:
                raise invalid(["body", "problems", i, "org_id"],
                              "a problem found on the visit belongs to the inspected organisation or one below it")
    for p in data.problems:
        _check_person(session, actor, p.responsible_person_id)
    inspection = QuarterlyInspection(
        org_id=data.org_id, visited_on=data.visited_on, year=data.visited_on.year,
        quarter=(data.visited_on.month - 1) // 3 + 1, inspectors=data.inspectors, findings=data.findings,
        created_by=actor.user_id,
    )
    session.add(inspection)
    session.flush()
    audit.record(session, actor=actor, action="inspection.create", entity="quarterly_inspection",
                 entity_id=inspection.id, org_id=inspection.org_id, after=audit.snapshot(inspection))
    for p in data.problems:
        open_problem(
            session, actor, org_id=p.org_id or data.org_id, year=data.visited_on.year,
            source=ProblemSource.quarterly_inspection, description=p.description,
            cause_analysis=p.cause_analysis, rectification_measures=p.rectification_measures,
            deadline=p.deadline, responsible_person_id=p.responsible_person_id,
            link_entity=INSPECTION_LINK, link_id=inspection.id,
        )
    return inspection


def get_inspection(session: Session, actor: Actor, inspection_id: int) -> tuple[QuarterlyInspection, str]:
    row = session.execute(
        select(QuarterlyInspection, Organization.path, Organization.name)
        .join(Organization, Organization.id == QuarterlyInspection.org_id)
        .where(QuarterlyInspection.id == inspection_id)
    ).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Quarterly inspection", inspection_id)
    return row[0], row[2]


def inspection_problems(session: Session, actor: Actor, inspection_id: int) -> list[ProblemPublic]:
    """The problems the inspection opened that the actor may see."""
    today = clock.today()
    rows: list[Any] = list(session.execute(
        scoped(select(Problem, Organization.name).join(Organization, Organization.id == Problem.org_id)
               .where(Problem.link_entity == INSPECTION_LINK, Problem.link_id == inspection_id)
               .order_by(Problem.id), Problem.org_id, actor)
    ).all())
    return [present(p, name, today) for p, name in rows]


INSPECTION_SORTABLE = {
    "id": QuarterlyInspection.id, "visited_on": QuarterlyInspection.visited_on,
    "org_id": QuarterlyInspection.org_id, "created_at": QuarterlyInspection.created_at,
}


def list_inspections(
    session: Session, actor: Actor, params: PageParams, *, org_id: int | None, subtree: bool,
    year: int | None, quarter: int | None,
) -> tuple[list[dict[str, Any]], int]:
    problem_count = (
        select(func.count()).select_from(Problem)
        .where(Problem.link_entity == INSPECTION_LINK, Problem.link_id == QuarterlyInspection.id)
        .correlate(QuarterlyInspection).scalar_subquery()
    )
    stmt = scoped_to(
        session, select(QuarterlyInspection, Organization.name, problem_count)
        .join(Organization, Organization.id == QuarterlyInspection.org_id),
        QuarterlyInspection.org_id, actor, org_id, subtree=subtree,
    )
    if year is not None:
        stmt = stmt.where(QuarterlyInspection.year == year)
    if quarter is not None:
        stmt = stmt.where(QuarterlyInspection.quarter == quarter)
    return fetch_page(session, stmt, params, allowed=INSPECTION_SORTABLE,
                      default=[col(QuarterlyInspection.visited_on).desc()], tiebreak=QuarterlyInspection.id, rows=True,
                      present=lambda _s, rows: [inspection_public(i, name, count) for i, name, count in rows])


def inspection_public(inspection: QuarterlyInspection, org_name: str, problem_count: int) -> dict[str, Any]:
    return {**inspection.model_dump(), "org_name": org_name, "problem_count": problem_count}


# ---------------------------------------------------------------- summary


@cached_report(dates=lambda: clock.today())  # looked up per call: tests patch it
def summary(
    session: Session, actor: Actor, *, year: int | None, org_id: int | None, subtree: bool, rollup: bool
) -> list[ProblemSummaryRow]:
    """Per organisation: problems by status, overdue, escalated, and the average days from opening to
    verification. Grouped in the database at request time, in three statements whatever the size."""
    today = clock.today()
    scope = summary_scope(session, actor, org_id, subtree=subtree, rollup=rollup)
    conditions: list[Any] = []
    if year is not None:
        conditions.append(Problem.year == year)
    overdue = and_(col(Problem.deadline).is_not(None), col(Problem.deadline) < today, _not_verified())
    is_verified = and_(Problem.status == ProblemStatus.verified, col(Problem.verified_at).is_not(None))
    grouped: Any = session.execute(scope.join(
        select(
            scope.key, Problem.status, func.count(),
            func.sum(case((overdue, 1), else_=0)),
            func.sum(case((col(Problem.escalated_at).is_not(None), 1), else_=0)),
            func.sum(case((is_verified, days_between(Problem.created_at, Problem.verified_at)), else_=None)),
            func.sum(case((is_verified, 1), else_=0)),
        ).select_from(Problem), Problem.org_id).where(*conditions).group_by(scope.key, Problem.status)
    ).all()
    for org, status, count, n_overdue, n_escalated, days, n_verified in grouped:
        scope.add(org, str(status), count)
        scope.add(org, "total", count)
        scope.add(org, "overdue", int(n_overdue or 0))
        scope.add(org, "escalated", int(n_escalated or 0))
        scope.add(org, "verified_days", float(days or 0))
        scope.add(org, "verified_n", int(n_verified or 0))
    out = []
    for row in scope.ordered():
        c = row.counts
        n_verified = c.get("verified_n", 0)
        out.append(ProblemSummaryRow(
            org_id=row.org.id or 0, org_name=row.org.name, org_code=row.org.code, org_level=row.org.level,
            total=c.get("total", 0), open=c.get("open", 0), rectifying=c.get("rectifying", 0),
            submitted=c.get("submitted", 0), verified=c.get("verified", 0), overdue=c.get("overdue", 0),
            escalated=c.get("escalated", 0),
            avg_days_to_verify=round(c["verified_days"] / n_verified, 1) if n_verified else None,
        ))
    return out
