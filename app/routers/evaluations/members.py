"""HTTP for the democratic evaluation of members, disposal cases, commendation candidates and the
reserve cadre pool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.orm import Session

from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import EvaluationsRead, EvaluationsWrite, ItemId, OptionalIdQuery, SessionDep
from app.models.evaluations.members import (
    CommendationCandidate,
    CommendationReason,
    DemocraticEvaluationCreate,
    DemocraticEvaluationPublic,
    DemocraticEvaluationStatus,
    DisposalApproval,
    DisposalCasePublic,
    DisposalDecision,
    DisposalMeasure,
    DisposalRejection,
    DisposalStatus,
    EntryAdd,
    EntryPublic,
    EntryUpdate,
    MemberRating,
    ReserveCadreCreate,
    ReserveCadrePublic,
    ReserveCadreRelease,
    ReserveStatus,
)
from app.routers.evaluations._shared import PATCH_ERRORS, READ_ERRORS, WRITE_ERRORS, OptionalYear, YearQuery
from app.services.evaluations import members as service

sessions = APIRouter(prefix="/api/v1/democratic-evaluations", tags=["evaluations"])
entries = APIRouter(prefix="/api/v1/democratic-evaluation-entries", tags=["evaluations"])
cases = APIRouter(prefix="/api/v1/disposal-cases", tags=["evaluations"])
candidates = APIRouter(prefix="/api/v1/commendation-candidates", tags=["evaluations"])
reserve = APIRouter(prefix="/api/v1/reserve-cadres", tags=["evaluations"])
LIST_RESPONSES = {**READ_ERRORS, **CSV_RESPONSE_DOC}


# ---------------------------------------------------------------------------
# Sessions


@sessions.get("", response_model=Page[DemocraticEvaluationPublic], operation_id="democratic_evaluations_list",
              summary="List democratic evaluations of members in scope", responses=LIST_RESPONSES)
def list_sessions(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep, year: OptionalYear = None,
    status: DemocraticEvaluationStatus | None = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, held_on, created_at."""
    items, total = service.list_sessions(
        session, actor, service.SessionFilters(year=year, status=status, org_id=org_id, subtree=subtree), page)
    return respond(request, DemocraticEvaluationPublic, items, total, page, session=session,
                   present=service.session_publics, filename="democratic-evaluations")


def _session(session: Session, ev: Any, response: Response) -> DemocraticEvaluationPublic:
    set_etag(response, ev.version)
    return service.session_publics(session, [ev])[0]


@sessions.get("/{evaluation_id}", response_model=DemocraticEvaluationPublic,
              operation_id="democratic_evaluations_get", summary="Get a democratic evaluation", responses=READ_ERRORS)
