"""Matrix cases of standardisation: the catalogue, audits, venues and organisational life."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import select

from app.models.organizations import Organization
from app.models.standards import (
    Aspect,
    AuditScore,
    Facility,
    FacilityType,
    MeetingFrequency,
    MeetingRecord,
    StandardAudit,
    StandardItem,
    StandardSet,
    VenueInvestment,
)
from tests.authz.registry import Ctx, Req, case, if_match, level_above_only, unique

YEAR = 2025
CATALOGUE = "the catalogue is city-wide reference data, owned by no organisation"


# --- the catalogue ------------------------------------------------------------------


_set_years = itertools.cycle(range(2030, 2090))


def standard_set(ctx: Ctx, *, status: str = "published", domain: str = "community") -> StandardSet:
    """A set with one item per aspect (publishable), 10 points each, for a year no other set of the test has."""
    std = StandardSet(year=next(_set_years), domain=domain, name=unique("标准"), status=status)
    ctx.db.add(std)
    ctx.db.flush()
    for n, aspect in enumerate(Aspect):
        ctx.db.add(StandardItem(set_id=std.id, aspect=aspect, code=f"A{n}", requirement="要求", max_score=10,
                                position=n))
    ctx.db.flush()
    return std


def _item(ctx: Ctx, std: StandardSet) -> StandardItem:
    item = ctx.db.scalar(select(StandardItem).where(StandardItem.set_id == std.id).limit(1))
    assert item is not None
    return item


@case("standard_sets_list", targetless=CATALOGUE)
def standard_sets_list(ctx: Ctx, owner: Organization) -> Req:
    standard_set(ctx)
    return Req("GET", "/api/v1/standard-sets")


@case("standard_sets_get", targetless=CATALOGUE)
def standard_sets_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/standard-sets/{standard_set(ctx).id}")


@case("standard_sets_create", targetless=CATALOGUE)
def standard_sets_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/standard-sets", json={"year": 2090, "domain": "organ", "name": "机关标准"})


@case("standard_sets_update", targetless=CATALOGUE)
def standard_sets_update(ctx: Ctx, owner: Organization) -> Req:
    std = standard_set(ctx, status="draft")
    return Req("PATCH", f"/api/v1/standard-sets/{std.id}", json={"name": "改名"}, headers=if_match(std.version))


@case("standard_sets_publish", targetless=CATALOGUE)
def standard_sets_publish(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{standard_set(ctx, status='draft').id}/publish")


@case("standard_sets_retire", targetless=CATALOGUE)
def standard_sets_retire(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{standard_set(ctx).id}/retire")


@case("standard_sets_new_version", targetless=CATALOGUE)
def standard_sets_new_version(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/standard-sets/{standard_set(ctx).id}/new-version")


@case("standard_items_create", targetless=CATALOGUE)
def standard_items_create(ctx: Ctx, owner: Organization) -> Req:
    std = standard_set(ctx, status="draft")
    return Req("POST", f"/api/v1/standard-sets/{std.id}/items", json={
        "aspect": "records", "code": "R9", "requirement": "台账齐全", "max_score": 5,
    })


@case("standard_items_update", targetless=CATALOGUE)
def standard_items_update(ctx: Ctx, owner: Organization) -> Req:
    std = standard_set(ctx, status="draft")
    return Req("PATCH", f"/api/v1/standard-sets/{std.id}/items/{_item(ctx, std).id}", json={"max_score": 8})


@case("standard_items_delete", targetless=CATALOGUE)
def standard_items_delete(ctx: Ctx, owner: Organization) -> Req:
    std = standard_set(ctx, status="draft")
    return Req("DELETE", f"/api/v1/standard-sets/{std.id}/items/{_item(ctx, std).id}")


# --- audits ---------------------------------------------------------------------------
# Each role acts as the natural author: a village makes its own self-assessment, the levels above review.


def _kind(ctx: Ctx) -> str:
    return "self_assessment" if ctx.role == "v1" else "review"


def audit_at(ctx: Ctx, owner: Organization, *, status: str = "draft", kind: str | None = None,
             scored: bool = True) -> StandardAudit:
    std = standard_set(ctx, domain=owner.domain)
    items = list(ctx.db.scalars(select(StandardItem).where(StandardItem.set_id == std.id)))
    done = status == "finalized"
    a = StandardAudit(org_id=owner.id, set_id=std.id, year=YEAR, period=str(YEAR), kind=kind or _kind(ctx),
                      status=status, score_total=9 * len(items) if done else 0, score_max=10 * len(items),
                      rating="demonstration" if done else None, created_by=ctx.user.id)
    ctx.db.add(a)
    ctx.db.flush()
    if scored:
        for item in items:
            ctx.db.add(AuditScore(audit_id=a.id, item_id=item.id, score=9))
        ctx.db.flush()
    return a


@case("audits_list")
def audits_list(ctx: Ctx, owner: Organization) -> Req:
    audit_at(ctx, owner)
    return Req("GET", "/api/v1/audits", params={"org_id": owner.id, "subtree": "true"})


@case("audits_summary")
def audits_summary(ctx: Ctx, owner: Organization) -> Req:
    audit_at(ctx, owner, status="finalized")
    return Req("GET", "/api/v1/audits/summary", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


@case("audits_get")
def audits_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/audits/{audit_at(ctx, owner).id}")


@case("audits_compare")
def audits_compare(ctx: Ctx, owner: Organization) -> Req:
    own = audit_at(ctx, owner, status="finalized", kind="self_assessment")
    review = StandardAudit(org_id=owner.id, set_id=own.set_id, year=YEAR, period=own.period, kind="review",
                           status="draft", score_total=0, score_max=own.score_max)
    ctx.db.add(review)
    ctx.db.flush()
    return Req("GET", f"/api/v1/audits/{own.id}/compare", params={"with": review.id})


@case("audits_create")
def audits_create(ctx: Ctx, owner: Organization) -> Req:
    std = standard_set(ctx, domain=owner.domain)
    return Req("POST", "/api/v1/audits", json={"org_id": owner.id, "set_id": std.id, "year": YEAR,
                                               "kind": _kind(ctx)})


@case("audits_scores")
def audits_scores(ctx: Ctx, owner: Organization) -> Req:
    a = audit_at(ctx, owner, scored=False)
    item = ctx.db.scalar(select(StandardItem).where(StandardItem.set_id == a.set_id).limit(1))
    assert item is not None
    return Req("PUT", f"/api/v1/audits/{a.id}/scores", json={"scores": [{"item_id": item.id, "score": 7}]})


@case("audits_submit")
def audits_submit(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{audit_at(ctx, owner).id}/submit")


@case("audits_return", expect=level_above_only("returns an audit"))
def audits_return(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{audit_at(ctx, owner, status='submitted').id}/return")


@case("audits_finalize", expect=level_above_only("finalises an audit"))
def audits_finalize(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/audits/{audit_at(ctx, owner, status='submitted').id}/finalize")


# --- venues -----------------------------------------------------------------------------


def facility_type(ctx: Ctx) -> FacilityType:
    row = FacilityType(code=unique("authz_type_"), name="测试室", category="room")
    ctx.db.add(row)
    ctx.db.flush()
    return row


def facility_at(ctx: Ctx, owner: Organization) -> Facility:
    row = Facility(org_id=owner.id, facility_type_id=facility_type(ctx).id, area_m2=80, year_built=2015)
    ctx.db.add(row)
    ctx.db.flush()
    return row


def investment_at(ctx: Ctx, owner: Organization) -> VenueInvestment:
    row = VenueInvestment(org_id=owner.id, year=YEAR, amount_fen=1_000_000, funding_source="city_finance",
                          description="活动室改造")
    ctx.db.add(row)
    ctx.db.flush()
    return row


@case("facility_types_list", targetless=CATALOGUE)
def facility_types_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/facility-types")


@case("facility_types_get", targetless=CATALOGUE)
def facility_types_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/facility-types/{facility_type(ctx).id}")


@case("facility_types_create", targetless=CATALOGUE)
def facility_types_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/facility-types",
               json={"code": unique("authz_new_"), "name": "新室", "category": "room"})


@case("facility_types_update", targetless=CATALOGUE)
def facility_types_update(ctx: Ctx, owner: Organization) -> Req:
    row = facility_type(ctx)
    return Req("PATCH", f"/api/v1/facility-types/{row.id}", json={"name": "改名"}, headers=if_match(row.version))


@case("facilities_list")
def facilities_list(ctx: Ctx, owner: Organization) -> Req:
    facility_at(ctx, owner)
    return Req("GET", "/api/v1/facilities", params={"org_id": owner.id, "subtree": "true"})


@case("facilities_get")
def facilities_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/facilities/{facility_at(ctx, owner).id}")


@case("facilities_create")
def facilities_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/facilities", json={
        "org_id": owner.id, "facility_type_id": facility_type(ctx).id, "area_m2": 60, "year_built": 2018,
    })


@case("facilities_update")
def facilities_update(ctx: Ctx, owner: Organization) -> Req:
    row = facility_at(ctx, owner)
    return Req("PATCH", f"/api/v1/facilities/{row.id}", json={"condition": "fair"}, headers=if_match(row.version))


@case("venue_investments_list")
def venue_investments_list(ctx: Ctx, owner: Organization) -> Req:
    investment_at(ctx, owner)
    return Req("GET", "/api/v1/venue-investments", params={"org_id": owner.id, "subtree": "true"})


@case("venue_investments_get")
def venue_investments_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/venue-investments/{investment_at(ctx, owner).id}")


@case("venue_investments_create")
def venue_investments_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/venue-investments", json={
        "org_id": owner.id, "year": YEAR, "amount": "5000.00", "funding_source": "township", "description": "桌椅",
    })


@case("venue_investments_cancel")
def venue_investments_cancel(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/venue-investments/{investment_at(ctx, owner).id}/cancel",
               json={"reason": "重复登记"})


@case("venues_summary", targetless="summarises the caller's own subtree; it takes no organisation")
def venues_summary(ctx: Ctx, owner: Organization) -> Req:
    facility_at(ctx, owner)
    return Req("GET", "/api/v1/venues/summary", params={"year": YEAR})


# --- organisational life ------------------------------------------------------------------


def frequency(ctx: Ctx) -> MeetingFrequency:
    row = MeetingFrequency(meeting_type="party_lecture", cadence="quarterly", effective_from_year=2098)
    ctx.db.add(row)
    ctx.db.flush()
    return row


def meeting_at(ctx: Ctx, owner: Organization) -> MeetingRecord:
    row = MeetingRecord(org_id=owner.id, meeting_type="branch_general_meeting", held_on=dt.date(YEAR, 3, 5),
                        topic="学习", expected_count=10, present_count=9)
    ctx.db.add(row)
    ctx.db.flush()
    return row


@case("meeting_frequencies_list", targetless=CATALOGUE)
def meeting_frequencies_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/meeting-frequencies")


@case("meeting_frequencies_get", targetless=CATALOGUE)
def meeting_frequencies_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/meeting-frequencies/{frequency(ctx).id}")


@case("meeting_frequencies_create", targetless=CATALOGUE)
def meeting_frequencies_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/meeting-frequencies",
               json={"meeting_type": "activity_day", "cadence": "monthly", "effective_from_year": 2099})


@case("meeting_frequencies_update", targetless=CATALOGUE)
def meeting_frequencies_update(ctx: Ctx, owner: Organization) -> Req:
    row = frequency(ctx)
    return Req("PATCH", f"/api/v1/meeting-frequencies/{row.id}", json={"cadence": "monthly"},
               headers=if_match(row.version))


@case("meeting_records_list")
def meeting_records_list(ctx: Ctx, owner: Organization) -> Req:
    meeting_at(ctx, owner)
    return Req("GET", "/api/v1/meeting-records", params={"org_id": owner.id, "subtree": "true"})


@case("meeting_records_get")
def meeting_records_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/meeting-records/{meeting_at(ctx, owner).id}")


@case("meeting_records_create")
def meeting_records_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/meeting-records", json={
        "org_id": owner.id, "meeting_type": "party_group_meeting", "held_on": f"{YEAR}-04-02", "topic": "讨论",
        "expected_count": 6, "present_count": 6,
    })


@case("meeting_records_update")
def meeting_records_update(ctx: Ctx, owner: Organization) -> Req:
    row = meeting_at(ctx, owner)
    return Req("PATCH", f"/api/v1/meeting-records/{row.id}", json={"present_count": 8}, headers=if_match(row.version))


@case("meetings_compliance")
def meetings_compliance(ctx: Ctx, owner: Organization) -> Req:
    meeting_at(ctx, owner)
    return Req("GET", "/api/v1/meetings/compliance", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})
