"""HTTP for people, their positions, office holders and years of service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import invalid, problem_response, problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import AUDITED_READ, ItemId, OptionalIdQuery, PeopleRead, PeopleWrite, SessionDep
from app.models.common import IsoDate, date_in_range
from app.models.people import (
    Gender,
    MemberStatus,
    PersonCreate,
    PersonLookup,
    PersonPublic,
    PersonStatus,
    PersonUpdate,
    PositionCreate,
    PositionEnd,
    PositionPublic,
    PositionTitle,
    ServiceYears,
)
from app.services import organizations as organizations_service
from app.services import people as service

people = APIRouter(prefix="/api/v1/people", tags=["people"])
positions = APIRouter(prefix="/api/v1/positions", tags=["people"])
org_offices = APIRouter(prefix="/api/v1/organizations", tags=["people"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def _date_query(description: str) -> Any:
    return Query(description=description + " (YYYY-MM-DD; default today)")


def _day(value: dt.date | None, name: str) -> dt.date:
    """A query date within the range every stored date keeps to; today when absent."""
    try:
        checked = date_in_range(value)
    except ValueError as exc:
        raise invalid(["query", name], str(exc)) from None
    return checked or dt.date.today()


# --- people ------------------------------------------------------------------------


@people.get(
    "", response_model=Page[PersonPublic], operation_id="people_list", openapi_extra=AUDITED_READ,
    summary="List people in scope (ID and phone masked without pii_read)",
    responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_people(
    request: Request, session: SessionDep, actor: PeopleRead, page: PageDep,
    org_id: OptionalIdQuery = None,
    subtree: bool = False,
    member_status: MemberStatus | None = None,
    status: PersonStatus | None = None,
    gender: Gender | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=50, description="Part of the name")] = None,
    has_position: Annotated[bool | None, Query(description="Holds (true) or holds no (false) position on `on`")] = None,
    title: Annotated[PositionTitle | None, Query(description="Holds a position with this title on `on`")] = None,
    on: Annotated[IsoDate | None, _date_query("The day has_position and title look at")] = None,
) -> Any:
    """People whose organisation is in the caller's subtree. Sortable by id, name, org_id, joined_party_on,
    created_at, and with pii_read birth_date. With pii_read the page is unmasked and one `person.pii_read` audit row
    lists the people read."""
    filters = service.PersonFilters(org_id=org_id, subtree=subtree, member_status=member_status, status=status,
                                    gender=gender, q=q, has_position=has_position, title=title, on=_day(on, "on"))
    items, total = service.list_page(session, actor, filters, page)
    return respond(request, PersonPublic, items, total, page, filename="people", session=session,
                   present=lambda s, rows: service.present(s, actor, rows))


@people.post(
    "/lookup", response_model=PersonPublic, operation_id="people_lookup",
    summary="Find a person in scope by exact ID number or phone (sent in the body, never the URL)",
    responses=problem_responses(401, 403, 404, 422, 429),
)
def lookup_person(request: Request, body: PersonLookup, session: SessionDep, actor: PeopleRead,
                  response: Response) -> Any:
    """Finds one person in the caller's scope by exact ID number or phone, matched on a keyed hash. The number travels
    in the body so it never appears in URLs or access logs; no match in scope is a 404. Personal data is masked
    unless the caller holds pii_read (an unmasked answer is audited). Every lookup, found or not, writes a
    `person.lookup` audit row (never the number), and a caller gets 10 lookups per 15 minutes: 429
    too_many_lookups with Retry-After after that."""
    try:
        person = service.lookup(session, actor, body)
    except service.LookupMissed:  # answered, not raised: the lookup's audit row is committed with the 404
        return problem_response(request, 404, "not_found", "Not found", "No person with that number in your scope.")
    except service.LookupThrottled as exc:
        return problem_response(request, 429, "too_many_lookups", "Too many requests",
                                "Too many lookups; wait before trying again.",
                                headers={"Retry-After": str(exc.retry_after)})
    set_etag(response, person.version)
    return service.present(session, actor, [person])[0]


@people.get(
    "/{person_id}", response_model=PersonPublic, operation_id="people_get", openapi_extra=AUDITED_READ,
    summary="Get a person (ID and phone masked without pii_read)", responses=READ_ERRORS,
)
@recorded("person", restore=service.from_audit_snapshot)
def get_person(person_id: ItemId, session: SessionDep, actor: PeopleRead, response: Response) -> Any:
    """One person whose organisation is in the caller's scope. ID number and phone are masked unless the caller's role
    holds pii_read; an unmasked answer writes a `person.pii_read` audit row. The ETag header is the version for
    If-Match."""
    person = service.get(session, actor, person_id)
    set_etag(response, person.version)
    return service.present(session, actor, [person])[0]


@people.post(
    "", response_model=PersonPublic, status_code=201, operation_id="people_create",
    summary="Register a person in an organisation in scope", responses=WRITE_ERRORS,
)
def create_person(body: PersonCreate, session: SessionDep, actor: PeopleWrite, response: Response) -> Any:
    """Registers a person in an active organisation in scope. The birth date is taken from the ID number when absent
    and must agree with it when both are sent; ID number and phone must not belong to anyone else (409
    duplicate_id_number / duplicate_phone). Answers 201 with Location and ETag."""
    person = service.create(session, actor, body)
    response.headers["Location"] = f"{people.prefix}/{person.id}"
    set_etag(response, person.version)
    return service.present(session, actor, [person])[0]


@people.patch(
    "/{person_id}", response_model=PersonPublic, operation_id="people_update",
    summary="Edit a person, transfer them, or record that they left (If-Match required)",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def update_person(
    person_id: ItemId, body: PersonUpdate, session: SessionDep, actor: PeopleWrite, response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the version being changed")] = None,
) -> Any:
    """A status other than active ends the person's positions held after `left_on` (see the service)."""
    person = service.get(session, actor, person_id)
    person = service.update_fields(session, actor, person, body, parse_if_match(if_match))
    set_etag(response, person.version)
    return service.present(session, actor, [person])[0]


