"""Standardisation demo data: the 2019 catalogue for the seven domains, 2019 audits of every village
in two townships, venues and their investments, and a year of meeting records with some gaps.

What comes from the source (《康定市基层党组织标准化建设工作法》 as the article describes it):
seven domains × six aspects; rules for decisions, meetings and reporting (90 in all); the
"four rooms, one school, five centres" and 100 million yuan of venue investment over three
years; 三会一课, the party member activity day and the organisational life meeting; public
commitments and demonstration / backward organisations; records kept without extra burden;
a quarterly routine assessment plus a year-end debriefing assessment. The item wording, the
points and every score, facility and meeting below are synthetic and deterministic.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.db import utcnow
from app.demo import platform
from app.models.accounts import User
from app.models.organizations import Organization, OrgDomain, OrgLevel
from app.models.standards import (
    Aspect,
    AuditKind,
    AuditScore,
    AuditStatus,
    Facility,
    FacilityCondition,
    FacilityType,
    FundingSource,
    InvestmentStatus,
    MeetingRecord,
    MeetingType,
    StandardAudit,
    StandardItem,
    StandardSet,
    StandardSetStatus,
    VenueInvestment,
)
from app.services.standards.audits import LINK_ENTITY, backward_problems
from app.services.standards.common import rating_for

ORDER = 20
RANDOM_SEED = 2019
YEAR = 2019
# The two townships audited village by village: a street of communities and a town of villages.
AUDITED_TOWNSHIPS = ("513301001", "513301101")  # 炉城街道, 姑咱镇
# "三年来市财政累计投入1亿元": spread over 2017-2019 across every village.
VENUE_INVESTMENT_FEN = 100_000_000_00
INVESTMENT_YEARS = (2017, 2018, 2019)
CITY_FUNDED = "活动场所新建改扩建（市财政）"


@dataclass(frozen=True)
class ItemPlan:
    aspect: Aspect
    code: str
    requirement: str
    max_score: int
    evidence: str
    meeting_type: MeetingType | None = None


# One catalogue for every domain (100 points), its venue item worded per domain below.
BASE_ITEMS: tuple[ItemPlan, ...] = (
    ItemPlan(Aspect.organization_operation, "OPS-1", "建立完善议事决策制度，重大事项集体研究决定", 8,
             "议事决策制度文本、会议记录"),
    ItemPlan(Aspect.organization_operation, "OPS-2", "落实工作会议制度，班子定期研究党建工作", 6, "会议记录"),
    ItemPlan(Aspect.organization_operation, "OPS-3", "落实日常报告制度，重要情况及时向上级党组织报告", 6,
             "报告材料"),
    ItemPlan(Aspect.venue, "VEN-1", "", 8, "现场查看"),
    ItemPlan(Aspect.venue, "VEN-2", "活动场所管好用好，发挥服务党员群众作用", 7, "使用登记、现场查看"),
    ItemPlan(Aspect.organizational_life, "LIF-1", "支部委员会每月至少召开1次", 5, "会议记录",
             MeetingType.branch_committee_meeting),
    ItemPlan(Aspect.organizational_life, "LIF-2", "支部党员大会每季度至少召开1次", 5, "会议记录",
             MeetingType.branch_general_meeting),
    ItemPlan(Aspect.organizational_life, "LIF-3", "党小组会每月至少召开1次", 4, "会议记录",
             MeetingType.party_group_meeting),
    ItemPlan(Aspect.organizational_life, "LIF-4", "党课每季度至少1次，书记带头讲党课", 4, "党课讲稿、记录",
             MeetingType.party_lecture),
    ItemPlan(Aspect.organizational_life, "LIF-5", "每月开展主题党日（党员活动日）", 4, "活动记录",
             MeetingType.activity_day),
    ItemPlan(Aspect.organizational_life, "LIF-6", "每年召开组织生活会，开展批评与自我批评", 3, "会议记录",
             MeetingType.organizational_life_meeting),
    ItemPlan(Aspect.excellence, "EXC-1", "党员干部公开承诺、亮诺、践诺", 6, "承诺书、公示照片"),
    ItemPlan(Aspect.excellence, "EXC-2", "开展示范创评与后进整顿提升", 5, "创评材料"),
    ItemPlan(Aspect.excellence, "EXC-3", "围绕脱贫攻坚、乡村振兴创先进争优秀", 4, "工作台账"),
    ItemPlan(Aspect.records, "REC-1", "基础内业资料完整规范，工作有迹可循", 6, "台账资料"),
    ItemPlan(Aspect.records, "REC-2", "精简台账，不给基层增加额外负担", 4, "台账目录"),
    ItemPlan(Aspect.assessment, "ASS-1", "开展季度日常考核", 6, "考核记录"),
    ItemPlan(Aspect.assessment, "ASS-2", "开展年底述职考核", 6, "述职报告、测评结果"),
    ItemPlan(Aspect.assessment, "ASS-3", "考核结果运用，奖优罚劣", 3, "奖惩文件"),
)

VENUE_WORDING: dict[str, str] = {
    OrgDomain.rural: "健全“四室一校五中心”：办公室、会议室、党员活动室、档案室，农牧民夜校，便民服务等五个中心",
    OrgDomain.community: "健全“四室一校五中心”，社区党群服务中心功能完善",
    OrgDomain.township: "乡镇党委活动阵地规范，中心校运行正常",
    OrgDomain.street: "街道党工委活动阵地规范，辖区党群服务中心功能完善",
    OrgDomain.organ: "机关党员活动室、党建宣传阵地建设规范",
    OrgDomain.institution: "事业单位党员活动室、党建宣传阵地建设规范",
    OrgDomain.two_new: "两新组织党员活动场所有固定或共享阵地",
}

# Facilities every village has, and those only some have (by the share that has them).
ALWAYS = ("office", "meeting_room", "activity_room")
SOMETIMES = {"archive_room": 0.8, "night_school": 0.85, "convenience_centre": 0.75, "culture_centre": 0.55,
             "health_centre": 0.6, "governance_centre": 0.5, "ecommerce_centre": 0.3}
REQUIRED_PERIODS = {
    MeetingType.branch_committee_meeting: 12, MeetingType.party_group_meeting: 12, MeetingType.activity_day: 12,
    MeetingType.branch_general_meeting: 4, MeetingType.party_lecture: 4, MeetingType.organizational_life_meeting: 1,
}


def seed_standards(session: Session) -> dict[str, int]:
    """Add whatever of the standards demo is missing; return how many rows of each kind were created."""
    counts = {"standard_sets": 0, "standard_items": 0}
    sets = _seed_catalogue(session, counts)
    villages = session.execute(
        select(Organization.id, Organization.code, Organization.domain, Organization.parent_id, Organization.path)
        .where(Organization.level == OrgLevel.village, col(Organization.code).is_not(None))
        .order_by(Organization.code)
    ).all()
    codes = platform.org_ids_by_code(session)
    audited = [v for v in villages if v.code[:9] in AUDITED_TOWNSHIPS]
    # One generator per part, every draw made whether or not its row exists: a second run plans the same rows.
    counts |= _seed_audits(session, _rng("audits"), sets, audited, codes)
    counts |= _seed_venues(session, _rng("venues"), villages)
    counts |= _seed_meetings(session, _rng("meetings"), audited)
    session.flush()
    return counts


seed = seed_standards


def _rng(part: str) -> random.Random:
    return random.Random(f"{RANDOM_SEED}-{part}")  # noqa: S311  (reproducible demo data, not secrets)


def _seed_catalogue(session: Session, counts: dict[str, int]) -> dict[str, StandardSet]:
    existing: dict[str, StandardSet] = {s.domain: s for s in session.scalars(
        select(StandardSet).where(StandardSet.year == YEAR, StandardSet.edition == 1))}
    now = utcnow()
    for domain in OrgDomain:
        std = existing.get(domain)
        if std is None:
            std = StandardSet(
                year=YEAR, domain=domain, edition=1, name=f"康定市{domain.zh}基层党组织标准化建设标准（{YEAR}年版）",
                description="依据《康定市基层党组织标准化建设工作法》：组织运行、阵地建设、组织生活、创先争优、"
                            "内业管理、考核问效六个方面。条目与分值为演示数据。",
                status=StandardSetStatus.published, published_at=now)
            session.add(std)
            session.flush()
            existing[domain] = std
            counts["standard_sets"] += 1
        have = set(session.scalars(select(StandardItem.code).where(StandardItem.set_id == std.id)))
        for position, plan in enumerate(BASE_ITEMS, start=1):
            if plan.code in have:
                continue
            session.add(StandardItem(
                set_id=std.id, aspect=plan.aspect, code=plan.code,
                requirement=plan.requirement or VENUE_WORDING[domain], max_score=plan.max_score,
                evidence=plan.evidence, meeting_type=plan.meeting_type, position=position))
            counts["standard_items"] += 1
    session.flush()
    return existing


WEAK_ASPECTS = (Aspect.venue, Aspect.organizational_life, Aspect.excellence)


def _target_ratios(rng: random.Random, n: int, of: int) -> dict[str, float]:
    """The n-th of `of` villages of a township: the first leads (示范); the last lags (后进), weak in venues,
    organisational life and excellence; the others comply or lead in turn."""
    if n == of - 1 and of > 1:
        return {a.value: rng.uniform(0.3, 0.4) if a in WEAK_ASPECTS else rng.uniform(0.7, 0.8) for a in Aspect}
    ratio = rng.uniform(0.93, 0.97) if n % 2 == 0 else rng.uniform(0.68, 0.84)
    return {a.value: ratio for a in Aspect}


def _seed_audits(session: Session, rng: random.Random, sets: dict[str, StandardSet], audited: list[Any],
                 codes: dict[str, int]) -> dict[str, int]:
    from app.models.responsibilities import Problem, ProblemSource, ProblemStatus

    counts = {"audits": 0, "audit_scores": 0, "problems": 0}
    reviewers: dict[int, int] = dict(session.execute(
        select(User.org_id, User.id).where(col(User.org_id).in_([codes[c] for c in AUDITED_TOWNSHIPS if c in codes]))
    ).all())
    existing = {(a.org_id, a.kind): a for a in session.scalars(
        select(StandardAudit).where(StandardAudit.year == YEAR, StandardAudit.period == str(YEAR),
                                    col(StandardAudit.org_id).in_([v.id for v in audited])))}
    items_by_set: dict[int, list[StandardItem]] = {}
    position: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for village in audited:
        sizes[village.code[:9]] = sizes.get(village.code[:9], 0) + 1
    finished = dt.datetime(YEAR, 12, 20, 8, 0, tzinfo=dt.UTC)
    for village in audited:
        n = position[village.code[:9]] = position.get(village.code[:9], -1) + 1
        std = sets[village.domain]
        items = items_by_set.setdefault(std.id, list(session.scalars(
            select(StandardItem).where(StandardItem.set_id == std.id).order_by(StandardItem.position))))
        target = _target_ratios(rng, n, sizes[village.code[:9]])
        for kind, lift in ((AuditKind.self_assessment, 0.06), (AuditKind.review, 0.0)):
            values = {i.id: max(0, min(i.max_score, round(i.max_score * (target[i.aspect] + lift
                                                                          + rng.uniform(-0.1, 0.1)))))
                      for i in items}
            if (village.id, kind) in existing:
                continue
            total, top = sum(values.values()), sum(i.max_score for i in items)
            a = StandardAudit(
                org_id=village.id, set_id=std.id, year=YEAR, quarter=None, period=str(YEAR), kind=kind,
                status=AuditStatus.finalized, score_total=total, score_max=top,
                rating=rating_for(total, top, demonstration_min_pct=std.demonstration_min_pct,
                                  compliant_min_pct=std.compliant_min_pct),
                summary="2019年度标准化建设" + ("自评" if kind == AuditKind.self_assessment else "考评"),
                submitted_at=finished - dt.timedelta(days=5), finalized_at=finished,
                finalized_by=reviewers.get(village.parent_id), created_by=reviewers.get(village.parent_id)
                if kind == AuditKind.review else None,
            )
            session.add(a)
            session.flush()
            scores = {item_id: AuditScore(audit_id=a.id, item_id=item_id, score=v, note=None)
                      for item_id, v in values.items()}
            session.add_all(scores.values())
            counts["audits"] += 1
            counts["audit_scores"] += len(scores)
            if kind == AuditKind.review and a.rating == "backward":
                for spec in backward_problems(a, std, items, scores):
                    if session.scalar(select(Problem.id).where(Problem.origin_key == spec.origin_key)) is None:
                        session.add(Problem(
                            org_id=village.id, year=YEAR, source=ProblemSource.standards_audit,
                            description=spec.description, deadline=spec.deadline, status=ProblemStatus.open,
                            link_entity=LINK_ENTITY, link_id=a.id, origin_key=spec.origin_key,
                            opened_by=a.finalized_by))
                        counts["problems"] += 1
    session.flush()
    return counts


def _seed_venues(session: Session, rng: random.Random, villages: list[Any]) -> dict[str, int]:
    counts = {"facilities": 0, "venue_investments": 0}
    types: dict[str, int] = dict(session.execute(select(FacilityType.code, FacilityType.id)).all())
    have = {tuple(r) for r in session.execute(select(Facility.org_id, Facility.facility_type_id))}
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for v in villages:
        wanted = [*ALWAYS, *(code for code, share in SOMETIMES.items() if rng.random() < share)]
        for code in wanted:
            area, built = rng.randrange(20, 160, 5), rng.choice((2012, 2015, 2016, 2017, 2018, 2019))
            condition = rng.choice((FacilityCondition.good,) * 4 + (FacilityCondition.fair,))
            if code not in types or (v.id, types[code]) in have:
                continue
            rows.append({"org_id": v.id, "facility_type_id": types[code], "area_m2": area, "year_built": built,
                         "condition": condition, "in_use": True, "version": 1, "created_at": now, "updated_at": now})
    if rows:
        session.execute(insert(Facility), rows)
    counts["facilities"] = len(rows)

    # 1 亿元 over three years, split by weight across villages and years; the last entry takes the remainder.
    plan = [(v.id, year, rng.uniform(0.5, 1.5)) for v in villages for year in INVESTMENT_YEARS if rng.random() < 0.6]
    weight = sum(w for _, _, w in plan) or 1.0
    amounts = [int(VENUE_INVESTMENT_FEN * w / weight) // 100 * 100 for _, _, w in plan]
    if amounts:
        amounts[-1] += VENUE_INVESTMENT_FEN - sum(amounts)
    existing = {tuple(r) for r in session.execute(
        select(VenueInvestment.org_id, VenueInvestment.year).where(VenueInvestment.description == CITY_FUNDED))}
    inv_rows = [
        {"org_id": org_id, "year": year, "amount_fen": fen, "funding_source": FundingSource.city_finance,
         "description": CITY_FUNDED, "status": InvestmentStatus.recorded, "version": 1,
         "created_at": now, "updated_at": now}
        for (org_id, year, _), fen in zip(plan, amounts, strict=True) if (org_id, year) not in existing
    ]
    if inv_rows:
        session.execute(insert(VenueInvestment), inv_rows)
    counts["venue_investments"] = len(inv_rows)
    return counts


def _meeting_days(meeting_type: MeetingType) -> list[dt.date]:
    n = REQUIRED_PERIODS[meeting_type]
    if n == 12:
        day = {MeetingType.branch_committee_meeting: 5, MeetingType.party_group_meeting: 12,
               MeetingType.activity_day: 1}[meeting_type]
        return [dt.date(YEAR, m, day) for m in range(1, 13)]
    if n == 4:
        return [dt.date(YEAR, 3 * q - 1, 18 if meeting_type == MeetingType.party_lecture else 25) for q in (1, 2, 3, 4)]
    return [dt.date(YEAR, 12, 28)]


TOPICS = {
    MeetingType.branch_committee_meeting: "研究部署脱贫攻坚与乡村振兴工作",
    MeetingType.party_group_meeting: "学习党章党规",
    MeetingType.activity_day: "主题党日：志愿服务",
    MeetingType.branch_general_meeting: "通报季度工作，讨论发展党员",
    MeetingType.party_lecture: "书记讲党课：不忘初心、牢记使命",
    MeetingType.organizational_life_meeting: "年度组织生活会暨民主评议党员",
}


def _seed_meetings(session: Session, rng: random.Random, audited: list[Any]) -> dict[str, int]:
    """Every meeting the frequencies require in 2019, less about one in twelve (the gaps)."""
    have = {tuple(r) for r in session.execute(
        select(MeetingRecord.org_id, MeetingRecord.meeting_type, MeetingRecord.held_on)
        .where(col(MeetingRecord.org_id).in_([v.id for v in audited])))}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for v in audited:
        members = rng.randint(18, 45)
        for meeting_type in MeetingType:
            for day in _meeting_days(meeting_type):
                expected = members if meeting_type != MeetingType.branch_committee_meeting else 5
                gap, absent = rng.random() < 0.08, rng.randint(0, max(1, expected // 6))
                if gap or (v.id, meeting_type.value, day) in have:
                    continue
                rows.append({
                    "org_id": v.id, "meeting_type": meeting_type, "held_on": day, "topic": TOPICS[meeting_type],
                    "expected_count": expected, "present_count": expected - absent,
                    "minutes": None,
                    "lecturer": "党组织书记" if meeting_type == MeetingType.party_lecture else None,
                    "version": 1, "created_at": now, "updated_at": now,
                })
    if rows:
        session.execute(insert(MeetingRecord), rows)
    return {"meeting_records": len(rows)}
