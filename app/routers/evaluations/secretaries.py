"""HTTP for the secretaries' quarterly assessments, year-end debriefing appraisals and ranking."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import EvaluationsRead, EvaluationsWrite, ItemId, OptionalIdQuery, SessionDep
from app.models.evaluations.common import Grade
from app.models.evaluations.secretaries import (
    AppraisalCreate,
    AppraisalProblems,
    AppraisalPublic,
    AssessmentCreate,
    AssessmentPublic,
    AssessmentUpdate,
    Ranking,
)
from app.routers.evaluations._shared import PATCH_ERRORS, READ_ERRORS, WRITE_ERRORS, OptionalYear, YearQuery
from app.services.evaluations import secretaries as service

assessments = APIRouter(prefix="/api/v1/secretary-assessments", tags=["evaluations"])
appraisals = APIRouter(prefix="/api/v1/debriefing-appraisals", tags=["evaluations"])
LIST_RESPONSES = {**READ_ERRORS, **CSV_RESPONSE_DOC}


@assessments.get("", response_model=Page[AssessmentPublic], operation_id="secretary_assessments_list",
                 summary="List secretaries' quarterly assessments in scope", responses=LIST_RESPONSES)
def list_assessments(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep, year: OptionalYear = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None, person_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, quarter, score."""
    f = service.AssessmentFilters(year=year, quarter=quarter, person_id=person_id, org_id=org_id, subtree=subtree)
    items, total = service.list_assessments(session, actor, f, page)
    return respond(request, AssessmentPublic, items, total, page, session=session,
                   present=lambda _s, rows: [service.assessment_public(a) for a in rows],
                   filename="secretary-assessments")


@assessments.get("/{assessment_id}", response_model=AssessmentPublic, operation_id="secretary_assessments_get",
                 summary="Get a quarterly assessment", responses=READ_ERRORS)
@recorded("secretary_assessment")
def get_assessment(assessment_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One quarterly assessment of a village secretary, with its score and comment. The ETag header is the version for
    If-Match."""
    row = service.get_assessment(session, actor, assessment_id)
    set_etag(response, row.version)
    return service.assessment_public(row)


@assessments.post("", response_model=AssessmentPublic, status_code=201, operation_id="secretary_assessments_create",
                  summary="Score a secretary's quarter (level above only)", responses=WRITE_ERRORS)
def create_assessment(body: AssessmentCreate, session: SessionDep, actor: EvaluationsWrite,
                      response: Response) -> Any:
    """The level above scores a secretary's quarter, once per organisation and quarter (409 duplicate_assessment), from
    the quarter's start on. Once the year's debriefing appraisal is recorded the quarters are frozen (409
    appraisal_recorded). Answers 201 with Location and ETag."""
    row = service.create_assessment(session, actor, body)
    response.headers["Location"] = f"{assessments.prefix}/{row.id}"
    set_etag(response, row.version)
    return service.assessment_public(row)


@assessments.patch("/{assessment_id}", response_model=AssessmentPublic,
                   operation_id="secretary_assessments_update",
                   summary="Correct a quarterly score (level above; If-Match; until the appraisal)",
                   responses=PATCH_ERRORS)
def update_assessment(
    assessment_id: ItemId, body: AssessmentUpdate, session: SessionDep, actor: EvaluationsWrite, response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the version being changed")] = None,
) -> Any:
    """Corrects a quarterly score or comment (the level above only), with If-Match, until the year's debriefing
    appraisal is recorded (409 appraisal_recorded)."""
    row = service.get_assessment(session, actor, assessment_id)
    row = service.update_assessment(session, actor, row, body, parse_if_match(if_match))
    set_etag(response, row.version)
    return service.assessment_public(row)


@appraisals.get("", response_model=Page[AppraisalPublic], operation_id="debriefing_appraisals_list",
                summary="List year-end debriefing appraisals in scope", responses=LIST_RESPONSES)
def list_appraisals(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep, year: OptionalYear = None,
    grade: Grade | None = None, person_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None,
    subtree: bool = False,
) -> Any:
    """Sortable by id, year, year_score, grade, appraised_on."""
    f = service.AppraisalFilters(year=year, grade=grade, person_id=person_id, org_id=org_id, subtree=subtree)
    items, total = service.list_appraisals(session, actor, f, page)
    return respond(request, AppraisalPublic, items, total, page, session=session, present=service.appraisal_publics,
                   filename="debriefing-appraisals")


@appraisals.get("/ranking", response_model=Ranking, operation_id="debriefing_appraisals_ranking",
                summary="Rank the year's appraisals within a township (or the townships within the city)",
                responses=READ_ERRORS)
def ranking(session: SessionDep, actor: EvaluationsRead, year: YearQuery, org_id: OptionalIdQuery = None) -> Any:
    """Ties break by the reviewers' year-end score (higher first), then person id, then organisation id (lower
    first): the order never depends on the database."""
    return service.ranking(session, actor, year=year, org_id=org_id)


@appraisals.get("/{appraisal_id}", response_model=AppraisalPublic, operation_id="debriefing_appraisals_get",
                summary="Get a debriefing appraisal", responses=READ_ERRORS)
@recorded("debriefing_appraisal")
def get_appraisal(appraisal_id: ItemId, session: SessionDep, actor: EvaluationsRead) -> Any:
    """One year-end debriefing appraisal with the reviewers' score, the quarterly average, the weighted year score and
    the problems it opened."""
    return service.appraisal_publics(session, [service.get_appraisal(session, actor, appraisal_id)])[0]


@appraisals.post("", response_model=AppraisalPublic, status_code=201, operation_id="debriefing_appraisals_create",
                 summary="Record a secretary's year-end appraisal and the problems found (level above only)",
                 responses=WRITE_ERRORS)
def create_appraisal(body: AppraisalCreate, session: SessionDep, actor: EvaluationsWrite,
                     response: Response) -> Any:
    """Needs the four quarterly assessments (409 `quarterly_assessments_missing`). Year score = quarterly average
    × w + reviewers' score × (1 − w), half up to 2 places (w = `quarterly_weight`). Each problem found opens a
    problem on the problem list (source debriefing_appraisal) linked to the appraisal."""
    row = service.create_appraisal(session, actor, body)
    response.headers["Location"] = f"{appraisals.prefix}/{row.id}"
    return service.appraisal_publics(session, [row])[0]


@appraisals.post("/{appraisal_id}/problems", response_model=AppraisalPublic,
                 operation_id="debriefing_appraisals_add_problems",
                 summary="Record further problems the appraisal found (level above only)", responses=WRITE_ERRORS)
def add_problems(appraisal_id: ItemId, body: AppraisalProblems, session: SessionDep,
                 actor: EvaluationsWrite) -> Any:
    """Records further problems the appraisal found after it was recorded (the level above only); each opens a problem
    of the appraised organisation, exactly as those found at the appraisal."""
    row = service.add_problems(session, actor, service.get_appraisal(session, actor, appraisal_id), body.problems)
    return service.appraisal_publics(session, [row])[0]
