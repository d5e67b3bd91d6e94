"""HTTP for the budget ledger: lines, allocations, disbursements, the execution report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core import idempotency
from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.idempotency import IdempotencyDep
from app.core.pagination import (
    CSV_MEDIA_TYPE,
    CSV_RESPONSE_DOC,
    XLSX_MEDIA_TYPE,
    Page,
    PageDep,
    export_response,
    respond,
)
from app.core.permissions import Permission
from app.core.report_cache import serves_json
from app.deps import FundsApprove, FundsManage, FundsRead, FundsRequest, ItemId, OptionalIdQuery, SessionDep
from app.models.funds.budgets import (
    AllocationCreate,
    AllocationPublic,
    BudgetCategory,
    BudgetLineCreate,
    BudgetLinePublic,
    DisbursementCreate,
    DisbursementPublic,
    DisbursementStatus,
    ExecutionReport,
    ExecutionRow,
    ReasonBody,
)
from app.models.funds.common import YEAR_MAX, YEAR_MIN
from app.services.funds import budgets as service

lines = APIRouter(prefix="/api/v1/budget-lines", tags=["funds"])
allocations = APIRouter(prefix="/api/v1/allocations", tags=["funds"])
disbursements = APIRouter(prefix="/api/v1/disbursements", tags=["funds"])
reports = APIRouter(prefix="/api/v1/budgets", tags=["funds"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
YearQuery = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]


# --- budget lines --------------------------------------------------------------------


@lines.get("", response_model=Page[BudgetLinePublic], operation_id="funds_budget_lines_list",
           summary="List budget lines in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_budget_lines(
    request: Request, session: SessionDep, actor: FundsRead, page: PageDep,
    fiscal_year: YearQuery = None, category: BudgetCategory | None = None, parent_line_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, fiscal_year, org_id, category, name, allocated, available, created_at."""
    f = service.LineFilters(fiscal_year=fiscal_year, category=category, org_id=org_id, subtree=subtree,
                            parent_line_id=parent_line_id)
    items, total = service.list_lines(session, actor, f, page)
    return respond(request, BudgetLinePublic, items, total, page, filename="budget-lines", session=session,
                   present=service.lines_public)


@lines.get("/{line_id}", response_model=BudgetLinePublic, operation_id="funds_budget_lines_get",
           summary="Get a budget line with its amounts", responses=READ_ERRORS)
@recorded("budget_line")
def get_budget_line(line_id: ItemId, session: SessionDep, actor: FundsRead) -> Any:
    """One budget line whose owner is in the caller's scope, with its amounts: allocated, allocated down to lower
    levels, approved, committed, paid and available."""
    line = service.get_line(session, actor, line_id)
    return service.line_public(line, service.org_names(session, {line.org_id}).get(line.org_id))


@lines.post("", response_model=BudgetLinePublic, status_code=201, operation_id="funds_budget_lines_create",
            summary="Create a budget line funded from a source", responses=WRITE_ERRORS)
def create_budget_line(body: BudgetLineCreate, session: SessionDep, actor: FundsManage, response: Response) -> Any:
    """Creates a budget line of an organisation in scope for a fiscal year and category, funded from a source outside
    the ledger (city finance, a grant); lower levels receive money by allocation from it. Amounts are yuan strings
    with two decimals. Audited; answers 201 with Location."""
    line = service.create_line(session, actor, body)
    response.headers["Location"] = f"{lines.prefix}/{line.id}"
    return service.line_public(line)


# --- allocations -----------------------------------------------------------------------


@allocations.post("", response_model=AllocationPublic, status_code=201, operation_id="funds_allocations_create",
                  summary="Allocate money down to an organisation below the line's owner",
                  responses=problem_responses(401, 403, 404, 409, 422))
def create_allocation(body: AllocationCreate, session: SessionDep, actor: FundsManage, idem: IdempotencyDep) -> Any:
    """Takes the amount from the line in one conditional update: over the available amount is 409
    `budget_exceeded`. Send an `Idempotency-Key` to retry safely."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    allocation = service.allocate(session, actor, body)
    return idempotency.finish(session, idem, 201, service.allocation_public(allocation),
                              headers={"Location": f"{allocations.prefix}?line_id={allocation.from_line_id}"})


@allocations.get("", response_model=Page[AllocationPublic], operation_id="funds_allocations_list",
                 summary="List allocations from or to organisations in scope",
                 responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_allocations(
    request: Request, session: SessionDep, actor: FundsRead, page: PageDep, fiscal_year: YearQuery = None,
    line_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, amount, created_at."""
    items, total = service.list_allocations(session, actor, fiscal_year=fiscal_year, line_id=line_id, org_id=org_id,
                                            subtree=subtree, params=page)
    return respond(request, AllocationPublic, items, total, page, filename="allocations", session=session,
                   present=lambda _s, rows: [service.allocation_public(a) for a in rows])


# --- disbursements -------------------------------------------------------------------------


