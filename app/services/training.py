"""Training (保): main classes with enrolment and attendance, coverage of the target roles, central and night
schools with their sessions and monthly compliance.

Who sees a class: users of its organiser's subtree and of the levels above it, and users below the organiser
(a class the city runs is offered to every township and village). A sibling township's class is 404.
Enrolments and attendance belong to the enrolled person's organisation: each level enrols and records its own
people. The yearly target of main classes and the schools' monthly minimum are `training_policy` rows (the row
with the latest `effective_year` not after the year asked about).

Every "today" is `today()` (Beijing date); tests patch `app.services.training.today`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import (
    Actor,
    get_in_scope,
    in_subtree,
    require_org_in_scope,
    scoped,
    scoped_to,
    subtree_org_ids,
    within,
)
from app.core.versioning import transition_update, versioned_update
from app.models.funds.budgets import BudgetCategory, BudgetLine, Disbursement
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Person, Position, PositionTitle
from app.models.training import (
    DEFAULT_TARGET_ROLES,
    ClassStatus,
    ComplianceReport,
    EnrolmentPublic,
    RoleCoverage,
    School,
    SchoolCompliance,
    SchoolCreate,
    SchoolKind,
    SchoolPublic,
    SchoolSession,
    SchoolSessionCreate,
    SchoolSessionPublic,
    SchoolStatus,
    TownshipCompliance,
    TrainingClass,
    TrainingClassCreate,
    TrainingClassPublic,
    TrainingClassRole,
    TrainingClassUpdate,
    TrainingCoverage,
    TrainingEnrolment,
    TrainingPolicy,
    TrainingPolicyCreate,
    UntrainedPerson,
)

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
CLASS_SORTABLE = {
    "id": TrainingClass.id, "year": TrainingClass.year, "starts_on": TrainingClass.starts_on,
    "title": TrainingClass.title, "org_id": TrainingClass.org_id,
}
ENROLMENT_SORTABLE = {"id": TrainingEnrolment.id, "person_id": TrainingEnrolment.person_id,
                      "org_id": TrainingEnrolment.org_id}
SCHOOL_SORTABLE = {"id": School.id, "name": School.name, "org_id": School.org_id, "kind": School.kind,
                   "opened_on": School.opened_on}
SESSION_SORTABLE = {"id": SchoolSession.id, "held_on": SchoolSession.held_on, "hours": SchoolSession.hours}
SCHOOL_LEVEL = {SchoolKind.central_school: OrgLevel.township, SchoolKind.night_school: OrgLevel.village}


def today() -> dt.date:
    """The local business date (Beijing time); tests monkeypatch this."""
    return dt.datetime.now(LOCAL_TZ).date()


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


# ---------------------------------------------------------------- policy (data with effective years)


def policy_for_year(session: Session, year: int) -> TrainingPolicy:
    """The policy in force for `year`: the row with the latest effective_year not after it (409 if none)."""
    row = session.scalar(
        select(TrainingPolicy).where(TrainingPolicy.effective_year <= year)
        .order_by(col(TrainingPolicy.effective_year).desc()).limit(1)
    )
    if row is None:
        raise conflict("no_training_policy", f"No training policy is in force for {year}; add one first.")
    return row


def list_policies(session: Session) -> list[TrainingPolicy]:
    return list(session.scalars(select(TrainingPolicy).order_by(TrainingPolicy.effective_year)))


def create_policy(session: Session, actor: Actor, data: TrainingPolicyCreate) -> TrainingPolicy:
    """A new target and monthly minimum from `effective_year` on (one row per year; earlier years keep theirs)."""
    if session.scalar(select(TrainingPolicy.id).where(TrainingPolicy.effective_year == data.effective_year)):
        raise conflict("duplicate_policy", f"A training policy effective from {data.effective_year} already exists.")
    policy = TrainingPolicy(**data.model_dump())
    session.add(policy)
    session.flush()
    audit.record(session, actor=actor, action="training_policy.create", entity="training_policy",
                 entity_id=policy.id, after=audit.snapshot(policy))
    return policy


# ---------------------------------------------------------------- classes


def _visible_organiser(actor: Actor) -> Any:
    """The organiser is in the actor's subtree, or above the actor (its classes are offered downwards)."""
    return or_(in_subtree(Organization.path, actor.org_path),
               literal(actor.org_path).like(Organization.path + literal("%")))


