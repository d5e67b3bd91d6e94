"""The rules of duty posts (设岗定责).

- A post belongs to a village or branch organisation and a year, with a capacity.
- Only full or probationary members of the post's organisation, on the roll and holding no
  position on the day in question ("without office"), may apply, be proposed or take a post.
- A pending application or proposal holds a place like a held post; a rejection, a decline,
  an end or a cancellation frees it. Places are taken by a conditional UPDATE
  (`filled = filled + 1 WHERE filled < capacity`) whose row count is checked, and the table
  has CHECK (filled <= capacity): concurrent applications can never overfill a post.
- A member holds (or has pending) at most `post_policy.max_posts_per_member` posts a year.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, require_org_in_scope, subtree_org_ids
from app.core.versioning import versioned_update
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import MemberStatus, Person, PersonStatus, Position
from app.models.posts import (
    HELD,
    PLACE_HOLDING,
    AssignmentCreate,
    AssignmentEnd,
    AssignmentPublic,
    AssignmentReview,
    AssignmentRoute,
    AssignmentStatus,
    AssignmentTake,
    DutyPost,
    DutyPostCreate,
    DutyPostUpdate,
    FieldCount,
    GradeCount,
    PostAssignment,
    PostField,
    PostLog,
    PostLogCreate,
    PostPolicy,
    PostPolicyCreate,
    PostReviewGrade,
    PostStatus,
    PostSummary,
    percentage,
    to_tenths,
)
from app.services import people

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
POST_LEVELS = (OrgLevel.village, OrgLevel.branch)
MEMBER_STATUSES = (MemberStatus.full, MemberStatus.probationary)

POST_SORTABLE = {
    "id": DutyPost.id, "year": DutyPost.year, "title": DutyPost.title, "field": DutyPost.field,
    "capacity": DutyPost.capacity, "filled": DutyPost.filled, "created_at": DutyPost.created_at,
}
ASSIGNMENT_SORTABLE = {
    "id": PostAssignment.id, "year": PostAssignment.year, "status": PostAssignment.status,
    "requested_on": PostAssignment.requested_on, "assigned_on": PostAssignment.assigned_on,
    "review_grade": PostAssignment.review_grade, "created_at": PostAssignment.created_at,
}
LOG_SORTABLE = {"id": PostLog.id, "entry_date": PostLog.entry_date, "hours": PostLog.hours_tenths}


def today() -> dt.date:
    """The local business date; tests monkeypatch this to fix "today"."""
    return dt.datetime.now(LOCAL_TZ).date()


# ---------------------------------------------------------------------------
# Policy (data, with effective years)


def max_posts_for_year(session: Session, year: int) -> int:
    """The cap in force for `year`: the policy row with the latest effective_year not after it."""
    value = session.scalar(
        select(PostPolicy.max_posts_per_member)
        .where(PostPolicy.effective_year <= year)
        .order_by(col(PostPolicy.effective_year).desc())
        .limit(1)
    )
    if value is None:
        raise conflict("no_post_policy", f"No duty-post policy is in force for {year}; add one first.")
    return value


def list_policies(session: Session) -> list[PostPolicy]:
    return list(session.scalars(select(PostPolicy).order_by(PostPolicy.effective_year)))


def create_policy(session: Session, actor: Actor, data: PostPolicyCreate) -> PostPolicy:
    if session.scalar(select(PostPolicy.id).where(PostPolicy.effective_year == data.effective_year)):
        raise conflict("duplicate_policy", f"A policy effective from {data.effective_year} already exists.")
    policy = PostPolicy(**data.model_dump())
    session.add(policy)
    session.flush()
    audit.record(session, actor=actor, action="post_policy.create", entity="post_policy", entity_id=policy.id,
                 after=audit.snapshot(policy))
    return policy


# ---------------------------------------------------------------------------
# Who may hold a post


def _positions_on(session: Session, person_id: int, on: dt.date) -> list[Position]:
    # The positions behind a "not without office" answer, for the 422's reasons (people's rule:
    # a position counts from started_on through ended_on, both inclusive).
    return list(session.scalars(
        select(Position).where(
            Position.person_id == person_id, Position.started_on <= on,
            or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= on),
        ).order_by(Position.started_on)
    ))


def holds_office_clause(person_id_col: Any, on: dt.date) -> Any:
    """SQL: the person holds some position on `on` (the set-based form of the rule above)."""
    return exists().where(
        Position.person_id == person_id_col, Position.started_on <= on,
        or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= on),
    )


def eligibility_problems(session: Session, post: DutyPost, person: Person, on: dt.date) -> list[str]:
    """Why `person` cannot hold `post` on `on` (empty when they can)."""
    reasons: list[str] = []
    if person.org_id != post.org_id:
        reasons.append(f"{person.name} is not a member of organisation {post.org_id}, which set the post")
    if person.status != PersonStatus.active:
        reasons.append(f"{person.name} is not on the roll (status {person.status})")
    if person.member_status not in MEMBER_STATUSES:
        reasons.append(f"{person.name} is not a full or probationary party member")
    if people.is_without_office(session, person_id=person.id, on=on):
        return reasons
    for pos in _positions_on(session, person.id, on):
        reasons.append(
            f"{person.name} holds a position on {on.isoformat()} ({pos.title} of organisation {pos.org_id} "
            f"since {pos.started_on.isoformat()}): duty posts are for members without office"
        )
    return reasons


def _require_eligible(session: Session, post: DutyPost, person: Person, on: dt.date) -> None:
    reasons = eligibility_problems(session, post, person, on)
    if reasons:
        raise ProblemError(
            422, "not_eligible", "; ".join(reasons),
            errors=[{"loc": ["body", "person_id"], "msg": r} for r in reasons],
        )


def _in_year(value: dt.date, year: int, loc: list[str | int], what: str) -> None:
    if value.year != year:
        raise invalid(loc, f"{what} must fall in the post's year {year}")


# ---------------------------------------------------------------------------
# Posts


def _post_with_path(session: Session, actor: Actor, post_id: int) -> tuple[DutyPost, str]:
    row = session.execute(
        select(DutyPost, Organization.path).join(Organization, Organization.id == DutyPost.org_id)
        .where(DutyPost.id == post_id)
    ).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Duty post", post_id)
    return row[0], row[1]


def get_post(session: Session, actor: Actor, post_id: int) -> DutyPost:
    return _post_with_path(session, actor, post_id)[0]


@dataclass
class PostFilters:
    year: int | None = None
    field: str | None = None
    status: str | None = None
    org_id: int | None = None
    subtree: bool = False


def _org_filter(session: Session, actor: Actor, stmt: Any, org_col: Any, org_id: int | None, subtree: bool) -> Any:
    if org_id is None:
        return stmt if actor.sees_everything else stmt.where(org_col.in_(subtree_org_ids(actor.org_path)))
    path = require_org_in_scope(session, actor, org_id)
    return stmt.where(org_col.in_(subtree_org_ids(path))) if subtree else stmt.where(org_col == org_id)


def list_posts(session: Session, actor: Actor, f: PostFilters, params: PageParams) -> tuple[list[DutyPost], int]:
    stmt = _org_filter(session, actor, select(DutyPost), DutyPost.org_id, f.org_id, f.subtree)
    if f.year is not None:
        stmt = stmt.where(DutyPost.year == f.year)
    if f.field:
        stmt = stmt.where(DutyPost.field == f.field)
    if f.status:
        stmt = stmt.where(DutyPost.status == f.status)
    return fetch_page(session, stmt, params, allowed=POST_SORTABLE,
                      default=[col(DutyPost.year).desc(), DutyPost.org_id], tiebreak=DutyPost.id)


def create_post(session: Session, actor: Actor, data: DutyPostCreate) -> DutyPost:
    """Set a post in a village or branch organisation in the actor's scope."""
    require_org_in_scope(session, actor, data.org_id)
    org = session.get(Organization, data.org_id)
    assert org is not None
    if org.level not in POST_LEVELS:
        raise invalid(["body", "org_id"], f"duty posts are set by village or branch organisations, not a {org.level}")
    if org.status != OrgStatus.active:
        raise conflict("org_dissolved", f"Organisation {org.id} is dissolved.")
    post = DutyPost(**data.model_dump(), filled=0, status=PostStatus.open)
    session.add(post)
    session.flush()
    audit.record(session, actor=actor, action="duty_post.create", entity="duty_post", entity_id=post.id,
                 org_id=post.org_id, after=audit.snapshot(post))
    return post


