"""Training demo data (保): the 2019 main training classes with attendance, the township central schools and a
sample of night schools with a year of sessions.

What comes from the source: 12 or more main classes a year covering first secretaries, village secretaries,
village committee directors and some committee members; 21 township central schools and 244 farmer-herder night
schools, each to hold at least 3 sessions and 6 class hours a month on hard work, striving out of poverty,
gratitude, village civility and core values. Titles, dates, hours, attendance and sessions below are synthetic
and deterministic: everyone who held a target role in 2019 is enrolled in a class for one of their roles and
attends, except a few who do not (left untrained), and some schools fall short in some months.

Idempotent by natural keys: classes by (year, organiser, title), schools by (organisation, kind, name); sessions
and enrolments are added only with the class or school they belong to.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.db import utcnow
from app.demo import platform
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Position, PositionTitle
from app.models.training import (
    School,
    SchoolKind,
    SchoolSession,
    SessionTopic,
    TrainingClass,
    TrainingClassRole,
    TrainingEnrolment,
)

ORDER = 60
RANDOM_SEED = 2019
YEAR = 2019
T = PositionTitle
# (title, month, day, days, hours, roles)
CLASSES: tuple[tuple[str, int, int, int, int, tuple[PositionTitle, ...]], ...] = (
    ("驻村第一书记能力提升培训班（第一期）", 2, 25, 3, 24, (T.resident_first_secretary,)),
    ("村（社区）党组织书记示范培训班（第一期）", 3, 11, 4, 32, (T.secretary,)),
    ("村（居）委会主任履职能力培训班（第一期）", 3, 25, 3, 24, (T.village_committee_director,)),
    ("村“两委”班子成员乡村振兴专题培训班（第一期）", 4, 15, 3, 24, (T.committee_member,)),
    ("脱贫攻坚政策业务培训班", 5, 13, 2, 16, (T.resident_first_secretary, T.secretary)),
    ("村（社区）党组织书记示范培训班（第二期）", 6, 10, 4, 32, (T.secretary,)),
    ("扫黑除恶专项斗争业务培训班", 6, 24, 2, 16, (T.secretary, T.village_committee_director)),
    ("村（居）委会主任履职能力培训班（第二期）", 7, 15, 3, 24, (T.village_committee_director,)),
    ("驻村第一书记能力提升培训班（第二期）", 8, 19, 3, 24, (T.resident_first_secretary,)),
    ("村“两委”班子成员乡村振兴专题培训班（第二期）", 9, 9, 3, 24, (T.committee_member,)),
    ("村级集体经济发展专题培训班", 10, 14, 3, 24, (T.secretary, T.village_committee_director, T.committee_member)),
    ("基层党建标准化建设培训班", 11, 4, 2, 16, (T.secretary, T.committee_member)),
    ("村“两委”班子成员乡村振兴专题培训班（第三期）", 11, 18, 3, 24, (T.committee_member,)),
    ("年度述职评议及民主评议党员工作培训班", 12, 9, 2, 16, (T.secretary, T.resident_first_secretary)),
)
# Townships whose villages get night schools in the demo (the first ones by code), and the share of
# (school, month) pairs that fall short of the minimum.
NIGHT_SCHOOL_TOWNSHIPS = 8
SHORT_MONTH_SHARE = 0.12
UNTRAINED_SHARE = 0.04
TEACHERS = ("洛桑", "泽仁", "王老师", "李老师", "格桑", "刘老师", "次仁", "张老师")


def _rng(part: str) -> random.Random:
    return random.Random(f"{RANDOM_SEED}-training-{part}")  # noqa: S311  (reproducible demo data)


def seed(session: Session) -> dict[str, int]:
    """Add whatever of the training demo is missing; return how many rows of each kind were created."""
    city = platform.city_id(session)
    if city is None:
        return {}
    counts: dict[str, int] = {}
    counts |= _seed_classes(session, city)
    counts |= _seed_schools(session)
    session.flush()
    return counts


def _seed_classes(session: Session, city: int) -> dict[str, int]:
    existing = set(session.scalars(select(TrainingClass.title).where(TrainingClass.year == YEAR,
                                                                     TrainingClass.org_id == city)))
    now = utcnow()
    created: list[tuple[int, tuple[PositionTitle, ...], int]] = []
    for title, month, day, days, hours, roles in CLASSES:
        if title in existing:
            continue
        starts = dt.date(YEAR, month, day)
        cls = TrainingClass(year=YEAR, title=title, org_id=city, starts_on=starts,
                            ends_on=starts + dt.timedelta(days=days - 1), hours=hours, is_main=True,
                            created_at=now, updated_at=now)
        session.add(cls)
        session.flush()
        assert cls.id is not None
        session.add_all([TrainingClassRole(class_id=cls.id, role=r) for r in roles])
        created.append((cls.id, roles, hours))
    if not created:
        return {"training_classes": 0, "enrolments": 0}
    # Everyone who held a target role in 2019 goes to one class for one of their roles (round robin).
    holders = session.execute(
        select(Position.person_id, Position.title, Position.org_id)
        .where(col(Position.title).in_([str(t) for t in (T.resident_first_secretary, T.secretary,
                                                          T.village_committee_director, T.committee_member)]),
               Position.started_on <= dt.date(YEAR, 12, 31),
               (col(Position.ended_on).is_(None)) | (col(Position.ended_on) >= dt.date(YEAR, 1, 1)))
        .order_by(Position.person_id, Position.started_on, Position.id)
    ).all()
    by_role: dict[str, list[tuple[int, int, int]]] = {}
    for class_id, roles, hours in created:
        for r in roles:
            by_role.setdefault(str(r), []).append((class_id, hours, 0))
    rng = _rng("attendance")
    seen: set[int] = set()
    turn: dict[str, int] = {}
    rows = []
    for person_id, title, org_id in holders:
        if person_id in seen or str(title) not in by_role:
            continue
        seen.add(person_id)
        options = by_role[str(title)]
        n = turn.get(str(title), 0)
        turn[str(title)] = n + 1
        class_id, hours, _ = options[n % len(options)]
        untrained = rng.random() < UNTRAINED_SHARE
        if untrained and rng.random() < 0.5:
            continue  # never enrolled
        attended = 0 if untrained else (hours if rng.random() < 0.85 else hours - rng.choice((4, 8)))
        rows.append({"class_id": class_id, "person_id": person_id, "org_id": org_id, "attended_hours": attended,
                     "version": 1, "created_at": now, "updated_at": now})
    if rows:
        session.execute(insert(TrainingEnrolment), rows)
    return {"training_classes": len(created), "enrolments": len(rows)}


def _seed_schools(session: Session) -> dict[str, int]:
    orgs = session.execute(
        select(Organization.id, Organization.code, Organization.name, Organization.level, Organization.parent_id)
        .where(col(Organization.code).is_not(None), Organization.status == OrgStatus.active,
               col(Organization.level).in_([OrgLevel.township, OrgLevel.village]))
        .order_by(Organization.code)
    ).all()
    townships = [o for o in orgs if o.level == OrgLevel.township]
    night_parents = {t.id for t in townships[:NIGHT_SCHOOL_TOWNSHIPS]}
    planned = [(t.id, SchoolKind.central_school, f"{t.name}中心校") for t in townships]
    planned += [(v.id, SchoolKind.night_school, f"{v.name}农牧民夜校") for v in orgs
                if v.level == OrgLevel.village and v.parent_id in night_parents]
    existing = set(session.execute(select(School.org_id, School.kind, School.name)).all())
    now = utcnow()
    opened = dt.date(2018, 3, 1)
    new_schools = []
    for org_id, kind, name in planned:
        if (org_id, kind, name) in existing:
            continue
        school = School(org_id=org_id, kind=kind, name=name, opened_on=opened, created_at=now, updated_at=now)
        session.add(school)
        new_schools.append(school)
    session.flush()
    rng = _rng("sessions")
    topics = list(SessionTopic)
    rows = []
    for school in new_schools:
        for month in range(1, 13):
            short = rng.random() < SHORT_MONTH_SHARE
            n = rng.choice((1, 2)) if short else rng.choice((3, 3, 4))
            hours = [2] * n if not short or rng.random() < 0.5 else [1] * n
            if not short and sum(hours) < 6:
                hours[-1] += 6 - sum(hours)
            days = sorted(rng.sample(range(1, 28), n))
            for day, h in zip(days, hours, strict=True):
                rows.append({
                    "school_id": school.id, "org_id": school.org_id, "held_on": dt.date(YEAR, month, day),
                    "hours": h, "topic": rng.choice(topics[:5]) if rng.random() < 0.7 else rng.choice(topics),
                    "title": None, "attendance_count": rng.randint(15, 80), "teacher": rng.choice(TEACHERS),
                    "created_at": now,
                })
    if rows:
        session.execute(insert(SchoolSession), rows)
    return {"schools": len(new_schools), "school_sessions": len(rows)}
