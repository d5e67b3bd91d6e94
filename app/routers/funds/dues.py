"""HTTP for party dues: rates, profiles, reductions, payments, statements, arrears and decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core import idempotency
from app.core.errors import ProblemError, problem_responses
from app.core.idempotency import IdempotencyDep
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.deps import DuesRead, DuesWrite, ItemId, OptionalIdQuery, SessionDep
from app.models.common import MAX_ID, IsoDate
from app.models.funds.common import YEAR_MAX, YEAR_MIN, parse_month
from app.models.funds.dues import (
    ArrearsDecisionCreate,
    ArrearsDecisionPublic,
    ArrearsRow,
    DuesCategory,
    DuesPaymentCreate,
    DuesPaymentPublic,
    DuesProfileCreate,
    DuesProfilePublic,
    DuesRatePublic,
    DuesReductionCreate,
    DuesReductionPublic,
    DuesStatement,
    ReductionDecision,
    ReductionStatus,
)
from app.services.funds import dues as service

router = APIRouter(prefix="/api/v1/party-dues", tags=["funds"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
MemberQuery = Annotated[int, Query(ge=1, le=MAX_ID, description="The member (person) id")]
# Years 2000..2100 as parse_month accepts (a year outside was a ValueError, i.e. a 500).
MonthQuery = Annotated[str | None, Query(pattern=r"^(20\d{2}|2100)-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.get("/rates", response_model=list[DuesRatePublic], operation_id="funds_dues_rates",
            summary="The national dues rates (data, effective-dated)", responses=READ_ERRORS)
def dues_rates(
    session: SessionDep, actor: DuesRead, category: DuesCategory | None = None,
    on: Annotated[IsoDate | None, Query(description="Only rates valid on this day")] = None,
) -> Any:
    """Employed and retired members pay the rate of their bracket on the WHOLE base (brackets are inclusive upper
    bounds), not progressively; other categories a fixed amount in [fixed_min, fixed_max]."""
    return [service.rate_public(r) for r in service.list_rates(session, on=on, category=category)]


# --- profiles ---------------------------------------------------------------------


@router.post("/profiles", response_model=DuesProfilePublic, status_code=201, operation_id="funds_dues_profiles_create",
             summary="Record a member's dues category and base from a month", responses=WRITE_ERRORS)
def create_profile(body: DuesProfileCreate, session: SessionDep, actor: DuesWrite, response: Response) -> Any:
    """Records a member's party-dues category and income base from a month on; the monthly due then follows the
    national rates. A member has one profile per starting month (409 duplicate_profile: record the change from
    another month)."""
    profile = service.create_profile(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/profiles?member_id={profile.person_id}"
    return service.profile_public(profile)


@router.get("/profiles", response_model=Page[DuesProfilePublic], operation_id="funds_dues_profiles_list",
            summary="List dues profiles in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_profiles(
    request: Request, session: SessionDep, actor: DuesRead, page: PageDep, member_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, effective_from."""
    items, total = service.list_profiles(session, actor, member_id=member_id, org_id=org_id, subtree=subtree,
                                         params=page)
    return respond(request, DuesProfilePublic, items, total, page, session=session,
                   present=lambda _s, rows: [service.profile_public(p) for p in rows],
                   filename="dues-profiles")


# --- reductions ------------------------------------------------------------------------


@router.post("/reductions", response_model=DuesReductionPublic, status_code=201,
             operation_id="funds_dues_reductions_create", summary="Ask for a hardship reduction or exemption",
             responses=WRITE_ERRORS)