def update_post(session: Session, actor: Actor, post: DutyPost, data: DutyPostUpdate,
                expected_version: int) -> DutyPost:
    changes = data.model_dump(exclude_unset=True)
    for key in ("title", "field", "duties", "capacity"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], f"{key} cannot be empty")
    if "capacity" in changes and changes["capacity"] < post.filled:
        raise conflict("capacity_below_filled",
                       f"Post {post.id} has {post.filled} places taken; capacity cannot go below that.")
    before = audit.snapshot(post)
    versioned_update(session, post, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(post))
    audit.record(session, actor=actor, action="duty_post.update", entity="duty_post", entity_id=post.id,
                 org_id=post.org_id, before=b, after=a)
    return post


def set_post_status(session: Session, actor: Actor, post: DutyPost, status: PostStatus) -> DutyPost:
    """Close a post to new applications and proposals, or reopen it."""
    if post.status == status:
        raise conflict(f"already_{status}", f"Post {post.id} is already {status}.")
    before = {"status": post.status}
    versioned_update(session, post, post.version, {"status": status})
    audit.record(session, actor=actor, action=f"duty_post.{'close' if status == PostStatus.closed else 'reopen'}",
                 entity="duty_post", entity_id=post.id, org_id=post.org_id, before=before,
                 after={"status": post.status})
    return post


