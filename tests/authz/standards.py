"""Matrix cases of standardisation: the catalogue, audits, venues and organisational life."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from app.models.organizations import Organization
from app.models.standards import MeetingFrequency, StandardItem
from tests.authz.registry import Ctx, Expect, Req, case, if_match, unique
from tests.factories import (
    facility_type_id,
    make_audit,
    make_facility,
    make_investment,
    make_meeting,
    make_standard_set,
)

CATALOGUE = "the catalogue is city-wide data, owned by no organisation"
REFERENCE = "reference data of the whole city, owned by no organisation"
NOT_ABOVE = Expect(403, "level_above_required", why="only the level above finalises or returns an audit")


def _first_item(ctx: Ctx, set_id: int) -> StandardItem:
    item = ctx.db.scalars(select(StandardItem).where(StandardItem.set_id == set_id)).first()
    assert item is not None
    return item


def _kind(ctx: Ctx) -> str:
    """The kind of audit the acting role authors: its own self-assessment for a village, else a review."""
    return "self_assessment" if ctx.role == "v1" else "review"


def _audit(ctx: Ctx, owner: Organization, **kw: Any) -> Any:
    std = make_standard_set(ctx.db, domain=owner.domain)
    return make_audit(ctx.db, owner, std, **{"kind": _kind(ctx), **kw})


# --- the catalogue ------------------------------------------------------------


@case("standard_sets_list", targetless=CATALOGUE)
def standard_sets_list(ctx: Ctx, owner: Organization) -> Req:
    make_standard_set(ctx.db, domain="rural")
    return Req("GET", "/api/v1/standard-sets")


@case("standard_sets_get", targetless=CATALOGUE)
def standard_sets_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/standard-sets/{make_standard_set(ctx.db, domain='rural').id}")


@case("standard_sets_create", targetless=CATALOGUE)
def standard_sets_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/standard-sets", json={"year": 2030, "domain": "organ", "name": unique("标准")})


@case("standard_sets_update", targetless=CATALOGUE)
def standard_sets_update(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain="rural", status="draft")
    return Req("PATCH", f"/api/v1/standard-sets/{std.id}", json={"name": "改"}, headers=if_match(std.version))


@case("standard_sets_publish", targetless=CATALOGUE)
def standard_sets_publish(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{make_standard_set(ctx.db, domain='rural', status='draft').id}/publish")


@case("standard_sets_retire", targetless=CATALOGUE)
def standard_sets_retire(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{make_standard_set(ctx.db, domain='rural').id}/retire")


@case("standard_sets_new_version", targetless=CATALOGUE)
def standard_sets_new_version(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{make_standard_set(ctx.db, domain='rural').id}/new-version")


@case("standard_items_create", targetless=CATALOGUE)
def standard_items_create(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain="rural", status="draft")
    return Req("POST", f"/api/v1/standard-sets/{std.id}/items",
               json={"aspect": "records", "code": "REC-9", "requirement": "台账齐全", "max_score": 5})


@case("standard_items_update", targetless=CATALOGUE)
def standard_items_update(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain="rural", status="draft")
    return Req("PATCH", f"/api/v1/standard-sets/{std.id}/items/{_first_item(ctx, std.id).id}",
               json={"max_score": 8})


@case("standard_items_delete", targetless=CATALOGUE)
def standard_items_delete(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain="rural", status="draft")
    return Req("DELETE", f"/api/v1/standard-sets/{std.id}/items/{_first_item(ctx, std.id).id}")


# --- audits -------------------------------------------------------------------


@case("audits_list")
def audits_list(ctx: Ctx, owner: Organization) -> Req:
    _audit(ctx, owner)
    return Req("GET", "/api/v1/audits", params={"org_id": owner.id, "subtree": "true"})


@case("audits_summary")
def audits_summary(ctx: Ctx, owner: Organization) -> Req:
    a = _audit(ctx, owner, status="finalized", score=8)
    return Req("GET", "/api/v1/audits/summary", params={"year": a.year, "org_id": owner.id, "subtree": "true"})


@case("audits_get")
def audits_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/audits/{_audit(ctx, owner).id}")


@case("audits_compare")
def audits_compare(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain=owner.domain)
    mine = make_audit(ctx.db, owner, std, kind="self_assessment", status="finalized", score=9)
    theirs = make_audit(ctx.db, owner, std, kind="review", status="finalized", score=7)
    return Req("GET", f"/api/v1/audits/{mine.id}/compare", params={"with": theirs.id})


@case("audits_create")
def audits_create(ctx: Ctx, owner: Organization) -> Req:
    std = make_standard_set(ctx.db, domain=owner.domain)
    return Req("POST", "/api/v1/audits",
               json={"org_id": owner.id, "set_id": std.id, "year": std.year, "kind": _kind(ctx)})


@case("audits_scores")
def audits_scores(ctx: Ctx, owner: Organization) -> Req:
    a = _audit(ctx, owner)
    return Req("PUT", f"/api/v1/audits/{a.id}/scores",
               json={"scores": [{"item_id": _first_item(ctx, a.set_id).id, "score": 5, "note": "好"}]})


@case("audits_submit")
def audits_submit(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{_audit(ctx, owner, score=6).id}/submit")


@case("audits_return", expect={("v1", "in_scope"): NOT_ABOVE})
def audits_return(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{_audit(ctx, owner, status='submitted', score=6).id}/return")


@case("audits_finalize", expect={("v1", "in_scope"): NOT_ABOVE})
def audits_finalize(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{_audit(ctx, owner, status='submitted', score=9).id}/finalize")


# --- venues -------------------------------------------------------------------


@case("facility_types_list", targetless=REFERENCE)
def facility_types_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/facility-types")


@case("facility_types_get", targetless=REFERENCE)
def facility_types_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/facility-types/{facility_type_id(ctx.db, 'office')}")


@case("facility_types_create", targetless=REFERENCE)
def facility_types_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/facility-types",
               json={"code": unique("type_"), "name": "农家书屋", "category": "other"})


@case("facility_types_update", targetless=REFERENCE)
def facility_types_update(ctx: Ctx, owner: Organization) -> Req:
    return Req("PATCH", f"/api/v1/facility-types/{facility_type_id(ctx.db, 'office')}", json={"position": 5},
               headers=if_match(1))


@case("facilities_list")
def facilities_list(ctx: Ctx, owner: Organization) -> Req:
    make_facility(ctx.db, owner)
    return Req("GET", "/api/v1/facilities", params={"org_id": owner.id, "subtree": "true"})


@case("facilities_get")
def facilities_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/facilities/{make_facility(ctx.db, owner).id}")


@case("facilities_create")
def facilities_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/facilities",
               json={"org_id": owner.id, "facility_type_id": facility_type_id(ctx.db, "archive_room"), "area_m2": 30})


@case("facilities_update")
def facilities_update(ctx: Ctx, owner: Organization) -> Req:
    row = make_facility(ctx.db, owner)
    return Req("PATCH", f"/api/v1/facilities/{row.id}", json={"condition": "fair"}, headers=if_match(row.version))


@case("venue_investments_list")
def venue_investments_list(ctx: Ctx, owner: Organization) -> Req:
    make_investment(ctx.db, owner)
    return Req("GET", "/api/v1/venue-investments", params={"org_id": owner.id, "subtree": "true"})


@case("venue_investments_get")
def venue_investments_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/venue-investments/{make_investment(ctx.db, owner).id}")


@case("venue_investments_create")
def venue_investments_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/venue-investments", json={
        "org_id": owner.id, "year": 2019, "amount": "300000.00", "funding_source": "city_finance",
        "description": "活动阵地改造"})


@case("venue_investments_cancel")
def venue_investments_cancel(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/venue-investments/{make_investment(ctx.db, owner).id}/cancel",
               json={"reason": "重复录入"})


@case("venues_summary", targetless="summarises the caller's own scope; it names no organisation")
def venues_summary(ctx: Ctx, owner: Organization) -> Req:
    make_facility(ctx.db, owner)
    return Req("GET", "/api/v1/venues/summary", params={"year": 2019})


# --- organisational life ------------------------------------------------------


def _frequency_id(ctx: Ctx) -> int:
    found = ctx.db.scalar(select(MeetingFrequency.id).where(MeetingFrequency.meeting_type == "activity_day"))
    assert found is not None
    return found


@case("meeting_frequencies_list", targetless=REFERENCE)
def meeting_frequencies_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/meeting-frequencies")


@case("meeting_frequencies_get", targetless=REFERENCE)
def meeting_frequencies_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/meeting-frequencies/{_frequency_id(ctx)}")


@case("meeting_frequencies_create", targetless=REFERENCE)
def meeting_frequencies_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/meeting-frequencies",
               json={"meeting_type": "party_lecture", "cadence": "monthly", "effective_from_year": 2031})


@case("meeting_frequencies_update", targetless=REFERENCE)
def meeting_frequencies_update(ctx: Ctx, owner: Organization) -> Req:
    return Req("PATCH", f"/api/v1/meeting-frequencies/{_frequency_id(ctx)}", json={"note": "按党章"},
               headers=if_match(1))


@case("meeting_records_list")
def meeting_records_list(ctx: Ctx, owner: Organization) -> Req:
    make_meeting(ctx.db, owner, "activity_day", dt.date(2019, 5, 1))
    return Req("GET", "/api/v1/meeting-records", params={"org_id": owner.id, "subtree": "true"})


@case("meeting_records_get")
def meeting_records_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/meeting-records/{make_meeting(ctx.db, owner, 'activity_day', dt.date(2019, 5, 1)).id}")


@case("meeting_records_create")
def meeting_records_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/meeting-records", json={
        "org_id": owner.id, "meeting_type": "activity_day", "held_on": "2019-06-01", "topic": "主题党日",
        "expected_count": 12, "present_count": 11})


@case("meeting_records_update")
def meeting_records_update(ctx: Ctx, owner: Organization) -> Req:
    row = make_meeting(ctx.db, owner, "activity_day", dt.date(2019, 5, 1))
    return Req("PATCH", f"/api/v1/meeting-records/{row.id}", json={"topic": "改"}, headers=if_match(row.version))


@case("meetings_compliance")
def meetings_compliance(ctx: Ctx, owner: Organization) -> Req:
    make_meeting(ctx.db, owner, "activity_day", dt.date(2019, 5, 1))
    return Req("GET", "/api/v1/meetings/compliance", params={"year": 2019, "org_id": owner.id, "subtree": "true"})
