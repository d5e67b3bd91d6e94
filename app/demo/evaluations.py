"""Evaluations demo data (新): the 2019 dual evaluations of every village cadre of 姑咱镇 across all
grades, democratic evaluations of members in three communities of 炉城街道 with one disposal case and
the reserve cadre pool, and the secretaries' quarterly scores and year-end appraisals (with the problems
found) in both townships.

What comes from the source: village cadres report on the eight duties to the villagers and the township
Party committee, each side scores and the result sets the grade; members' post performance feeds the
democratic evaluation, commendations and the reserve cadre pool; secretaries are assessed quarterly and
at a year-end debriefing. Scores are computed with the service's own formulas and the seeded weights and
thresholds; votes, scores, texts and dates are synthetic and deterministic.

Idempotent by natural keys: dual evaluations by (village, cadre, year), democratic evaluations by
(organisation, year), quarterly assessments by (organisation, year, quarter), appraisals by
(organisation, year); problems by their origin_key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.demo import platform
from app.models.evaluations.common import Grade, GradeScheme, SettingKey, grade_for, to_centi, to_e4
from app.models.evaluations.dual import DualEvaluation, DualEvaluationDuty, DualEvaluationStatus
from app.models.evaluations.members import (
    DemocraticEvaluation,
    DemocraticEvaluationEntry,
    DemocraticEvaluationStatus,
    DisposalCase,
    DisposalMeasure,
    DisposalStatus,
    MemberRating,
    ReserveCadre,
)
from app.models.evaluations.secretaries import DebriefingAppraisal, SecretaryAssessment
from app.models.organizations import Organization, OrgLevel
from app.models.people import MemberStatus, Person, PersonStatus, Position, PositionTitle
from app.models.posts import PostAssignment, PostReviewGrade
from app.models.responsibilities import Problem, ProblemSource, ProblemStatus
from app.services.evaluations.common import duties_for_year, require_setting, thresholds
from app.services.evaluations.dual import committee_score, final_score, villagers_score
from app.services.evaluations.secretaries import quarterly_average, year_score

ORDER = 50
YEAR = 2019
DUAL_TOWNSHIP = "513301101"  # 姑咱镇
MEMBER_TOWNSHIP = "513301001"  # 炉城街道
SECRETARY_TOWNSHIPS = ("513301001", "513301101")
CST = dt.timezone(dt.timedelta(hours=8))

# target grade → (satisfied, basically, dissatisfied) votes and the committee's duty-score range
GRADE_PLAN: dict[Grade, tuple[tuple[int, int, int], tuple[int, int]]] = {
    Grade.excellent: ((48, 2, 0), (90, 98)),
    Grade.competent: ((30, 15, 5), (75, 85)),
    Grade.basically_competent: ((15, 20, 15), (64, 72)),
    Grade.incompetent: ((5, 15, 30), (45, 58)),
}
TARGETS = (Grade.excellent, Grade.competent, Grade.basically_competent, Grade.incompetent, Grade.competent,
           Grade.excellent, Grade.competent)
REPORTS = "本年度围绕“{duty}”职责，{act}，群众反映较好。"
ACTS = ("制定工作计划并逐月落实", "带领党员群众开展专项行动", "建立工作台账、定期公示", "主动对接乡镇和部门争取支持")
APPRAISAL_PROBLEMS = (
    ("“三会一课”记录不规范，党课次数不足", "支部书记对组织生活重视不够", "按月检查会议记录，书记每季度讲党课"),
    ("党员活动阵地利用率不高", "活动内容单一，缺少吸引力", "结合农牧民夜校开展主题党日活动"),
    ("发展党员程序执行不严", "对发展党员工作细则学习不够", "组织专题培训，逐一规范发展党员档案"),
    ("无职党员设岗定责履职情况跟踪不够", "缺少常态化督促机制", "建立履职纪实台账，季度通报"),
)


def _rng(part: str) -> random.Random:
    return random.Random(f"{platform.RANDOM_SEED}-evaluations-{part}")  # noqa: S311  (reproducible demo data)


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=CST).astimezone(dt.UTC)


def _villages(session: Session, township_code: str) -> list[Organization]:
    town = session.scalar(select(Organization.id).where(Organization.code == township_code))
    if town is None:
        return []
    return list(session.scalars(select(Organization).where(
        Organization.parent_id == town, Organization.level == OrgLevel.village).order_by(Organization.code)))


def _in_year() -> Any:
    start, end = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)
    return and_(col(Position.started_on) <= end, or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= start))


def seed(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    if platform.city_id(session) is None:
        return counts
    for part in (_seed_dual, _seed_members, _seed_secretaries):
        for key, n in part(session).items():
            counts[key] = counts.get(key, 0) + n
    session.flush()
    return counts


def _problem(session: Session, *, org_id: int, origin_key: str, description: str, person_id: int, link_entity: str,
             link_id: int, cause: str | None = None, measures: str | None = None,
             deadline: dt.date | None = None) -> int:
    if session.scalar(select(Problem.id).where(Problem.origin_key == origin_key)) is not None:
        return 0
    session.add(Problem(org_id=org_id, year=YEAR, source=ProblemSource.debriefing_appraisal, description=description,
                        cause_analysis=cause, rectification_measures=measures, deadline=deadline,
                        status=ProblemStatus.open, link_entity=link_entity, link_id=link_id, origin_key=origin_key,
                        responsible_person_id=person_id))
    return 1


# --- dual evaluations ---------------------------------------------------------------


def _seed_dual(session: Session) -> dict[str, int]:
    counts = {"dual evaluations": 0, "problems (dual evaluations)": 0}
    villages = _villages(session, DUAL_TOWNSHIP)
    if not villages:
        return counts
    duties = duties_for_year(session, YEAR)
    points = tuple(require_setting(session, k, YEAR) for k in (
        SettingKey.vote_weight_satisfied, SettingKey.vote_weight_basically_satisfied,
        SettingKey.vote_weight_dissatisfied))
    weight = require_setting(session, SettingKey.villager_weight, YEAR)
    limits = thresholds(session, GradeScheme.dual_evaluation, YEAR)
    cadres = session.execute(
        select(Position.org_id, Position.person_id, Person.name)
        .join(Person, Person.id == Position.person_id)
        .where(col(Position.org_id).in_([v.id for v in villages]), _in_year())
        .group_by(Position.org_id, Position.person_id, Person.name)
        .order_by(Position.org_id, Position.person_id)
    ).all()
    existing = set(session.execute(select(DualEvaluation.org_id, DualEvaluation.person_id)
                                   .where(DualEvaluation.year == YEAR)).all())
    for i, (org_id, person_id, name) in enumerate(cadres):
        if (org_id, person_id) in existing:
            continue
        rng = _rng(f"dual-{org_id}-{person_id}")
        target = TARGETS[i % len(TARGETS)]
        (s, b, d), (low, high) = GRADE_PLAN[target]
        s, b, d = s + rng.randint(0, 4), b + rng.randint(0, 3), d + rng.randint(0, 2)
        scores = [Decimal(rng.randint(low * 2, high * 2)) / 2 for _ in duties]
        villagers = villagers_score(s, b, d, points)
        committee = committee_score(scores)
        final = final_score(villagers, committee, weight)
        grade = grade_for(final, limits)
        ev = DualEvaluation(
            org_id=org_id, person_id=person_id, year=YEAR, status=DualEvaluationStatus.finalized,
            report_summary=f"{name}{YEAR}年度述职报告", reported_at=_at(dt.date(YEAR, 12, 18)),
            votes_satisfied=s, votes_basically_satisfied=b, votes_dissatisfied=d,
            villagers_score_centi=to_centi(villagers), committee_score_centi=to_centi(committee),
            villager_weight_e4=to_e4(weight), final_score_centi=to_centi(final), grade=grade,
            finalized_at=_at(dt.date(YEAR, 12, 26)),
        )
        session.add(ev)
        session.flush()
        session.add_all([
            DualEvaluationDuty(evaluation_id=ev.id, duty_id=duty.id, sort_order=duty.sort_order,
                               report=REPORTS.format(duty=duty.name, act=rng.choice(ACTS)),
                               committee_score_centi=to_centi(score))
            for duty, score in zip(duties, scores, strict=True)
        ])
        counts["dual evaluations"] += 1
        if grade == Grade.incompetent:
            counts["problems (dual evaluations)"] += _problem(
                session, org_id=org_id, origin_key=f"dual_evaluation:{ev.id}", person_id=person_id,
                link_entity="dual_evaluation", link_id=ev.id,
                description=f"{name}在{YEAR}年度双述双评中被评为不称职(最终得分{final},群众测评{villagers},"
                            f"乡镇党委测评{committee})。")
    session.flush()
    return counts


# --- democratic evaluation, disposal, reserve pool -----------------------------------


def _seed_members(session: Session) -> dict[str, int]:
    counts = {"democratic evaluations": 0, "democratic evaluation entries": 0, "disposal cases": 0,
              "reserve cadres": 0}
    villages = _villages(session, MEMBER_TOWNSHIP)[:3]
    township_id = session.scalar(select(Organization.id).where(Organization.code == MEMBER_TOWNSHIP))
    for n, village in enumerate(villages):
        if session.scalar(select(DemocraticEvaluation.id).where(DemocraticEvaluation.org_id == village.id,
                                                               DemocraticEvaluation.year == YEAR)):
            continue
        rng = _rng(f"members-{village.code}")
        members = list(session.scalars(select(Person).where(
            Person.org_id == village.id, Person.status == PersonStatus.active,
            col(Person.member_status).in_([MemberStatus.full, MemberStatus.probationary])).order_by(Person.id)))
        if not members:
            continue
        reviews: dict[int, list[str]] = {}
        for pid, grade in session.execute(select(PostAssignment.person_id, PostAssignment.review_grade).where(
                PostAssignment.org_id == village.id, PostAssignment.year == YEAR,
                col(PostAssignment.review_grade).is_not(None))):
            reviews.setdefault(pid, []).append(grade)
        ev = DemocraticEvaluation(org_id=village.id, year=YEAR, held_on=dt.date(YEAR, 12, 10),
                                  status=DemocraticEvaluationStatus.finalized, finalized_at=_at(dt.date(YEAR, 12, 12)))
        session.add(ev)
        session.flush()
        voters = len(members) - 1
        # The first community's member with the weakest post review (or the last member) is rated unqualified.
        unqualified = None
        if n == 0:
            poor = [m for m in members if PostReviewGrade.poor in reviews.get(m.id, [])]
            unqualified = (poor or members)[-1].id
        entries = []
        for m in members:
            if m.id == unqualified:
                rating = MemberRating.unqualified
            elif PostReviewGrade.excellent in reviews.get(m.id, []) or rng.random() < 0.12:
                rating = MemberRating.excellent
            elif rng.random() < 0.1:
                rating = MemberRating.basically_qualified
            else:
                rating = MemberRating.qualified
            lead = {MemberRating.excellent: 0, MemberRating.qualified: 1, MemberRating.basically_qualified: 2,
                    MemberRating.unqualified: 3}[rating]
            tally = [0, 0, 0, 0]
            for _ in range(voters):
                tally[lead if rng.random() < 0.7 else rng.randint(max(lead - 1, 0), min(lead + 1, 3))] += 1
            entries.append(DemocraticEvaluationEntry(
                evaluation_id=ev.id, person_id=m.id, org_id=village.id, year=YEAR,
                self_evaluation="本年度认真学习党的理论，按时参加组织生活，积极履行党员义务。",
                votes_excellent=tally[0], votes_qualified=tally[1], votes_basically_qualified=tally[2],
                votes_unqualified=tally[3], rating=rating,
                rating_note="长期不参加组织生活，不按时交纳党费" if rating == MemberRating.unqualified else None))
        session.add_all(entries)
        session.flush()
        counts["democratic evaluations"] += 1
        counts["democratic evaluation entries"] += len(entries)
        for e in entries:
            if e.rating == MemberRating.unqualified:
                session.add(DisposalCase(
                    entry_id=e.id, person_id=e.person_id, org_id=village.id, year=YEAR,
                    status=DisposalStatus.approved, measure=DisposalMeasure.corrective_deadline,
                    decided_on=dt.date(YEAR, 12, 16), correct_by=dt.date(YEAR + 1, 6, 30),
                    decision_note="支部委员会研究，限期六个月改正", approved_on=dt.date(YEAR, 12, 24),
                    approving_org_id=township_id))
                counts["disposal cases"] += 1
        excellent = [e for e in entries if e.rating == MemberRating.excellent][:2]
        for e in excellent:
            session.add(ReserveCadre(org_id=village.id, person_id=e.person_id, reason="民主评议优秀，设岗履职突出",
                                     added_on=dt.date(YEAR, 12, 28)))
            counts["reserve cadres"] += 1
    session.flush()
    return counts


# --- secretaries --------------------------------------------------------------------


QUARTER_DAYS = (dt.date(YEAR, 3, 29), dt.date(YEAR, 6, 28), dt.date(YEAR, 9, 27), dt.date(YEAR, 12, 27))


def _seed_secretaries(session: Session) -> dict[str, int]:
    counts = {"secretary assessments": 0, "debriefing appraisals": 0, "problems (appraisals)": 0}
    weight = require_setting(session, SettingKey.quarterly_weight, YEAR)
    limits = thresholds(session, GradeScheme.secretary_appraisal, YEAR)
    for code in SECRETARY_TOWNSHIPS:
        villages = _villages(session, code)
        secretaries: dict[int, int] = dict(session.execute(
            select(Position.org_id, Position.person_id)
            .where(col(Position.org_id).in_([v.id for v in villages]), Position.title == PositionTitle.secretary,
                   Position.started_on <= dt.date(YEAR, 1, 1),
                   or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= dt.date(YEAR, 12, 31)))
            .order_by(Position.org_id, Position.started_on)
        ).all())
        plans: dict[int, tuple[list[Decimal], Decimal]] = {}
        for village in villages:
            rng = _rng(f"secretary-{village.code}")
            base = rng.randint(66, 92)
            plans[village.id] = ([Decimal(min(100, base + rng.randint(-4, 6))) for _ in QUARTER_DAYS],  # type: ignore[index]
                                 Decimal(min(100, base + rng.randint(-6, 6))))
        if len(villages) >= 2:  # two secretaries tie on every score: the ranking's tie-break shows
            plans[villages[1].id] = plans[villages[0].id]  # type: ignore[index]
        for village in villages:
            person_id = secretaries.get(village.id)
            if person_id is None:
                continue
            quarters, reviewers = plans[village.id]  # type: ignore[index]
            have = set(session.scalars(select(SecretaryAssessment.quarter).where(
                SecretaryAssessment.org_id == village.id, SecretaryAssessment.year == YEAR)))
            for q, (day, score) in enumerate(zip(QUARTER_DAYS, quarters, strict=True), start=1):
                if q not in have:
                    session.add(SecretaryAssessment(org_id=village.id, person_id=person_id, year=YEAR, quarter=q,
                                                    score_centi=to_centi(score), assessed_on=day,
                                                    comment="按季度对单考核"))
                    counts["secretary assessments"] += 1
            if session.scalar(select(DebriefingAppraisal.id).where(DebriefingAppraisal.org_id == village.id,
                                                                  DebriefingAppraisal.year == YEAR)):
                continue
            q_avg = quarterly_average(quarters)
            score = year_score(q_avg, reviewers, weight)
            appraisal = DebriefingAppraisal(
                org_id=village.id, person_id=person_id, year=YEAR,
                report=f"{village.name}党组织书记{YEAR}年度抓基层党建工作述职报告",
                reviewers_score_centi=to_centi(reviewers), quarterly_average_centi=to_centi(q_avg),
                quarterly_weight_e4=to_e4(weight), year_score_centi=to_centi(score), grade=grade_for(score, limits),
                appraised_on=dt.date(YEAR, 12, 30))
            session.add(appraisal)
            session.flush()
            counts["debriefing appraisals"] += 1
            if score < 85:
                rng = _rng(f"appraisal-problems-{village.code}")
                for description, cause, measures in rng.sample(APPRAISAL_PROBLEMS, 1 if score >= 75 else 2):
                    digest = hashlib.sha256(description.encode()).hexdigest()[:24]
                    counts["problems (appraisals)"] += _problem(
                        session, org_id=village.id, person_id=person_id, link_entity="debriefing_appraisal",
                        link_id=appraisal.id, origin_key=f"debriefing_appraisal:{appraisal.id}:{digest}",
                        description=description, cause=cause, measures=measures, deadline=dt.date(YEAR + 1, 6, 30))
    session.flush()
    return counts
