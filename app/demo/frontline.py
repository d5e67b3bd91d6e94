"""Frontline work demo data (新: 一线攻坚): two work groups of city departments paired with the villages of two
townships, their 2019 membership (one member leaves in June, one joins in August) and a year of visits by the
members on duty, some finding problems that were opened on the problem list.

What comes from the source: city departments' cadres paired with villages (结对认亲) form work groups under the
township party committees; each month one third of them is in the villages in turn (每月三个三分之一); they visit
households, explain policy, find problems and settle disputes. The members are the resident first secretaries
(驻村第一书记, cadres sent down by city departments); the numbers and texts are synthetic and deterministic.

Idempotent by natural keys: groups by (organisation, name); members and visits are added only with their group.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.demo import platform
from app.models.frontline import (
    FrontlineGroup,
    FrontlineGroupVillage,
    FrontlineMember,
    FrontlineVisit,
    FrontlineVisitMember,
)
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Position, PositionTitle
from app.models.responsibilities import Problem, ProblemSource, ProblemStatus
from app.services.frontline import VISIT_LINK, Membership, month_index, on_duty_cohort, rotation

ORDER = 70
RANDOM_SEED = 2019
YEAR = 2019
STARTED = dt.date(YEAR, 1, 1)
# (coordinating township code, group name, department, members)
GROUPS = (
    ("513301101", "市发展和改革局一线攻坚组", "市发展和改革局", 9),
    ("513301001", "市农业农村局一线攻坚组", "市农业农村局", 7),
)
POLICIES = ("精准扶贫政策", "城乡居民医疗保险", "易地扶贫搬迁", "草原生态保护补助奖励", "扫黑除恶宣传", "农村低保",
            "产业扶持资金", "控辍保学")
PROBLEMS = ("村组道路部分损毁，雨季通行困难", "饮水管道老化，冬季易冻裂", "村活动室漏雨，需维修",
            "部分贫困户危房改造进度滞后", "产业合作社账目不够规范", "村规民约公示不及时")


def _rng(part: str) -> random.Random:
    return random.Random(f"{RANDOM_SEED}-frontline-{part}")  # noqa: S311  (reproducible demo data)


def seed(session: Session) -> dict[str, int]:
    """Add the demo groups that are missing, with their members and visits; return the counts created."""
    codes = platform.org_ids_by_code(session)
    counts = {"frontline_groups": 0, "frontline_members": 0, "frontline_visits": 0, "problems": 0}
    # Members: resident first secretaries of 2019, in a stable order, each in one group only.
    cadres = list(dict.fromkeys(session.scalars(
        select(Position.person_id).where(Position.title == PositionTitle.resident_first_secretary,
                                         Position.started_on <= dt.date(YEAR, 12, 31))
        .order_by(Position.started_on, Position.person_id))))
    taken = set(session.scalars(select(FrontlineMember.person_id)))
    pool = [p for p in cadres if p not in taken]
    for code, name, department, size in GROUPS:
        org_id = codes.get(code)
        if org_id is None or session.scalar(select(FrontlineGroup.id).where(FrontlineGroup.org_id == org_id,
                                                                            FrontlineGroup.name == name)):
            continue
        villages = list(session.scalars(
            select(Organization.id).where(Organization.parent_id == org_id, Organization.level == OrgLevel.village,
                                          Organization.status == OrgStatus.active).order_by(Organization.code)))
        if len(pool) < size + 1 or not villages:
            continue
        members, pool = pool[:size + 1], pool[size + 1:]
        counts = _seed_group(session, org_id, name, department, villages, members, counts)
    session.flush()
    return counts


def _seed_group(session: Session, org_id: int, name: str, department: str, villages: list[int], people: list[int],
                counts: dict[str, int]) -> dict[str, int]:
    now = utcnow()
    group = FrontlineGroup(org_id=org_id, name=name, department=department, started_on=STARTED, created_at=now,
                           updated_at=now)
    session.add(group)
    session.flush()
    assert group.id is not None
    session.add_all([FrontlineGroupVillage(group_id=group.id, village_id=v, created_at=now) for v in villages])
    # The first `size` members from the start; the second leaves at the end of June; the last joins in August.
    founders, late = people[:-1], people[-1]
    memberships = [Membership(p, STARTED, dt.date(YEAR, 6, 30) if i == 1 else None) for i, p in enumerate(founders)]
    memberships.append(Membership(late, dt.date(YEAR, 8, 1), None))
    session.add_all([FrontlineMember(group_id=group.id, person_id=m.person_id, joined_on=m.joined_on,
                                     left_on=m.left_on, created_at=now, updated_at=now) for m in memberships])
    counts["frontline_members"] += len(memberships)
    first = month_index(STARTED)
    plan = rotation(memberships, STARTED, first, first + 11)
    rng = _rng(name)
    visits: list[tuple[FrontlineVisit, list[int], bool]] = []
    for index in range(first, first + 12):
        month = index % 12 + 1
        duty = on_duty_cohort(STARTED, index)
        on_duty = sorted(p for p, c in plan[index].items() if c == duty)
        for village in rng.sample(villages, min(len(villages), rng.randint(2, 3))):
            present = sorted(rng.sample(on_duty, min(len(on_duty), rng.randint(2, 3)))) if on_duty else []
            if not present:
                continue
            found = rng.random() < 0.25
            visit = FrontlineVisit(
                group_id=group.id, org_id=village, visited_on=dt.date(YEAR, month, rng.randint(3, 26)),
                households_visited=rng.randint(8, 30), policies_explained="、".join(rng.sample(POLICIES, 2)),
                disputes_settled=rng.choice((0, 0, 0, 1, 1, 2)),
                problems_found=rng.choice(PROBLEMS) if found else None, created_at=now,
            )
            session.add(visit)
            visits.append((visit, present, found))
    session.flush()
    for visit, present, found in visits:
        assert visit.id is not None
        session.add_all([FrontlineVisitMember(visit_id=visit.id, person_id=p) for p in present])
        if found:
            session.add(Problem(
                org_id=visit.org_id, year=YEAR, source=ProblemSource.frontline_visit,
                description=visit.problems_found or "", deadline=visit.visited_on + dt.timedelta(days=60),
                status=ProblemStatus.open, link_entity=VISIT_LINK, link_id=visit.id,
                origin_key=f"{VISIT_LINK}:{visit.id}:1", created_at=now, updated_at=now,
            ))
            counts["problems"] += 1
    counts["frontline_groups"] += 1
    counts["frontline_visits"] += len(visits)
    session.flush()
    return counts