def get_class(session: Session, actor: Actor, class_id: int) -> tuple[TrainingClass, Organization]:
    row = session.execute(
        select(TrainingClass, Organization).join(Organization, Organization.id == TrainingClass.org_id)
        .where(TrainingClass.id == class_id)
    ).first()
    if row is None or not (actor.covers(row[1].path) or actor.org_path.startswith(row[1].path)):
        raise not_found("Training class", class_id)
    return row[0], row[1]


def _check_funding(session: Session, actor: Actor, year: int, line_id: int | None,
                   disbursement_id: int | None) -> None:
    if line_id is None:
        if disbursement_id is not None:
            raise invalid(["body", "disbursement_id"], "a disbursement is linked together with its budget line")
        return
    line, _ = get_in_scope(session, actor, BudgetLine, line_id, "Budget line")
    if line.category != BudgetCategory.training:
        raise invalid(["body", "budget_line_id"], f"budget line {line_id} is not a training-fund line")
    if line.fiscal_year != year:
        raise invalid(["body", "budget_line_id"], f"budget line {line_id} is of {line.fiscal_year}, not {year}")
    if disbursement_id is not None:
        line_of = session.scalar(select(Disbursement.line_id).where(Disbursement.id == disbursement_id))
        if line_of is None:
            raise not_found("Disbursement", disbursement_id)
        if line_of != line_id:
            raise invalid(["body", "disbursement_id"], f"disbursement {disbursement_id} is not from line {line_id}")


def _set_roles(session: Session, class_id: int, roles: Iterable[PositionTitle]) -> None:
    for r in session.scalars(select(TrainingClassRole).where(TrainingClassRole.class_id == class_id)):
        session.delete(r)
    session.flush()
    for role in roles:
        session.add(TrainingClassRole(class_id=class_id, role=role))
    session.flush()


def _roles_of(session: Session, class_ids: list[int]) -> dict[int, list[PositionTitle]]:
    order = {t.value: i for i, t in enumerate(PositionTitle)}
    out: dict[int, list[PositionTitle]] = {i: [] for i in class_ids}
    if class_ids:
        for cid, role in session.execute(
            select(TrainingClassRole.class_id, TrainingClassRole.role)
            .where(col(TrainingClassRole.class_id).in_(class_ids))
        ):
            out[cid].append(PositionTitle(role))
    for roles in out.values():
        roles.sort(key=lambda r: order[r.value])
    return out


def create_class(session: Session, actor: Actor, data: TrainingClassCreate) -> TrainingClass:
    """A class organised by an active organisation in scope, optionally paid from a training budget line."""
    require_org_in_scope(session, actor, data.org_id)
    if session.scalar(select(Organization.status).where(Organization.id == data.org_id)) != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {data.org_id} is dissolved.")
    _check_funding(session, actor, data.year, data.budget_line_id, data.disbursement_id)
    cls = TrainingClass(**data.model_dump(exclude={"target_roles"}), created_by=actor.user_id)
    session.add(cls)
    session.flush()
    assert cls.id is not None
    _set_roles(session, cls.id, data.target_roles)
    audit.record(session, actor=actor, action="training_class.create", entity="training_class", entity_id=cls.id,
                 org_id=cls.org_id, after={**audit.snapshot(cls), "target_roles": list(data.target_roles)})
    return cls


