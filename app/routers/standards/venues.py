"""HTTP for venues (阵地建设): facility types, facilities, construction investments, the summary."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, OptionalIdQuery, SessionDep, StandardsManage, StandardsRead, VenuesWrite
from app.models.standards import (
    MAX_YEAR,
    MIN_YEAR,
    FacilityCategory,
    FacilityCondition,
    FacilityCreate,
    FacilityPublic,
    FacilityTypeCreate,
    FacilityTypePublic,
    FacilityTypeUpdate,
    FacilityUpdate,
    FundingSource,
    InvestmentCancel,
    InvestmentStatus,
    VenueInvestmentCreate,
    VenueInvestmentPublic,
    VenueSummary,
)
from app.services.standards import venues as service

facility_types = APIRouter(prefix="/api/v1/facility-types", tags=["standards"])
facilities = APIRouter(prefix="/api/v1/facilities", tags=["standards"])
investments = APIRouter(prefix="/api/v1/venue-investments", tags=["standards"])
summary = APIRouter(prefix="/api/v1/venues", tags=["standards"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)
IfMatch = Annotated[str | None, Header(description="The ETag of the version being changed")]
YearQuery = Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)]

# ---------------------------------------------------------------- facility types


@facility_types.get(
    "", response_model=Page[FacilityTypePublic], operation_id="facility_types_list",
    summary="List facility types (四室一校五中心 and any the city adds)", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_types(request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
               active: bool | None = None, category: FacilityCategory | None = None) -> Any:
    """`is_assumption` marks the seeded defaults nobody has confirmed yet. Sortable by id, code, position."""
    items, total = service.list_types(session, page, active=active, category=category)
    return respond(request, FacilityTypePublic, items, total, page, filename="facility-types")


@facility_types.get(
    "/{type_id}", response_model=FacilityTypePublic, operation_id="facility_types_get",
    summary="Get a facility type", responses=READ_ERRORS,
)
@recorded("facility_type")
def get_type(type_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One facility type (for example the party members' activity room) with its category and whether it is active.
    The ETag header is the version for If-Match."""
    row = service.get_type(session, type_id)
    set_etag(response, row.version)
    return row


@facility_types.post(
    "", response_model=FacilityTypePublic, status_code=201, operation_id="facility_types_create",
    summary="Add a facility type (city only)", responses=WRITE_ERRORS,
)
def create_type(body: FacilityTypeCreate, session: SessionDep, actor: StandardsManage, response: Response) -> Any:
    """The city adds a facility type that organisations record against; codes are unique (409 duplicate_code).
    Answers 201 with Location."""
    row = service.create_type(session, actor, body)
    response.headers["Location"] = f"{facility_types.prefix}/{row.id}"
    set_etag(response, row.version)
    return row


@facility_types.patch(
    "/{type_id}", response_model=FacilityTypePublic, operation_id="facility_types_update",
    summary="Edit or deactivate a facility type (city only, If-Match)", responses=PATCH_ERRORS,
)
def update_type(type_id: ItemId, body: FacilityTypeUpdate, session: SessionDep, actor: StandardsManage,
                response: Response, if_match: IfMatch = None) -> Any:
    """The city edits or deactivates a facility type with If-Match; a seeded default it edits is no longer marked as
    an assumption. Facilities already recorded keep their type."""
    row = service.update_type(session, actor, service.get_type(session, type_id), body, parse_if_match(if_match))
    set_etag(response, row.version)
    return row


# ---------------------------------------------------------------- facilities


@facilities.get(
    "", response_model=Page[FacilityPublic], operation_id="facilities_list",
    summary="List facilities in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_facilities(
    request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
    org_id: OptionalIdQuery = None, subtree: bool = False, facility_type_id: OptionalIdQuery = None,
    condition: FacilityCondition | None = None, in_use: bool | None = None,
) -> Any:
    """Sortable by id, org_id, facility_type_id, year_built, area_m2."""
    filters = service.FacilityFilters(org_id=org_id, subtree=subtree, facility_type_id=facility_type_id,
                                      condition=condition, in_use=in_use)
    items, total = service.list_facilities(session, actor, filters, page)
    return respond(request, FacilityPublic, items, total, page, filename="facilities")


