"""HTTP for audits: self-assessments, reviews, the summary and the comparison."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import set_etag
from app.deps import AuditsWrite, ItemId, OptionalIdQuery, SessionDep, StandardsRead
from app.models.common import MAX_ID
from app.models.organizations import OrgDomain
from app.models.standards import (
    MAX_YEAR,
    MIN_YEAR,
    AuditComparison,
    AuditCreate,
    AuditDetail,
    AuditKind,
    AuditPublic,
    AuditStatus,
    AuditSummary,
    Rating,
    ScoresIn,
)
from app.services.standards import audits as service

router = APIRouter(prefix="/api/v1/audits", tags=["standards"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def _detail(session: SessionDep, audit_id: int, actor: Any, response: Response) -> AuditDetail:
    a, org = service.get_audit(session, actor, audit_id)
    set_etag(response, a.version)
    return service.detail(session, a, org)


@router.get(
    "", response_model=Page[AuditPublic], operation_id="audits_list",
    summary="List self-assessments and reviews in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_audits(
    request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
    org_id: OptionalIdQuery = None, subtree: bool = False, set_id: OptionalIdQuery = None,
    year: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
    kind: AuditKind | None = None, status: AuditStatus | None = None, rating: Rating | None = None,
) -> Any:
    """Sortable by id, year, org_id, status, score_total, finalized_at, created_at."""
    filters = service.AuditFilters(org_id=org_id, subtree=subtree, set_id=set_id, year=year, quarter=quarter,
                                   kind=kind, status=status, rating=rating)
    items, total = service.list_audits(session, actor, filters, page)
    return respond(request, AuditPublic, items, total, page, filename="audits")


@router.get(
    "/summary", response_model=AuditSummary, operation_id="audits_summary",
    summary="Latest finalised rating per organisation, aspect averages, counts per township",
    responses=READ_ERRORS,
)
@serves_json
def audits_summary(
    session: SessionDep, actor: StandardsRead,
    year: Annotated[int, Query(ge=MIN_YEAR, le=MAX_YEAR)],
    org_id: OptionalIdQuery = None, subtree: bool = False, domain: OrgDomain | None = None,
) -> Any:
    """A review outranks a self-assessment of the same organisation; then the latest finalised wins."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree, domain=domain)


@router.get(
    "/{audit_id}", response_model=AuditDetail, operation_id="audits_get",
    summary="Get an audit: item scores, aspect subtotals, suggested organisational-life scores, problems",
    responses=READ_ERRORS,
)
@recorded("standard_audit")
def get_audit(audit_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One standardisation audit in scope: the score of every item, subtotals per aspect, the total and rating,
    suggested organisational-life scores from the meeting records, and the problems a finalised backward review
    opened. The ETag header is the version for If-Match."""
    return _detail(session, audit_id, actor, response)


@router.get(
    "/{audit_id}/compare", response_model=AuditComparison, operation_id="audits_compare",
    summary="Item-by-item change between a self-assessment and the review of the same period",
    responses=READ_ERRORS,
)
def compare_audits(
    audit_id: ItemId, session: SessionDep, actor: StandardsRead,
    with_: Annotated[int, Query(alias="with", ge=1, le=MAX_ID, description="The other audit's id")],
) -> Any:
    """Item by item, the change between a self-assessment and the review of the same organisation, standard set and
    period (score and percentage change); `with` names the other audit (422 when it is not the counterpart)."""
    a, _ = service.get_audit(session, actor, audit_id)
    return service.compare(session, actor, a, with_)


@router.post(
    "", response_model=AuditDetail, status_code=201, operation_id="audits_create",
    summary="Open a self-assessment (by the organisation) or a review (by the level above)",
    responses=WRITE_ERRORS,
)
def create_audit(body: AuditCreate, session: SessionDep, actor: AuditsWrite, response: Response) -> Any:
    """Opens a draft audit of an organisation against a published standard set of its domain: a self-assessment by
    the organisation itself or a review by the level above (the city has nothing above it to review it). A set
    that is not published is a 409 set_not_published; a second review of the same period is a 409
    duplicate_review. Answers 201 with Location."""
    a = service.create(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{a.id}"
    return _detail(session, a.id, actor, response)


@router.put(
    "/{audit_id}/scores", response_model=AuditDetail, operation_id="audits_scores",
    summary="Score items of a draft audit (0 to each item's maximum, with a note)", responses=WRITE_ERRORS,
)
def put_scores(audit_id: ItemId, body: ScoresIn, session: SessionDep, actor: AuditsWrite,
               response: Response) -> Any:
    """Scores items of a draft audit, each from 0 to the item's maximum with an optional note (422 otherwise, or for
    an item not in the set); totals and rating follow at once. Items not sent keep their score."""
    a, org = service.get_audit(session, actor, audit_id)
    service.put_scores(session, actor, a, org, body)
    return _detail(session, audit_id, actor, response)


@router.post(
    "/{audit_id}/submit", response_model=AuditDetail, operation_id="audits_submit",
    summary="Submit a fully scored draft", responses=WRITE_ERRORS,
)
def submit_audit(audit_id: ItemId, session: SessionDep, actor: AuditsWrite, response: Response) -> Any:
    """Submits a draft once every item has a score (draft → submitted); missing items are listed in a 409
    scores_incomplete."""
    a, org = service.get_audit(session, actor, audit_id)
    service.submit(session, actor, a, org)
    return _detail(session, audit_id, actor, response)


@router.post(
    "/{audit_id}/return", response_model=AuditDetail, operation_id="audits_return",
    summary="Send a submitted audit back to draft (the level above)", responses=WRITE_ERRORS,
)
def return_audit(audit_id: ItemId, session: SessionDep, actor: AuditsWrite, response: Response) -> Any:
    """The level above sends a submitted audit back to draft for correction; a finalised audit is a 409
    audit_finalized."""
    a, org = service.get_audit(session, actor, audit_id)
    service.return_to_draft(session, actor, a, org)
    return _detail(session, audit_id, actor, response)


@router.post(
    "/{audit_id}/finalize", response_model=AuditDetail, operation_id="audits_finalize",
    summary="Finalise a submitted audit (the level above); a backward review opens problems",
    responses=WRITE_ERRORS,
)
def finalize_audit(audit_id: ItemId, session: SessionDep, actor: AuditsWrite, response: Response) -> Any:
    """The level above finalises a submitted audit (submitted → finalized); its rating then counts. A review rated
    backward opens a problem for each weak aspect on the organisation's problem list. Only one finalised review
    per organisation and period (409 duplicate_review)."""
    a, org = service.get_audit(session, actor, audit_id)
    service.finalize(session, actor, a, org)
    return _detail(session, audit_id, actor, response)