def update_class(session: Session, actor: Actor, cls: TrainingClass, org: Organization, data: TrainingClassUpdate,
                 expected_version: int) -> TrainingClass:
    """Edit a planned class of an organiser in scope (If-Match); dates stay in the class's year and in order."""
    if not actor.covers(org.path):
        raise not_found("Training class", cls.id)
    if cls.status == ClassStatus.cancelled:
        raise conflict("class_cancelled", f"Training class {cls.id} is cancelled and cannot be edited.")
    changes = data.model_dump(exclude_unset=True)
    for name in ("title", "starts_on", "ends_on", "hours", "is_main", "target_roles"):
        if name in changes and changes[name] is None:
            raise invalid(["body", name], f"{name} cannot be null")
    roles = changes.pop("target_roles", None)
    if roles is not None and len(set(roles)) != len(roles):
        raise invalid(["body", "target_roles"], "target_roles lists a role twice")
    starts, ends = changes.get("starts_on", cls.starts_on), changes.get("ends_on", cls.ends_on)
    if ends < starts:
        raise invalid(["body", "ends_on"], "ends_on must not be before starts_on")
    if starts.year != cls.year:
        raise invalid(["body", "starts_on"], "the class must start in its year")
    if "hours" in changes:
        most = session.scalar(select(func.max(TrainingEnrolment.attended_hours))
                              .where(TrainingEnrolment.class_id == cls.id)) or 0
        if changes["hours"] < most:
            raise conflict("hours_below_attendance", f"Someone already attended {most} hours of this class.")
    if "budget_line_id" in changes or "disbursement_id" in changes:
        _check_funding(session, actor, cls.year, changes.get("budget_line_id", cls.budget_line_id),
                       changes.get("disbursement_id", cls.disbursement_id))
    before = audit.snapshot(cls)
    old_roles = _roles_of(session, [cls.id or 0])[cls.id or 0]
    versioned_update(session, cls, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(cls))
    if roles is not None and set(roles) != set(old_roles):
        assert cls.id is not None
        _set_roles(session, cls.id, roles)
        b["target_roles"], a["target_roles"] = list(old_roles), list(roles)
    audit.record(session, actor=actor, action="training_class.update", entity="training_class", entity_id=cls.id,
                 org_id=cls.org_id, before=b, after=a)
    return cls


def _require_not_cancelled(cls: TrainingClass) -> None:
    if cls.status == ClassStatus.cancelled:
        raise conflict("class_cancelled", f"Training class {cls.id} is already cancelled.")


def cancel_class(session: Session, actor: Actor, cls: TrainingClass, org: Organization) -> TrainingClass:
    """planned → cancelled; a cancelled class counts for nobody's coverage and not against the target."""
    if not actor.covers(org.path):
        raise not_found("Training class", cls.id)
    _require_not_cancelled(cls)
    # A concurrent cancel that committed first makes this one a 409, as if it had come second.
    transition_update(session, cls, {"status": ClassStatus.cancelled}, _require_not_cancelled)
    audit.record(session, actor=actor, action="training_class.cancel", entity="training_class", entity_id=cls.id,
                 org_id=cls.org_id, before={"status": ClassStatus.planned}, after={"status": ClassStatus.cancelled})
    return cls


def classes_public(session: Session, rows: list[tuple[TrainingClass, str]]) -> list[TrainingClassPublic]:
    """Classes with their roles and enrolment counts: two statements whatever their number."""
    ids = [c.id for c, _ in rows if c.id is not None]
    roles = _roles_of(session, ids)
    counts: dict[int, tuple[int, int]] = {}
    if ids:
        counts = {cid: (int(n), int(att or 0)) for cid, n, att in session.execute(
            select(TrainingEnrolment.class_id, func.count(),
                   func.sum(case((col(TrainingEnrolment.attended_hours) > 0, 1), else_=0)))
            .where(col(TrainingEnrolment.class_id).in_(ids)).group_by(TrainingEnrolment.class_id)
        )}
    return [TrainingClassPublic.model_validate(c, update={
        "org_name": name, "target_roles": roles.get(c.id or 0, []),
        "enrolled": counts.get(c.id or 0, (0, 0))[0], "attended": counts.get(c.id or 0, (0, 0))[1],
    }) for c, name in rows]


def list_classes(
    session: Session, actor: Actor, params: PageParams, *, year: int | None, is_main: bool | None,
    status: str | None, role: str | None, org_id: int | None, subtree: bool,
) -> tuple[list[TrainingClassPublic], int]:
    stmt = (select(TrainingClass, Organization.name).join(Organization, Organization.id == TrainingClass.org_id)
            .where(_visible_organiser(actor)))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = within(stmt, TrainingClass.org_id, path, subtree=subtree, org_id=org_id)
    if year is not None:
        stmt = stmt.where(TrainingClass.year == year)
    if is_main is not None:
        stmt = stmt.where(TrainingClass.is_main == is_main)
    if status is not None:
        stmt = stmt.where(TrainingClass.status == status)
    if role is not None:
        stmt = stmt.where(col(TrainingClass.id).in_(
            select(TrainingClassRole.class_id).where(TrainingClassRole.role == role)))
    return fetch_page(session, stmt, params, allowed=CLASS_SORTABLE, default=[col(TrainingClass.starts_on).desc()],
                      tiebreak=TrainingClass.id, rows=True, present=classes_public)


