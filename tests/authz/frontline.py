"""Matrix cases of frontline work: groups, villages and members, the schedule, visits and the summary.

A group is coordinated by the township of the target village and paired with that village, so each role meets it
through the village (villages) or the coordinating organisation (townships)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from app.models.frontline import FrontlineGroup, FrontlineGroupVillage, FrontlineMember, FrontlineVisit
from app.models.organizations import Organization
from tests.authz.registry import Ctx, Req, case, unique
from tests.factories import make_person

STARTED = dt.date(2019, 1, 1)


def group_for(ctx: Ctx, owner: Organization, *, paired: bool = True) -> FrontlineGroup:
    """A group coordinated by the owner's township, paired with the owner, with one member from the city."""
    group = FrontlineGroup(org_id=ctx.parent_of(owner).id, name=unique("攻坚组"), department="市发展和改革局",
                           started_on=STARTED)
    ctx.db.add(group)
    ctx.db.flush()
    if paired:
        ctx.db.add(FrontlineGroupVillage(group_id=group.id, village_id=owner.id))
    ctx.db.add(FrontlineMember(group_id=group.id, person_id=make_person(ctx.db, ctx.org("city")).id,
                               joined_on=STARTED))
    ctx.db.flush()
    return group


def _member(ctx: Ctx, group: FrontlineGroup) -> FrontlineMember:
    from sqlalchemy import select

    member = ctx.db.scalar(select(FrontlineMember).where(FrontlineMember.group_id == group.id))
    assert member is not None
    return member


def visit_at(ctx: Ctx, owner: Organization) -> FrontlineVisit:
    group = group_for(ctx, owner)
    visit = FrontlineVisit(group_id=group.id, org_id=owner.id, visited_on=dt.date(2019, 10, 12),
                           households_visited=12, disputes_settled=1)
    ctx.db.add(visit)
    ctx.db.flush()
    return visit


def _group_orgs(db: Session, item: dict[str, Any]) -> list[int]:
    return [item["org_id"], *(v["village_id"] for v in item["villages"])]


@case("frontline_groups_list", item_orgs=_group_orgs)
def frontline_groups_list(ctx: Ctx, owner: Organization) -> Req:
    group_for(ctx, owner)
    return Req("GET", "/api/v1/frontline-groups", params={"org_id": owner.id})


@case("frontline_groups_create")
def frontline_groups_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/frontline-groups", json={
        "org_id": ctx.parent_of(owner).id, "name": unique("攻坚组"), "department": "市农业农村局",
        "started_on": "2019-01-01", "village_ids": [owner.id],
        "member_person_ids": [make_person(ctx.db, ctx.org("city")).id]})


@case("frontline_groups_summary")
def frontline_groups_summary(ctx: Ctx, owner: Organization) -> Req:
    visit_at(ctx, owner)
    return Req("GET", "/api/v1/frontline-groups/summary", params={"year": 2019, "org_id": owner.id})


@case("frontline_groups_get")
def frontline_groups_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/frontline-groups/{group_for(ctx, owner).id}")


@case("frontline_groups_add_villages")
def frontline_groups_add_villages(ctx: Ctx, owner: Organization) -> Req:
    group = group_for(ctx, owner, paired=False)
    return Req("POST", f"/api/v1/frontline-groups/{group.id}/villages", json={"village_ids": [owner.id]})


@case("frontline_groups_add_member")
def frontline_groups_add_member(ctx: Ctx, owner: Organization) -> Req:
    group = group_for(ctx, owner)
    return Req("POST", f"/api/v1/frontline-groups/{group.id}/members",
               json={"person_id": make_person(ctx.db, ctx.org("city")).id, "joined_on": "2019-06-01"})


@case("frontline_groups_member_leave")
def frontline_groups_member_leave(ctx: Ctx, owner: Organization) -> Req:
    group = group_for(ctx, owner)
    return Req("POST", f"/api/v1/frontline-groups/{group.id}/members/{_member(ctx, group).id}/leave",
               json={"left_on": "2019-09-30"})


@case("frontline_groups_schedule")
def frontline_groups_schedule(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/frontline-groups/{group_for(ctx, owner).id}/schedule",
               params={"from": "2019-01", "months": 6})


@case("frontline_visits_create")
def frontline_visits_create(ctx: Ctx, owner: Organization) -> Req:
    group = group_for(ctx, owner)
    return Req("POST", "/api/v1/frontline-visits", json={
        "group_id": group.id, "village_id": owner.id, "visited_on": "2019-10-12",
        "member_person_ids": [_member(ctx, group).person_id], "households_visited": 9,
        "open_problems": [{"description": "村道损毁"}]})


@case("frontline_visits_list")
def frontline_visits_list(ctx: Ctx, owner: Organization) -> Req:
    visit_at(ctx, owner)
    return Req("GET", "/api/v1/frontline-visits", params={"org_id": owner.id})


@case("frontline_visits_get")
def frontline_visits_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/frontline-visits/{visit_at(ctx, owner).id}")
