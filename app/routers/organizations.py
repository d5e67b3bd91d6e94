"""HTTP for the organisation tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, OptionalIdQuery, OrgRead, OrgWrite, SessionDep
from app.models.organizations import (
    OrganizationCreate,
    OrganizationMove,
    OrganizationNode,
    OrganizationPublic,
    OrganizationUpdate,
    OrgDomain,
    OrgLevel,
    OrgStatus,
)
from app.services import organizations as service

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get(
    "", response_model=Page[OrganizationPublic], operation_id="organizations_list",
    summary="List organisations in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_organizations(
    request: Request, session: SessionDep, actor: OrgRead, page: PageDep,
    level: OrgLevel | None = None,
    domain: OrgDomain | None = None,
    status: OrgStatus | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Part of the name or code")] = None,
    parent_id: OptionalIdQuery = None,
    org_id: OptionalIdQuery = None,
    subtree: bool = False,
) -> Any:
    """Organisations in the caller's subtree. Sortable by id, name, code, level, path, created_at."""
    filters = service.OrganizationFilters(level=level, domain=domain, status=status, q=q,
                                          parent_id=parent_id, org_id=org_id, subtree=subtree)
    items, total = service.list_page(session, actor, filters, page)
    return respond(request, OrganizationPublic, items, total, page, filename="organizations")


@router.get(
    "/{org_id}", response_model=OrganizationPublic, operation_id="organizations_get",
    summary="Get an organisation", responses=READ_ERRORS,
)
@recorded("organization")
def get_organization(org_id: ItemId, session: SessionDep, actor: OrgRead, response: Response) -> Any:
    """One organisation of the caller's subtree; anything outside it is a 404, exactly as a missing one. The ETag
    header carries the version to send back in If-Match when editing."""
    org = service.get(session, actor, org_id)
    set_etag(response, org.version)
    return org


@router.post(
    "", response_model=OrganizationPublic, status_code=201, operation_id="organizations_create",
    summary="Create an organisation under a parent in scope", responses=WRITE_ERRORS,
)
def create_organization(
    body: OrganizationCreate, session: SessionDep, actor: OrgWrite, response: Response
) -> Any:
    """Creates a township, village or branch under an active parent in the caller's scope; its path and code extend the
    parent's. The city root is created by the seed, not the API. A dissolved parent takes no children (409
    parent_dissolved). Answers 201 with Location and ETag."""
    org = service.create(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{org.id}"
    set_etag(response, org.version)
    return org


@router.patch(
    "/{org_id}", response_model=OrganizationPublic, operation_id="organizations_update",
    summary="Edit an organisation (If-Match required)",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def update_organization(
    org_id: ItemId, body: OrganizationUpdate, session: SessionDep, actor: OrgWrite, response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the version being changed")] = None,
) -> Any:
    """Edits the fields sent (PATCH semantics) if the organisation has not changed since the caller read it: send its
    ETag in If-Match (428 without it, 412 when stale). Only a manager of the organisation may edit; a code already
    in use is a 409 code_in_use."""
    org = service.get(session, actor, org_id)
    org = service.update_fields(session, actor, org, body, parse_if_match(if_match))
    set_etag(response, org.version)
    return org


@router.post(
    "/{org_id}/dissolve", response_model=OrganizationPublic, operation_id="organizations_dissolve",
    summary="Dissolve an organisation", responses=WRITE_ERRORS,
)
def dissolve_organization(org_id: ItemId, session: SessionDep, actor: OrgWrite, response: Response) -> Any:
    """Marks an organisation dissolved; records are never deleted. Refused with 409 while it still has active child
    organisations, active people or active user accounts (has_active_children, has_active_people, has_active_users),
    or when it is already dissolved."""
    org = service.dissolve(session, actor, service.get(session, actor, org_id))
    set_etag(response, org.version)
    return org


@router.post(
    "/{org_id}/move", response_model=OrganizationPublic, operation_id="organizations_move",
    summary="Move an organisation and its subtree under another parent", responses=WRITE_ERRORS,
)
def move_organization(
    org_id: ItemId, body: OrganizationMove, session: SessionDep, actor: OrgWrite, response: Response
) -> Any:
    """Re-parents an organisation; the paths of its whole subtree are rewritten in one statement, so scope follows the
    move at once. It cannot move under itself or a descendant (409 cycle), under its current parent (409
    same_parent) or under a dissolved one; the new code must extend the new parent's."""
    org = service.move(session, actor, service.get(session, actor, org_id), body.parent_id, body.code)
    set_etag(response, org.version)
    return org


@router.get(
    "/{org_id}/tree", response_model=OrganizationNode, operation_id="organizations_tree",
    summary="The organisation's subtree, nested", responses=READ_ERRORS,
)
def organization_tree(
    org_id: ItemId, session: SessionDep, actor: OrgRead,
    depth: Annotated[int, Query(ge=0, le=service.MAX_TREE_DEPTH)] = 2,
) -> Any:
    """The organisation and its descendants as nested nodes, `depth` levels deep, read in one query;
    `children_truncated` marks nodes whose children lie deeper than asked."""
    return service.tree(session, actor, service.get(session, actor, org_id), depth)