@facilities.get(
    "/{facility_id}", response_model=FacilityPublic, operation_id="facilities_get",
    summary="Get a facility", responses=READ_ERRORS,
)
@recorded("facility")
def get_facility(facility_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One facility of an organisation in scope: its type, floor area, condition and when it was built. The ETag
    header is the version for If-Match."""
    row = service.get_facility(session, actor, facility_id)
    set_etag(response, row.version)
    return row


@facilities.post(
    "", response_model=FacilityPublic, status_code=201, operation_id="facilities_create",
    summary="Record a facility of an organisation in scope", responses=WRITE_ERRORS,
)
def create_facility(body: FacilityCreate, session: SessionDep, actor: VenuesWrite, response: Response) -> Any:
    """Records that an organisation in scope has a facility of an active type (one row per organisation and type:
    409 duplicate_facility). Answers 201 with Location."""
    row = service.create_facility(session, actor, body)
    response.headers["Location"] = f"{facilities.prefix}/{row.id}"
    set_etag(response, row.version)
    return row


@facilities.patch(
    "/{facility_id}", response_model=FacilityPublic, operation_id="facilities_update",
    summary="Edit a facility (If-Match)", responses=PATCH_ERRORS,
)
def update_facility(facility_id: ItemId, body: FacilityUpdate, session: SessionDep, actor: VenuesWrite,
                    response: Response, if_match: IfMatch = None) -> Any:
    """Edits a facility's details with If-Match (428 without it, 412 when stale)."""
    row = service.get_facility(session, actor, facility_id)
    row = service.update_facility(session, actor, row, body, parse_if_match(if_match))
    set_etag(response, row.version)
    return row


# ---------------------------------------------------------------- construction investments


@investments.get(
    "", response_model=Page[VenueInvestmentPublic], operation_id="venue_investments_list",
    summary="List venue construction investments in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_investments(
    request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
    org_id: OptionalIdQuery = None, subtree: bool = False, year: YearQuery = None,
    funding_source: FundingSource | None = None, status: InvestmentStatus | None = None,
) -> Any:
    """Sortable by id, year, org_id, amount, created_at."""
    filters = service.InvestmentFilters(org_id=org_id, subtree=subtree, year=year, funding_source=funding_source,
                                        status=status)
    items, total = service.list_investments(session, actor, filters, page)
    return respond(request, VenueInvestmentPublic, items, total, page, filename="venue-investments")


@investments.get(
    "/{investment_id}", response_model=VenueInvestmentPublic, operation_id="venue_investments_get",
    summary="Get a venue investment", responses=READ_ERRORS,
)
@recorded("venue_investment")
def get_investment(investment_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One construction investment in a venue: amount in yuan, funding source, year, and whether it was cancelled
    and why."""
    row = service.get_investment(session, actor, investment_id)
    set_etag(response, row.version)
    return service.investment_public(row)


@investments.post(
    "", response_model=VenueInvestmentPublic, status_code=201, operation_id="venue_investments_create",
    summary="Record a construction investment (amount in yuan)", responses=WRITE_ERRORS,
)
def create_investment(body: VenueInvestmentCreate, session: SessionDep, actor: VenuesWrite,
                      response: Response) -> Any:
    """Records money invested in building or equipping a venue of an organisation in scope, in yuan with two
    decimals, with its funding source and facility type. Answers 201 with Location."""
    row = service.create_investment(session, actor, body)
    response.headers["Location"] = f"{investments.prefix}/{row.id}"
    set_etag(response, row.version)
    return service.investment_public(row)


@investments.post(
    "/{investment_id}/cancel", response_model=VenueInvestmentPublic, operation_id="venue_investments_cancel",
    summary="Cancel an investment entered in error (it stays on record)", responses=WRITE_ERRORS,
)
def cancel_investment(investment_id: ItemId, body: InvestmentCancel, session: SessionDep, actor: VenuesWrite,
                      response: Response) -> Any:
    """Cancels an investment entered in error with a reason: it leaves the totals but stays on record. One already
    cancelled is a 409 already_cancelled."""
    row = service.cancel_investment(session, actor, service.get_investment(session, actor, investment_id),
                                    body.reason)
    set_etag(response, row.version)
    return service.investment_public(row)


# ---------------------------------------------------------------- summary


@summary.get(
    "/summary", response_model=VenueSummary, operation_id="venues_summary",
    summary="Facility coverage of villages per township and investment per year", responses=READ_ERRORS,
)
@serves_json
def venues_summary(session: SessionDep, actor: StandardsRead, year: YearQuery = None) -> Any:
    """With `year`: facilities built by then and investments up to that year."""
    return service.summary(session, actor, year=year)