@disbursements.get("", response_model=Page[DisbursementPublic], operation_id="funds_disbursements_list",
                   summary="List disbursements in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_disbursements(
    request: Request, session: SessionDep, actor: FundsRead, page: PageDep,
    status: DisbursementStatus | None = None, line_id: OptionalIdQuery = None, fiscal_year: YearQuery = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, amount, disbursed_on, status, created_at."""
    f = service.DisbursementFilters(status=status, line_id=line_id, fiscal_year=fiscal_year, org_id=org_id,
                                    subtree=subtree)
    items, total = service.list_disbursements(session, actor, f, page)
    return respond(request, DisbursementPublic, items, total, page, filename="disbursements", session=session,
                   present=service.disbursements_public)


@disbursements.get("/{disbursement_id}", response_model=DisbursementPublic, operation_id="funds_disbursements_get",
                   summary="Get a disbursement", responses=READ_ERRORS)
@recorded("disbursement")
def get_disbursement(disbursement_id: ItemId, session: SessionDep, actor: FundsRead) -> Any:
    """One disbursement from a budget line in scope, with its status (pending, approved, paid, cancelled, reversed)
    and, once reversed, the reversal entry."""
    d = service.get_disbursement(session, actor, disbursement_id)
    return service.disbursement_public(d, service.reversal_of(session, disbursement_id))


@disbursements.post("", response_model=DisbursementPublic, status_code=201,
                    operation_id="funds_disbursements_create", summary="Request a disbursement from a line",
                    responses=WRITE_ERRORS)
def create_disbursement(body: DisbursementCreate, session: SessionDep, actor: FundsRequest,
                        idem: IdempotencyDep) -> Any:
    """Pending until another user with funds_approve at the line's owner or above approves it."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    d = service.create_disbursement(session, actor, body)
    return idempotency.finish(session, idem, 201, service.disbursement_public(d),
                              headers={"Location": f"{disbursements.prefix}/{d.id}"})


@disbursements.post("/{disbursement_id}/approve", response_model=DisbursementPublic,
                    operation_id="funds_disbursements_approve", summary="Approve a disbursement (maker-checker)",
                    responses=WRITE_ERRORS)
def approve_disbursement(disbursement_id: ItemId, session: SessionDep, actor: FundsApprove,
                         idem: IdempotencyDep) -> Any:
    """Its maker gets 403 `maker_checker`; over the line's available amount is 409 `budget_exceeded`."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    d = service.approve_disbursement(session, actor, service.get_disbursement(session, actor, disbursement_id))
    return idempotency.finish(session, idem, 200, service.disbursement_public(d))


@disbursements.post("/{disbursement_id}/pay", response_model=DisbursementPublic,
                    operation_id="funds_disbursements_pay", summary="Record an approved disbursement as paid",
                    responses=WRITE_ERRORS)
def pay_disbursement(disbursement_id: ItemId, session: SessionDep, actor: FundsApprove, idem: IdempotencyDep) -> Any:
    """Records that an approved disbursement was paid out (approvers only); any other status is a 409 invalid_status.
    Send an Idempotency-Key header to make a retry safe: a repeated key answers the first result again (marked
    Idempotent-Replayed) instead of acting twice."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    d = service.pay_disbursement(session, actor, service.get_disbursement(session, actor, disbursement_id))
    return idempotency.finish(session, idem, 200, service.disbursement_public(d))


@disbursements.post("/{disbursement_id}/cancel", response_model=DisbursementPublic,
                    operation_id="funds_disbursements_cancel", summary="Cancel a disbursement before payment",
                    responses=WRITE_ERRORS)
def cancel_disbursement(disbursement_id: ItemId, body: ReasonBody, session: SessionDep, actor: FundsRequest) -> Any:
    """Its maker, or a user with funds_approve; an approved amount goes back to the line."""
    d = service.get_disbursement(session, actor, disbursement_id)
    d = service.cancel_disbursement(session, actor, d, body.reason, may_approve=actor.can(Permission.funds_approve))
    return service.disbursement_public(d)


@disbursements.post("/{disbursement_id}/reverse", response_model=DisbursementPublic,
                    operation_id="funds_disbursements_reverse",
                    summary="Reverse a paid disbursement with a reason (money back to the line)",
                    responses=WRITE_ERRORS)
def reverse_disbursement(disbursement_id: ItemId, body: ReasonBody, session: SessionDep, actor: FundsApprove,
                         idem: IdempotencyDep) -> Any:
    """A paid disbursement is never deleted: a reversal entry with the reason gives its money back to the budget line
    and the disbursement becomes reversed. Only a paid one can be reversed (409 invalid_status). Send an
    Idempotency-Key header to make a retry safe: a repeated key answers the first result again (marked
    Idempotent-Replayed) instead of acting twice."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    d, reversal = service.reverse_disbursement(session, actor, service.get_disbursement(session, actor,
                                                                                        disbursement_id), body.reason)
    return idempotency.finish(session, idem, 200, service.disbursement_public(d, reversal))


# --- the execution report --------------------------------------------------------------------


@reports.get("/execution", response_model=ExecutionReport, operation_id="funds_budget_execution",
             summary="Budget execution: an organisation's own lines, its children rolled up, per category",
             responses={**READ_ERRORS, 200: {
                 "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                             XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                 "description": "The report; its rows (line, organization, category, total) as CSV with "
                                f"`Accept: text/csv` or as a workbook with `Accept: {XLSX_MEDIA_TYPE}`"}})
@serves_json
def budget_execution(
    request: Request, session: SessionDep, actor: FundsRead,
    year: Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX, description="Fiscal year")],
    org_id: OptionalIdQuery = None, subtree: bool = False, category: BudgetCategory | None = None,
) -> Any:
    """The report of `org_id` (default: the caller's organisation, with its subtree). `lines`: that organisation's
    own lines. `by_organization`: its own row and, with `subtree`, one row per direct child totalling the child's
    whole subtree (drill down with org_id=child). `by_category` and `total`: the whole scope. Columns: allocated,
    allocated_down, net (= allocated − allocated_down: the money kept at that level, so rolled-up nets count each
    yuan once), approved, paid, committed, available and execution_rate = paid / net."""
    report = service.execution_report(session, actor, fiscal_year=year, org_id=org_id, subtree=subtree,
                                      category=category)
    rows = [*report.lines, *report.by_organization, *report.by_category, report.total]
    exported = export_response(request, (r.model_dump(mode="json") for r in rows), list(ExecutionRow.model_fields),
                               f"budget-execution-{year}")
    return report if exported is None else exported