def _take_place(session: Session, post: DutyPost) -> None:
    """One place on the post, or 409: the check and the increment are one statement."""
    result = session.execute(
        update(DutyPost)
        .where(DutyPost.id == post.id, DutyPost.filled < DutyPost.capacity, DutyPost.status == PostStatus.open)
        .values(filled=DutyPost.filled + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(post)
        if post.status != PostStatus.open:
            raise conflict("post_closed", f"Post {post.id} is closed to new applications and proposals.")
        raise conflict("post_full", f"Post {post.id} is full: all {post.capacity} places are taken.")


def _free_place(session: Session, post_id: int) -> None:
    session.execute(
        update(DutyPost).where(DutyPost.id == post_id, DutyPost.filled > 0)
        .values(filled=DutyPost.filled - 1).execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------------------
# Assignments


def get_assignment(session: Session, actor: Actor, assignment_id: int) -> PostAssignment:
    row = session.execute(
        select(PostAssignment, Organization.path).join(Organization, Organization.id == PostAssignment.org_id)
        .where(PostAssignment.id == assignment_id)
    ).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Post assignment", assignment_id)
    return row[0]


def assignment_public(session: Session, items: list[PostAssignment]) -> list[AssignmentPublic]:
    """With the members' names, in one query whatever the number of items."""
    ids = {a.person_id for a in items}
    names: dict[int, str] = {}
    if ids:
        rows = session.execute(select(Person.id, Person.name).where(col(Person.id).in_(ids))).all()
        names = {pid: name for pid, name in rows}
    return [AssignmentPublic.model_validate(a, update={"person_name": names.get(a.person_id)}) for a in items]


@dataclass
class AssignmentFilters:
    year: int | None = None
    post_id: int | None = None
    person_id: int | None = None
    status: str | None = None
    route: str | None = None
    review_grade: str | None = None
    org_id: int | None = None
    subtree: bool = False


def list_assignments(session: Session, actor: Actor, f: AssignmentFilters,
                     params: PageParams) -> tuple[list[PostAssignment], int]:
    stmt = _org_filter(session, actor, select(PostAssignment), PostAssignment.org_id, f.org_id, f.subtree)
    for column, value in ((PostAssignment.year, f.year), (PostAssignment.post_id, f.post_id),
                          (PostAssignment.person_id, f.person_id), (PostAssignment.status, f.status),
                          (PostAssignment.route, f.route), (PostAssignment.review_grade, f.review_grade)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=ASSIGNMENT_SORTABLE,
                      default=[col(PostAssignment.year).desc(), PostAssignment.post_id], tiebreak=PostAssignment.id)


def _person_in_scope(session: Session, actor: Actor, person_id: int, *, lock: bool = False) -> Person:
    stmt = select(Person, Organization.path).join(Organization, Organization.id == Person.org_id) \
        .where(Person.id == person_id)
    if lock:
        # Serialises one member's concurrent applications, so the yearly cap holds.
        stmt = stmt.with_for_update(of=Person)
    row = session.execute(stmt).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Person", person_id)
    return row[0]


def create_assignment(session: Session, actor: Actor, data: AssignmentCreate) -> PostAssignment:
    """Record a member's application (self-selection) or the organisation's proposal (org-assisted).

    Either holds a place on the post until it is decided.
    """
    post, _ = _post_with_path(session, actor, data.post_id)
    person = _person_in_scope(session, actor, data.person_id, lock=True)
    _in_year(data.requested_on, post.year, ["body", "requested_on"], "requested_on")
    if data.requested_on > today():
        raise invalid(["body", "requested_on"], "requested_on cannot be in the future")
    if post.status != PostStatus.open:
        raise conflict("post_closed", f"Post {post.id} is closed to new applications and proposals.")
    _require_eligible(session, post, person, data.requested_on)
    live = session.scalar(
        select(PostAssignment.id).where(PostAssignment.post_id == post.id, PostAssignment.person_id == person.id,
                                        col(PostAssignment.status).in_(PLACE_HOLDING))
    )
    if live is not None:
        raise conflict("already_assigned", f"{person.name} already applied for, was proposed for or holds post "
                       f"{post.id} (assignment {live}).")
    cap = max_posts_for_year(session, post.year)
    held = session.scalar(
        select(func.count()).select_from(PostAssignment)
        .where(PostAssignment.person_id == person.id, PostAssignment.year == post.year,
               col(PostAssignment.status).in_(PLACE_HOLDING))
    ) or 0
    if held >= cap:
        raise conflict("post_limit_reached",
                       f"{person.name} already holds or awaits {held} posts in {post.year}; the limit is {cap}.")
    _take_place(session, post)
    status = AssignmentStatus.applied if data.route == AssignmentRoute.self_selected else AssignmentStatus.proposed
    assignment = PostAssignment(
        post_id=post.id, person_id=person.id, org_id=post.org_id, year=post.year, route=data.route,
        status=status, requested_on=data.requested_on, note=data.note,
    )
    session.add(assignment)
    session.flush()
    session.refresh(post)
    audit.record(session, actor=actor, action=f"post_assignment.{'apply' if status == 'applied' else 'propose'}",
                 entity="post_assignment", entity_id=assignment.id, org_id=assignment.org_id,
                 after=audit.snapshot(assignment))
    return assignment


def _transition(session: Session, assignment: PostAssignment, allowed: tuple[AssignmentStatus, ...],
                changes: dict[str, Any], verb: str) -> None:
    """Change status only if it is still one of `allowed` (409 otherwise), in one conditional UPDATE."""
    if assignment.status not in allowed:
        raise conflict("wrong_status", f"Assignment {assignment.id} is {assignment.status}; "
                       f"only {' or '.join(allowed)} assignments can be {verb}.")
    result = session.execute(
        update(PostAssignment)
        .where(PostAssignment.id == assignment.id, col(PostAssignment.status).in_(allowed))
        .values(**changes, version=PostAssignment.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("wrong_status", f"Assignment {assignment.id} was changed meanwhile; fetch it again.")
    session.refresh(assignment)


def _record(session: Session, actor: Actor, assignment: PostAssignment, verb: str,
            before: dict[str, Any]) -> None:
    b, a = audit.changed(before, audit.snapshot(assignment))
    audit.record(session, actor=actor, action=f"post_assignment.{verb}", entity="post_assignment",
                 entity_id=assignment.id, org_id=assignment.org_id, before=b, after=a)


# verb → (route it applies to, pending status, outcome)
_DECISIONS: dict[str, tuple[AssignmentRoute, AssignmentStatus, AssignmentStatus]] = {
    "approve": (AssignmentRoute.self_selected, AssignmentStatus.applied, AssignmentStatus.active),
    "accept": (AssignmentRoute.org_assisted, AssignmentStatus.proposed, AssignmentStatus.active),
    "reject": (AssignmentRoute.self_selected, AssignmentStatus.applied, AssignmentStatus.rejected),
    "decline": (AssignmentRoute.org_assisted, AssignmentStatus.proposed, AssignmentStatus.declined),
}


def _decision(assignment: PostAssignment, verb: str) -> AssignmentStatus:
    route, pending, _ = _DECISIONS[verb]
    if assignment.route != route:
        other = {"approve": "accept", "accept": "approve", "reject": "decline", "decline": "reject"}[verb]
        raise conflict("wrong_route", f"Assignment {assignment.id} is {assignment.route}, not {route}: "
                       f"use {other} instead of {verb}.")
    return pending


def take_post(session: Session, actor: Actor, assignment: PostAssignment, data: AssignmentTake,
              *, verb: str) -> PostAssignment:
    """Approve an application (`approve`), or record the member's acceptance of a proposal (`accept`)."""
    pending = _decision(assignment, verb)
    if assignment.status != pending:
        raise conflict("wrong_status", f"Assignment {assignment.id} is {assignment.status}; only {pending} "
                       f"assignments can be {verb}d.")
    if data.assigned_on < assignment.requested_on:
        raise invalid(["body", "assigned_on"], "assigned_on cannot be before the application or proposal")
    _in_year(data.assigned_on, assignment.year, ["body", "assigned_on"], "assigned_on")
    if data.assigned_on > today():
        raise invalid(["body", "assigned_on"], "assigned_on cannot be in the future")
    post = session.get(DutyPost, assignment.post_id)
    person = session.get(Person, assignment.person_id)
    assert post is not None and person is not None
    _require_eligible(session, post, person, data.assigned_on)
    before = audit.snapshot(assignment)
    changes: dict[str, Any] = {"status": AssignmentStatus.active, "assigned_on": data.assigned_on,
                               "decided_by": actor.user_id}
    if data.note is not None:
        changes["note"] = data.note
    _transition(session, assignment, (pending,), changes, f"{verb}d")
    _record(session, actor, assignment, verb, before)
    return assignment


def refuse_post(session: Session, actor: Actor, assignment: PostAssignment, reason: str,
                *, verb: str) -> PostAssignment:
    """The organisation rejects an application (`reject`), or the member declines a proposal (`decline`).

    The place is freed.
    """
    pending = _decision(assignment, verb)
    outcome = _DECISIONS[verb][2]
    before = audit.snapshot(assignment)
    _transition(session, assignment, (pending,),
                {"status": outcome, "decision_reason": reason, "decided_by": actor.user_id}, f"{verb}d")
    _free_place(session, assignment.post_id)
    _record(session, actor, assignment, verb, before)
    return assignment


def end_assignment(session: Session, actor: Actor, assignment: PostAssignment, data: AssignmentEnd) -> PostAssignment:
    """The member leaves the post; the place is freed for another member."""
    if assignment.status == AssignmentStatus.active:
        assert assignment.assigned_on is not None
        if data.ended_on < assignment.assigned_on:
            raise invalid(["body", "ended_on"], "ended_on cannot be before the member took the post")
        if data.ended_on.year > assignment.year:
            raise invalid(["body", "ended_on"], f"a {assignment.year} post ends by 31 December {assignment.year}")
    before = audit.snapshot(assignment)
    _transition(session, assignment, (AssignmentStatus.active,),
                {"status": AssignmentStatus.ended, "ended_on": data.ended_on, "end_reason": data.reason}, "ended")
    _free_place(session, assignment.post_id)
    _record(session, actor, assignment, "end", before)
    return assignment


def review_assignment(session: Session, actor: Actor, assignment: PostAssignment,
                      data: AssignmentReview) -> PostAssignment:
    """The organisation's year-end review of how the member did on the post (once)."""
    if assignment.status not in HELD:
        raise conflict("not_held", f"Assignment {assignment.id} is {assignment.status}: only a post the member "
                       "took can be reviewed.")
    if assignment.review_grade is not None:
        raise conflict("already_reviewed", f"Assignment {assignment.id} was already reviewed "
                       f"({assignment.review_grade}).")
    assert assignment.assigned_on is not None
    if data.reviewed_on < assignment.assigned_on or data.reviewed_on.year not in (assignment.year,
                                                                                  assignment.year + 1):
        raise invalid(["body", "reviewed_on"],
                      f"the review falls after the member took the post, in {assignment.year} or early the next year")
    before = audit.snapshot(assignment)
    result = session.execute(
        update(PostAssignment)
        .where(PostAssignment.id == assignment.id, col(PostAssignment.review_grade).is_(None))
        .values(review_grade=data.grade, review_comment=data.comment, reviewed_on=data.reviewed_on,
                reviewed_by=actor.user_id, version=PostAssignment.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("already_reviewed", f"Assignment {assignment.id} was reviewed meanwhile.")
    session.refresh(assignment)
    _record(session, actor, assignment, "review", before)
    return assignment


def end_member_posts(session: Session, actor: Actor, *, person_id: int, on: dt.date,
                     reason: str) -> list[PostAssignment]:
    """A member leaves the roll: held posts end on `on`, pending ones are cancelled; places are freed."""
    live = list(session.scalars(
        select(PostAssignment).where(PostAssignment.person_id == person_id,
                                     col(PostAssignment.status).in_(PLACE_HOLDING))
        .order_by(PostAssignment.id)
    ))
    for a in live:
        before = audit.snapshot(a)
        if a.status == AssignmentStatus.active:
            assert a.assigned_on is not None
            changes: dict[str, Any] = {"status": AssignmentStatus.ended, "ended_on": max(on, a.assigned_on),
                                       "end_reason": reason}
            verb = "end"
        else:
            changes = {"status": AssignmentStatus.cancelled, "decision_reason": reason}
            verb = "cancel"
        _transition(session, a, (a.status,), changes, verb)
        _free_place(session, a.post_id)
        _record(session, actor, a, verb, before)
    return live


def review_grades_by_person(session: Session, person_ids: set[int], year: int) -> dict[int, list[PostReviewGrade]]:
    """Each member's post review grades for the year, in one query (evidence for the democratic evaluation)."""
    if not person_ids:
        return {}
    rows = session.execute(
        select(PostAssignment.person_id, PostAssignment.review_grade)
        .where(col(PostAssignment.person_id).in_(person_ids), PostAssignment.year == year,
               col(PostAssignment.review_grade).is_not(None))
        .order_by(PostAssignment.person_id, PostAssignment.id)
    ).all()
    out: dict[int, list[PostReviewGrade]] = {}
    for person_id, grade in rows:
        out.setdefault(person_id, []).append(PostReviewGrade(grade))
    return out


# ---------------------------------------------------------------------------
# Performance log


def create_log(session: Session, actor: Actor, data: PostLogCreate) -> PostLog:
    """A dated entry of what the member did on the post, while (and when) they held it."""
    a = get_assignment(session, actor, data.assignment_id)
    if a.status not in HELD:
        raise conflict("not_held", f"Assignment {a.id} is {a.status}: log entries are for a post the member took.")
    assert a.assigned_on is not None
    last = a.ended_on or dt.date(a.year, 12, 31)
    if not (a.assigned_on <= data.entry_date <= last):
        raise invalid(["body", "entry_date"], f"entry_date must fall between {a.assigned_on.isoformat()} and "
                      f"{last.isoformat()}, while the member held the post")
    if data.entry_date > today():
        raise invalid(["body", "entry_date"], "entry_date cannot be in the future")
    log = PostLog(assignment_id=a.id, person_id=a.person_id, org_id=a.org_id, entry_date=data.entry_date,
                  description=data.description, hours_tenths=to_tenths(data.hours), recorded_by=actor.user_id)
    session.add(log)
    session.flush()
    audit.record(session, actor=actor, action="post_log.create", entity="post_log", entity_id=log.id,
                 org_id=log.org_id, after=audit.snapshot(log))
    return log


@dataclass
class LogFilters:
    assignment_id: int | None = None
    person_id: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    org_id: int | None = None
    subtree: bool = False


def list_logs(session: Session, actor: Actor, f: LogFilters, params: PageParams) -> tuple[list[PostLog], int]:
    stmt = _org_filter(session, actor, select(PostLog), PostLog.org_id, f.org_id, f.subtree)
    if f.assignment_id is not None:
        stmt = stmt.where(PostLog.assignment_id == f.assignment_id)
    if f.person_id is not None:
        stmt = stmt.where(PostLog.person_id == f.person_id)
    if f.date_from is not None:
        stmt = stmt.where(PostLog.entry_date >= f.date_from)
    if f.date_to is not None:
        stmt = stmt.where(PostLog.entry_date <= f.date_to)
    return fetch_page(session, stmt, params, allowed=LOG_SORTABLE, default=[col(PostLog.entry_date).desc()],
                      tiebreak=PostLog.id)


def get_log(session: Session, actor: Actor, log_id: int) -> PostLog:
    row = session.execute(
        select(PostLog, Organization.path).join(Organization, Organization.id == PostLog.org_id)
        .where(PostLog.id == log_id)
    ).first()
    if row is None or not actor.covers(row[1]):
        raise not_found("Post log entry", log_id)
    return row[0]


# ---------------------------------------------------------------------------
# Summary


def summary(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool) -> PostSummary:
    """Coverage of members without office, posts by field, review grades: four statements whatever the size."""
    root_id = org_id if org_id is not None else actor.org_id
    assert root_id is not None
    path = require_org_in_scope(session, actor, root_id)  # 1
    if org_id is None:
        subtree = True
    orgs = subtree_org_ids(path) if subtree else select(Organization.id).where(Organization.id == root_id)
    as_of = dt.date(year, 12, 31)

    held_in_year = exists().where(
        PostAssignment.person_id == Person.id, PostAssignment.year == year, col(PostAssignment.status).in_(HELD)
    )
    without_office = ~holds_office_clause(Person.id, as_of)
    members = session.execute(  # 2
        select(
            func.count(),
            func.coalesce(func.sum(case((without_office, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(without_office, held_in_year), 1), else_=0)), 0),
        ).select_from(Person).where(
            col(Person.org_id).in_(orgs), Person.status == PersonStatus.active,
            col(Person.member_status).in_(MEMBER_STATUSES),
        )
    ).one()
    n_members, n_without, n_holders = int(members[0]), int(members[1]), int(members[2])

    holders = (select(func.count()).where(PostAssignment.post_id == DutyPost.id, col(PostAssignment.status).in_(HELD))
               .correlate(DutyPost).scalar_subquery())
    by_field_rows = session.execute(  # 3
        select(DutyPost.field, func.count(), func.sum(DutyPost.capacity), func.sum(holders))
        .where(col(DutyPost.org_id).in_(orgs), DutyPost.year == year)
        .group_by(DutyPost.field)
    ).all()
    by_field = {PostField(f): FieldCount(field=PostField(f), posts=int(n), capacity=int(c or 0), holders=int(h or 0))
                for f, n, c, h in by_field_rows}

    grade_rows = session.execute(  # 4
        select(PostAssignment.review_grade, func.count())
        .where(col(PostAssignment.org_id).in_(orgs), PostAssignment.year == year, col(PostAssignment.status).in_(HELD))
        .group_by(PostAssignment.review_grade)
    ).all()
    grades: Counter[str | None] = Counter({g: int(n) for g, n in grade_rows})

    return PostSummary(
        year=year, org_id=root_id, subtree=subtree, as_of=as_of, members=n_members,
        members_without_office=n_without, holders_without_office=n_holders,
        coverage_percent=percentage(n_holders, n_without),
        posts=sum(f.posts for f in by_field.values()), capacity=sum(f.capacity for f in by_field.values()),
        by_field=[by_field.get(f, FieldCount(field=f, posts=0, capacity=0, holders=0)) for f in PostField],
        review_grades=[GradeCount(grade=g, count=grades.get(g.value, 0)) for g in PostReviewGrade],
        unreviewed_holdings=grades.get(None, 0),
    )