# ---------------------------------------------------------------- enrolment and attendance


def enrol(session: Session, actor: Actor, cls: TrainingClass, person_ids: list[int]) -> list[TrainingEnrolment]:
    """Enrol people of the actor's scope in a planned class; someone already enrolled is a 409."""
    if cls.status == ClassStatus.cancelled:
        raise conflict("class_cancelled", f"Training class {cls.id} is cancelled.")
    found = {pid: (org_id, path) for pid, org_id, path in session.execute(
        select(Person.id, Person.org_id, Organization.path).join(Organization, Organization.id == Person.org_id)
        .where(col(Person.id).in_(person_ids))
    )}
    for pid in person_ids:
        if pid not in found or not actor.covers(found[pid][1]):
            raise not_found("Person", pid)
    already = set(session.scalars(select(TrainingEnrolment.person_id).where(
        TrainingEnrolment.class_id == cls.id, col(TrainingEnrolment.person_id).in_(person_ids))))
    if already:
        raise conflict("already_enrolled", f"Already enrolled in class {cls.id}: person(s) "
                                           f"{', '.join(str(p) for p in sorted(already))}.")
    out = []
    for pid in person_ids:
        assert cls.id is not None
        row = TrainingEnrolment(class_id=cls.id, person_id=pid, org_id=found[pid][0], enrolled_by=actor.user_id)
        session.add(row)
        out.append(row)
    session.flush()
    for row in out:
        audit.record(session, actor=actor, action="training_enrolment.create", entity="training_enrolment",
                     entity_id=row.id, org_id=row.org_id, after=audit.snapshot(row))
    return out


def enrolments_public(session: Session, rows: list[TrainingEnrolment]) -> list[EnrolmentPublic]:
    ids = [r.person_id for r in rows]
    names: dict[int, str] = {}
    if ids:
        names = dict(session.execute(select(Person.id, Person.name).where(col(Person.id).in_(ids))).all())
    return [EnrolmentPublic.model_validate(r, update={
        "person_name": names.get(r.person_id, ""), "attended": (r.attended_hours or 0) > 0}) for r in rows]


def list_enrolments(session: Session, actor: Actor, cls: TrainingClass, params: PageParams,
                    *, attended: bool | None) -> tuple[list[EnrolmentPublic], int]:
    """The class's enrolments of people in the actor's scope."""
    stmt = scoped(select(TrainingEnrolment).where(TrainingEnrolment.class_id == cls.id), TrainingEnrolment.org_id,
                  actor)
    if attended is not None:
        hours = col(TrainingEnrolment.attended_hours)
        stmt = stmt.where(hours > 0 if attended else or_(hours.is_(None), hours == 0))
    return fetch_page(session, stmt, params, allowed=ENROLMENT_SORTABLE, default=[], tiebreak=TrainingEnrolment.id,
                      present=enrolments_public)


def record_attendance(session: Session, actor: Actor, enrolment_id: int, hours: int) -> TrainingEnrolment:
    """Hours attended (0: absent), at most the class's hours, once the class has begun."""
    row = session.execute(
        select(TrainingEnrolment, Organization.path, TrainingClass)
        .join(Organization, Organization.id == TrainingEnrolment.org_id)
        .join(TrainingClass, TrainingClass.id == TrainingEnrolment.class_id)
        .where(TrainingEnrolment.id == enrolment_id)
    ).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Enrolment", enrolment_id)
    enrolment, _path, cls = row
    if cls.status == ClassStatus.cancelled:
        raise conflict("class_cancelled", f"Training class {cls.id} is cancelled.")
    if cls.starts_on > today():
        raise conflict("class_not_started", f"Training class {cls.id} starts on {cls.starts_on}; "
                                            "attendance is recorded once it has begun.")
    if hours > cls.hours:
        raise invalid(["body", "attended_hours"], f"at most the class's {cls.hours} hours")
    before = {"attended_hours": enrolment.attended_hours}
    # No If-Match: a concurrent recording that committed first is a 409 (fetch and record again), not a 412. The
    # enrolment has no state of its own that refuses a recording (the class's is checked above), so nothing to recheck.
    transition_update(session, enrolment, {"attended_hours": hours}, lambda _current: None)
    audit.record(session, actor=actor, action="training_enrolment.attendance", entity="training_enrolment",
                 entity_id=enrolment.id, org_id=enrolment.org_id, before=before, after={"attended_hours": hours})
    return enrolment


