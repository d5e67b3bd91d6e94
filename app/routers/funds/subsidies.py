"""HTTP for subsidy policies, entitlement runs and the subsidies summary."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.idempotency import IdempotencyDep
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.deps import FundsApprove, FundsConfigure, FundsManage, FundsRead, ItemId, OptionalIdQuery, SessionDep
from app.models.common import IsoDate
from app.models.funds.budgets import ReasonBody
from app.models.funds.common import YEAR_MAX, YEAR_MIN
from app.models.funds.subsidies import (
    LineStatus,
    PolicyClose,
    RunStatus,
    SubsidyKind,
    SubsidyLinePublic,
    SubsidyPolicy,
    SubsidyPolicyCreate,
    SubsidyPolicyPublic,
    SubsidyRun,
    SubsidyRunCreate,
    SubsidyRunPublic,
    SubsidySummary,
)
from app.services.funds import subsidies as service

policies = APIRouter(prefix="/api/v1/subsidy-policies", tags=["funds"])
runs = APIRouter(prefix="/api/v1/subsidy-runs", tags=["funds"])
summary = APIRouter(prefix="/api/v1/subsidies", tags=["funds"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


# --- policies ----------------------------------------------------------------------------


@policies.get("", response_model=Page[SubsidyPolicyPublic], operation_id="funds_subsidy_policies_list",
              summary="List subsidy policies (rates as effective-dated data)",
              responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_policies(
    request: Request, session: SessionDep, actor: FundsRead, page: PageDep, kind: SubsidyKind | None = None,
    on: Annotated[IsoDate | None, Query(description="Only policies valid on this day")] = None,
) -> Any:
    """Sortable by id, kind, valid_from."""
    items, total = service.list_policies(session, kind=kind, on=on, params=page)
    return respond(request, SubsidyPolicyPublic, items, total, page, filename="subsidy-policies", session=session,
                   present=_policies_public)


def _policies_public(session: Session, items: list[SubsidyPolicy]) -> list[SubsidyPolicyPublic]:
    rates = service.rates_of(session, [p.id for p in items if p.id is not None])
    return [service.policy_public(p, rates.get(p.id, [])) for p in items]


@policies.get("/{policy_id}", response_model=SubsidyPolicyPublic, operation_id="funds_subsidy_policies_get",
              summary="Get a subsidy policy and its rates", responses=READ_ERRORS)
@recorded("subsidy_policy")
def get_policy(policy_id: ItemId, session: SessionDep, actor: FundsRead) -> Any:
    """One subsidy policy with its validity and its rates per kind of beneficiary."""
    policy = service.get_policy(session, policy_id)
    return service.policy_public(policy, service.rates_of(session, [policy_id]).get(policy_id, []))


@policies.post("", response_model=SubsidyPolicyPublic, status_code=201, operation_id="funds_subsidy_policies_create",
               summary="Record a kind's rates from a date (city only)", responses=WRITE_ERRORS)
def create_policy(body: SubsidyPolicyCreate, session: SessionDep, actor: FundsConfigure, response: Response) -> Any:
    """Flat kinds have one rate; basic_pay one per title; altitude_allowance bands of metres and retired_allowance
    bands of completed service years, [band_min, band_max). A kind's periods never overlap (409 policy_overlap)."""
    policy = service.create_policy(session, actor, body)
    response.headers["Location"] = f"{policies.prefix}/{policy.id}"
    assert policy.id is not None
    return service.policy_public(policy, service.rates_of(session, [policy.id]).get(policy.id, []))


@policies.post("/{policy_id}/close", response_model=SubsidyPolicyPublic, operation_id="funds_subsidy_policies_close",
               summary="End a policy's validity (city only)", responses=WRITE_ERRORS)
def close_policy(policy_id: ItemId, body: PolicyClose, session: SessionDep, actor: FundsConfigure) -> Any:
    """Ends a policy's validity on `valid_to` (city only) so a successor can start the day after. Closing only shortens
    a policy and cannot end it before it started (422 naming valid_to); to change rates record a new policy."""
    policy = service.close_policy(session, actor, service.get_policy(session, policy_id), body)
    return service.policy_public(policy, service.rates_of(session, [policy_id]).get(policy_id, []))