@recorded("democratic_evaluation")
def get_session(evaluation_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One democratic evaluation of a branch or village organisation in scope, with its status and tallies."""
    return _session(session, service.get_session(session, actor, evaluation_id), response)


@sessions.post("", response_model=DemocraticEvaluationPublic, status_code=201,
               operation_id="democratic_evaluations_create",
               summary="Open a branch's democratic evaluation for a year (its members are enrolled)",
               responses=WRITE_ERRORS)
def create_session(body: DemocraticEvaluationCreate, session: SessionDep, actor: EvaluationsWrite,
                   response: Response) -> Any:
    """Opens a branch's or village organisation's democratic evaluation for a year and enrols every member it has on
    that day. One evaluation per organisation and year (409 duplicate_evaluation); a dissolved organisation is a 409
    org_dissolved. Answers 201 with Location."""
    ev = service.create_session(session, actor, body)
    response.headers["Location"] = f"{sessions.prefix}/{ev.id}"
    return _session(session, ev, response)


@sessions.post("/{evaluation_id}/entries", response_model=EntryPublic, status_code=201,
               operation_id="democratic_evaluations_add_entry", summary="Enrol a member the session missed",
               responses=WRITE_ERRORS)
def add_entry(evaluation_id: ItemId, body: EntryAdd, session: SessionDep, actor: EvaluationsWrite,
              response: Response) -> Any:
    """Enrols a member the evaluation missed (joined or transferred in later), while it is a draft. A member already
    enrolled is a 409 already_enrolled. Answers 201 with Location and ETag."""
    entry = service.add_entry(session, actor, service.get_session(session, actor, evaluation_id), body.person_id)
    response.headers["Location"] = f"{entries.prefix}/{entry.id}"
    set_etag(response, entry.version)
    return service.entry_publics(session, [entry])[0]


@sessions.post("/{evaluation_id}/finalize", response_model=DemocraticEvaluationPublic,
               operation_id="democratic_evaluations_finalize",
               summary="Fix the ratings; each unqualified rating opens a disposal case", responses=WRITE_ERRORS)
def finalize_session(evaluation_id: ItemId, session: SessionDep, actor: EvaluationsWrite,
                     response: Response) -> Any:
    """409 `unrated_entries` until every member is rated; 409 `excellent_share_exceeded` when the year's
    `excellent_share_cap` is set and excellent ratings exceed cap × members."""
    ev = service.finalize_session(session, actor, service.get_session(session, actor, evaluation_id))
    return _session(session, ev, response)


# ---------------------------------------------------------------------------
# Entries


@entries.get("", response_model=Page[EntryPublic], operation_id="democratic_evaluation_entries_list",
             summary="List members' entries (with their post review grades as evidence)", responses=LIST_RESPONSES)
def list_entries(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep,
    evaluation_id: OptionalIdQuery = None, person_id: OptionalIdQuery = None, rating: MemberRating | None = None,
    year: OptionalYear = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, person_id, rating, votes_excellent."""
    f = service.EntryFilters(evaluation_id=evaluation_id, person_id=person_id, rating=rating, year=year,
                             org_id=org_id, subtree=subtree)
    items, total = service.list_entries(session, actor, f, page)
    return respond(request, EntryPublic, items, total, page, session=session, present=service.entry_publics,
                   filename="democratic-evaluation-entries")


@entries.get("/{entry_id}", response_model=EntryPublic, operation_id="democratic_evaluation_entries_get",
             summary="Get a member's entry", responses=READ_ERRORS)
@recorded("democratic_evaluation_entry")
def get_entry(entry_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One member's entry: self-evaluation, mutual-evaluation tallies, rating, and the year's post review grades as
    evidence. The ETag header is the version for If-Match."""
    entry = service.get_entry(session, actor, entry_id)
    set_etag(response, entry.version)
    return service.entry_publics(session, [entry])[0]


@entries.patch("/{entry_id}", response_model=EntryPublic, operation_id="democratic_evaluation_entries_update",
               summary="Record self-evaluation, mutual-evaluation tallies and rating (If-Match required)",
               responses=PATCH_ERRORS)
def update_entry(
    entry_id: ItemId, body: EntryUpdate, session: SessionDep, actor: EvaluationsWrite, response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the version being changed")] = None,
) -> Any:
    """Records a member's self-evaluation, vote tallies (excellent, qualified, basically qualified, unqualified) and
    rating while the evaluation is a draft. Send the entry's ETag in If-Match (428 without it, 412 when stale)."""
    entry = service.get_entry(session, actor, entry_id)
    entry = service.update_entry(session, actor, entry, body, parse_if_match(if_match))
    set_etag(response, entry.version)
    return service.entry_publics(session, [entry])[0]


# ---------------------------------------------------------------------------
# Disposal cases


@cases.get("", response_model=Page[DisposalCasePublic], operation_id="disposal_cases_list",
           summary="List disposal cases of unqualified members in scope", responses=LIST_RESPONSES)
def list_cases(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep, year: OptionalYear = None,
    status: DisposalStatus | None = None, measure: DisposalMeasure | None = None, person_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, status, decided_on, approved_on."""
    f = service.CaseFilters(year=year, status=status, measure=measure, person_id=person_id, org_id=org_id,
                            subtree=subtree)
    items, total = service.list_cases(session, actor, f, page)
    return respond(request, DisposalCasePublic, items, total, page, session=session, present=service.case_publics,
                   filename="disposal-cases")


def _case(session: Session, case: Any, response: Response) -> DisposalCasePublic:
    set_etag(response, case.version)
    return service.case_publics(session, [case])[0]


@cases.get("/{case_id}", response_model=DisposalCasePublic, operation_id="disposal_cases_get",
           summary="Get a disposal case", responses=READ_ERRORS)
@recorded("disposal_case")
def get_case(case_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One disposal case of an unqualified member: the branch's decision, the approval or rejection by the level above
    and the dates."""
    return _case(session, service.get_case(session, actor, case_id), response)


@cases.post("/{case_id}/decide", response_model=DisposalCasePublic, operation_id="disposal_cases_decide",
            summary="Record the branch's measure (限期改正, 劝其退党 or 除名)", responses=WRITE_ERRORS)
def decide_case(case_id: ItemId, body: DisposalDecision, session: SessionDep, actor: EvaluationsWrite,
                response: Response) -> Any:
    """The branch records the measure for a member rated unqualified (限期改正 correction within a deadline,
    劝其退党 advice to withdraw, or 除名 removal), dated not in the future nor before the evaluation's year; the
    case then awaits the level above."""
    case = service.decide_case(session, actor, service.get_case(session, actor, case_id), body)
    return _case(session, case, response)


@cases.post("/{case_id}/approve", response_model=DisposalCasePublic, operation_id="disposal_cases_approve",
            summary="Approve the measure (level above only); a removal takes the member off the roll",
            responses=WRITE_ERRORS)
def approve_case(case_id: ItemId, body: DisposalApproval, session: SessionDep, actor: EvaluationsWrite,
                 response: Response) -> Any:
    """An approved removal sets the person's status to removed (their positions end), ends their duty posts and
    releases them from the reserve cadre pool, in the same transaction. A removal of someone who has since moved out
    of the case's organisation is a 409 person_moved (send the decision back instead)."""
    case = service.approve_case(session, actor, service.get_case(session, actor, case_id), body)
    return _case(session, case, response)


@cases.post("/{case_id}/reject", response_model=DisposalCasePublic, operation_id="disposal_cases_reject",
            summary="Send the decision back to the branch (level above only)", responses=WRITE_ERRORS)
def reject_case(case_id: ItemId, body: DisposalRejection, session: SessionDep, actor: EvaluationsWrite,
                response: Response) -> Any:
    """The level above sends the branch's decision back with a reason; the case reopens and the branch decides again.
    Only a decided case can be sent back."""
    case = service.reject_case(session, actor, service.get_case(session, actor, case_id), body.reason)
    return _case(session, case, response)


# ---------------------------------------------------------------------------
# Commendation candidates


@candidates.get("", response_model=Page[CommendationCandidate], operation_id="commendation_candidates_list",
                summary="Members rated excellent or with an excellent post review in a year",
                responses=LIST_RESPONSES)
def list_candidates(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep, year: YearQuery,
    reason: Annotated[CommendationReason | None,
                      Query(description="Only candidates for this reason")] = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by person_id, name, org_id. Only members still on the roll."""
    f = service.CandidateFilters(year=year, org_id=org_id, subtree=subtree, reason=reason)
    items, total = service.commendation_candidates(session, actor, f, page)
    return respond(request, CommendationCandidate, items, total, page, filename="commendation-candidates")


# ---------------------------------------------------------------------------
# Reserve cadre pool


@reserve.get("", response_model=Page[ReserveCadrePublic], operation_id="reserve_cadres_list",
             summary="List the reserve cadre pool in scope", responses=LIST_RESPONSES)
def list_reserve(
    request: Request, session: SessionDep, actor: EvaluationsRead, page: PageDep,
    status: ReserveStatus | None = None, person_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None,
    subtree: bool = False,
) -> Any:
    """Sortable by id, added_on, status."""
    f = service.ReserveFilters(status=status, person_id=person_id, org_id=org_id, subtree=subtree)
    items, total = service.list_reserve(session, actor, f, page)
    return respond(request, ReserveCadrePublic, items, total, page, session=session, present=service.reserve_publics,
                   filename="reserve-cadres")


def _reserve(session: Session, row: Any, response: Response) -> ReserveCadrePublic:
    set_etag(response, row.version)
    return service.reserve_publics(session, [row])[0]


@reserve.get("/{reserve_id}", response_model=ReserveCadrePublic, operation_id="reserve_cadres_get",
             summary="Get a reserve cadre entry", responses=READ_ERRORS)
@recorded("reserve_cadre")
def get_reserve(reserve_id: ItemId, session: SessionDep, actor: EvaluationsRead, response: Response) -> Any:
    """One entry of a branch's or village's reserve cadre pool, with the reason it was added and, once released, why."""
    return _reserve(session, service.get_reserve(session, actor, reserve_id), response)


@reserve.post("", response_model=ReserveCadrePublic, status_code=201, operation_id="reserve_cadres_add",
              summary="Mark a member into the reserve cadre pool, with the reason", responses=WRITE_ERRORS)
def add_reserve(body: ReserveCadreCreate, session: SessionDep, actor: EvaluationsWrite, response: Response) -> Any:
    """A branch or village organisation marks one of its members into its reserve cadre pool with the reason, dated not
    in the future. A member already in that pool is a 409 already_in_pool. Answers 201 with Location."""
    row = service.add_reserve(session, actor, body)
    response.headers["Location"] = f"{reserve.prefix}/{row.id}"
    return _reserve(session, row, response)


@reserve.post("/{reserve_id}/release", response_model=ReserveCadrePublic, operation_id="reserve_cadres_release",
              summary="Release a member from the reserve cadre pool", responses=WRITE_ERRORS)
def release_reserve(reserve_id: ItemId, body: ReserveCadreRelease, session: SessionDep, actor: EvaluationsWrite,
                    response: Response) -> Any:
    """Releases a member from the reserve cadre pool with the reason (for example promoted); `released_on` cannot
    precede `added_on`. An entry already released is a 409 already_released."""
    row = service.release_reserve(session, actor, service.get_reserve(session, actor, reserve_id), body)
    return _reserve(session, row, response)
