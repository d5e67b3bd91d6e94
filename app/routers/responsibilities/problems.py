"""HTTP for problem lists, escalation and quarterly inspections."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import parse_if_match, set_etag
from app.deps import (
    InspectionsWrite,
    ItemId,
    OptionalIdQuery,
    ProblemsEscalate,
    ProblemsRead,
    ProblemsVerify,
    ProblemsWrite,
    SessionDep,
)
from app.models.responsibilities.problems import (
    EscalationResult,
    InspectionCreate,
    InspectionDetail,
    InspectionPublic,
    ProblemCreate,
    ProblemDetail,
    ProblemPublic,
    ProblemReject,
    ProblemSource,
    ProblemStatus,
    ProblemSubmit,
    ProblemSummaryRow,
    ProblemUpdate,
)
from app.routers.responsibilities.common import (
    PATCH_ERRORS,
    READ_ERRORS,
    TAG,
    WRITE_ERRORS,
    IfMatch,
    Rollup,
    Subtree,
    YearQuery,
)
from app.services.responsibilities import problems as service

problems = APIRouter(prefix="/api/v1/problems", tags=[TAG])
inspections = APIRouter(prefix="/api/v1/quarterly-inspections", tags=[TAG])


def _detail(session: SessionDep, actor: Any, problem_id: int | None, response: Response) -> ProblemDetail:
    assert problem_id is not None
    out = service.detail(session, actor, problem_id)
    set_etag(response, out.version)
    return out


@problems.get(
    "", response_model=Page[ProblemPublic], operation_id="problems_list",
    summary="List problems in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_problems(
    request: Request, session: SessionDep, actor: ProblemsRead, page: PageDep,
    year: YearQuery = None, source: ProblemSource | None = None, status: ProblemStatus | None = None,
    overdue: Annotated[bool | None, Query(description="Deadline passed and not verified, as of today")] = None,
    escalated: Annotated[bool | None, Query(description="Escalated for on-site guidance")] = None,
    responsible_person_id: OptionalIdQuery = None,
    link_entity: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    link_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: Subtree = False,
) -> Any:
    """Sortable by id, year, deadline, status, created_at, verified_at, escalated_at, org_id."""
    filters = service.ProblemFilters(
        year=year, source=source, status=status, overdue=overdue, escalated=escalated,
        responsible_person_id=responsible_person_id, link_entity=link_entity, link_id=link_id,
        org_id=org_id, subtree=subtree,
    )
    items, total = service.list_page(session, actor, filters, page)
    return respond(request, ProblemPublic, items, total, page, filename="problems")


@problems.get(
    "/summary", response_model=list[ProblemSummaryRow], operation_id="problems_summary",
    summary="Problems by status, overdue, escalated and average days to verify, per organisation",
    responses=READ_ERRORS,
)
@serves_json
def problems_summary(
    session: SessionDep, actor: ProblemsRead, year: YearQuery = None, org_id: OptionalIdQuery = None,
    subtree: Subtree = False, rollup: Rollup = False,
) -> Any:
    """Without org_id: the caller's organisation. Overdue is as of today."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree, rollup=rollup)


@problems.post(
    "/escalate-overdue", response_model=EscalationResult, operation_id="problems_escalate_overdue",
    summary="Escalate problems overdue beyond the configured days for on-site guidance (idempotent)",
    responses=problem_responses(401, 403),
)
def escalate_overdue(session: SessionDep, actor: ProblemsEscalate) -> Any:
    """Each problem in scope whose deadline passed more than `PROBLEM_ESCALATION_DAYS` ago, not verified and not
    yet escalated, is taken over by the organisation above its own; running it again escalates nothing twice."""
    return service.escalate_overdue(session, actor)


@problems.post(
    "", response_model=ProblemDetail, status_code=201, operation_id="problems_create",
    summary="Open a problem of an organisation in scope", responses=WRITE_ERRORS,
)
def create_problem(body: ProblemCreate, session: SessionDep, actor: ProblemsWrite, response: Response) -> Any:
    """Opens a problem of an organisation in scope, by its own users or the levels above, with its source (debriefing
    appraisal, quarterly inspection, standards audit, frontline visit or other), description, cause, measures,
    responsible person and deadline; it starts open. Answers 201 with Location and ETag."""
    problem = service.create(session, actor, body)
    response.headers["Location"] = f"{problems.prefix}/{problem.id}"
    return _detail(session, actor, problem.id, response)


@problems.get(
    "/{problem_id}", response_model=ProblemDetail, operation_id="problems_get",
    summary="Get a problem with its rejections", responses=READ_ERRORS,
)
@recorded("problem")
def get_problem(problem_id: ItemId, session: SessionDep, actor: ProblemsRead, response: Response) -> Any:
    """One problem in scope with its status, deadline, escalation and every rejection of its rectification (reason,
    who, when). The ETag header is the version for If-Match."""
    return _detail(session, actor, problem_id, response)