# ---------------------------------------------------------------- coverage


def _region(session: Session, actor: Actor, org_id: int | None, subtree: bool) -> tuple[int, str, bool, Any]:
    """The organisations a report counts: org_id (with its subtree) or, without org_id, the actor's subtree."""
    if org_id is None:
        if actor.org_id is None:
            raise invalid(["query", "org_id"], "org_id is required")
        org_id, subtree = actor.org_id, True
    path = require_org_in_scope(session, actor, org_id)
    ids = subtree_org_ids(path) if subtree else select(literal(org_id))
    return org_id, path, subtree, ids


def coverage(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool,
             roles: list[PositionTitle] | None) -> TrainingCoverage:
    """For each target role: the people who held it at any time in `year` in the organisations counted (each
    person once per role, however many positions), those of them who attended at least one class of the year
    (attended hours > 0, class not cancelled), and those not yet trained; with the main classes against the
    year's target. Five statements whatever the number of organisations and people."""
    wanted = list(dict.fromkeys(roles or DEFAULT_TARGET_ROLES))
    root_id, _path, subtree, org_ids = _region(session, actor, org_id, subtree)
    policy = policy_for_year(session, year)
    held_clause = and_(
        col(Position.title).in_([str(r) for r in wanted]), col(Position.org_id).in_(org_ids),
        Position.started_on <= dt.date(year, 12, 31),
        or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= dt.date(year, 1, 1)),
    )
    holders = session.execute(
        select(Position.title, Person.id, Person.name, Organization.id, Organization.name)
        .join(Person, Person.id == Position.person_id).join(Organization, Organization.id == Position.org_id)
        .where(held_clause).order_by(Organization.path, Person.id, Position.started_on, Position.id)
    ).all()
    trained = set(session.scalars(
        select(TrainingEnrolment.person_id).distinct()
        .join(TrainingClass, TrainingClass.id == TrainingEnrolment.class_id)
        .where(TrainingClass.year == year, TrainingClass.status != ClassStatus.cancelled,
               col(TrainingEnrolment.attended_hours) > 0,
               col(TrainingEnrolment.person_id).in_(select(Position.person_id).where(held_clause)))
    ))
    by_role: dict[str, dict[int, UntrainedPerson]] = {str(r): {} for r in wanted}
    for title, pid, name, oid, oname in holders:
        by_role[str(title)].setdefault(pid, UntrainedPerson(person_id=pid, name=name, org_id=oid, org_name=oname))
    out_roles = []
    everyone: set[int] = set()
    for role in wanted:
        people = by_role[str(role)]
        everyone |= set(people)
        n_trained = sum(1 for p in people if p in trained)
        out_roles.append(RoleCoverage(
            role=role, held=len(people), trained=n_trained, coverage_pct=percent(n_trained, len(people)),
            untrained=[p for pid, p in people.items() if pid not in trained],
        ))
    as_of = min(today(), dt.date(year, 12, 31))
    planned, held = session.execute(
        select(func.count(), func.sum(case((TrainingClass.ends_on <= as_of, 1), else_=0)))
        .select_from(TrainingClass).join(Organization, Organization.id == TrainingClass.org_id)
        .where(TrainingClass.year == year, col(TrainingClass.is_main).is_(True),
               TrainingClass.status != ClassStatus.cancelled, _visible_organiser(actor))
    ).one()
    people_trained = len(everyone & trained)
    return TrainingCoverage(
        year=year, org_id=root_id, subtree=subtree, roles=out_roles, people_held=len(everyone),
        people_trained=people_trained, coverage_pct=percent(people_trained, len(everyone)),
        main_classes_held=int(held or 0), main_classes_planned=int(planned or 0),
        main_classes_target=policy.main_classes_target,
        main_classes_target_met=int(held or 0) >= policy.main_classes_target,
    )