# --- runs ---------------------------------------------------------------------------------


def _run_public(session: Any, run: Any, kinds: list[Any] | None = None) -> SubsidyRunPublic:
    if kinds is None:
        kinds = service.kinds_of(session, [run.id]).get(run.id, [])
    return service.run_public(run, kinds)


@runs.post("", response_model=SubsidyRunPublic, status_code=201, operation_id="funds_subsidy_runs_create",
           summary="Compute a draft entitlement run (a preview: nothing else changes)", responses=WRITE_ERRORS)
def create_run(body: SubsidyRunCreate, session: SessionDep, actor: FundsManage, response: Response) -> Any:
    """One line per beneficiary and kind with a readable basis. Village cadres: secretary, deputy_secretary,
    committee_member, village_committee_director at a village-level organisation; resident first secretaries are
    paid by their sending unit and are not included. A month counts when the cadre was in office on its 15th."""
    run, kinds = service.create_run(session, actor, body)
    response.headers["Location"] = f"{runs.prefix}/{run.id}"
    return service.run_public(run, kinds)


@runs.get("", response_model=Page[SubsidyRunPublic], operation_id="funds_subsidy_runs_list",
          summary="List subsidy runs in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_runs(
    request: Request, session: SessionDep, actor: FundsRead, page: PageDep,
    year: Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)] = None, status: RunStatus | None = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, status, total, created_at."""
    items, total = service.list_runs(session, actor, service.RunFilters(year=year, status=status, org_id=org_id,
                                                                        subtree=subtree), page)
    return respond(request, SubsidyRunPublic, items, total, page, filename="subsidy-runs", session=session,
                   present=_runs_public)


def _runs_public(session: Session, items: list[SubsidyRun]) -> list[SubsidyRunPublic]:
    kinds = service.kinds_of(session, [r.id for r in items if r.id is not None])
    return [service.run_public(r, kinds.get(r.id, [])) for r in items]


@runs.get("/{run_id}", response_model=SubsidyRunPublic, operation_id="funds_subsidy_runs_get",
          summary="Get a subsidy run with its totals per kind", responses=READ_ERRORS)
@recorded("subsidy_run")
def get_run(run_id: ItemId, session: SessionDep, actor: FundsRead) -> Any:
    """One subsidy run with its status (draft, committed, paid, cancelled) and its totals per kind of subsidy."""
    return _run_public(session, service.get_run(session, actor, run_id))


@runs.post("/{run_id}/recompute", response_model=SubsidyRunPublic, operation_id="funds_subsidy_runs_recompute",
           summary="Recompute a draft from the current positions and policies", responses=WRITE_ERRORS)
def recompute_run(run_id: ItemId, session: SessionDep, actor: FundsManage) -> Any:
    """Recomputes a draft run's lines from the positions and policies as they are now (draft lines are working copies);
    only a draft can be recomputed (409 otherwise). Audited with the totals before and after."""
    run, kinds = service.recompute_run(session, actor, service.get_run(session, actor, run_id))
    return service.run_public(run, kinds)


@runs.post("/{run_id}/cancel", response_model=SubsidyRunPublic, operation_id="funds_subsidy_runs_cancel",
           summary="Cancel a draft run", responses=WRITE_ERRORS)
def cancel_run(run_id: ItemId, session: SessionDep, actor: FundsManage) -> Any:
    """Cancels a draft run; it stays on record as cancelled and nothing is paid from it. Only a draft can be cancelled
    (409 otherwise)."""
    return _run_public(session, service.cancel_run(session, actor, service.get_run(session, actor, run_id)))


@runs.post("/{run_id}/commit", response_model=SubsidyRunPublic, operation_id="funds_subsidy_runs_commit",
           summary="Commit a draft: draw its total from the budget lines, or fail whole", responses=WRITE_ERRORS)
def commit_run(run_id: ItemId, session: SessionDep, actor: FundsApprove, idem: IdempotencyDep) -> Any:
    """By a user other than the one who computed it (403 `maker_checker`). A shortfall on any line is 409
    `budget_exceeded` listing each line's shortfall, and nothing is drawn; a beneficiary, kind and period already
    in another committed run is 409 `overlapping_run`. Send an `Idempotency-Key` to retry safely."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    run, kinds = service.commit_run(session, actor, service.get_run(session, actor, run_id))
    return idempotency.finish(session, idem, 200, service.run_public(run, kinds))


