"""HTTP for monthly lists, their assignments and the quarterly review."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import (
    AssignmentsReopen,
    AssignmentsReport,
    ItemId,
    ListsManage,
    ListsRead,
    OptionalIdQuery,
    SessionDep,
)
from app.models.responsibilities.common import TaskCategory
from app.models.responsibilities.monthly import (
    MonthlyListCreate,
    MonthlyListDetail,
    MonthlyListPublic,
    MonthlyListStatus,
    MonthlyListUpdate,
    MonthlyTaskPublic,
    ProgressReport,
    QuarterlyReview,
    TaskAssignmentDetail,
    TaskAssignmentPublic,
    TaskAssignmentReopen,
    TaskAssignmentStatus,
    TaskCancel,
    TaskCreate,
    TaskUpdate,
)
from app.routers.responsibilities.common import (
    PATCH_ERRORS,
    READ_ERRORS,
    TAG,
    WRITE_ERRORS,
    IfMatch,
    MonthQuery,
    Rollup,
    Subtree,
    YearQuery,
)
from app.services.responsibilities import monthly as service

lists = APIRouter(prefix="/api/v1/monthly-lists", tags=[TAG])
assignments = APIRouter(prefix="/api/v1/assignments", tags=[TAG])


def _list_detail(session: SessionDep, list_id: int | None, actor: Any, response: Response) -> MonthlyListDetail:
    assert list_id is not None
    out = service.detail(session, service.get_list(session, actor, list_id))
    set_etag(response, out.version)
    return out


@lists.get(
    "", response_model=Page[MonthlyListPublic], operation_id="monthly_lists_list",
    summary="List monthly lists (drafts only for the office that keeps them)",
    responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_lists(
    request: Request, session: SessionDep, actor: ListsRead, page: PageDep,
    month: MonthQuery = None, year: YearQuery = None, status: MonthlyListStatus | None = None,
) -> Any:
    """Sortable by id, month, status, created_at, issued_at."""
    items, total = service.list_page(session, actor, service.ListFilters(month=month, year=year, status=status), page)
    return respond(request, MonthlyListPublic, items, total, page, filename="monthly-lists")


@lists.get(
    "/quarterly-review", response_model=QuarterlyReview, operation_id="monthly_lists_quarterly_review",
    summary="Per organisation: assigned, done on time, done late, open, overdue, on-time rate for a quarter",
    responses=READ_ERRORS,
)
def quarterly_review(
    session: SessionDep, actor: ListsRead,
    year: Annotated[int, Query(ge=2000, le=2100)],
    quarter: Annotated[int, Query(ge=1, le=4)],
    org_id: OptionalIdQuery = None,
    subtree: Annotated[bool, Query(description="A row per organisation below org_id (default) or only org_id")] = True,
    rollup: Rollup = False,
) -> Any:
    """Counts the assignments of the lists of the quarter's three months (cancelled ones left out); overdue is
    as of today. Without org_id: the caller's organisation."""
    return service.quarterly_review(session, actor, year=year, quarter=quarter, org_id=org_id, subtree=subtree,
                                    rollup=rollup)


@lists.post(
    "", response_model=MonthlyListDetail, status_code=201, operation_id="monthly_lists_create",
    summary="Draft a monthly list with its tasks (the party-building office)", responses=WRITE_ERRORS,
)
def create_list(body: MonthlyListCreate, session: SessionDep, actor: ListsManage, response: Response) -> Any:
    """The city party-building office drafts a monthly task list (月度清单) with its tasks, each sent to all
    townships, all villages or chosen organisations. Deadlines fall in or after the list's month. Nothing is sent
    until the list is issued. Answers 201 with Location."""
    lst = service.create(session, actor, body)
    response.headers["Location"] = f"{lists.prefix}/{lst.id}"
    return _list_detail(session, lst.id, actor, response)


