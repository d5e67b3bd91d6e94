"""Performance logs and the duty-post summary."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, require_org_in_scope, subtree_org_ids
from app.models.organizations import Organization
from app.models.people import Person, PersonStatus
from app.models.posts import (
    HELD,
    DutyPost,
    FieldCount,
    GradeCount,
    PostAssignment,
    PostField,
    PostLog,
    PostLogCreate,
    PostReviewGrade,
    PostSummary,
    percentage,
    to_tenths,
)
from app.services.posts import rules
from app.services.posts.assignments import get_assignment
from app.services.posts.rules import MEMBER_STATUSES, office_holders, org_filter

# ---------------------------------------------------------------------------
# Performance log

LOG_SORTABLE = {"id": PostLog.id, "entry_date": PostLog.entry_date, "hours": PostLog.hours_tenths}


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
    if data.entry_date > rules.today():
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
    stmt = org_filter(session, actor, select(PostLog), PostLog.org_id, f.org_id, f.subtree)
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
    return get_in_scope(session, actor, PostLog, log_id, "Post log entry")[0]


# ---------------------------------------------------------------------------
# Summary


@cached_report()
def summary(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool) -> PostSummary:
    """Coverage of members without office, posts by field, review grades: four statements whatever the size."""
    root_id = org_id if org_id is not None else actor.org_id
    assert root_id is not None
    path = require_org_in_scope(session, actor, root_id)  # 1
    if org_id is None:
        subtree = True
    orgs = subtree_org_ids(path) if subtree else select(Organization.id).where(Organization.id == root_id)
    as_of = dt.date(year, 12, 31)

    held_in_year = col(Person.id).in_(select(PostAssignment.person_id).where(
        PostAssignment.year == year, col(PostAssignment.status).in_(HELD)))
    without_office = col(Person.id).not_in(office_holders(as_of))
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