@people.get(
    "/{person_id}/service-years", response_model=ServiceYears, operation_id="people_service_years",
    summary="A person's years of service in any position (overlaps counted once)", responses=READ_ERRORS,
)
def person_service_years(
    person_id: ItemId, session: SessionDep, actor: PeopleRead,
    as_of: Annotated[IsoDate | None, _date_query("Count up to this day, inclusive")] = None,
) -> Any:
    """Years of service up to `as_of` (today by default) in any position in any organisation: positions are clipped to
    `as_of` and merged where they overlap or follow each other without a gap, so no day counts twice."""
    person = service.get(session, actor, person_id)
    assert person.id is not None
    return service.service_years(session, person_id=person.id, as_of=_day(as_of, "as_of"))


# --- positions ---------------------------------------------------------------------


@positions.get(
    "", response_model=Page[PositionPublic], operation_id="positions_list",
    summary="List positions in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_positions(
    request: Request, session: SessionDep, actor: PeopleRead, page: PageDep,
    person_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None,
    subtree: bool = False,
    title: PositionTitle | None = None,
    active_on: Annotated[IsoDate | None, Query(description="Held on this day (both ends inclusive)")] = None,
) -> Any:
    """Positions in an organisation in scope or held by a person in scope. Sortable by id, person_id,
    org_id, title, started_on, ended_on."""
    filters = service.PositionFilters(person_id=person_id, org_id=org_id, subtree=subtree, title=title,
                                      active_on=_day(active_on, "active_on") if active_on is not None else None)
    items, total = service.list_positions(session, actor, filters, page)
    return respond(request, PositionPublic, items, total, page, session=session, present=service.positions_public,
                   filename="positions")


@positions.get(
    "/{position_id}", response_model=PositionPublic, operation_id="positions_get",
    summary="Get a position", responses=READ_ERRORS,
)
@recorded("position")
def get_position(position_id: ItemId, session: SessionDep, actor: PeopleRead) -> Any:
    """One position, visible when either its organisation or its holder's organisation is in the caller's scope, with
    the holder's name."""
    return service.positions_public(session, [service.get_position(session, actor, position_id)])[0]


@positions.post(
    "", response_model=PositionPublic, status_code=201, operation_id="positions_create",
    summary="Record a position held by a person", responses=WRITE_ERRORS,
)
def create_position(body: PositionCreate, session: SessionDep, actor: PeopleWrite, response: Response) -> Any:
    """Records a position (secretary, committee member, ...) held by a person in scope. The organisation must be the
    person's own or one above or below it, except for a resident first secretary sent from elsewhere. An open
    position needs an active person and organisation, and positions of one title must not overlap (409
    overlapping_position)."""
    position = service.create_position(session, actor, body)
    response.headers["Location"] = f"{positions.prefix}/{position.id}"
    return service.positions_public(session, [position])[0]


@positions.post(
    "/{position_id}/end", response_model=PositionPublic, operation_id="positions_end",
    summary="End a position (ended_on is the last day held)", responses=WRITE_ERRORS,
)
def end_position(position_id: ItemId, body: PositionEnd, session: SessionDep, actor: PeopleWrite) -> Any:
    """Ends an open position: `ended_on` is the last day held and cannot precede started_on. Either side may end it
    (its organisation or the holder's home organisation). A position that already ended is a 409
    position_already_ended."""
    position = service.get_position(session, actor, position_id)
    position = service.end_position(session, actor, position, body.ended_on)
    return service.positions_public(session, [position])[0]


# --- office holders ------------------------------------------------------------------


@org_offices.get(
    "/{org_id}/office-holders", response_model=list[PositionPublic], operation_id="people_office_holders",
    summary="Who held office in an organisation on a day", responses=READ_ERRORS,
)
def office_holders(
    org_id: ItemId, session: SessionDep, actor: PeopleRead,
    on: Annotated[IsoDate | None, _date_query("The day")] = None,
    title: Annotated[list[PositionTitle] | None, Query(max_length=len(PositionTitle))] = None,
) -> Any:
    """Positions in the organisation held on `on` (started_on and ended_on inclusive), secretary first."""
    org = organizations_service.get(session, actor, org_id)
    assert org.id is not None
    holders = service.office_holders(session, org_id=org.id, on=_day(on, "on"), titles=set(title) if title else None)
    return service.positions_public(session, holders)
