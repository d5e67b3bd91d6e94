"""HTTP for frontline work: groups, villages and members, the rotation schedule, visits and the monthly summary."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core import idempotency
from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.idempotency import IdempotencyDep
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.deps import FrontlineManage, FrontlineRead, FrontlineWrite, ItemId, OptionalIdQuery, SessionDep
from app.models.frontline import (
    MONTH_PATTERN,
    GroupCreate,
    GroupDetail,
    GroupPublic,
    GroupSchedule,
    MemberJoin,
    MemberLeave,
    MemberPublic,
    VillagesAdd,
    VisitCreate,
    VisitPublic,
    VisitSummary,
)
from app.services import frontline as service

TAG = "frontline"
READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)

YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]
MonthNumber = Annotated[int | None, Query(ge=1, le=12, description="1-12, with year")]
Subtree = Annotated[bool, Query(description="With org_id: also every organisation below it")]

groups = APIRouter(prefix="/api/v1/frontline-groups", tags=[TAG])
visits = APIRouter(prefix="/api/v1/frontline-visits", tags=[TAG])


def _detail(session: SessionDep, actor: Any, group_id: int | None) -> GroupDetail:
    assert group_id is not None
    return service.groups_public(session, [service.get_group(session, actor, group_id)], with_members=True)[0]


@groups.get("", response_model=Page[GroupPublic], operation_id="frontline_groups_list",
            summary="List frontline work groups coordinated in, or paired with villages in, the caller's scope",
            responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_groups(request: Request, session: SessionDep, actor: FrontlineRead, page: PageDep,
                org_id: OptionalIdQuery = None, subtree: Subtree = False) -> Any:
    """Sortable by id, name, started_on, org_id."""
    items, total = service.list_groups(session, actor, page, org_id=org_id, subtree=subtree)
    return respond(request, GroupPublic, items, total, page, filename="frontline-groups")


@groups.get("/summary", response_model=VisitSummary, operation_id="frontline_groups_summary",
            summary="Visits, households, disputes settled and problems opened per group and village",
            responses=READ_ERRORS)
@serves_json
def visits_summary(session: SessionDep, actor: FrontlineRead, year: Annotated[int, Query(ge=2000, le=2100)],
                   month: MonthNumber = None, group_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None,
                   subtree: Subtree = False) -> Any:
    """Without month: the whole year. Counts visits to villages in the caller's scope."""
    return service.summary(session, actor, year=year, month=month, group_id=group_id, org_id=org_id,
                           subtree=subtree)


@groups.post("", response_model=GroupDetail, status_code=201, operation_id="frontline_groups_create",
             summary="Form a work group of a city department with its paired villages and members (city)",
             responses=WRITE_ERRORS)
def create_group(body: GroupCreate, session: SessionDep, actor: FrontlineManage, response: Response) -> Any:
    """Forms a frontline work group of a city department, coordinated by an organisation in scope and paired with
    villages below it; its initial members join on `started_on`. Group names are unique per organisation (409
    duplicate_group). Answers 201 with Location."""
    group = service.create_group(session, actor, body)
    response.headers["Location"] = f"{groups.prefix}/{group.id}"
    return _detail(session, actor, group.id)


@groups.get("/{group_id}", response_model=GroupDetail, operation_id="frontline_groups_get",
            summary="Get a group with its villages and members", responses=READ_ERRORS)
@recorded("frontline_group")
def get_group(group_id: ItemId, session: SessionDep, actor: FrontlineRead) -> Any:
    """One work group with its paired villages and its members (current and past), in scope."""
    return _detail(session, actor, group_id)


@groups.post("/{group_id}/villages", response_model=GroupDetail, operation_id="frontline_groups_add_villages",
             summary="Pair the group with more villages (结对)", responses=WRITE_ERRORS)
def add_villages(group_id: ItemId, body: VillagesAdd, session: SessionDep, actor: FrontlineManage) -> Any:
    """Pairs the group with more villages (结对); a village already paired with the group is a 409 already_paired."""
    service.add_villages(session, actor, group_id, body.village_ids)
    return _detail(session, actor, group_id)


