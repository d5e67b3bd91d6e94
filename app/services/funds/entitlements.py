"""Who is entitled to what: the set-based computation behind a subsidy run.

Decisions (documented in the API too):
- A village cadre holds a position titled secretary, deputy_secretary, committee_member or
  village_committee_director at a village-level organisation (村、社区). Resident first secretaries (驻村第一书记)
  are NOT village cadres here: their sending unit pays and insures them.
- In office on a day: started_on ≤ day ≤ ended_on (an open position has no end). A month counts when the person
  held a qualifying position on the 15th of that month.
- Yearly per-cadre kinds (accident_insurance, pension_subsidy) pay cadres in office on the run's reference date
  (default 1 January), at the policy valid that day; community_work_fund pays each active community (村/社区
  organisation of the community domain) in scope, at the policy valid on the reference date.
- Monthly kinds look up the policy valid on each month's 15th; a month without a valid policy is an error (422),
  never a silent zero. basic_pay is by title (the best-paid title held that day); altitude_allowance by the band
  of the organisation's altitude (an organisation without an altitude has none); retired_allowance pays months on
  whose 15th the person holds no qualifying position but held one before, by the band of completed years of
  service in qualifying positions (overlaps once; the same counting as people.service_years), and stops after
  the day a deceased or removed person left the roll.
- Everything is loaded with a fixed number of queries whatever the number of cadres (positions of the whole
  scope in one query) and computed in memory; lines are written with one bulk INSERT.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.errors import ProblemError
from app.core.money import fmt_yuan
from app.core.scope import in_subtree
from app.models.funds.subsidies import MONTHLY_KINDS, SubsidyKind, SubsidyPolicy, SubsidyRate
from app.models.organizations import Organization, OrgDomain, OrgLevel, OrgStatus
from app.models.people import Person, PersonStatus, Position, PositionTitle

VILLAGE_CADRE_TITLES: tuple[str, ...] = (
    PositionTitle.secretary, PositionTitle.deputy_secretary, PositionTitle.committee_member,
    PositionTitle.village_committee_director,
)
COUNTING_DAY = 15
BASIS_MAX = 500


@dataclass
class Policy:
    id: int
    kind: str
    name: str
    valid_from: dt.date
    valid_to: dt.date | None
    rates: list[SubsidyRate] = field(default_factory=list)

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def flat(self) -> int:
        return self.rates[0].amount_fen

    def for_title(self, title: str) -> int | None:
        for r in self.rates:
            if r.title == title:
                return r.amount_fen
        return None

    def band(self, value: int) -> SubsidyRate | None:
        for r in self.rates:
            if (r.band_min is None or value >= r.band_min) and (r.band_max is None or value < r.band_max):
                return r
        return None


def load_policies(session: Session, kinds: Iterable[str], first: dt.date, last: dt.date) -> dict[str, list[Policy]]:
    """Policies of these kinds valid at some time in [first, last], with their rates: two queries."""
    rows = list(session.scalars(select(SubsidyPolicy).where(
        col(SubsidyPolicy.kind).in_(list(kinds)), SubsidyPolicy.valid_from <= last,
        or_(col(SubsidyPolicy.valid_to).is_(None), col(SubsidyPolicy.valid_to) >= first))))
    policies = {p.id: Policy(p.id, p.kind, p.name, p.valid_from, p.valid_to) for p in rows}
    if policies:
        for rate in session.scalars(select(SubsidyRate).where(col(SubsidyRate.policy_id).in_(list(policies)))
                                    .order_by(SubsidyRate.id)):
            policies[rate.policy_id].rates.append(rate)
    out: dict[str, list[Policy]] = defaultdict(list)
    for p in policies.values():
        out[p.kind].append(p)
    return out


def policy_on(policies: dict[str, list[Policy]], kind: str, day: dt.date) -> Policy | None:
    for p in policies.get(kind, []):
        if p.covers(day):
            return p
    return None


def require_policy(policies: dict[str, list[Policy]], kind: str, day: dt.date) -> Policy:
    p = policy_on(policies, kind, day)
    if p is None:
        raise ProblemError(422, "no_policy", f"No {kind} policy is valid on {day.isoformat()}: record the rates "
                           "first (POST /api/v1/subsidy-policies).",
                           errors=[{"loc": ["body", "kinds"], "msg": f"no {kind} policy on {day.isoformat()}"}])
    return p


# --- the scope ---------------------------------------------------------------


@dataclass(slots=True)
class Org:
    id: int
    name: str
    path: str
    altitude_m: int | None
    township_id: int | None = field(init=False)

    def __post_init__(self) -> None:
        ids = [int(x) for x in self.path.strip("/").split("/") if x]
        self.township_id = ids[1] if len(ids) >= 2 else None


@dataclass(slots=True)
class Span:
    person_id: int
    org_id: int
    title: str
    started_on: dt.date
    ended_on: dt.date | None

    def holds(self, day: dt.date) -> bool:
        return self.started_on <= day and (self.ended_on is None or day <= self.ended_on)


def village_orgs(session: Session, scope_path: str) -> dict[int, Org]:
    rows = session.connection().execute(select(Organization.id, Organization.name, Organization.path,
                                               Organization.altitude_m)
                           .where(in_subtree(Organization.path, scope_path), Organization.level == OrgLevel.village))
    return {r.id: Org(r.id, r.name, r.path, r.altitude_m) for r in rows}


def cadre_spans(session: Session, scope_path: str, first: dt.date, last: dt.date) -> list[Span]:
    """Qualifying positions at village organisations in scope overlapping [first, last]: one query."""
    rows = session.connection().execute(
        select(Position.person_id, Position.org_id, Position.title, Position.started_on, Position.ended_on)
        .join(Organization, Organization.id == Position.org_id)
        .where(in_subtree(Organization.path, scope_path), Organization.level == OrgLevel.village,
               col(Position.title).in_(VILLAGE_CADRE_TITLES), Position.started_on <= last,
               or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= first))
    )
    return [Span(r.person_id, r.org_id, r.title, r.started_on, r.ended_on) for r in rows]


def counting_days(year: int, month: int | None) -> list[dt.date]:
    months = [month] if month is not None else list(range(1, 13))
    return [dt.date(year, m, COUNTING_DAY) for m in months]


def _line(kind: str, person_id: int, org: Org, period: str, months: int | None, amount: int, basis: str
          ) -> dict[str, Any]:
    return {"kind": kind, "beneficiary_type": "person", "beneficiary_id": person_id, "person_id": person_id,
            "org_id": org.id, "township_id": org.township_id, "period": period, "months": months,
            "amount_fen": amount, "basis": basis[:BASIS_MAX]}


# --- yearly kinds ----------------------------------------------------------------


def per_cadre_yearly(session: Session, kind: str, scope_path: str, ref: dt.date, period: str,
                     policies: dict[str, list[Policy]]) -> list[dict[str, Any]]:
    """accident_insurance / pension_subsidy: one line per cadre in office on the reference date."""
    policy = require_policy(policies, kind, ref)
    amount = policy.flat()
    orgs = village_orgs(session, scope_path)
    best: dict[int, Span] = {}
    order = {t: i for i, t in enumerate(VILLAGE_CADRE_TITLES)}
    for s in cadre_spans(session, scope_path, ref, ref):
        held = best.get(s.person_id)
        if held is None or (order[s.title], s.org_id) < (order[held.title], held.org_id):
            best[s.person_id] = s
    out = []
    day, per_year = ref.isoformat(), f"{fmt_yuan(amount)} per year ({policy.name})"
    for person_id, s in sorted(best.items()):
        org = orgs[s.org_id]
        out.append(_line(kind, person_id, org, period, None, amount,
                         f"in office on {day} as {s.title} at {org.name}: {per_year}"))
    return out


def community_fund(session: Session, scope_path: str, ref: dt.date, period: str,
                   policies: dict[str, list[Policy]]) -> list[dict[str, Any]]:
    """community_work_fund: one line per active community organisation in scope."""
    kind = SubsidyKind.community_work_fund
    policy = require_policy(policies, kind, ref)
    amount = policy.flat()
    rows = session.connection().execute(
        select(Organization.id, Organization.name, Organization.path, Organization.altitude_m)
        .where(in_subtree(Organization.path, scope_path), Organization.level == OrgLevel.village,
               Organization.domain == OrgDomain.community, Organization.status == OrgStatus.active,
               or_(col(Organization.established_on).is_(None), col(Organization.established_on) <= ref))
        .order_by(Organization.id)
    )
    out = []
    for r in rows:
        org = Org(r.id, r.name, r.path, r.altitude_m)
        out.append({"kind": kind, "beneficiary_type": "organization", "beneficiary_id": org.id, "person_id": None,
                    "org_id": org.id, "township_id": org.township_id, "period": period, "months": None,
                    "amount_fen": amount,
                    "basis": f"community {org.name}, {ref.year}: {fmt_yuan(amount)} per year ({policy.name})"})
    return out


# --- monthly kinds -----------------------------------------------------------------


def _segments(months: list[tuple[dt.date, int, str]]) -> str:
    """ "3 months × 180.00 (secretary at 日头村) + 9 months × 200.00 (…)" from (day, amount, what) per month."""
    groups: dict[tuple[int, str], int] = {}
    for _, amount, what in months:
        groups[(amount, what)] = groups.get((amount, what), 0) + 1
    return " + ".join(f"{n} month{'s' if n > 1 else ''} × {fmt_yuan(a)} ({w})" for (a, w), n in groups.items())


def in_office_monthly(session: Session, kind: str, scope_path: str, days: list[dt.date], period: str,
                      policies: dict[str, list[Policy]]) -> list[dict[str, Any]]:
    """basic_pay (by title) and altitude_allowance (by the altitude band of the organisation)."""
    day_policy = {d: require_policy(policies, kind, d) for d in days}
    orgs = village_orgs(session, scope_path)
    by_person: dict[int, list[Span]] = defaultdict(list)
    for s in cadre_spans(session, scope_path, days[0], days[-1]):
        by_person[s.person_id].append(s)
    out = []
    for person_id, spans in sorted(by_person.items()):
        counted: list[tuple[dt.date, int, str]] = []
        last_org: Org | None = None
        for day in days:
            policy = day_policy[day]
            best: tuple[int, str, Org] | None = None
            for s in spans:
                if not s.holds(day):
                    continue
                org = orgs[s.org_id]
                if kind == SubsidyKind.basic_pay:
                    amount = policy.for_title(s.title)
                    what = f"{s.title} at {org.name}"
                else:
                    rate = policy.band(org.altitude_m) if org.altitude_m is not None else None
                    amount = rate.amount_fen if rate is not None else None
                    what = f"{org.name} {org.altitude_m} m, band {_band_text(rate, 'm')}" if rate else ""
                if amount and (best is None or amount > best[0]):
                    best = (amount, what, org)
            if best is not None:
                counted.append((day, best[0], best[1]))
                last_org = best[2]
        if counted and last_org is not None:
            total = sum(a for _, a, _ in counted)
            out.append(_line(kind, person_id, last_org, period, len(counted), total, _segments(counted)))
    return out


def _band_text(rate: SubsidyRate | None, unit: str) -> str:
    if rate is None:
        return ""
    lo = "" if rate.band_min is None else f"{rate.band_min}"
    hi = "" if rate.band_max is None else f"{rate.band_max}"
    if not hi:
        return f"≥ {lo} {unit}"
    if not lo:
        return f"< {hi} {unit}"
    return f"{lo}–{hi} {unit}"


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return dt.date(day.year + years, 3, 1)


def service_years_from_spans(spans: Iterable[tuple[dt.date, dt.date | None]], as_of: dt.date) -> int:
    """Completed years of service up to `as_of`, counted exactly as people.service_years counts them: spans clipped
    to `as_of`, merged where they overlap or touch, each stretch's completed calendar years, plus a year per full
    365 days of the stretches' leftovers."""
    clipped = sorted((s, min(e, as_of) if e is not None else as_of) for s, e in spans if s <= as_of)
    merged: list[list[dt.date]] = []
    for start, end in clipped:
        if merged and start <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    years = 0
    rests: list[int] = []
    for start, end in merged:
        end_exclusive = end + dt.timedelta(days=1)
        whole = end_exclusive.year - start.year
        if (end_exclusive.month, end_exclusive.day) < (start.month, start.day):
            whole -= 1
        years += whole
        rest = (end_exclusive - _add_years(start, whole)).days
        if rest:
            rests.append(rest)
    if len(rests) > 1:
        years += sum(rests) // 365
    return years


