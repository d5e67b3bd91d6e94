"""Duty posts demo data (设岗定责): 2019 posts in the villages of two townships, assignments by both
routes (党员自选 and 组织助选) in every status, performance logs and year-end reviews.

What comes from the source: members without office take posts in relocation, economic development,
stability, poverty alleviation and rural revitalisation, chosen by themselves or helped by the
organisation. Titles, duties, people, dates and grades below are synthetic and deterministic.

Idempotent by natural key: a village's 2019 posts by title; a village whose posts exist is left alone.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.demo import platform
from app.models.organizations import Organization, OrgLevel
from app.models.people import MemberStatus, Person, PersonStatus, Position
from app.models.posts import (
    PLACE_HOLDING,
    AssignmentRoute,
    AssignmentStatus,
    DutyPost,
    PostAssignment,
    PostField,
    PostLog,
    PostReviewGrade,
)

ORDER = 40
YEAR = 2019
FOCUS_TOWNSHIPS = ("513301001", "513301101")  # 炉城街道, 姑咱镇

POSTS: tuple[tuple[str, PostField, str, int], ...] = (
    ("易地搬迁联络员", PostField.relocation, "联系易地扶贫搬迁户，帮助办理搬迁入住手续，收集并反映搬迁户诉求", 2),
    ("产业发展示范岗", PostField.economic_development, "带头发展牦牛养殖、中药材种植，向群众传授技术", 3),
    ("平安稳定信息员", PostField.stability, "每周排查矛盾纠纷和不稳定因素，及时报告村党组织", 2),
    ("脱贫攻坚帮扶岗", PostField.poverty_alleviation, "结对帮扶贫困户，协助落实“两不愁三保障”政策", 2),
    ("乡村振兴宣传员", PostField.rural_revitalization, "宣讲乡村振兴政策，组织群众参与人居环境整治", 2),
)
LOG_TEXTS = (
    "入户走访{n}户，宣讲政策并登记群众诉求", "协助调解邻里纠纷{n}起", "组织群众参加环境整治，清理垃圾{n}处",
    "到结对户家中了解生产生活情况，帮助解决困难{n}件", "参加村党组织会议，汇报履职情况",
)
GRADES = (PostReviewGrade.excellent, PostReviewGrade.good, PostReviewGrade.good, PostReviewGrade.fair,
          PostReviewGrade.poor)


def _rng(part: str) -> random.Random:
    return random.Random(f"{platform.RANDOM_SEED}-posts-{part}")  # noqa: S311  (reproducible demo data)


def _villages(session: Session) -> list[Organization]:
    codes = platform.org_ids_by_code(session)
    towns = [codes[c] for c in FOCUS_TOWNSHIPS if c in codes]
    return list(session.scalars(
        select(Organization).where(col(Organization.parent_id).in_(towns), Organization.level == OrgLevel.village)
        .order_by(Organization.code)
    ))


def members_without_office(session: Session, org_id: int, year: int = YEAR) -> list[Person]:
    """Full and probationary members on the roll who hold no position on any day of the year."""
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    in_office = select(Position.person_id).where(
        Position.started_on <= end, or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= start))
    return list(session.scalars(
        select(Person).where(Person.org_id == org_id, Person.status == PersonStatus.active,
                             col(Person.member_status).in_([MemberStatus.full, MemberStatus.probationary]),
                             col(Person.id).not_in(in_office))
        .order_by(Person.id)
    ))


def seed(session: Session) -> dict[str, int]:
    """Add the 2019 duty posts of the focus townships' villages that are missing."""
    counts = {"duty posts": 0, "post assignments": 0, "post log entries": 0}
    for village in _villages(session):
        exists = session.scalar(select(DutyPost.id).where(DutyPost.org_id == village.id, DutyPost.year == YEAR))
        if exists is None:
            for key, n in _seed_village(session, village).items():
                counts[key] += n
    session.flush()
    return counts


def _seed_village(session: Session, village: Organization) -> dict[str, int]:
    assert village.id is not None and village.code is not None
    rng = _rng(village.code)
    members = members_without_office(session, village.id)
    rng.shuffle(members)
    posts = [DutyPost(org_id=village.id, year=YEAR, title=title, field=field, duties=duties, capacity=capacity)
             for title, field, duties, capacity in rng.sample(POSTS, 3)]
    session.add_all(posts)
    session.flush()
    held: dict[int, int] = {}  # person → posts held or pending (at most 2 a year)
    assignments: list[PostAssignment] = []
    # Pending and refused outcomes once per village, so every status appears; the rest take the post.
    outcomes = [AssignmentStatus.applied, AssignmentStatus.rejected, AssignmentStatus.declined]
    queue = members * 2  # a member may be placed twice
    for post in posts:
        for _ in range(post.capacity):
            person = next((p for p in queue if held.get(p.id, 0) < 2
                           and all(a.person_id != p.id or a.post_id != post.id for a in assignments)), None)
            if person is None:
                break
            queue.remove(person)
            status = outcomes.pop(0) if outcomes and rng.random() < 0.5 else AssignmentStatus.active
            route = (AssignmentRoute.org_assisted if status in (AssignmentStatus.declined,) or
                     (status == AssignmentStatus.active and rng.random() < 0.4) else AssignmentRoute.self_selected)
            requested = dt.date(YEAR, rng.randint(1, 3), rng.randint(1, 28))
            a = PostAssignment(post_id=post.id, person_id=person.id, org_id=village.id, year=YEAR,
                               route=route, status=status, requested_on=requested)
            if status == AssignmentStatus.active:
                a.assigned_on = requested + dt.timedelta(days=rng.randint(3, 15))
                if rng.random() < 0.85:
                    a.review_grade = rng.choice(GRADES)
                    a.review_comment = {"excellent": "带头作用突出", "good": "履职认真", "fair": "履职一般",
                                        "poor": "履职不到位，需加强"}[a.review_grade]
                    a.reviewed_on = dt.date(YEAR, 12, rng.randint(15, 28))
            elif status == AssignmentStatus.rejected:
                a.decision_reason = "本人外出务工时间较长，难以履职"
            elif status == AssignmentStatus.declined:
                a.decision_reason = "家中劳力不足，本人谢绝"
            if status in PLACE_HOLDING:
                post.filled += 1
                held[person.id] = held.get(person.id, 0) + 1  # type: ignore[index]
            assignments.append(a)
    session.add_all(assignments)
    session.flush()
    logs = []
    for a in assignments:
        if a.status != AssignmentStatus.active or a.assigned_on is None:
            continue
        for _ in range(rng.randint(1, 3)):
            day = a.assigned_on + dt.timedelta(days=rng.randint(5, (dt.date(YEAR, 12, 31) - a.assigned_on).days))
            logs.append(PostLog(assignment_id=a.id, person_id=a.person_id, org_id=village.id,
                                entry_date=day, description=rng.choice(LOG_TEXTS).format(n=rng.randint(1, 12)),
                                hours_tenths=rng.choice((10, 15, 20, 30, 40))))
    session.add_all(logs)
    session.flush()
    return {"duty posts": len(posts), "post assignments": len(assignments), "post log entries": len(logs)}
