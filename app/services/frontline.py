"""Frontline work (一线攻坚): work groups, their paired villages and members, the monthly rotation by thirds,
visits (which may open problems on the problem list) and the monthly summary.

Who sees a group: users whose scope holds the coordinating organisation or one of the paired villages. The city
forms groups and changes their membership; a visit belongs to the village visited, so townships and villages
record the visits to their own villages.

Every "today" is `today()` (Beijing date); tests patch `app.services.frontline.today`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, in_subtree, require_org_in_scope, scoped, scoped_to, subtree_org_ids
from app.models.frontline import (
    DutyMember,
    FrontlineGroup,
    FrontlineGroupVillage,
    FrontlineMember,
    FrontlineVisit,
    FrontlineVisitMember,
    GroupCreate,
    GroupDetail,
    GroupPublic,
    GroupSchedule,
    GroupVillagePublic,
    MemberJoin,
    MemberPublic,
    ScheduleMonth,
    VisitCreate,
    VisitPublic,
    VisitSummary,
    VisitSummaryRow,
)
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Person
from app.models.responsibilities.problems import Problem, ProblemSource
from app.services.responsibilities.problems import open_problem

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
VISIT_LINK = "frontline_visit"
GROUP_SORTABLE = {"id": FrontlineGroup.id, "name": FrontlineGroup.name, "started_on": FrontlineGroup.started_on,
                  "org_id": FrontlineGroup.org_id}
VISIT_SORTABLE = {"id": FrontlineVisit.id, "visited_on": FrontlineVisit.visited_on, "org_id": FrontlineVisit.org_id,
                  "group_id": FrontlineVisit.group_id, "households_visited": FrontlineVisit.households_visited}
COHORTS = 3


def today() -> dt.date:
    """The local business date (Beijing time); tests monkeypatch this."""
    return dt.datetime.now(LOCAL_TZ).date()


# ---------------------------------------------------------------- the rotation (每月三个三分之一)


@dataclass(frozen=True)
class Membership:
    person_id: int
    joined_on: dt.date
    left_on: dt.date | None


def month_index(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def rotation(members: Sequence[Membership], started_on: dt.date, first: int, last: int) -> dict[int, dict[int, int]]:
    """The cohort (0, 1 or 2) of every active member, for each month index from `first` to `last`.

    The algorithm, deterministic and replayed from the group's first month every time:

    1. Month k of the group is k = month index - month index of `started_on`; cohort k mod 3 is on duty.
    2. A member is active in a month when their membership covers its reference day: the 1st of the month
       (the group's `started_on` in its first month). So joining or leaving changes the schedule from the
       next month on, never the month already under way, and past months never change.
    3. Active members are taken in the order (joined_on, person id). Cohorts are sticky: a member keeps the
       cohort they were given for as long as they stay, so while the membership does not change every member
       serves exactly one month in three (months k, k+3, k+6...).
    4. Leavers are removed. Each newcomer goes to the smallest cohort; between cohorts of equal size, the
       one whose duty month comes first (on duty this month, then next month, then the month after), so a new
       member starts serving as soon as a fair share allows.
    5. If the cohorts then differ in size by more than one (after leavers), the member who joined last in the
       largest cohort moves to the smallest, until the sizes differ by at most one: only as many members move as
       balance needs. Between cohorts of equal size, the move chosen keeps the moved member's gap between two
       duties at three months if it can, else the nearest gap longer than three, else the nearest; so a moved
       member waits one to five months once, then serves one month in three again.

    Months before the group started have no cohorts (an empty dict).
    """
    start = month_index(started_on)
    ordered = sorted(members, key=lambda m: (m.joined_on, m.person_id))
    cohort_of: dict[int, int] = {}
    out: dict[int, dict[int, int]] = {}
    for index in range(min(first, start), last + 1):
        if index < start:
            if index >= first:
                out[index] = {}
            continue
        ref = max(dt.date(index // 12, index % 12 + 1, 1), started_on)
        active = [m for m in ordered if m.joined_on <= ref and (m.left_on is None or m.left_on >= ref)]
        order = {m.person_id: n for n, m in enumerate(active)}
        cohort_of = {p: c for p, c in cohort_of.items() if p in order}
        duty = (index - start) % COHORTS
        sizes = [0] * COHORTS
        for c in cohort_of.values():
            sizes[c] += 1

        for m in active:
            if m.person_id not in cohort_of:
                target = _smallest(sizes, duty)
                cohort_of[m.person_id] = target
                sizes[target] += 1
        while max(sizes) - min(sizes) > 1:
            source, target = _rebalancing_move(sizes, duty)
            mover = max((p for p, c in cohort_of.items() if c == source), key=lambda p: order[p])
            cohort_of[mover] = target
            sizes[source] -= 1
            sizes[target] += 1
        if index >= first:
            out[index] = dict(cohort_of)
    return out


def _smallest(sizes: list[int], duty: int) -> int:
    """The smallest cohort; between equal ones, the one whose duty month comes first."""
    return min(range(COHORTS), key=lambda c: (sizes[c], (c - duty) % COHORTS))


def _months_since_duty(cohort: int, duty: int) -> int:
    """How long ago a cohort last served (a cohort due this month last served three months ago)."""
    until = (cohort - duty) % COHORTS
    return COHORTS - until if until else COHORTS


def _rebalancing_move(sizes: list[int], duty: int) -> tuple[int, int]:
    """From a largest cohort to a smallest one, choosing among equal sizes the move that keeps the moved member's
    gap between two duties at three months if it can, else the nearest gap of at least three, else the nearest."""
    pairs = [(s, t) for s in range(COHORTS) if sizes[s] == max(sizes)
             for t in range(COHORTS) if sizes[t] == min(sizes)]

    def gap(pair: tuple[int, int]) -> int:
        return _months_since_duty(pair[0], duty) + (pair[1] - duty) % COHORTS

    return min(pairs, key=lambda pair: (gap(pair) < COHORTS, abs(gap(pair) - COHORTS), pair))


def on_duty_cohort(started_on: dt.date, index: int) -> int | None:
    start = month_index(started_on)
    return None if index < start else (index - start) % COHORTS


# ---------------------------------------------------------------- groups


def _visible_group(actor: Actor) -> Any:
    """The coordinating organisation or a paired village is in the actor's subtree."""
    village = select(FrontlineGroupVillage.id).join(
        Organization, Organization.id == FrontlineGroupVillage.village_id
    ).where(FrontlineGroupVillage.group_id == FrontlineGroup.id, in_subtree(Organization.path, actor.org_path))
    owner = select(Organization.id).where(Organization.id == FrontlineGroup.org_id,
                                          in_subtree(Organization.path, actor.org_path))
    return or_(exists(owner), exists(village))


def get_group(session: Session, actor: Actor, group_id: int) -> FrontlineGroup:
    group = session.scalar(select(FrontlineGroup).where(FrontlineGroup.id == group_id, _visible_group(actor)))
    if group is None:
        raise not_found("Frontline group", group_id)
    return group


def _manageable(session: Session, actor: Actor, group_id: int) -> tuple[FrontlineGroup, str]:
    group = get_group(session, actor, group_id)
    path = session.scalar(select(Organization.path).where(Organization.id == group.org_id))
    if path is None or not actor.covers(path):
        raise not_found("Frontline group", group_id)
    return group, path


def _check_villages(session: Session, group_path: str, village_ids: list[int], loc: str) -> None:
    rows: dict[int, Organization] = dict(session.execute(
        select(Organization.id, Organization).where(col(Organization.id).in_(village_ids))
    ).all())
    for i, vid in enumerate(village_ids):
        org = rows.get(vid)
        if org is None or not org.path.startswith(group_path):
            raise invalid(["body", loc, i], f"organisation {vid} is not below the group's organisation")
        if org.level != OrgLevel.village or org.status != OrgStatus.active:
            raise invalid(["body", loc, i], f"organisation {vid} is not an active village")


def _check_people(session: Session, actor: Actor, person_ids: list[int]) -> None:
    found: dict[int, str] = dict(session.execute(
        select(Person.id, Organization.path).join(Organization, Organization.id == Person.org_id)
        .where(col(Person.id).in_(person_ids))
    ).all())
    for pid in person_ids:
        if pid not in found or not actor.covers(found[pid]):
            raise not_found("Person", pid)


def create_group(session: Session, actor: Actor, data: GroupCreate) -> FrontlineGroup:
    """A group coordinated by an organisation in scope, paired with villages below it; initial members join on
    `started_on`."""
    path = require_org_in_scope(session, actor, data.org_id)
    if session.scalar(select(FrontlineGroup.id).where(FrontlineGroup.org_id == data.org_id,
                                                      FrontlineGroup.name == data.name)):
        raise conflict("duplicate_group", f"Organisation {data.org_id} already has a group named {data.name}.")
    _check_villages(session, path, data.village_ids, "village_ids")
    _check_people(session, actor, data.member_person_ids)
    _one_group_at_a_time(session, data.member_person_ids, data.started_on)
    group = FrontlineGroup(org_id=data.org_id, name=data.name, department=data.department,
                           started_on=data.started_on)
    session.add(group)
    session.flush()
    assert group.id is not None
    for vid in data.village_ids:
        session.add(FrontlineGroupVillage(group_id=group.id, village_id=vid))
    members = [FrontlineMember(group_id=group.id, person_id=pid, joined_on=data.started_on)
               for pid in data.member_person_ids]
    session.add_all(members)
    session.flush()
    audit.record(session, actor=actor, action="frontline_group.create", entity="frontline_group",
                 entity_id=group.id, org_id=group.org_id,
                 after={**audit.snapshot(group), "village_ids": data.village_ids})
    for m in members:
        audit.record(session, actor=actor, action="frontline_member.join", entity="frontline_member",
                     entity_id=m.id, org_id=group.org_id, after=audit.snapshot(m))
    return group


def add_villages(session: Session, actor: Actor, group_id: int, village_ids: list[int]) -> FrontlineGroup:
    group, path = _manageable(session, actor, group_id)
    _check_villages(session, path, village_ids, "village_ids")
    paired = set(session.scalars(select(FrontlineGroupVillage.village_id).where(
        FrontlineGroupVillage.group_id == group.id)))
    clash = [v for v in village_ids if v in paired]
    if clash:
        raise conflict("already_paired", f"Group {group.id} is already paired with {clash}.")
    rows = [FrontlineGroupVillage(group_id=group_id, village_id=v) for v in village_ids]
    session.add_all(rows)
    session.flush()
    for r in rows:
        audit.record(session, actor=actor, action="frontline_group.pair_village", entity="frontline_group_village",
                     entity_id=r.id, org_id=r.village_id, after=audit.snapshot(r))
    return group


def _one_group_at_a_time(session: Session, person_ids: list[int], joined_on: dt.date) -> None:
    """A person is a member of one group at a time, whichever group (409 already_member): a membership of any
    group that has not ended before `joined_on` stands in the way. The people's rows are locked first, so two
    requests adding one person to two groups at once check one after the other (PostgreSQL; SQLite serialises
    writers anyway)."""
    session.execute(select(Person.id).where(col(Person.id).in_(person_ids)).order_by(Person.id).with_for_update())
    overlap = session.execute(select(FrontlineMember.person_id, FrontlineMember.group_id).where(
        col(FrontlineMember.person_id).in_(person_ids),
        or_(col(FrontlineMember.left_on).is_(None), col(FrontlineMember.left_on) >= joined_on)).limit(1)).first()
    if overlap is not None:
        raise conflict("already_member", f"Person {overlap.person_id} is a member of group {overlap.group_id} on "
                       f"{joined_on}: one group at a time.")


def join(session: Session, actor: Actor, group_id: int, data: MemberJoin) -> FrontlineMember:
    """A cadre joins from `joined_on` (not before the group started); one group at a time per person."""
    group, _path = _manageable(session, actor, group_id)
    _check_people(session, actor, [data.person_id])
    if data.joined_on < group.started_on:
        raise invalid(["body", "joined_on"], f"the group started on {group.started_on}")
    _one_group_at_a_time(session, [data.person_id], data.joined_on)
    assert group.id is not None
    member = FrontlineMember(group_id=group.id, person_id=data.person_id, joined_on=data.joined_on)
    session.add(member)
    session.flush()
    audit.record(session, actor=actor, action="frontline_member.join", entity="frontline_member",
                 entity_id=member.id, org_id=group.org_id, after=audit.snapshot(member))
    return member


def leave(session: Session, actor: Actor, group_id: int, member_id: int, left_on: dt.date) -> FrontlineMember:
    """End a membership on `left_on` (its last day); the rotation rebalances from the next month."""
    group, _path = _manageable(session, actor, group_id)
    member = session.scalar(select(FrontlineMember).where(FrontlineMember.id == member_id,
                                                          FrontlineMember.group_id == group.id))
    if member is None:
        raise not_found("Member", member_id)
    if member.left_on is not None:
        raise conflict("already_left", f"Member {member_id} left on {member.left_on}.")
    if left_on < member.joined_on:
        raise invalid(["body", "left_on"], f"the member joined on {member.joined_on}")
    member.left_on = left_on
    session.flush()
    audit.record(session, actor=actor, action="frontline_member.leave", entity="frontline_member",
                 entity_id=member.id, org_id=group.org_id, before={"left_on": None}, after={"left_on": left_on})
    return member


def groups_public(session: Session, groups: list[FrontlineGroup], *, with_members: bool = False,
                  on: dt.date | None = None) -> list[GroupDetail]:
    """Groups with villages and member counts (and members): three statements whatever their number."""
    ids = [g.id for g in groups if g.id is not None]
    on = on or today()
    villages: dict[int, list[GroupVillagePublic]] = {i: [] for i in ids}
    members: dict[int, list[MemberPublic]] = {i: [] for i in ids}
    names: dict[int, str] = {}
    if ids:
        names = dict(session.execute(select(Organization.id, Organization.name).where(
            col(Organization.id).in_({g.org_id for g in groups}))).all())
        for gid, vid, name in session.execute(
            select(FrontlineGroupVillage.group_id, FrontlineGroupVillage.village_id, Organization.name)
            .join(Organization, Organization.id == FrontlineGroupVillage.village_id)
            .where(col(FrontlineGroupVillage.group_id).in_(ids)).order_by(Organization.path)
        ):
            villages[gid].append(GroupVillagePublic(village_id=vid, name=name))
        for m, name in session.execute(
            select(FrontlineMember, Person.name).join(Person, Person.id == FrontlineMember.person_id)
            .where(col(FrontlineMember.group_id).in_(ids))
            .order_by(FrontlineMember.joined_on, FrontlineMember.person_id, FrontlineMember.id)
        ):
            members[m.group_id].append(MemberPublic(id=m.id or 0, person_id=m.person_id, name=name,
                                                    joined_on=m.joined_on, left_on=m.left_on))
    out = []
    for g in groups:
        gid = g.id or 0
        active = [m for m in members[gid] if m.joined_on <= on and (m.left_on is None or m.left_on >= on)]
        out.append(GroupDetail(
            id=gid, org_id=g.org_id, org_name=names.get(g.org_id, ""), name=g.name, department=g.department,
            started_on=g.started_on, villages=villages[gid], active_members=len(active), version=g.version,
            created_at=g.created_at, members=members[gid] if with_members else [],
        ))
    return out


def list_groups(session: Session, actor: Actor, params: PageParams, *, org_id: int | None,
                subtree: bool) -> tuple[list[GroupPublic], int]:
    """Groups visible to the actor; with org_id, those coordinated by it or paired with it (or, with subtree, by or
    with an organisation below it)."""
    stmt = select(FrontlineGroup).where(_visible_group(actor))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        region: Any = subtree_org_ids(path) if subtree else select(literal(org_id))
        paired = select(FrontlineGroupVillage.group_id).where(col(FrontlineGroupVillage.village_id).in_(region))
        stmt = stmt.where(or_(col(FrontlineGroup.org_id).in_(region), col(FrontlineGroup.id).in_(paired)))
    return fetch_page(session, stmt, params, allowed=GROUP_SORTABLE, default=[FrontlineGroup.org_id],
                      tiebreak=FrontlineGroup.id, present=_groups_listed)


def _groups_listed(session: Session, rows: list[FrontlineGroup]) -> list[GroupPublic]:
    return [GroupPublic.model_validate(g.model_dump(exclude={"members"})) for g in groups_public(session, rows)]


def schedule(session: Session, actor: Actor, group_id: int, first: dt.date, months: int) -> GroupSchedule:
    """Who is on duty each month from `first` for `months` months (see `rotation` for the rule)."""
    group = get_group(session, actor, group_id)
    rows = session.execute(
        select(FrontlineMember.person_id, FrontlineMember.joined_on, FrontlineMember.left_on, Person.name)
        .join(Person, Person.id == FrontlineMember.person_id).where(FrontlineMember.group_id == group.id)
    ).all()
    names = {pid: name for pid, _j, _l, name in rows}
    members = [Membership(pid, joined, left) for pid, joined, left, _n in rows]
    start = month_index(first)
    plan = rotation(members, group.started_on, start, start + months - 1)
    out = []
    for index in range(start, start + months):
        cohorts = plan.get(index, {})
        duty = on_duty_cohort(group.started_on, index) if cohorts else None
        ordered = sorted(cohorts.items(), key=lambda pc: (pc[1], names.get(pc[0], ""), pc[0]))
        people = [DutyMember(person_id=p, name=names.get(p, ""), cohort=c) for p, c in ordered]
        out.append(ScheduleMonth(month=month_label(index), cohort_on_duty=duty,
                                 on_duty=[d for d in people if d.cohort == duty],
                                 off_duty=[d for d in people if d.cohort != duty]))
    return GroupSchedule(group_id=group.id or 0, started_month=month_label(month_index(group.started_on)),
                         months=out)


# ---------------------------------------------------------------- visits


def create_visit(session: Session, actor: Actor, data: VisitCreate) -> FrontlineVisit:
    """Record a visit of a group to one of its villages (in the actor's scope) and open each problem listed on the
    village's problem list (source frontline_visit), linked to the visit, once: in the same transaction, keyed
    `frontline_visit:<visit id>:<n>`."""
    group = get_group(session, actor, data.group_id)
    require_org_in_scope(session, actor, data.village_id)
    if not session.scalar(select(FrontlineGroupVillage.id).where(
            FrontlineGroupVillage.group_id == group.id, FrontlineGroupVillage.village_id == data.village_id)):
        raise invalid(["body", "village_id"], f"group {group.id} is not paired with village {data.village_id}")
    if data.visited_on > today():
        raise invalid(["body", "visited_on"], "a visit is recorded after it took place")
    if data.visited_on < group.started_on:
        raise invalid(["body", "visited_on"], f"the group started on {group.started_on}")
    present = set(session.scalars(select(FrontlineMember.person_id).where(
        FrontlineMember.group_id == group.id, col(FrontlineMember.person_id).in_(data.member_person_ids),
        FrontlineMember.joined_on <= data.visited_on,
        or_(col(FrontlineMember.left_on).is_(None), col(FrontlineMember.left_on) >= data.visited_on))))
    for i, pid in enumerate(data.member_person_ids):
        if pid not in present:
            raise invalid(["body", "member_person_ids", i], f"person {pid} was not a member of the group that day")
    assert group.id is not None
    visit = FrontlineVisit(
        group_id=group.id, org_id=data.village_id, visited_on=data.visited_on,
        households_visited=data.households_visited, policies_explained=data.policies_explained,
        disputes_settled=data.disputes_settled, problems_found=data.problems_found, created_by=actor.user_id,
    )
    session.add(visit)
    session.flush()
    assert visit.id is not None
    session.add_all([FrontlineVisitMember(visit_id=visit.id, person_id=p) for p in data.member_person_ids])
    session.flush()
    audit.record(session, actor=actor, action="frontline_visit.create", entity="frontline_visit",
                 entity_id=visit.id, org_id=visit.org_id,
                 after={**audit.snapshot(visit), "member_person_ids": data.member_person_ids})
    for n, p in enumerate(data.open_problems, start=1):
        open_problem(
            session, actor, org_id=data.village_id, year=data.visited_on.year, source=ProblemSource.frontline_visit,
            description=p.description, rectification_measures=p.rectification_measures, deadline=p.deadline,
            link_entity=VISIT_LINK, link_id=visit.id, origin_key=f"{VISIT_LINK}:{visit.id}:{n}",
        )
    return visit


def visits_public(session: Session, visits: list[FrontlineVisit]) -> list[VisitPublic]:
    """Visits with names, members present and problem ids: four statements whatever their number."""
    ids = [v.id for v in visits if v.id is not None]
    members: dict[int, list[int]] = {i: [] for i in ids}
    problems: dict[int, list[int]] = {i: [] for i in ids}
    groups: dict[int, str] = {}
    villages: dict[int, str] = {}
    if ids:
        groups = dict(session.execute(select(FrontlineGroup.id, FrontlineGroup.name).where(
            col(FrontlineGroup.id).in_({v.group_id for v in visits}))).all())
        villages = dict(session.execute(select(Organization.id, Organization.name).where(
            col(Organization.id).in_({v.org_id for v in visits}))).all())
        for vid, pid in session.execute(select(FrontlineVisitMember.visit_id, FrontlineVisitMember.person_id)
                                        .where(col(FrontlineVisitMember.visit_id).in_(ids))
                                        .order_by(FrontlineVisitMember.id)):
            members[vid].append(pid)
        for lid, pid in session.execute(select(Problem.link_id, Problem.id).where(
                Problem.link_entity == VISIT_LINK, col(Problem.link_id).in_(ids)).order_by(Problem.id)):
            if lid is not None:
                problems[lid].append(pid)
    return [VisitPublic.model_validate(v, update={
        "group_name": groups.get(v.group_id, ""), "village_name": villages.get(v.org_id, ""),
        "member_person_ids": members.get(v.id or 0, []), "problem_ids": problems.get(v.id or 0, []),
    }) for v in visits]


def get_visit(session: Session, actor: Actor, visit_id: int) -> FrontlineVisit:
    visit = session.scalar(scoped(select(FrontlineVisit).where(FrontlineVisit.id == visit_id),
                                  FrontlineVisit.org_id, actor))
    if visit is None:
        raise not_found("Frontline visit", visit_id)
    return visit


def _period(year: int | None, month: int | None) -> Any:
    if year is None:
        if month is not None:
            raise invalid(["query", "month"], "month goes with year")
        return None
    if month is None:
        return and_(FrontlineVisit.visited_on >= dt.date(year, 1, 1),
                    FrontlineVisit.visited_on <= dt.date(year, 12, 31))
    start = dt.date(year, month, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return and_(FrontlineVisit.visited_on >= start, FrontlineVisit.visited_on <= end)


def list_visits(session: Session, actor: Actor, params: PageParams, *, group_id: int | None, org_id: int | None,
                subtree: bool, year: int | None, month: int | None) -> tuple[list[VisitPublic], int]:
    stmt = scoped_to(session, select(FrontlineVisit), FrontlineVisit.org_id, actor, org_id, subtree=subtree)
    if group_id is not None:
        stmt = stmt.where(FrontlineVisit.group_id == group_id)
    period = _period(year, month)
    if period is not None:
        stmt = stmt.where(period)
    return fetch_page(session, stmt, params, allowed=VISIT_SORTABLE, default=[col(FrontlineVisit.visited_on).desc()],
                      tiebreak=FrontlineVisit.id, present=visits_public)


@cached_report()
def summary(session: Session, actor: Actor, *, year: int, month: int | None, group_id: int | None,
            org_id: int | None, subtree: bool) -> VisitSummary:
    """Per group and village visited in the period (visits to villages in the actor's scope): visits, households,
    disputes settled and problems the visits opened. Two statements whatever the number of groups and villages."""
    conditions = [_period(year, month)]
    if group_id is not None:
        conditions.append(FrontlineVisit.group_id == group_id)
    base = scoped_to(session, select(FrontlineVisit.id), FrontlineVisit.org_id, actor, org_id, subtree=subtree)
    visit_ids = base.where(*conditions)
    rows = session.execute(
        select(FrontlineVisit.group_id, FrontlineGroup.name, FrontlineGroup.department, FrontlineVisit.org_id,
               Organization.name, func.count(), func.sum(FrontlineVisit.households_visited),
               func.sum(FrontlineVisit.disputes_settled))
        .join(FrontlineGroup, FrontlineGroup.id == FrontlineVisit.group_id)
        .join(Organization, Organization.id == FrontlineVisit.org_id)
        .where(col(FrontlineVisit.id).in_(visit_ids))
        .group_by(FrontlineVisit.group_id, FrontlineGroup.name, FrontlineGroup.department, FrontlineVisit.org_id,
                  Organization.name)
        .order_by(FrontlineVisit.group_id, FrontlineVisit.org_id)
    ).all()
    opened = {(g, o): int(n) for g, o, n in session.execute(
        select(FrontlineVisit.group_id, FrontlineVisit.org_id, func.count(Problem.id))
        .join(Problem, and_(Problem.link_entity == VISIT_LINK, Problem.link_id == FrontlineVisit.id))
        .where(col(FrontlineVisit.id).in_(visit_ids))
        .group_by(FrontlineVisit.group_id, FrontlineVisit.org_id)
    )}
    out = [VisitSummaryRow(group_id=g, group_name=gname, department=dept, village_id=o, village_name=oname,
                           visits=int(n), households_visited=int(h or 0), disputes_settled=int(d or 0),
                           problems_opened=opened.get((g, o), 0))
           for g, gname, dept, o, oname, n, h, d in rows]
    return VisitSummary(
        year=year, month=month, rows=out, visits=sum(r.visits for r in out),
        households_visited=sum(r.households_visited for r in out),
        disputes_settled=sum(r.disputes_settled for r in out), problems_opened=sum(r.problems_opened for r in out),
    )