def retired_monthly(session: Session, scope_path: str, days: list[dt.date], period: str,
                    policies: dict[str, list[Policy]]) -> list[dict[str, Any]]:
    """retired_allowance: months on whose 15th a former village cadre holds no qualifying position."""
    kind = SubsidyKind.retired_allowance
    day_policy = {d: require_policy(policies, kind, d) for d in days}
    orgs = village_orgs(session, scope_path)
    # Everyone who ever held a qualifying village position in scope before the period's last counting day …
    former = (
        select(Position.person_id).join(Organization, Organization.id == Position.org_id)
        .where(in_subtree(Organization.path, scope_path), Organization.level == OrgLevel.village,
               col(Position.title).in_(VILLAGE_CADRE_TITLES), Position.started_on <= days[-1])
    )
    # … with all their qualifying village positions anywhere (service counts wherever it was served): one query.
    rows = session.connection().execute(
        select(Position.person_id, Position.org_id, Position.title, Position.started_on, Position.ended_on,
               Person.status, Person.left_on)
        .join(Organization, Organization.id == Position.org_id)
        .join(Person, Person.id == Position.person_id)
        .where(col(Position.person_id).in_(former), Organization.level == OrgLevel.village,
               col(Position.title).in_(VILLAGE_CADRE_TITLES), Position.started_on <= days[-1])
    )
    by_person: dict[int, list[Span]] = defaultdict(list)
    gone: dict[int, dt.date] = {}
    for r in rows:
        by_person[r.person_id].append(Span(r.person_id, r.org_id, r.title, r.started_on, r.ended_on))
        if r.status in (PersonStatus.deceased, PersonStatus.removed):
            gone[r.person_id] = r.left_on or dt.date.min
    out = []
    for person_id, spans in sorted(by_person.items()):
        counted: list[tuple[dt.date, int, str]] = []
        last_org: Org | None = None
        for day in days:
            if person_id in gone and day > gone[person_id]:
                continue
            if any(s.holds(day) for s in spans):
                continue
            before = [s for s in spans if s.ended_on is not None and s.ended_on < day]
            if not before:
                continue
            last = max(before, key=lambda s: (s.ended_on, s.started_on))
            if last.org_id not in orgs:  # left office outside the run's scope: another run pays them
                continue
            years = service_years_from_spans(((s.started_on, s.ended_on) for s in before), day)
            rate = day_policy[day].band(years)
            if rate is None or not rate.amount_fen:
                continue
            counted.append((day, rate.amount_fen, f"{years} years of service, band {_band_text(rate, 'years')}, "
                            f"left {orgs[last.org_id].name} on {last.ended_on}"))
            last_org = orgs[last.org_id]
        if counted and last_org is not None:
            total = sum(a for _, a, _ in counted)
            out.append(_line(kind, person_id, last_org, period, len(counted), total, _segments(counted)))
    return out


def compute(session: Session, *, kind: str, scope_path: str, year: int, month: int | None, reference_date: dt.date
            ) -> list[dict[str, Any]]:
    """The lines of one kind for a run (not yet tied to the run)."""
    if kind in MONTHLY_KINDS:
        days = counting_days(year, month)
        period = f"{year}-{month:02d}" if month is not None else str(year)
        policies = load_policies(session, [kind], days[0], days[-1])
        if kind == SubsidyKind.retired_allowance:
            return retired_monthly(session, scope_path, days, period, policies)
        return in_office_monthly(session, kind, scope_path, days, period, policies)
    policies = load_policies(session, [kind], reference_date, reference_date)
    if kind == SubsidyKind.community_work_fund:
        return community_fund(session, scope_path, reference_date, str(year), policies)
    return per_cadre_yearly(session, kind, scope_path, reference_date, str(year), policies)
