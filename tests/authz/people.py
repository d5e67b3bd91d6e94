"""Matrix cases of people, positions and office holders."""

from __future__ import annotations

import datetime as dt
import itertools

from app.models.organizations import Organization
from app.models.people import Person, Position
from tests.authz.registry import Ctx, Req, case, if_match
from tests.factories import id_number, make_person, make_position

_births = itertools.count(0)


def person_at(ctx: Ctx, owner: Organization, *, id_no: str | None = None) -> Person:
    """A person of `owner` with an ID number nobody else in the run has (the factory's wraps at 1,000)."""
    return make_person(ctx.db, owner, name="authz", id_no=id_no or unique_id_number())


def unique_id_number() -> str:
    n = next(_births)
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=n // 1000)
    return id_number(birth=birth.strftime("%Y%m%d"), seq=n % 1000)


def position_at(ctx: Ctx, owner: Organization) -> Position:
    return make_position(ctx.db, person_at(ctx, owner), owner, "committee_member", dt.date(2020, 1, 1))


@case("people_list")
def people_list(ctx: Ctx, owner: Organization) -> Req:
    person_at(ctx, owner)
    return Req("GET", "/api/v1/people", params={"org_id": owner.id, "subtree": "true"})


@case("people_lookup", auditor_writes="a lookup only reads: POST keeps the ID number out of the URL",
      reads="a lookup changes nothing (its audit rows record the lookup, and an unmasked answer)",
      audits_refusal=("person.lookup", "every lookup is audited, found or not: guessing numbers leaves a trail"))
def people_lookup(ctx: Ctx, owner: Organization) -> Req:
    number = unique_id_number()
    person_at(ctx, owner, id_no=number)
    return Req("POST", "/api/v1/people/lookup", json={"id_number": number})


@case("people_get")
def people_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/people/{person_at(ctx, owner).id}")


@case("people_create")
def people_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/people", json={
        "org_id": owner.id, "name": "新党员", "gender": "female", "member_status": "probationary",
        "joined_party_on": "2024-07-01",
    })


@case("people_update")
def people_update(ctx: Ctx, owner: Organization) -> Req:
    person = person_at(ctx, owner)
    return Req("PATCH", f"/api/v1/people/{person.id}", json={"ethnicity": "藏族"}, headers=if_match(person.version))


@case("people_service_years")
def people_service_years(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/people/{position_at(ctx, owner).person_id}/service-years")


@case("people_office_holders")
def people_office_holders(ctx: Ctx, owner: Organization) -> Req:
    position_at(ctx, owner)
    return Req("GET", f"/api/v1/organizations/{owner.id}/office-holders")


@case("positions_list")
def positions_list(ctx: Ctx, owner: Organization) -> Req:
    position_at(ctx, owner)
    return Req("GET", "/api/v1/positions", params={"org_id": owner.id, "subtree": "true"})


@case("positions_get")
def positions_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/positions/{position_at(ctx, owner).id}")


@case("positions_create")
def positions_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/positions", json={
        "person_id": person_at(ctx, owner).id, "org_id": owner.id, "title": "deputy_secretary",
        "started_on": "2021-03-01",
    })


@case("positions_end")
def positions_end(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/positions/{position_at(ctx, owner).id}/end", json={"ended_on": "2024-12-31"})
