"""HTTP for the audit log: browse it, and prove nobody edited it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.core.errors import problem_responses
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.deps import AuditRead, OptionalIdQuery, SessionDep
from app.models.audit import AuditLogPublic, AuditVerification
from app.models.common import Timestamp
from app.services import audit as service

router = APIRouter(prefix="/api/v1/audit-log", tags=["audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get(
    "", response_model=Page[AuditLogPublic], operation_id="audit_list", summary="Browse the audit log",
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE_DOC},
)
def list_audit_log(
    request: Request, session: SessionDep, actor: AuditRead, page: PageDep,
    entity: Text = None,
    entity_id: Text = None,
    user_id: OptionalIdQuery = None,
    action: Text = None,
    at_from: Annotated[Timestamp | None, Query(alias="from", description="From this time (inclusive, with offset)")]
    = None,
    at_to: Annotated[Timestamp | None, Query(alias="to", description="Before this time (exclusive, with offset)")]
    = None,
    org_id: OptionalIdQuery = None,
    subtree: bool = False,
) -> Any:
    """Newest first by default; sortable by id and at. `org_id` is the organisation the change was about."""
    filters = service.AuditFilters(entity=entity, entity_id=entity_id, user_id=user_id, action=action,
                                   at_from=at_from, at_to=at_to, org_id=org_id, subtree=subtree)
    items, total = service.list_page(session, actor, filters, page)
    return respond(request, AuditLogPublic, items, total, page, filename="audit-log")


@router.get(
    "/verify", response_model=AuditVerification, operation_id="audit_verify",
    summary="Recompute the hash chain and report the first broken row",
    responses=problem_responses(401, 403),
)
def verify_audit_log(session: SessionDep, actor: AuditRead) -> Any:
    """Recomputes the audit log's hash chain from the first row, a batch at a time, and answers whether it is intact,
    how many rows were checked and the id of the first broken row with the reason (a missing row, a prev_hash that
    does not match, content that does not match its hash). Rows appended while the check runs are left for the next
    check."""
    return service.verify(session)
