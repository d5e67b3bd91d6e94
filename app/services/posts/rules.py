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
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import ProblemError, conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, get_in_scope, require_org_in_scope, subtree_org_ids
from app.core.versioning import transition_update, versioned_update
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import MemberStatus, Person, PersonStatus, Position
from app.models.posts import (
    DutyPost,
    DutyPostCreate,
    DutyPostUpdate,
    PostPolicy,
    PostPolicyCreate,
    PostStatus,
)
from app.services import people

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
POST_LEVELS = (OrgLevel.village, OrgLevel.branch)
MEMBER_STATUSES = (MemberStatus.full, MemberStatus.probationary)

POST_SORTABLE = {
    "id": DutyPost.id, "year": DutyPost.year, "title": DutyPost.title, "field": DutyPost.field,
    "capacity": DutyPost.capacity, "filled": DutyPost.filled, "created_at": DutyPost.created_at,
}


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


def office_holders(on: dt.date) -> Any:
    """SQL: the ids of the people holding some position on `on` (uncorrelated: the database builds the set once,
    where holds_office_clause probes positions once per person)."""
    return select(Position.person_id).where(
        Position.started_on <= on, or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= on))


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


def require_eligible(session: Session, post: DutyPost, person: Person, on: dt.date) -> None:
    reasons = eligibility_problems(session, post, person, on)
    if reasons:
        raise ProblemError(
            422, "not_eligible", "; ".join(reasons),
            errors=[{"loc": ["body", "person_id"], "msg": r} for r in reasons],
        )


def in_year(value: dt.date, year: int, loc: list[str | int], what: str) -> None:
    if value.year != year:
        raise invalid(loc, f"{what} must fall in the post's year {year}")


# ---------------------------------------------------------------------------
# Posts


def post_with_path(session: Session, actor: Actor, post_id: int) -> tuple[DutyPost, str]:
    return get_in_scope(session, actor, DutyPost, post_id, "Duty post")


def get_post(session: Session, actor: Actor, post_id: int) -> DutyPost:
    return post_with_path(session, actor, post_id)[0]


@dataclass
class PostFilters:
    year: int | None = None
    field: str | None = None
    status: str | None = None
    org_id: int | None = None
    subtree: bool = False


def org_filter(session: Session, actor: Actor, stmt: Any, org_col: Any, org_id: int | None, subtree: bool) -> Any:
    if org_id is None:
        return stmt if actor.sees_everything else stmt.where(org_col.in_(subtree_org_ids(actor.org_path)))
    path = require_org_in_scope(session, actor, org_id)
    return stmt.where(org_col.in_(subtree_org_ids(path))) if subtree else stmt.where(org_col == org_id)


def list_posts(session: Session, actor: Actor, f: PostFilters, params: PageParams) -> tuple[list[DutyPost], int]:
    stmt = org_filter(session, actor, select(DutyPost), DutyPost.org_id, f.org_id, f.subtree)
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

    def not_yet(current: DutyPost) -> None:
        if current.status == status:
            raise conflict(f"already_{status}", f"Post {current.id} is already {status}.")

    not_yet(post)
    before = {"status": post.status}
    # A concurrent close (or reopen) that committed first makes this one a 409, as if it had come second.
    transition_update(session, post, {"status": status}, not_yet)
    audit.record(session, actor=actor, action=f"duty_post.{'close' if status == PostStatus.closed else 'reopen'}",
                 entity="duty_post", entity_id=post.id, org_id=post.org_id, before=before,
                 after={"status": post.status})
    return post


def take_place(session: Session, post: DutyPost) -> None:
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


def free_place(session: Session, post_id: int) -> None:
    session.execute(
        update(DutyPost).where(DutyPost.id == post_id, DutyPost.filled > 0)
        .values(filled=DutyPost.filled - 1).execution_options(synchronize_session=False)
    )