# ---------------------------------------------------------------- schools


def _school_row(session: Session, actor: Actor, school_id: int) -> tuple[School, Organization]:
    row = session.execute(
        select(School, Organization).join(Organization, Organization.id == School.org_id).where(School.id == school_id)
    ).first()
    if row is None or not actor.covers(row[1].path):
        raise not_found("School", school_id)
    return row[0], row[1]


def get_school(session: Session, actor: Actor, school_id: int) -> SchoolPublic:
    school, org = _school_row(session, actor, school_id)
    return SchoolPublic.model_validate(school, update={"org_name": org.name})


def create_school(session: Session, actor: Actor, data: SchoolCreate) -> School:
    """A central school belongs to a township, a night school to a village; names are unique per organisation."""
    require_org_in_scope(session, actor, data.org_id)
    org = session.get(Organization, data.org_id)
    assert org is not None
    if org.status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org.id} is dissolved.")
    if org.level != SCHOOL_LEVEL[data.kind]:
        raise invalid(["body", "org_id"], f"a {data.kind} belongs to a {SCHOOL_LEVEL[data.kind]} organisation")
    for sid, kind, name in session.execute(
        select(School.id, School.kind, School.name).where(School.org_id == data.org_id, School.kind == data.kind)
    ):
        if name == data.name or kind == SchoolKind.central_school:
            raise conflict("duplicate_school", f"Organisation {org.id} already has this school (school {sid}).")
    school = School(**data.model_dump())
    session.add(school)
    session.flush()
    audit.record(session, actor=actor, action="school.create", entity="school", entity_id=school.id,
                 org_id=school.org_id, after=audit.snapshot(school))
    return school


def _require_school_open(school: School) -> None:
    if school.status == SchoolStatus.closed:
        raise conflict("school_closed", f"School {school.id} is already closed.")


def close_school(session: Session, actor: Actor, school_id: int, closed_on: dt.date) -> School:
    school, _org = _school_row(session, actor, school_id)
    _require_school_open(school)
    if closed_on < school.opened_on:
        raise invalid(["body", "closed_on"], "a school closes after it opened")
    last = session.scalar(select(func.max(SchoolSession.held_on)).where(SchoolSession.school_id == school.id))
    if last is not None and closed_on < last:
        raise invalid(["body", "closed_on"], f"the school held a session on {last}")
    # A concurrent close that committed first makes this one a 409, as if it had come second.
    transition_update(session, school, {"status": SchoolStatus.closed, "closed_on": closed_on}, _require_school_open)
    audit.record(session, actor=actor, action="school.close", entity="school", entity_id=school.id,
                 org_id=school.org_id, before={"status": SchoolStatus.active, "closed_on": None},
                 after={"status": SchoolStatus.closed, "closed_on": closed_on})
    return school


def list_schools(session: Session, actor: Actor, params: PageParams, *, kind: str | None, status: str | None,
                 org_id: int | None, subtree: bool) -> tuple[list[SchoolPublic], int]:
    stmt = scoped_to(session, select(School, Organization.name).join(Organization, Organization.id == School.org_id),
                     School.org_id, actor, org_id, subtree=subtree)
    if kind is not None:
        stmt = stmt.where(School.kind == kind)
    if status is not None:
        stmt = stmt.where(School.status == status)
    return fetch_page(session, stmt, params, allowed=SCHOOL_SORTABLE, default=[School.org_id], tiebreak=School.id,
                      rows=True, present=lambda _s, rows: [
                          SchoolPublic.model_validate(s, update={"org_name": n}) for s, n in rows])


def add_session(session: Session, actor: Actor, school_id: int, data: SchoolSessionCreate) -> SchoolSession:
    """Record a session held on a day the school was open, not in the future."""
    school, _org = _school_row(session, actor, school_id)
    if data.held_on > today():
        raise invalid(["body", "held_on"], "a session is recorded after it was held")
    if data.held_on < school.opened_on or (school.closed_on is not None and data.held_on > school.closed_on):
        raise conflict("school_not_open", f"School {school.id} was not open on {data.held_on}.")
    assert school.id is not None
    row = SchoolSession(**data.model_dump(), school_id=school.id, org_id=school.org_id, created_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="school_session.create", entity="school_session", entity_id=row.id,
                 org_id=row.org_id, after=audit.snapshot(row))
    return row


