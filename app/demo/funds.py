"""Funds demo data for 2018 and 2019: budget lines, allocations, disbursements, subsidy policies, a committed and
paid 2019 run, and a year of party dues with some arrears.

What comes from the source (2019): the party-work fund of 500,000 yuan a year; the cadre training fund of
700,000; the community work fund of 60,000 per community, raised to 110,000 from 2019; accident insurance of
100 yuan and a pension insurance subsidy of 800 yuan per village cadre a year; over 4 million yuan a year for
left-office cadres' living allowances. Synthetic (and deterministic): the basic pay by title, the altitude and
service-year bands, the allocations to townships, every disbursement, the dues categories, bases and payments.

Rows are written directly (not through the services, which would write one audit row each): the seed's single
`demo.seed` audit row covers them. Natural keys make a second run add nothing: policies by (kind, valid_from),
lines by (year, organisation, category, name), disbursements by (line, purpose), the run by (year, note),
profiles by (member, month), paid months by (member, month).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.db import utcnow
from app.demo import platform
from app.models.accounts import User
from app.models.funds.budgets import BudgetAllocation, BudgetCategory, BudgetLine, Disbursement
from app.models.funds.dues import DuesPayment, DuesPaymentMonth, DuesProfile
from app.models.funds.subsidies import SubsidyLine, SubsidyPolicy, SubsidyRate, SubsidyRun, SubsidyRunKind
from app.models.organizations import Organization, OrgDomain, OrgLevel
from app.models.people import MemberStatus, Person, PersonStatus
from app.services.funds import dues as dues_service
from app.services.funds import entitlements

ORDER = 30
RANDOM_SEED = 2019
YEARS = (2018, 2019)
D = dt.date
SOURCE = "市财政"
RUN_NOTE = "2019年村干部两险一补（演示数据）"
DUES_TOWNSHIPS = ("513301001", "513301101")  # 炉城街道, 姑咱镇: a street of communities and a town of villages

# (kind, name, valid_from, valid_to, rates): rates are (title, band_min, band_max, yuan)
POLICIES: list[tuple[str, str, dt.date, dt.date | None, list[tuple[str | None, int | None, int | None, int]]]] = [
    ("accident_insurance", "村干部人身意外伤害保险", D(2019, 1, 1), None, [(None, None, None, 100)]),
    ("pension_subsidy", "村干部养老保险补贴", D(2019, 1, 1), None, [(None, None, None, 800)]),
    ("community_work_fund", "社区工作经费", D(2015, 1, 1), D(2018, 12, 31), [(None, None, None, 60_000)]),
    ("community_work_fund", "社区工作经费（提标）", D(2019, 1, 1), None, [(None, None, None, 110_000)]),
    ("basic_pay", "在职村干部基本报酬", D(2019, 1, 1), None, [
        ("secretary", None, None, 2_200), ("deputy_secretary", None, None, 1_900),
        ("village_committee_director", None, None, 2_000), ("committee_member", None, None, 1_600)]),
    ("altitude_allowance", "高海拔临岗补贴", D(2019, 1, 1), None, [
        (None, 3000, 3500, 100), (None, 3500, 4000, 200), (None, 4000, None, 300)]),
    ("retired_allowance", "离任村干部生活补助", D(2019, 1, 1), None, [
        (None, 3, 10, 150), (None, 10, 20, 250), (None, 20, None, 350)]),
]

# City lines each year: (category, name, yuan)
CITY_LINES = [
    ("party_work", "党建工作经费", 500_000),
    ("training", "基层党员干部培训经费", 700_000),
    ("retired_allowance", "离任村干部生活补助", 4_200_000),
]
COMMUNITY_FUND = {2018: 60_000, 2019: 110_000}
PARTY_WORK_PER_TOWNSHIP = 10_000
TRAINING_CLASSES = 12
TRAINING_CLASS_COST = 45_000


def seed(session: Session) -> dict[str, int]:
    """Add what is missing of the funds demo data; return the counts created."""
    return seed_funds(session)


def seed_funds(session: Session) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    city_id = platform.city_id(session)
    if city_id is None:
        return {}
    orgs = list(session.execute(select(Organization.id, Organization.code, Organization.level, Organization.domain,
                                       Organization.path).where(col(Organization.code).is_not(None))))
    townships = [o for o in orgs if o.level == OrgLevel.township]
    communities = [o for o in orgs if o.level == OrgLevel.village and o.domain == OrgDomain.community]
    city_admin = session.scalar(select(User.id).where(User.username == "city_admin"))
    now = utcnow()

    counts["subsidy_policies"] = _policies(session)
    for year in YEARS:
        lines = {c: _line(session, counts, year, city_id, c, n, y * 100) for c, n, y in CITY_LINES}
        community_line = _line(session, counts, year, city_id, "community_work", "社区工作经费",
                               COMMUNITY_FUND[year] * 100 * len(communities))
        for c in communities:
            _allocate(session, counts, community_line, c.id, COMMUNITY_FUND[year] * 100, "社区工作经费", now)
        for t in townships:
            _allocate(session, counts, lines["party_work"], t.id, PARTY_WORK_PER_TOWNSHIP * 100, "党建工作经费", now)
        for i in range(TRAINING_CLASSES):
            month = i + 1
            status = "paid" if year == 2018 or month <= 10 else ("approved" if month == 11 else "pending")
            _disburse(session, counts, lines["training"], f"第{month}期主体培训班（{year}年{month}月）",
                      D(year, month, 20), TRAINING_CLASS_COST * 100, status, city_admin)
        _disburse(session, counts, lines["party_work"], f"{year}年党建宣传资料印制", D(year, 4, 8), 38_500_00, "paid",
                  city_admin)
    counts["subsidy_lines"] = _run_2019(session, counts, city_id, city_admin, now)
    counts["dues_payments"] = _dues(session, counts, orgs, now)
    session.flush()
    return {k: v for k, v in counts.items() if v}


# --- ledger -----------------------------------------------------------------------------


def _policies(session: Session) -> int:
    created = 0
    for kind, name, start, end, rates in POLICIES:
        if session.scalar(select(SubsidyPolicy.id).where(SubsidyPolicy.kind == kind,
                                                         SubsidyPolicy.valid_from == start)) is not None:
            continue
        p = SubsidyPolicy(kind=kind, name=name, valid_from=start, valid_to=end, note="演示数据")
        session.add(p)
        session.flush()
        for title, lo, hi, yuan in rates:
            session.add(SubsidyRate(policy_id=p.id, title=title, band_min=lo, band_max=hi, amount_fen=yuan * 100))
        created += 1
    session.flush()
    return created


def _line(session: Session, counts: dict[str, int], year: int, org_id: int, category: str, name: str,
          allocated_fen: int, *, parent: BudgetLine | None = None) -> BudgetLine:
    line = session.scalar(select(BudgetLine).where(BudgetLine.fiscal_year == year, BudgetLine.org_id == org_id,
                                                   BudgetLine.category == category, BudgetLine.name == name))
    if line is None:
        line = BudgetLine(fiscal_year=year, org_id=org_id, category=category, name=name,
                          source=f"allocation from budget line {parent.id}" if parent else SOURCE,
                          parent_line_id=parent.id if parent else None, allocated_fen=allocated_fen)
        session.add(line)
        session.flush()
        counts["budget_lines"] += 1
    return line


def _allocate(session: Session, counts: dict[str, int], source: BudgetLine, to_org_id: int, amount_fen: int,
              name: str, now: dt.datetime) -> None:
    exists = session.scalar(select(BudgetLine.id).where(
        BudgetLine.fiscal_year == source.fiscal_year, BudgetLine.org_id == to_org_id,
        BudgetLine.category == source.category, BudgetLine.parent_line_id == source.id))
    if exists is not None:
        return
    target = _line(session, counts, source.fiscal_year, to_org_id, source.category, name, amount_fen, parent=source)
    source.allocated_down_fen += amount_fen
    source.committed_fen += amount_fen
    session.add(BudgetAllocation(fiscal_year=source.fiscal_year, category=source.category, from_line_id=source.id,
                                 to_line_id=target.id, from_org_id=source.org_id, to_org_id=to_org_id,
                                 amount_fen=amount_fen, note="年初预算下达", created_at=now))
    session.flush()
    counts["allocations"] += 1


def _disburse(session: Session, counts: dict[str, int], line: BudgetLine, purpose: str, day: dt.date,
              amount_fen: int, status: str, approver: int | None) -> None:
    if session.scalar(select(Disbursement.id).where(Disbursement.line_id == line.id,
                                                    Disbursement.purpose == purpose)) is not None:
        return
    at = dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
    d = Disbursement(line_id=line.id, org_id=line.org_id, payee_kind="other", payee_name="康定市委党校",
                     purpose=purpose, disbursed_on=day, amount_fen=amount_fen, status=status, created_at=at)
    if status in ("approved", "paid"):
        d.approved_by, d.approved_at = approver, at
        line.committed_fen += amount_fen
        if status == "approved":
            line.approved_fen += amount_fen
    if status == "paid":
        d.paid_by, d.paid_at = approver, at
        line.paid_fen += amount_fen
    session.add(d)
    session.flush()
    counts["disbursements"] += 1


# --- the 2019 run: two insurances, committed and paid ------------------------------------------


def _run_2019(session: Session, counts: dict[str, int], city_id: int, approver: int | None,
              now: dt.datetime) -> int:
    if session.scalar(select(SubsidyRun.id).where(SubsidyRun.year == 2019, SubsidyRun.note == RUN_NOTE)) is not None:
        return 0
    city_path = session.scalar(select(Organization.path).where(Organization.id == city_id))
    assert city_path is not None
    ref = D(2019, 1, 1)
    computed = {kind: entitlements.compute(session, kind=kind, scope_path=city_path, year=2019, month=None,
                                           reference_date=ref)
                for kind in ("accident_insurance", "pension_subsidy")}
    totals = {kind: sum(r["amount_fen"] for r in rows) for kind, rows in computed.items()}
    names = {"accident_insurance": "村干部人身意外伤害保险", "pension_subsidy": "村干部养老保险补贴"}
    lines = {}
    for kind, total in totals.items():
        budget = -(-total // 10_000_00) * 10_000_00 + 10_000_00  # the total rounded up, plus a margin
        line = _line(session, counts, 2019, city_id, kind, names[kind], budget)
        line.paid_fen += total
        line.committed_fen += total
        lines[kind] = line
    at = dt.datetime(2019, 3, 15, 10, tzinfo=dt.UTC)
    run = SubsidyRun(year=2019, org_id=city_id, reference_date=ref, status="paid", total_fen=sum(totals.values()),
                     line_count=sum(len(r) for r in computed.values()), note=RUN_NOTE, computed_at=at,
                     committed_by=approver, committed_at=at, created_at=at)
    session.add(run)
    session.flush()
    for kind, rows in computed.items():
        session.add(SubsidyRunKind(run_id=run.id, kind=kind, budget_line_id=lines[kind].id, total_fen=totals[kind],
                                   beneficiaries=len(rows)))
        if rows:
            session.execute(insert(SubsidyLine), [
                {**r, "run_id": run.id, "status": "paid", "claimed": True, "paid_by": approver, "paid_at": at}
                for r in rows])
    session.flush()
    counts["subsidy_runs"] += 1
    return sum(len(r) for r in computed.values())


# --- party dues: profiles from January 2019, a year of payments, some arrears ----------------------


def _dues(session: Session, counts: dict[str, int], orgs: list[Any], now: dt.datetime) -> int:
    rng = random.Random(RANDOM_SEED)  # noqa: S311  (reproducible demo data)
    prefixes = [o.path for o in orgs if o.code in DUES_TOWNSHIPS]
    village_ids = {o.id: o for o in orgs if o.level == OrgLevel.village
                   and any(o.path.startswith(p) for p in prefixes)}
    members = list(session.execute(
        select(Person.id, Person.org_id, Person.birth_date, Person.member_status, Person.joined_party_on)
        .where(col(Person.org_id).in_(list(village_ids)), Person.member_status != MemberStatus.none,
               Person.status == PersonStatus.active).order_by(Person.id)))
    have_profile = set(session.scalars(select(DuesProfile.person_id).where(
        col(DuesProfile.person_id).in_([m.id for m in members]))))
    start = D(2019, 1, 1)
    created_payments = 0
    lines: dict[int, BudgetLine] = {}
    for m in members:
        rural = village_ids[m.org_id].domain == OrgDomain.rural
        born = m.birth_date or D(1970, 1, 1)
        if born.year >= 1997:
            category, base, fixed = "student", None, None
        elif born.year <= 1959:
            category, base, fixed = "retired", rng.randrange(1_800, 4_600, 10) * 100, None
        elif rural:
            category, base, fixed = "farmer", None, rng.choice([50, 100])
        else:
            category, base, fixed = "employed", rng.randrange(2_400, 9_000, 10) * 100, None
        # Drawn before the idempotency check so a second run draws the same numbers for everyone.
        quarterly = rng.random() < 0.5
        stops = rng.randint(3, 8) if rng.random() < 0.15 else 13
        big_extra = rng.random() < 0.03  # a single voluntary extra of 1,000 yuan: remitted to the centre
        if m.id in have_profile:
            continue
        due, basis = dues_service.monthly_due(session, category, base, fixed, start)
        session.add(DuesProfile(person_id=m.id, effective_from=start, category=category, base_fen=base,
                                fixed_fen=fixed if fixed is not None else (due if category == "student" else None),
                                monthly_due_fen=due, basis=basis, note="演示数据", created_at=now))
        counts["dues_profiles"] += 1
        first = max(1, m.joined_party_on.month if m.joined_party_on and m.joined_party_on.year == 2019 else 1)
        if m.joined_party_on and m.joined_party_on > D(2019, 12, 31):
            continue
        months = [mo for mo in range(first, 13) if mo < stops]
        groups = ([[mo for mo in months if (mo - 1) // 3 == q] for q in range(4)] if quarterly
                  else [[mo] for mo in months])
        for n, group in enumerate(g for g in groups if g):
            last = group[-1]
            paid_on = D(2019, last, min(28, 10 + rng.randint(0, 15)))
            extra = 1_000_00 if big_extra and n == 0 else 0
            line = lines.get(m.org_id) or _dues_line(session, counts, m.org_id)
            lines[m.org_id] = line
            p = DuesPayment(person_id=m.id, org_id=m.org_id, month_from=D(2019, group[0], 1),
                            month_to=D(2019, last, 1), amount_fen=due * len(group) + extra, due_fen=due * len(group),
                            extra_fen=extra, remit_to_centre=extra >= 1_000_00, paid_on=paid_on,
                            method=rng.choice(["cash", "wechat", "bank_transfer"]), budget_line_id=line.id,
                            created_at=now)
            session.add(p)
            session.flush()
            session.execute(insert(DuesPaymentMonth), [
                {"payment_id": p.id, "person_id": m.id, "month": D(2019, mo, 1), "due_fen": due} for mo in group])
            line.allocated_fen += p.amount_fen
            created_payments += 1
    session.flush()
    return created_payments


def _dues_line(session: Session, counts: dict[str, int], org_id: int) -> BudgetLine:
    line = session.scalar(select(BudgetLine).where(BudgetLine.fiscal_year == 2019, BudgetLine.org_id == org_id,
                                                   BudgetLine.category == BudgetCategory.party_dues))
    if line is None:
        line = BudgetLine(fiscal_year=2019, org_id=org_id, category=BudgetCategory.party_dues, name="党费 2019",
                          source="party dues collected", allocated_fen=0)
        session.add(line)
        session.flush()
        counts["budget_lines"] += 1
    return line


def totals(session: Session) -> dict[str, int]:
    """Row counts of the funds tables (for the command line's report and the tests)."""
    return {
        "budget_lines": int(session.scalar(select(func.count()).select_from(BudgetLine)) or 0),
        "subsidy_lines": int(session.scalar(select(func.count()).select_from(SubsidyLine)) or 0),
        "dues_payments": int(session.scalar(select(func.count()).select_from(DuesPayment)) or 0),
    }
