"""The three lists' demo data (实): 2019 responsibility letters, two issued monthly lists, and the problems
listed at the 2018 debriefing appraisal driven through 2019.

What comes from the source: each organisation signs three kinds of letters (the organisation's, the
secretary's, one per committee member) and settles them at year end against the list; the city
party-building office breaks the year's goals into monthly lists (Party building leading poverty
alleviation, anti-gang crime, rural revitalisation) with deadlines; problems found at the debriefing
appraisal are analysed, rectified and verified by the level above, with quarterly inspections and
on-site guidance (力量下沉一线) for those not rectified in time. Every item, score, date and
status below is synthetic and deterministic.

Idempotent by natural keys: letters by (year, organisation, kind, holder), monthly lists by (month,
title), problems by their origin_key, inspections by (organisation, visit date).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.demo import platform
from app.models.accounts import User
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Position, PositionTitle
from app.models.responsibilities import (
    LetterItem,
    LetterKind,
    LetterStatus,
    MonthlyList,
    MonthlyListStatus,
    MonthlyTask,
    MonthlyTaskTarget,
    Problem,
    ProblemRejection,
    ProblemSource,
    ProblemStatus,
    QuarterlyInspection,
    ResponsibilityLetter,
    TargetMode,
    TaskAssignment,
    TaskAssignmentEvent,
    TaskAssignmentStatus,
    TaskCategory,
)

ORDER = 10
RANDOM_SEED = 2019
YEAR = 2019
# Villages of these two townships get the full set of letters and the appraisal's problems.
FOCUS_TOWNSHIPS = ("513301001", "513301101")  # 炉城街道, 姑咱镇
CST = dt.timezone(dt.timedelta(hours=8))


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=CST).astimezone(dt.UTC)


def _rng(part: str) -> random.Random:
    return random.Random(f"{RANDOM_SEED}-responsibilities-{part}")  # noqa: S311  (reproducible demo data)


@dataclass(frozen=True)
class ItemPlan:
    title: str
    category: TaskCategory
    target: str
    weight: int
    due: dt.date


ITEMS: dict[str, tuple[ItemPlan, ...]] = {
    LetterKind.organization: (
        ItemPlan("党建引领脱贫攻坚", TaskCategory.poverty_alleviation,
                 "贫困村如期退出，贫困户“两不愁三保障”全面落实，驻村工作队管理到位", 30, dt.date(YEAR, 12, 20)),
        ItemPlan("扫黑除恶专项斗争", TaskCategory.anti_gang_crime,
                 "深挖彻查涉黑涉恶线索，村（社区）“两委”成员资格联审全覆盖", 20, dt.date(YEAR, 12, 31)),
        ItemPlan("实施乡村振兴战略", TaskCategory.rural_revitalization,
                 "发展壮大村级集体经济，完成年度产业项目", 20, dt.date(YEAR, 11, 30)),
        ItemPlan("基层党组织标准化建设", TaskCategory.organization_building,
                 "标准化建设达标，三会一课、主题党日按规定开展", 30, dt.date(YEAR, 12, 31)),
    ),
    LetterKind.secretary: (
        ItemPlan("履行党建第一责任人职责", TaskCategory.organization_building,
                 "年内专题研究党建工作不少于4次，带头讲党课", 40, dt.date(YEAR, 12, 31)),
        ItemPlan("带头联系帮扶贫困户", TaskCategory.poverty_alleviation,
                 "每月走访联系户，帮扶措施落实到户", 30, dt.date(YEAR, 12, 20)),
        ItemPlan("抓好扫黑除恶宣传发动", TaskCategory.anti_gang_crime,
                 "群众知晓率达到90%以上", 30, dt.date(YEAR, 10, 31)),
    ),
    LetterKind.committee_member: (
        ItemPlan("落实“一岗双责”", TaskCategory.organization_building,
                 "分管领域党建工作与业务工作同部署同考核", 50, dt.date(YEAR, 12, 31)),
        ItemPlan("联系服务群众", TaskCategory.rural_revitalization,
                 "每季度收集并办理群众诉求", 50, dt.date(YEAR, 12, 15)),
    ),
}

LISTS: tuple[tuple[str, str, tuple[tuple[str, TaskCategory, dt.date, str, str], ...]], ...] = (
    ("2019-10", "2019年10月党建工作月度清单", (
        ("开展贫困户“回头看”走访", TaskCategory.poverty_alleviation, dt.date(2019, 10, 25), TargetMode.all_villages,
         "逐户核实“两不愁三保障”落实情况，建立问题台账"),
        ("扫黑除恶线索大起底", TaskCategory.anti_gang_crime, dt.date(2019, 10, 31), TargetMode.all_villages,
         "对辖区线索进行全面排查并上报"),
        ("乡村振兴产业项目进度督促", TaskCategory.rural_revitalization, dt.date(2019, 11, 10),
         TargetMode.all_townships, "督促年度集体经济项目建设进度"),
    )),
    ("2019-11", "2019年11月党建工作月度清单", (
        ("脱贫攻坚问题整改清零", TaskCategory.poverty_alleviation, dt.date(2019, 11, 20), TargetMode.all_villages,
         "对“回头看”发现的问题逐项整改销号"),
        ("村（社区）“两委”成员资格联审复核", TaskCategory.anti_gang_crime, dt.date(2019, 11, 30),
         TargetMode.chosen, "对联审发现的问题人员依规处置"),
        ("村级集体经济收益分配公示", TaskCategory.rural_revitalization, dt.date(2019, 12, 10),
         TargetMode.all_villages, "收益分配方案经村民代表会议通过并公示"),
    )),
)

PROBLEMS: tuple[tuple[str, str, str], ...] = (
    ("“三会一课”记录不完整，党课开展次数不足", "支部书记对组织生活重视不够，缺少专人管理台账",
     "建立组织生活台账，每月由乡镇（街道）党委督查"),
    ("发展党员工作程序不规范，入党积极分子培养考察记录缺失", "党务工作者业务不熟，培训不足",
     "组织党务工作者专题培训，补齐培养考察材料"),
    ("村级活动阵地利用率不高，长期闭门", "阵地管理制度不落实，活动安排少",
     "制定阵地开放和使用制度，每周固定开放"),
    ("党员教育管理不到位，流动党员失联", "流动党员底数不清，联系机制缺失",
     "全面摸排流动党员，建立联系卡制度"),
    ("村务公开不及时，集体经济收支未按季度公示", "村务监督委员会作用发挥不充分",
     "按季度公开财务收支，村务监督委员会逐项审核"),
    ("软弱涣散问题整顿成效不明显", "班子凝聚力不强，书记带头作用发挥不够",
     "乡镇党委班子成员包村整顿，选派第一书记驻村"),
)
REJECTION_REASONS = ("整改材料不全，缺少会议记录佐证", "整改措施未落实到位，需补充现场核查材料")


def seed(session: Session) -> dict[str, int]:
    """Add whatever of the three lists' demo is missing; return how many rows of each kind were created."""
    codes = platform.org_ids_by_code(session)
    if platform.CITY_CODE not in codes:
        return {}
    orgs = list(session.execute(
        select(Organization.id, Organization.code, Organization.level, Organization.parent_id)
        .where(col(Organization.code).is_not(None), Organization.status == OrgStatus.active)
        .order_by(Organization.code)
    ).all())
    users: dict[str, int] = dict(session.execute(select(User.username, User.id).where(
        col(User.username).in_(["city_admin", "lucheng_admin", "jiangjunqiao_admin"]))).all())
    counts: dict[str, int] = {}
    counts |= _seed_letters(session, orgs, users)
    counts |= _seed_lists(session, orgs, codes, users)
    counts |= _seed_problems(session, orgs, codes, users)
    session.flush()
    return counts


