"""HTTP for the dual debriefing, dual evaluation (双述双评) of village cadres."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import set_etag
from app.deps import EvaluationsRead, EvaluationsWrite, ItemId, OptionalIdQuery, SessionDep
from app.models.evaluations.common import Grade
from app.models.evaluations.dual import (
    CommitteeScores,
    DebriefingReport,
    DualEvaluationCreate,
    DualEvaluationDetail,
    DualEvaluationPublic,
    DualEvaluationStatus,
    DualEvaluationSummary,
    VillagerVotes,
)
from app.routers.evaluations._shared import READ_ERRORS, WRITE_ERRORS, OptionalYear, YearQuery
from app.services.evaluations import dual as service

router = APIRouter(prefix="/api/v1/dual-evaluations", tags=["evaluations"])
LEVEL_ABOVE_ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get("", response_model=Page[DualEvaluationPublic], operation_id="dual_evaluations_list",
            summary="List dual evaluations of village cadres in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_evaluations(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep,
    year: OptionalYear = None, status: DualEvaluationStatus | None = None, grade: Grade | None = None,
    person_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, status, final_score, grade, created_at."""
    f = service.Filters(year=year, status=status, grade=grade, person_id=person_id, org_id=org_id, subtree=subtree)
    items, total = service.list_page(session, actor, f, page)
    return respond(request, DualEvaluationPublic, items, total, page, session=session, present=service.publics,
                   filename="dual-evaluations")


@router.get("/summary", response_model=DualEvaluationSummary, operation_id="dual_evaluations_summary",
            summary="Grade distribution per township and average scores per duty", responses=READ_ERRORS)
@serves_json
def summary(session: SessionDep, actor: EvaluationsRead, year: YearQuery, org_id: OptionalIdQuery = None,
            subtree: bool = False) -> Any:
    """Without `org_id`: the caller's whole subtree. Averages are of finalised evaluations, half up to 2 places."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree)


def _detail(session: Session, ev: Any, response: Response) -> DualEvaluationDetail:
    set_etag(response, ev.version)
    return service.detail(session, ev)


@router.get("/{evaluation_id}", response_model=DualEvaluationDetail, operation_id="dual_evaluations_get",
            summary="Get a dual evaluation with its duties", responses=READ_ERRORS)
@recorded("dual_evaluation")
def get_evaluation(evaluation_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One dual evaluation in scope with its duties, the cadre's debriefing report, committee scores and villagers'
    votes as recorded so far. The ETag header is the version for If-Match."""
    return _detail(session, service.get(session, actor, evaluation_id), response)


@router.post("", response_model=DualEvaluationDetail, status_code=201, operation_id="dual_evaluations_create",
             summary="Open a village cadre's dual evaluation for a year", responses=WRITE_ERRORS)
def create_evaluation(body: DualEvaluationCreate, session: SessionDep, actor: EvaluationsWrite,
                      response: Response) -> Any:
    """422 unless the person held a position in the village during the year; the duties are the list in force."""
    ev = service.create(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{ev.id}"
    return _detail(session, ev, response)


@router.post("/{evaluation_id}/report", response_model=DualEvaluationDetail, operation_id="dual_evaluations_report",
             summary="Record the cadre's debriefing report, duty by duty", responses=WRITE_ERRORS)
def record_report(evaluation_id: ItemId, body: DebriefingReport, session: SessionDep, actor: EvaluationsWrite,
                  response: Response) -> Any:
    """Records the cadre's debriefing text duty by duty (the duties sent replace their earlier text) and an optional
    summary; the report counts as complete once every duty has text. Audited."""
    ev = service.record_report(session, actor, service.get(session, actor, evaluation_id), body)
    return _detail(session, ev, response)


@router.post("/{evaluation_id}/votes", response_model=DualEvaluationDetail, operation_id="dual_evaluations_votes",
             summary="Record the villagers' votes (the villagers' score is computed)", responses=WRITE_ERRORS)
def record_votes(evaluation_id: ItemId, body: VillagerVotes, session: SessionDep, actor: EvaluationsWrite,
                 response: Response) -> Any:
    """villagers' score = (satisfied × 100 + basically satisfied × 60 + dissatisfied × 0) ÷ votes cast, half up
    to 2 places; the points are the year's `vote_weight_*` settings."""
    ev = service.record_votes(session, actor, service.get(session, actor, evaluation_id), body)
    return _detail(session, ev, response)


@router.post("/{evaluation_id}/committee-scores", response_model=DualEvaluationDetail,
             operation_id="dual_evaluations_committee_scores",
             summary="Record the township committee's score of every duty (level above only)",
             responses=LEVEL_ABOVE_ERRORS)
def record_committee_scores(evaluation_id: ItemId, body: CommitteeScores, session: SessionDep,
                            actor: EvaluationsWrite, response: Response) -> Any:
    """403 `level_above_required` for the village itself; the committee score is the mean, half up to 2 places."""
    ev = service.record_committee_scores(session, actor, service.get(session, actor, evaluation_id), body)
    return _detail(session, ev, response)


@router.post("/{evaluation_id}/finalize", response_model=DualEvaluationDetail,
             operation_id="dual_evaluations_finalize",
             summary="Fix the final score and grade (level above only); incompetent opens a problem",
             responses=LEVEL_ABOVE_ERRORS)
def finalize(evaluation_id: ItemId, session: SessionDep, actor: EvaluationsWrite, response: Response) -> Any:
    """final = villagers' score × w + committee score × (1 − w), half up to 2 places (w = `villager_weight`);
    graded by the `dual_evaluation` thresholds. Afterwards every change answers 409 `evaluation_finalized`."""
    ev = service.finalize(session, actor, service.get(session, actor, evaluation_id))
    return _detail(session, ev, response)