@groups.post("/{group_id}/members", response_model=MemberPublic, status_code=201,
             operation_id="frontline_groups_add_member",
             summary="A cadre joins the group; the rotation takes them in from the next month",
             responses=WRITE_ERRORS)
def add_member(group_id: ItemId, body: MemberJoin, session: SessionDep, actor: FrontlineManage) -> Any:
    """A cadre joins the group from `joined_on` (not before the group started); a person is a member of one group at a
    time (409 already_member). The visiting rotation takes them in from the next month."""
    member = service.join(session, actor, group_id, body)
    return _member(session, actor, group_id, member.id)


def _member(session: SessionDep, actor: Any, group_id: int, member_id: int | None) -> MemberPublic:
    detail = _detail(session, actor, group_id)
    return next(m for m in detail.members if m.id == member_id)


@groups.post("/{group_id}/members/{member_id}/leave", response_model=MemberPublic,
             operation_id="frontline_groups_member_leave",
             summary="A member leaves; the rotation rebalances from the next month", responses=WRITE_ERRORS)
def member_leave(group_id: ItemId, member_id: ItemId, body: MemberLeave, session: SessionDep,
                 actor: FrontlineManage) -> Any:
    """Ends a membership on `left_on` (its last day, not before joining); the rotation rebalances from the next month.
    A member who already left is a 409 already_left."""
    service.leave(session, actor, group_id, member_id, body.left_on)
    return _member(session, actor, group_id, member_id)


@groups.get("/{group_id}/schedule", response_model=GroupSchedule, operation_id="frontline_groups_schedule",
            summary="Who is on duty each month (每月三个三分之一)", responses=READ_ERRORS)
def group_schedule(
    group_id: ItemId, session: SessionDep, actor: FrontlineRead,
    from_: Annotated[str, Query(alias="from", pattern=MONTH_PATTERN, max_length=7, description="YYYY-MM")],
    months: Annotated[int, Query(ge=1, le=36)] = 3,
) -> Any:
    """Members are split into three cohorts; cohort (months since the group's first month) mod 3 is on duty.
    Cohorts are sticky, newcomers join the smallest, and a leave rebalances so sizes differ by at most one;
    changes take effect from the month after. The full rule is in `app.services.frontline.rotation`."""
    first = dt.date(int(from_[:4]), int(from_[5:7]), 1)
    return service.schedule(session, actor, group_id, first, months)


@visits.post("", response_model=VisitPublic, status_code=201, operation_id="frontline_visits_create",
             summary="Record a visit and open the problems it found on the village's problem list, in one request",
             responses=WRITE_ERRORS)
def create_visit(body: VisitCreate, session: SessionDep, actor: FrontlineWrite, idem: IdempotencyDep) -> Any:
    """Send an `Idempotency-Key` to retry safely: a replay returns the first answer and opens nothing again."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    visit = service.create_visit(session, actor, body)
    out = service.visits_public(session, [visit])[0]
    return idempotency.finish(session, idem, 201, out, headers={"Location": f"{visits.prefix}/{visit.id}"})


@visits.get("", response_model=Page[VisitPublic], operation_id="frontline_visits_list",
            summary="List visits to villages in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_visits(request: Request, session: SessionDep, actor: FrontlineRead, page: PageDep,
                group_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: Subtree = False,
                year: YearQuery = None, month: MonthNumber = None) -> Any:
    """Sortable by id, visited_on, org_id, group_id, households_visited."""
    items, total = service.list_visits(session, actor, page, group_id=group_id, org_id=org_id, subtree=subtree,
                                       year=year, month=month)
    return respond(request, VisitPublic, items, total, page, filename="frontline-visits")


@visits.get("/{visit_id}", response_model=VisitPublic, operation_id="frontline_visits_get",
            summary="Get a visit with the members present and the problems it opened", responses=READ_ERRORS)
@recorded("frontline_visit")
def get_visit(visit_id: ItemId, session: SessionDep, actor: FrontlineRead) -> Any:
    """One visit to a paired village with the members present, what was done (households visited, policies explained,
    disputes settled) and the ids of the problems it opened."""
    return service.visits_public(session, [service.get_visit(session, actor, visit_id)])[0]


ROUTERS: list[APIRouter] = [groups, visits]