seed_responsibilities = seed


# --- letters ---------------------------------------------------------------------------------------------


def _holders(session: Session, org_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """Each organisation's secretary and committee members at the end of the year: (kind, person)."""
    on = dt.date(YEAR, 12, 31)
    rows = session.execute(
        select(Position.org_id, Position.person_id, Position.title)
        .where(col(Position.org_id).in_(org_ids),
               col(Position.title).in_([PositionTitle.secretary, PositionTitle.deputy_secretary,
                                        PositionTitle.committee_member]),
               Position.started_on <= on, (col(Position.ended_on).is_(None)) | (col(Position.ended_on) >= on))
        .order_by(Position.org_id, Position.started_on, Position.id)
    ).all()
    secretaries = {(o, p) for o, p, t in rows if t == PositionTitle.secretary}
    out: dict[int, list[tuple[str, int]]] = {}
    seen: set[tuple[int, int]] = set()
    for org_id, person_id, title in rows:
        if title == PositionTitle.secretary:
            if not any(k == LetterKind.secretary for k, _ in out.get(org_id, [])):
                out.setdefault(org_id, []).append((LetterKind.secretary, person_id))
        elif (org_id, person_id) not in secretaries and (org_id, person_id) not in seen:
            seen.add((org_id, person_id))
            out.setdefault(org_id, []).append((LetterKind.committee_member, person_id))
    return out


def _seed_letters(session: Session, orgs: list[Any], users: dict[str, int]) -> dict[str, int]:
    rng = _rng("letters")
    townships = [o for o in orgs if o.level == OrgLevel.township]
    focus = [o for o in orgs if o.level == OrgLevel.village and o.code[:9] in FOCUS_TOWNSHIPS]
    holders = _holders(session, [o.id for o in focus])
    planned: list[tuple[int, str, int | None, int]] = []  # org, kind, holder, issuer
    city_user, township_user = users.get("city_admin"), users.get("lucheng_admin")
    for o in townships:
        planned.append((o.id, LetterKind.organization, None, city_user or 0))
    for o in focus:
        issuer = (township_user or 0) if o.code.startswith("513301001") else (city_user or 0)
        planned.append((o.id, LetterKind.organization, None, issuer))
        planned += [(o.id, kind, person, issuer) for kind, person in holders.get(o.id, [])]
    existing = set(session.execute(
        select(ResponsibilityLetter.org_id, ResponsibilityLetter.kind, ResponsibilityLetter.holder_person_id)
        .where(ResponsibilityLetter.year == YEAR)).all())
    letters: list[ResponsibilityLetter] = []
    items: list[dict[str, Any]] = []
    statuses = [LetterStatus.settled] * 5 + [LetterStatus.settling] * 2 + [LetterStatus.signed] * 2 + [
        LetterStatus.issued]
    pending: list[tuple[ResponsibilityLetter, list[dict[str, Any]]]] = []
    for org_id, kind, holder, issuer in planned:
        status = rng.choice(statuses)
        draws = [(rng.random(), rng.random(), rng.randrange(20)) for _ in ITEMS[kind]]
        if (org_id, kind, holder) in existing:
            continue
        letter = ResponsibilityLetter(
            year=YEAR, org_id=org_id, kind=kind, holder_person_id=holder, status=status,
            title=f"{YEAR}年度{LetterKind(kind).zh}", created_by=issuer or None,
            issued_at=_at(dt.date(YEAR, 2, 20)), issued_by=issuer or None, signed_at=_at(dt.date(YEAR, 3, 1)),
            created_at=_at(dt.date(YEAR, 2, 10)), updated_at=_at(dt.date(YEAR, 3, 1)),
        )
        if status == LetterStatus.issued:
            letter.signed_at = None
        rows = []
        total = 0
        for n, (plan, (roll, share, day)) in enumerate(zip(ITEMS[kind], draws, strict=True)):
            row: dict[str, Any] = {"position": n + 1, "title": plan.title, "category": plan.category,
                                   "target": plan.target, "weight": plan.weight, "due_date": plan.due, "version": 1,
                                   "created_at": letter.created_at, "updated_at": letter.updated_at}
            if status in (LetterStatus.settling, LetterStatus.settled):
                outcome = "completed" if roll < 0.7 else "partly_completed" if roll < 0.9 else "not_completed"
                row.update(outcome=outcome, evidence_note="年终对单交账材料已报送",
                           reported_at=_at(dt.date(YEAR, 12, 10 + day % 5)))
                if status == LetterStatus.settled:
                    low, high = {"completed": (0.85, 1.0), "partly_completed": (0.5, 0.8),
                                 "not_completed": (0.0, 0.3)}[outcome]
                    row.update(score=round(plan.weight * (low + (high - low) * share)),
                               scored_at=_at(dt.date(YEAR, 12, 20 + day % 8)))
                    total += row["score"]
            rows.append(row)
        if status == LetterStatus.settled:
            letter.score = total
            letter.settled_at = _at(dt.date(YEAR, 12, 30))
            letter.settled_by = issuer or None
        letters.append(letter)
        pending.append((letter, rows))
    session.add_all(letters)
    session.flush()
    for letter, rows in pending:
        items += [{**r, "letter_id": letter.id} for r in rows]
    if items:
        session.execute(insert(LetterItem), items)
    return {"letters": len(letters), "letter_items": len(items)}


# --- monthly lists ---------------------------------------------------------------------------------------


def _seed_lists(session: Session, orgs: list[Any], codes: dict[str, int],
                users: dict[str, int]) -> dict[str, int]:
    rng = _rng("lists")
    counts = {"monthly_lists": 0, "monthly_tasks": 0, "assignments": 0}
    existing = set(session.execute(select(MonthlyList.month, MonthlyList.title)).all())
    city_id, city_user = codes[platform.CITY_CODE], users.get("city_admin")
    villages = [o.id for o in orgs if o.level == OrgLevel.village]
    townships = [o.id for o in orgs if o.level == OrgLevel.township]
    chosen = [o.id for o in orgs if o.code[:9] in FOCUS_TOWNSHIPS]  # the two townships and their villages
    for month, title, tasks in LISTS:
        if (month, title) in existing:
            continue
        issued_on = dt.date(int(month[:4]), int(month[5:]), 1)
        lst = MonthlyList(org_id=city_id, month=month, title=title, status=MonthlyListStatus.issued,
                          issued_at=_at(issued_on), issued_by=city_user, created_by=city_user,
                          created_at=_at(issued_on - dt.timedelta(days=3)), updated_at=_at(issued_on))
        session.add(lst)
        session.flush()
        counts["monthly_lists"] += 1
        assignments: list[dict[str, Any]] = []
        for n, (task_title, category, deadline, mode, description) in enumerate(tasks):
            task = MonthlyTask(list_id=lst.id, position=n + 1, title=task_title, description=description,
                               category=category, deadline=deadline, target_mode=mode,
                               created_at=lst.created_at, updated_at=lst.created_at)
            session.add(task)
            session.flush()
            counts["monthly_tasks"] += 1
            if mode == TargetMode.chosen:
                session.add_all([MonthlyTaskTarget(task_id=task.id, org_id=codes[c], subtree=True)
                                 for c in FOCUS_TOWNSHIPS])
            targets = villages if mode == TargetMode.all_villages else townships if mode == TargetMode.all_townships \
                else chosen
            for org_id in targets:
                assignments.append(_assignment(rng, lst, task, org_id))
        ids = session.scalars(insert(TaskAssignment).returning(TaskAssignment.id, sort_by_parameter_order=True),
                              assignments).all()
        events = [
            {"assignment_id": aid, "at": a["updated_at"], "user_id": None, "from_status": TaskAssignmentStatus.pending,
             "to_status": a["status"], "note": a["progress_note"]}
            for aid, a in zip(ids, assignments, strict=True) if a["status"] != TaskAssignmentStatus.pending
        ]
        if events:
            session.execute(insert(TaskAssignmentEvent), events)
        counts["assignments"] += len(assignments)
    return counts


def _assignment(rng: random.Random, lst: MonthlyList, task: MonthlyTask, org_id: int) -> dict[str, Any]:
    roll, days = rng.random(), rng.randrange(1, 16)
    status, done_on, note = TaskAssignmentStatus.pending, None, None
    if roll < 0.6:
        status, done_on, note = TaskAssignmentStatus.done, task.deadline - dt.timedelta(days=days % 10), "已按时完成"
    elif roll < 0.75:
        status, done_on, note = TaskAssignmentStatus.done, task.deadline + dt.timedelta(days=days), "逾期完成"
    elif roll < 0.9:
        status, note = TaskAssignmentStatus.in_progress, "正在推进"
    done_on = min(done_on, dt.date(YEAR, 12, 31)) if done_on else None
    changed = _at(done_on) if done_on else _at(task.deadline - dt.timedelta(days=5))
    return {"task_id": task.id, "list_id": lst.id, "org_id": org_id, "month": lst.month, "category": task.category,
            "deadline": task.deadline, "status": status, "progress_note": note,
            "done_at": _at(done_on, 17) if done_on else None, "done_on": done_on, "reopen_count": 0, "version": 1,
            "created_at": lst.issued_at,
            "updated_at": changed if status != TaskAssignmentStatus.pending else lst.issued_at}


# --- problems --------------------------------------------------------------------------------------------


def _seed_problems(session: Session, orgs: list[Any], codes: dict[str, int],
                   users: dict[str, int]) -> dict[str, int]:
    rng = _rng("problems")
    counts = {"problems": 0, "problem_rejections": 0, "inspections": 0}
    focus = [o for o in orgs if o.code[:9] in FOCUS_TOWNSHIPS and o.level in (OrgLevel.township, OrgLevel.village)]
    existing = set(session.scalars(select(Problem.origin_key).where(
        col(Problem.origin_key).like("demo:2018-appraisal:%"))))
    parents = {o.id: o.parent_id for o in orgs}
    levels = {o.id: o.level for o in orgs}
    cycle = [ProblemStatus.verified, ProblemStatus.submitted, ProblemStatus.rectifying, ProblemStatus.open,
             ProblemStatus.verified, ProblemStatus.rectifying]
    n = 0
    escalated_done = bool(session.scalar(select(Problem.id).where(col(Problem.escalated_at).is_not(None)).limit(1)))
    opened = _at(dt.date(YEAR, 1, 18))
    verifier = users.get("lucheng_admin") or users.get("city_admin")
    for org in focus:
        for k in range(2 if org.level == OrgLevel.village else 3):
            description, cause, measures = PROBLEMS[(n + k) % len(PROBLEMS)]
            status = cycle[n % len(cycle)]
            deadline = dt.date(YEAR, 3 + rng.randrange(8), 28)
            rejected = status in (ProblemStatus.rectifying, ProblemStatus.verified) and rng.random() < 0.3
            n += 1
            key = f"demo:2018-appraisal:{org.code}:{k + 1}"
            if key in existing:
                continue
            p = Problem(org_id=org.id, year=2018, source=ProblemSource.debriefing_appraisal, description=description,
                        cause_analysis=cause, rectification_measures=measures, deadline=deadline, status=status,
                        origin_key=key, rejection_count=1 if rejected else 0, created_at=opened, updated_at=opened)
            if status in (ProblemStatus.submitted, ProblemStatus.verified):
                p.submitted_at, p.submission_note = _at(deadline - dt.timedelta(days=10)), "整改完成，材料已报送"
            if status == ProblemStatus.verified:
                p.verified_at = _at(deadline + dt.timedelta(days=rng.randrange(3, 20)))
                p.verified_by = verifier
            # 力量下沉一线: the first open problem long past its deadline is taken over by the level above.
            if status == ProblemStatus.open and not escalated_done and parents.get(org.id):
                p.deadline = dt.date(YEAR, 5, 31)
                p.escalated_at = dt.date(YEAR, 7, 15)
                p.escalated_to_org_id = parents[org.id]
                p.escalation_level = levels.get(parents[org.id] or 0)
                escalated_done = True
            session.add(p)
            session.flush()
            counts["problems"] += 1
            if rejected:
                session.add(ProblemRejection(problem_id=p.id, reason=REJECTION_REASONS[n % 2], rejected_by=verifier,
                                             rejected_at=_at(deadline - dt.timedelta(days=5))))
                counts["problem_rejections"] += 1
    counts["inspections"], found = _seed_inspection(session, codes, users)
    counts["problems"] += found
    return counts


def _seed_inspection(session: Session, codes: dict[str, int], users: dict[str, int]) -> tuple[int, int]:
    """The third-quarter inspection of 姑咱镇 by the city's organisation department, and what it found."""
    town = codes.get(FOCUS_TOWNSHIPS[1])
    visited = dt.date(YEAR, 9, 18)
    if town is None or session.scalar(select(QuarterlyInspection.id).where(
            QuarterlyInspection.org_id == town, QuarterlyInspection.visited_on == visited)) is not None:
        return 0, 0
    village = session.scalar(select(Organization.id).where(Organization.parent_id == town)
                             .order_by(Organization.code).limit(1))
    inspection = QuarterlyInspection(
        org_id=town, visited_on=visited, year=YEAR, quarter=3, inspectors="市委组织部督导组（组织科、党建办）",
        findings="镇党委落实基层党建责任总体较好；部分村阵地使用率不高，问题整改台账更新不及时。",
        created_by=users.get("city_admin"), created_at=_at(visited, 18), updated_at=_at(visited, 18))
    session.add(inspection)
    session.flush()
    found = [(town, "问题整改台账更新不及时，销号材料缺失"), (village or town, "村级活动阵地使用率不高")]
    for org_id, description in found:
        session.add(Problem(org_id=org_id, year=YEAR, source=ProblemSource.quarterly_inspection,
                            description=description, deadline=dt.date(YEAR, 12, 31), status=ProblemStatus.open,
                            link_entity="quarterly_inspection", link_id=inspection.id,
                            opened_by=users.get("city_admin"), created_at=_at(visited, 18),
                            updated_at=_at(visited, 18)))
    session.flush()
    return 1, len(found)
