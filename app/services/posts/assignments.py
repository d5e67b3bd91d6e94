"""Assignments to duty posts: applications, proposals, decisions, ends, reviews."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, get_in_scope
from app.models.organizations import Organization
from app.models.people import Person
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
    PostAssignment,
    PostReviewGrade,
    PostStatus,
)
from app.services.posts import rules
from app.services.posts.rules import (
    free_place,
    in_year,
    max_posts_for_year,
    org_filter,
    post_with_path,
    require_eligible,
    take_place,
)

# ---------------------------------------------------------------------------
# Assignments

ASSIGNMENT_SORTABLE = {
    "id": PostAssignment.id, "year": PostAssignment.year, "status": PostAssignment.status,
    "requested_on": PostAssignment.requested_on, "assigned_on": PostAssignment.assigned_on,
    "review_grade": PostAssignment.review_grade, "created_at": PostAssignment.created_at,
}


def get_assignment(session: Session, actor: Actor, assignment_id: int) -> PostAssignment:
    return get_in_scope(session, actor, PostAssignment, assignment_id, "Post assignment")[0]


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
    stmt = org_filter(session, actor, select(PostAssignment), PostAssignment.org_id, f.org_id, f.subtree)
    for column, value in ((PostAssignment.year, f.year), (PostAssignment.post_id, f.post_id),
                          (PostAssignment.person_id, f.person_id), (PostAssignment.status, f.status),
                          (PostAssignment.route, f.route), (PostAssignment.review_grade, f.review_grade)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=ASSIGNMENT_SORTABLE,
                      default=[col(PostAssignment.year).desc(), PostAssignment.post_id], tiebreak=PostAssignment.id)


def person_in_scope(session: Session, actor: Actor, person_id: int, *, lock: bool = False) -> Person:
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
    post, _ = post_with_path(session, actor, data.post_id)
    person = person_in_scope(session, actor, data.person_id, lock=True)
    in_year(data.requested_on, post.year, ["body", "requested_on"], "requested_on")
    if data.requested_on > rules.today():
        raise invalid(["body", "requested_on"], "requested_on cannot be in the future")
    if post.status != PostStatus.open:
        raise conflict("post_closed", f"Post {post.id} is closed to new applications and proposals.")
    require_eligible(session, post, person, data.requested_on)
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
    take_place(session, post)
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
    in_year(data.assigned_on, assignment.year, ["body", "assigned_on"], "assigned_on")
    if data.assigned_on > rules.today():
        raise invalid(["body", "assigned_on"], "assigned_on cannot be in the future")
    post = session.get(DutyPost, assignment.post_id)
    person = session.get(Person, assignment.person_id)
    assert post is not None and person is not None
    require_eligible(session, post, person, data.assigned_on)
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
    free_place(session, assignment.post_id)
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
    free_place(session, assignment.post_id)
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
        free_place(session, a.post_id)
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