def create_reduction(body: DuesReductionCreate, session: SessionDep, actor: DuesWrite, response: Response) -> Any:
    """It applies only once the level above approves it with the approving document's number."""
    r = service.request_reduction(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/reductions?member_id={r.person_id}"
    return service.reduction_public(r)


@router.post("/reductions/{reduction_id}/decide", response_model=DuesReductionPublic,
             operation_id="funds_dues_reductions_decide", summary="Approve or reject a reduction (level above)",
             responses=WRITE_ERRORS)
def decide_reduction(reduction_id: ItemId, body: ReductionDecision, session: SessionDep, actor: DuesWrite) -> Any:
    """Approves or rejects a requested dues reduction. Only the level above the member's organisation decides (403
    level_above_required), never the user who asked for it (403 maker_checker), and only once (409 invalid_status)."""
    return service.reduction_public(service.decide_reduction(session, actor, reduction_id, body))


@router.get("/reductions", response_model=Page[DuesReductionPublic], operation_id="funds_dues_reductions_list",
            summary="List dues reductions in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_reductions(
    request: Request, session: SessionDep, actor: DuesRead, page: PageDep, member_id: OptionalIdQuery = None,
    status: ReductionStatus | None = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, from_month, status."""
    items, total = service.list_reductions(session, actor, member_id=member_id, status=status, org_id=org_id,
                                           subtree=subtree, params=page)
    return respond(request, DuesReductionPublic, items, total, page, session=session,
                   present=lambda _s, rows: [service.reduction_public(r) for r in rows],
                   filename="dues-reductions")


# --- payments ----------------------------------------------------------------------------


@router.post("/payments", response_model=DuesPaymentPublic, status_code=201, operation_id="funds_dues_payments_create",
             summary="Record a dues payment (months covered, voluntary extra)", responses=WRITE_ERRORS)
def create_payment(body: DuesPaymentCreate, session: SessionDep, actor: DuesWrite, idem: IdempotencyDep) -> Any:
    """The amount covers the months' dues; anything above is a voluntary extra, flagged `remit_to_centre` from
    1,000.00 (data). The money accrues to the organisation's party_dues line of the payment's year."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    p = service.record_payment(session, actor, body)
    return idempotency.finish(session, idem, 201, service.payment_public(p),
                              headers={"Location": f"{router.prefix}/payments?member_id={p.person_id}"})


@router.get("/payments", response_model=Page[DuesPaymentPublic], operation_id="funds_dues_payments_list",
            summary="List dues payments in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_payments(
    request: Request, session: SessionDep, actor: DuesRead, page: PageDep, member_id: OptionalIdQuery = None,
    year: Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX, description="Year paid")] = None,
    remit_to_centre: bool | None = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, paid_on, amount, month_from."""
    items, total = service.list_payments(session, actor, member_id=member_id, year=year,
                                         remit_to_centre=remit_to_centre, org_id=org_id, subtree=subtree, params=page)
    return respond(request, DuesPaymentPublic, items, total, page, session=session,
                   present=lambda _s, rows: [service.payment_public(p) for p in rows],
                   filename="dues-payments")


# --- statement, arrears, decisions ------------------------------------------------------------


@router.get("/statement", response_model=DuesStatement, operation_id="funds_dues_statement",
            summary="A member's due, paid and balance per month of a year", responses=READ_ERRORS)
def dues_statement(
    session: SessionDep, actor: DuesRead, member_id: MemberQuery,
    year: Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX)],
) -> Any:
    """A member's dues for one year, month by month: what was due, what was paid and the running balance, with each
    month's status (paid, unpaid, exempt or not yet due)."""
    return service.statement(session, actor, member_id=member_id, year=year)


@router.get("/arrears", response_model=Page[ArrearsRow], operation_id="funds_dues_arrears",
            summary="Members with unpaid months; six or more consecutive are flagged",
            responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def dues_arrears(
    request: Request, session: SessionDep, actor: DuesRead, page: PageDep, org_id: OptionalIdQuery = None,
    subtree: bool = False, as_of: MonthQuery = None, flagged: bool = False,
) -> Any:
    """Unpaid months up to `as_of` (default the last month that has ended), flagged members first. The system flags;
    the branch decides and records its decision (POST /api/v1/party-dues/arrears-decisions)."""
    month = parse_month(as_of) if as_of else service.last_ended_month()
    if page.sort:
        raise ProblemError(422, "invalid_sort", "Arrears are ordered flagged first, then by the longest run.",
                           errors=[{"loc": ["query", "sort"], "msg": "not sortable"}])
    window, total = service.arrears_page(session, actor, org_id=org_id, subtree=subtree, as_of=month,
                                         flagged_only=flagged, offset=page.offset,
                                         limit=None if getattr(page, "export", False) else page.limit)
    return respond(request, ArrearsRow, window, total, page, filename="dues-arrears")


@router.post("/arrears-decisions", response_model=ArrearsDecisionPublic, status_code=201,
             operation_id="funds_dues_decisions_create", summary="Record the branch's decision on a member in arrears",
             responses=WRITE_ERRORS)
def create_decision(body: ArrearsDecisionCreate, session: SessionDep, actor: DuesWrite, response: Response) -> Any:
    """Records the branch's decision about a member in arrears, together with the run of unpaid months it was based on:
    the months that had ended before `decided_on` (the month of the decision may still be paid). A member with no
    such unpaid month is a 409 no_arrears. Audited; answers 201."""
    d = service.record_decision(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/arrears-decisions?member_id={d.person_id}"
    return service.decision_public(d)


@router.get("/arrears-decisions", response_model=Page[ArrearsDecisionPublic],
            operation_id="funds_dues_decisions_list", summary="List recorded arrears decisions",
            responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_decisions(
    request: Request, session: SessionDep, actor: DuesRead, page: PageDep, member_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, decided_on."""
    items, total = service.list_decisions(session, actor, member_id=member_id, org_id=org_id, subtree=subtree,
                                          params=page)
    return respond(request, ArrearsDecisionPublic, items, total, page, session=session,
                   present=lambda _s, rows: [service.decision_public(d) for d in rows],
                   filename="dues-arrears-decisions")