def month_bounds(year: int, month: int) -> tuple[dt.date, dt.date]:
    start = dt.date(year, month, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return start, end


def list_sessions(session: Session, actor: Actor, school_id: int, params: PageParams, *, year: int | None,
                  month: int | None) -> tuple[list[SchoolSessionPublic], int]:
    _school_row(session, actor, school_id)
    stmt = select(SchoolSession).where(SchoolSession.school_id == school_id)
    if year is not None and month is not None:
        start, end = month_bounds(year, month)
        stmt = stmt.where(SchoolSession.held_on >= start, SchoolSession.held_on <= end)
    elif year is not None:
        stmt = stmt.where(SchoolSession.held_on >= dt.date(year, 1, 1), SchoolSession.held_on <= dt.date(year, 12, 31))
    elif month is not None:
        raise invalid(["query", "month"], "month goes with year")
    return fetch_page(session, stmt, params, allowed=SESSION_SORTABLE, default=[SchoolSession.held_on],
                      tiebreak=SchoolSession.id)


def compliance(session: Session, actor: Actor, *, year: int, month: int, org_id: int | None,
               subtree: bool) -> ComplianceReport:
    """Per school open during the month: sessions and class hours held, pass (both minimums reached) or fail with
    the shortfall; per township the share of compliant schools. Five statements whatever the number of schools."""
    policy = policy_for_year(session, year)
    _root, _path, _subtree, org_ids = _region(session, actor, org_id, subtree)
    start, end = month_bounds(year, month)
    schools = session.execute(
        select(School, Organization.name, Organization.path).join(Organization, Organization.id == School.org_id)
        .where(col(School.org_id).in_(org_ids), School.opened_on <= end,
               or_(col(School.closed_on).is_(None), col(School.closed_on) >= start))
        .order_by(Organization.path, School.kind, School.id)
    ).all()
    held = {sid: (int(n), int(h or 0)) for sid, n, h in session.execute(
        select(SchoolSession.school_id, func.count(), func.sum(SchoolSession.hours))
        .where(col(SchoolSession.org_id).in_(org_ids), SchoolSession.held_on >= start, SchoolSession.held_on <= end)
        .group_by(SchoolSession.school_id)
    )}
    township_of = {}
    for school, _name, path in schools:
        parts = path.strip("/").split("/")
        township_of[school.id] = int(parts[1]) if len(parts) >= 2 else None
    names: dict[int, str] = dict(session.execute(select(Organization.id, Organization.name).where(
        col(Organization.id).in_({t for t in township_of.values() if t is not None}))).all()) \
        if township_of else {}
    rows: list[SchoolCompliance] = []
    per_township: dict[int, list[int]] = {}
    for school, org_name, _path in schools:
        n, hours = held.get(school.id or 0, (0, 0))
        ok = n >= policy.school_min_sessions and hours >= policy.school_min_hours
        tid = township_of[school.id]
        rows.append(SchoolCompliance(
            school_id=school.id or 0, school_name=school.name, kind=school.kind, org_id=school.org_id,
            org_name=org_name, township_id=tid, sessions=n, hours=hours, compliant=ok,
            sessions_short=max(0, policy.school_min_sessions - n), hours_short=max(0, policy.school_min_hours - hours),
        ))
        if tid is not None:
            tally = per_township.setdefault(tid, [0, 0])
            tally[0] += 1
            tally[1] += int(ok)
    townships = [TownshipCompliance(township_id=t, township_name=names.get(t, ""), schools=total, compliant=good,
                                    compliant_pct=percent(good, total)) for t, (total, good) in per_township.items()]
    good = sum(1 for r in rows if r.compliant)
    return ComplianceReport(year=year, month=month, min_sessions=policy.school_min_sessions,
                            min_hours=policy.school_min_hours, schools=rows, townships=townships, compliant=good,
                            total=len(rows), compliant_pct=percent(good, len(rows)))
