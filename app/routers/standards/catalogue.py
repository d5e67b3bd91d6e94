"""HTTP for the catalogue: standard sets and their items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, SessionDep, StandardsManage, StandardsRead
from app.models.organizations import OrgDomain
from app.models.standards import (
    MAX_YEAR,
    MIN_YEAR,
    StandardItemCreate,
    StandardItemPublic,
    StandardItemUpdate,
    StandardSetCreate,
    StandardSetDetail,
    StandardSetPublic,
    StandardSetStatus,
    StandardSetUpdate,
)
from app.services.standards import catalogue as service

router = APIRouter(prefix="/api/v1/standard-sets", tags=["standards"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)
YearQuery = Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)]
IfMatch = Annotated[str | None, Header(description="The ETag of the version being changed")]


def _detail(session: SessionDep, std: Any, response: Response) -> StandardSetDetail:
    set_etag(response, std.version)
    return service.detail(session, std)


@router.get(
    "", response_model=Page[StandardSetPublic], operation_id="standard_sets_list",
    summary="List standard sets (the catalogue, every domain and year)", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_sets(
    request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
    year: YearQuery = None, domain: OrgDomain | None = None, status: StandardSetStatus | None = None,
) -> Any:
    """Sortable by id, year, domain, edition, status, created_at."""
    items, total = service.list_sets(session, service.SetFilters(year=year, domain=domain, status=status), page)
    return respond(request, StandardSetPublic, items, total, page, filename="standard-sets")


@router.get(
    "/{set_id}", response_model=StandardSetDetail, operation_id="standard_sets_get",
    summary="Get a standard set with its items and per-aspect maxima", responses=READ_ERRORS,
)
@recorded("standard_set")
def get_set(set_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One standard set with its items (code, aspect, requirement, maximum score) and the maximum per aspect, with
    its status (draft, published, retired) and rating thresholds."""
    return _detail(session, service.get_set(session, set_id), response)


@router.post(
    "", response_model=StandardSetDetail, status_code=201, operation_id="standard_sets_create",
    summary="Create a draft standard set (city only)", responses=WRITE_ERRORS,
)
def create_set(body: StandardSetCreate, session: SessionDep, actor: StandardsManage, response: Response) -> Any:
    """The city creates a draft standard set for a year and domain; its edition follows the last one of the same
    year and domain. Items are added while it is a draft. Answers 201 with Location."""
    std = service.create_set(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{std.id}"
    return _detail(session, std, response)


@router.patch(
    "/{set_id}", response_model=StandardSetDetail, operation_id="standard_sets_update",
    summary="Edit a set's name or rating thresholds (If-Match; refused once an audit uses it)",
    responses=PATCH_ERRORS,
)
def update_set(set_id: ItemId, body: StandardSetUpdate, session: SessionDep, actor: StandardsManage,
               response: Response, if_match: IfMatch = None) -> Any:
    """Edits a set's name, description or rating thresholds with If-Match (compliant_min_pct must stay below
    demonstration_min_pct). A set an audit already uses is a 409: publish a new edition instead."""
    std = service.get_set(session, set_id)
    std = service.update_set(session, actor, std, body, parse_if_match(if_match))
    return _detail(session, std, response)


@router.post(
    "/{set_id}/publish", response_model=StandardSetDetail, operation_id="standard_sets_publish",
    summary="Publish a draft set (retires the edition it replaces)", responses=WRITE_ERRORS,
)
def publish_set(set_id: ItemId, session: SessionDep, actor: StandardsManage, response: Response) -> Any:
    """Publishes a draft set (draft → published) so audits can use it; the edition it replaces for the same year and
    domain is retired. A set missing items for an aspect is a 409 aspects_missing; a set that is not a draft is a
    409 set_not_draft."""
    return _detail(session, service.publish(session, actor, service.get_set(session, set_id)), response)


@router.post(
    "/{set_id}/retire", response_model=StandardSetDetail, operation_id="standard_sets_retire",
    summary="Retire a published set: no new audits use it", responses=WRITE_ERRORS,
)
def retire_set(set_id: ItemId, session: SessionDep, actor: StandardsManage, response: Response) -> Any:
    """Retires a published set: no new audits use it, audits already using it keep it. Only a published set retires
    (409 set_not_published)."""
    return _detail(session, service.retire(session, actor, service.get_set(session, set_id)), response)


@router.post(
    "/{set_id}/new-version", response_model=StandardSetDetail, status_code=201,
    operation_id="standard_sets_new_version",
    summary="Copy a set and its items into the next edition, as a draft", responses=WRITE_ERRORS,
)
def new_version(set_id: ItemId, session: SessionDep, actor: StandardsManage, response: Response) -> Any:
    """Copies a set and all its items into the next edition as a draft, to be edited and published in its place.
    Answers 201 with Location."""
    copy = service.new_version(session, actor, service.get_set(session, set_id))
    response.headers["Location"] = f"{router.prefix}/{copy.id}"
    return _detail(session, copy, response)


@router.post(
    "/{set_id}/items", response_model=StandardItemPublic, status_code=201, operation_id="standard_items_create",
    summary="Add an item to an editable set", responses=WRITE_ERRORS,
)
def create_item(set_id: ItemId, body: StandardItemCreate, session: SessionDep, actor: StandardsManage,
                response: Response) -> Any:
    """Adds an item (code unique in the set, aspect, requirement, maximum score) to a set that is still editable (no
    audit uses it). Answers 201 with Location."""
    item = service.add_item(session, actor, service.get_set(session, set_id), body)
    response.headers["Location"] = f"{router.prefix}/{set_id}/items/{item.id}"
    return item


@router.patch(
    "/{set_id}/items/{item_id}", response_model=StandardItemPublic, operation_id="standard_items_update",
    summary="Edit an item of an editable set", responses=WRITE_ERRORS,
)
def update_item(set_id: ItemId, item_id: ItemId, body: StandardItemUpdate, session: SessionDep,
                actor: StandardsManage) -> Any:
    """Edits an item of a set that is still editable; its code stays unique within the set."""
    std = service.get_set(session, set_id)
    return service.update_item(session, actor, std, service.get_item(session, std, item_id), body)


@router.delete(
    "/{set_id}/items/{item_id}", status_code=204, operation_id="standard_items_delete",
    summary="Remove an item from an editable set (no audit has scored it)", responses=WRITE_ERRORS,
)
def delete_item(set_id: ItemId, item_id: ItemId, session: SessionDep, actor: StandardsManage) -> Response:
    """Removes an item from a set no audit has used; the audit log keeps what it said. Answers 204."""
    std = service.get_set(session, set_id)
    service.delete_item(session, actor, std, service.get_item(session, std, item_id))
    return Response(status_code=204)