@problems.patch(
    "/{problem_id}", response_model=ProblemDetail, operation_id="problems_update",
    summary="Edit an open or rectifying problem (If-Match required)", responses=PATCH_ERRORS,
)
def update_problem(problem_id: ItemId, body: ProblemUpdate, session: SessionDep, actor: ProblemsWrite,
                   response: Response, if_match: IfMatch = None) -> Any:
    """Edits an open or rectifying problem with If-Match (428 without it, 412 when stale); once a deadline is set only
    the level above may move it. A submitted or verified problem is a 409."""
    problem, org = service.get_with_org(session, actor, problem_id)
    service.update_fields(session, actor, problem, org, body, parse_if_match(if_match))
    return _detail(session, actor, problem_id, response)


@problems.post(
    "/{problem_id}/rectify", response_model=ProblemDetail, operation_id="problems_rectify",
    summary="Start rectifying an open problem", responses=WRITE_ERRORS,
)
def rectify_problem(problem_id: ItemId, session: SessionDep, actor: ProblemsWrite, response: Response) -> Any:
    """The organisation starts rectifying an open problem (open → rectifying). Any other status is a 409."""
    service.start_rectification(session, actor, service.get(session, actor, problem_id))
    return _detail(session, actor, problem_id, response)


@problems.post(
    "/{problem_id}/submit", response_model=ProblemDetail, operation_id="problems_submit",
    summary="Submit a rectification for verification", responses=WRITE_ERRORS,
)
def submit_problem(problem_id: ItemId, body: ProblemSubmit, session: SessionDep, actor: ProblemsWrite,
                   response: Response) -> Any:
    """The organisation submits its rectification for verification with a note (rectifying → submitted). Any other
    status is a 409."""
    service.submit(session, actor, service.get(session, actor, problem_id), body.note)
    return _detail(session, actor, problem_id, response)


@problems.post(
    "/{problem_id}/verify", response_model=ProblemDetail, operation_id="problems_verify",
    summary="Verify a submitted rectification (only the level above)", responses=WRITE_ERRORS,
)
def verify_problem(problem_id: ItemId, session: SessionDep, actor: ProblemsVerify, response: Response) -> Any:
    """A user of the level above verifies a submitted rectification (submitted → verified): someone whose scope
    strictly contains the organisation, never its own users (403). Any other status is a 409."""
    problem, org = service.get_with_org(session, actor, problem_id)
    service.verify(session, actor, problem, org)
    return _detail(session, actor, problem_id, response)


@problems.post(
    "/{problem_id}/reject", response_model=ProblemDetail, operation_id="problems_reject",
    summary="Reject a submitted rectification with a reason (only the level above)", responses=WRITE_ERRORS,
)
def reject_problem(problem_id: ItemId, body: ProblemReject, session: SessionDep, actor: ProblemsVerify,
                   response: Response) -> Any:
    """The level above rejects a submitted rectification with a reason (submitted → rectifying); rejections are counted
    and kept on the problem. Any other status is a 409."""
    problem, org = service.get_with_org(session, actor, problem_id)
    service.reject(session, actor, problem, org, body.reason)
    return _detail(session, actor, problem_id, response)


# ---------------------------------------------------------------- quarterly inspections


@inspections.get(
    "", response_model=Page[InspectionPublic], operation_id="inspections_list",
    summary="List quarterly inspections in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_inspections(
    request: Request, session: SessionDep, actor: ProblemsRead, page: PageDep, year: YearQuery = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None, org_id: OptionalIdQuery = None,
    subtree: Subtree = False,
) -> Any:
    """Sortable by id, visited_on, org_id, created_at."""
    items, total = service.list_inspections(session, actor, page, org_id=org_id, subtree=subtree, year=year,
                                            quarter=quarter)
    return respond(request, InspectionPublic, items, total, page, filename="quarterly-inspections")


def _inspection(session: SessionDep, actor: Any, inspection_id: int | None) -> InspectionDetail:
    assert inspection_id is not None
    inspection, org_name = service.get_inspection(session, actor, inspection_id)
    found = service.inspection_problems(session, actor, inspection_id)
    return InspectionDetail(**service.inspection_public(inspection, org_name, len(found)), problems=found)


@inspections.post(
    "", response_model=InspectionDetail, status_code=201, operation_id="inspections_create",
    summary="Record an inspection visit and open the problems it found, in one request", responses=WRITE_ERRORS,
)
def create_inspection(body: InspectionCreate, session: SessionDep, actor: InspectionsWrite,
                      response: Response) -> Any:
    """The level above records a quarterly inspection visit (dated today or earlier) and opens the problems it found,
    all in one transaction; each problem belongs to the inspected organisation or one below it. Answers 201 with
    Location."""
    inspection = service.create_inspection(session, actor, body)
    response.headers["Location"] = f"{inspections.prefix}/{inspection.id}"
    return _inspection(session, actor, inspection.id)


@inspections.get(
    "/{inspection_id}", response_model=InspectionDetail, operation_id="inspections_get",
    summary="Get an inspection with the problems it opened", responses=READ_ERRORS,
)
@recorded("quarterly_inspection")
def get_inspection(inspection_id: ItemId, session: SessionDep, actor: ProblemsRead) -> Any:
    """One quarterly inspection with its findings and the problems it opened, with their current status."""
    return _inspection(session, actor, inspection_id)