@lists.get(
    "/{list_id}", response_model=MonthlyListDetail, operation_id="monthly_lists_get",
    summary="Get a monthly list with its tasks", responses=READ_ERRORS,
)
@recorded("monthly_list")
def get_list(list_id: ItemId, session: SessionDep, actor: ListsRead, response: Response) -> Any:
    """One monthly list with its tasks, their targets and how many assignments each produced. The ETag header is the
    version for If-Match."""
    return _list_detail(session, list_id, actor, response)


@lists.patch(
    "/{list_id}", response_model=MonthlyListDetail, operation_id="monthly_lists_update",
    summary="Edit a draft list (If-Match required)", responses=PATCH_ERRORS,
)
def update_list(list_id: ItemId, body: MonthlyListUpdate, session: SessionDep, actor: ListsManage,
                response: Response, if_match: IfMatch = None) -> Any:
    """Edits a draft list's title or month with If-Match; no task's deadline may fall before the list's month. An
    issued list is a 409."""
    lst = service.get_list(session, actor, list_id)
    service.update_list(session, actor, lst, body, parse_if_match(if_match))
    return _list_detail(session, list_id, actor, response)


@lists.post(
    "/{list_id}/issue", response_model=MonthlyListDetail, operation_id="monthly_lists_issue",
    summary="Issue a list: one assignment per task and target organisation, in one transaction",
    responses=WRITE_ERRORS,
)
def issue_list(list_id: ItemId, session: SessionDep, actor: ListsManage, response: Response) -> Any:
    """Issues a draft list: every active task becomes one assignment per target organisation, all in this one
    transaction, so a list is never half sent. A list already issued (409 list_issued) or without active tasks (409
    no_tasks) is refused."""
    service.issue(session, actor, service.get_list(session, actor, list_id))
    return _list_detail(session, list_id, actor, response)


def _task_public(session: SessionDep, actor: Any, list_id: int, task_id: int | None) -> MonthlyTaskPublic:
    detail = service.detail(session, service.get_list(session, actor, list_id))
    return next(t for t in detail.tasks if t.id == task_id)


@lists.post(
    "/{list_id}/tasks", response_model=MonthlyTaskPublic, status_code=201, operation_id="monthly_lists_add_task",
    summary="Add a task (on an issued list: an amendment, sent out at once)", responses=WRITE_ERRORS,
)
def add_task(list_id: ItemId, body: TaskCreate, session: SessionDep, actor: ListsManage, response: Response) -> Any:
    """Adds a task to a list. On a draft it waits for the issue; on an issued list it is an amendment and its
    assignments are sent out at once."""
    task = service.add_task(session, actor, service.get_list(session, actor, list_id), body)
    response.headers["Location"] = f"{lists.prefix}/{list_id}"
    set_etag(response, task.version)
    return _task_public(session, actor, list_id, task.id)


@lists.patch(
    "/{list_id}/tasks/{task_id}", response_model=MonthlyTaskPublic, operation_id="monthly_lists_update_task",
    summary="Edit a task of a draft list (If-Match required)", responses=PATCH_ERRORS,
)
def update_task(list_id: ItemId, task_id: ItemId, body: TaskUpdate, session: SessionDep, actor: ListsManage,
                response: Response, if_match: IfMatch = None) -> Any:
    """Edits a task of a draft list with If-Match; a task sent to chosen organisations needs targets. Tasks of an
    issued list are amended by adding or cancelling tasks instead."""
    lst = service.get_list(session, actor, list_id)
    task = service.update_task(session, actor, lst, service.get_task(session, lst, task_id), body,
                               parse_if_match(if_match))
    set_etag(response, task.version)
    return _task_public(session, actor, list_id, task.id)