@runs.post("/{run_id}/pay", response_model=SubsidyRunPublic, operation_id="funds_subsidy_runs_pay",
           summary="Pay every committed line of a run", responses=WRITE_ERRORS)
def pay_run(run_id: ItemId, session: SessionDep, actor: FundsApprove, idem: IdempotencyDep) -> Any:
    """Pays every committed line of a committed run at once, moving the money out of the budget line; the answer
    carries the run with its new totals. Send an Idempotency-Key header to make a retry safe: a repeated key answers
    the first result again (marked Idempotent-Replayed) instead of acting twice."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    run, _ = service.pay_run(session, actor, service.get_run(session, actor, run_id))
    return idempotency.finish(session, idem, 200, _run_public(session, run))


@runs.get("/{run_id}/lines", response_model=Page[SubsidyLinePublic], operation_id="funds_subsidy_runs_lines",
          summary="The lines of a run, with filters; CSV with Accept: text/csv",
          responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def run_lines(
    run_id: ItemId, request: Request, session: SessionDep, actor: FundsRead, page: PageDep,
    kind: SubsidyKind | None = None, status: LineStatus | None = None, person_id: OptionalIdQuery = None,
    township_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, kind, amount, org_id, beneficiary_id, status."""
    run = service.get_run(session, actor, run_id)
    f = service.LineFilters(kind=kind, status=status, person_id=person_id, township_id=township_id, org_id=org_id,
                            subtree=subtree)
    items, total = service.list_lines(session, actor, run, f, page)
    return respond(request, SubsidyLinePublic, items, total, page, session=session, present=service.lines_public,
                   filename=f"subsidy-run-{run_id}-lines")


@runs.post("/{run_id}/lines/{line_id}/pay", response_model=SubsidyLinePublic,
           operation_id="funds_subsidy_lines_pay", summary="Pay one line of a committed run", responses=WRITE_ERRORS)
def pay_line(run_id: ItemId, line_id: ItemId, session: SessionDep, actor: FundsApprove, idem: IdempotencyDep) -> Any:
    """Pays one committed line of a committed run (for a beneficiary paid apart from the rest). Send an Idempotency-Key
    header to make a retry safe: a repeated key answers the first result again (marked Idempotent-Replayed) instead
    of acting twice."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    run = service.get_run(session, actor, run_id)
    line = service.pay_line(session, actor, run, service.get_line_of_run(session, run, line_id))
    return idempotency.finish(session, idem, 200, service.lines_public(session, [line])[0])


@runs.post("/{run_id}/lines/{line_id}/reverse", response_model=SubsidyLinePublic,
           operation_id="funds_subsidy_lines_reverse", summary="Reverse one committed or paid line with a reason",
           responses=WRITE_ERRORS)
def reverse_line(run_id: ItemId, line_id: ItemId, body: ReasonBody, session: SessionDep, actor: FundsApprove,
                 idem: IdempotencyDep) -> Any:
    """Reverses one committed or paid line with a reason: its money goes back to the budget line and the beneficiary's
    period may be paid again by a later run. Send an Idempotency-Key header to make a retry safe: a repeated key
    answers the first result again (marked Idempotent-Replayed) instead of acting twice."""
    replay = idempotency.begin(session, actor, idem)
    if replay is not None:
        return replay
    run = service.get_run(session, actor, run_id)
    line = service.reverse_line(session, actor, run, service.get_line_of_run(session, run, line_id), body.reason)
    return idempotency.finish(session, idem, 200, service.lines_public(session, [line])[0])


@summary.get("/summary", response_model=SubsidySummary, operation_id="funds_subsidies_summary",
             summary="Beneficiaries and totals per kind and township for a year", responses=READ_ERRORS)
@serves_json
def subsidies_summary(
    session: SessionDep, actor: FundsRead, year: Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX)],
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Committed and paid lines of the year's runs (reversed lines excluded)."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree)