@lists.post(
    "/{list_id}/tasks/{task_id}/cancel", response_model=MonthlyTaskPublic, operation_id="monthly_lists_cancel_task",
    summary="Cancel a task with a reason; its open assignments are cancelled, keeping their history",
    responses=WRITE_ERRORS,
)
def cancel_task(list_id: ItemId, task_id: ItemId, body: TaskCancel, session: SessionDep, actor: ListsManage,
                response: Response) -> Any:
    """Cancels a task with a reason; its open assignments are cancelled too, keeping their history. A task already
    cancelled is a 409 task_cancelled."""
    lst = service.get_list(session, actor, list_id)
    task = service.cancel_task(session, actor, lst, service.get_task(session, lst, task_id), body.reason)
    set_etag(response, task.version)
    return _task_public(session, actor, list_id, task.id)


# ---------------------------------------------------------------- assignments


def _assignment(session: SessionDep, assignment_id: int | None, response: Response) -> TaskAssignmentDetail:
    assert assignment_id is not None
    out = service.assignment_detail(session, assignment_id)
    set_etag(response, out.version)
    return out


@assignments.get(
    "", response_model=Page[TaskAssignmentPublic], operation_id="assignments_list",
    summary="List task assignments in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_assignments(
    request: Request, session: SessionDep, actor: ListsRead, page: PageDep,
    month: MonthQuery = None, status: TaskAssignmentStatus | None = None,
    overdue: Annotated[bool | None, Query(description="Deadline passed and not done, as of today")] = None,
    category: TaskCategory | None = None, list_id: OptionalIdQuery = None, task_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None, subtree: Subtree = False,
) -> Any:
    """Sortable by id, deadline, month, status, org_id, done_at, updated_at."""
    filters = service.AssignmentFilters(month=month, status=status, overdue=overdue, category=category,
                                        list_id=list_id, task_id=task_id, org_id=org_id, subtree=subtree)
    items, total = service.list_assignments(session, actor, filters, page)
    return respond(request, TaskAssignmentPublic, items, total, page, filename="assignments")


@assignments.get(
    "/{assignment_id}", response_model=TaskAssignmentDetail, operation_id="assignments_get",
    summary="Get an assignment with its history", responses=READ_ERRORS,
)
@recorded("task_assignment")
def get_assignment(assignment_id: ItemId, session: SessionDep, actor: ListsRead, response: Response) -> Any:
    """One organisation's assignment of a monthly task with its status, deadline and the history of every status change
    (who, when, note)."""
    service.get_assignment(session, actor, assignment_id)
    return _assignment(session, assignment_id, response)


@assignments.post(
    "/{assignment_id}/progress", response_model=TaskAssignmentDetail, operation_id="assignments_report",
    summary="Report progress: in_progress or done (the assigned organisation itself)", responses=WRITE_ERRORS,
)
def report_progress(assignment_id: ItemId, body: ProgressReport, session: SessionDep, actor: AssignmentsReport,
                    response: Response) -> Any:
    """The assigned organisation itself reports progress: pending → in_progress → done, with a note; done_at is
    recorded and compared with the deadline. Another organisation is a 403 own_organization_required; a done or
    cancelled assignment is a 409 invalid_status."""
    a, org = service.get_assignment(session, actor, assignment_id)
    service.report_progress(session, actor, a, org, body)
    return _assignment(session, assignment_id, response)


@assignments.post(
    "/{assignment_id}/reopen", response_model=TaskAssignmentDetail, operation_id="assignments_reopen",
    summary="Reopen a done assignment with a reason (the level above)", responses=WRITE_ERRORS,
)
def reopen_assignment(assignment_id: ItemId, body: TaskAssignmentReopen, session: SessionDep, actor: AssignmentsReopen,
                      response: Response) -> Any:
    """The level above reopens a done assignment with a reason (done → in_progress); it counts as reopened in the
    reports. Only a done assignment can be reopened (409 invalid_status)."""
    a, org = service.get_assignment(session, actor, assignment_id)
    service.reopen(session, actor, a, org, body.reason)
    return _assignment(session, assignment_id, response)
