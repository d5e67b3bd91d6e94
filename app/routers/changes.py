"""HTTP for the change feed and the history of every recorded item (app.core.history)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, routing
from sqlmodel import col

from app.core.errors import problem_responses
from app.core.history import HISTORY_SORTABLE, Recorded, history_statement, recorded_info, versions
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, fetch_page, respond
from app.deps import AuditRead, OptionalIdQuery, SessionDep
from app.models.audit import AuditLog
from app.models.changes import ChangeFeed, Version
from app.services import changes as service

router = APIRouter(prefix="/api/v1/changes", tags=["audit"])

FEED_MAX = 1000


@router.get(
    "", response_model=ChangeFeed, operation_id="changes_list",
    summary="Changes in commit order, resumable with a cursor",
    responses=problem_responses(401, 403, 404, 422),
)
def list_changes(
    session: SessionDep, actor: AuditRead,
    after: Annotated[str | None, Query(max_length=64, description="The `next` of the previous answer (absent: "
                                                                  "from the first change)")] = None,
    entity: Annotated[str | None, Query(min_length=1, max_length=64, description="Only this kind of record, "
                                                                                 "e.g. person")] = None,
    org_id: OptionalIdQuery = None,
    subtree: bool = False,
    limit: Annotated[int, Query(ge=1, le=FEED_MAX, description=f"Changes per answer (1..{FEED_MAX})")] = 100,
) -> Any:
    """The audit log's rows about organisations in the caller's subtree, oldest first, in the order their
    transactions committed. Keep `next` and pass it as `after`: the next answer starts exactly after the last
    change this one covered, with no change missed or repeated, also while other requests are committing.
    `next` is returned when there is nothing new too; an empty `items` means "poll again later".
    `org_id` is the organisation the change was about (`subtree=true` adds its subtree). Personal data is masked
    as in the audit log (its rows never hold it unmasked)."""
    last = service.decode_cursor(after)
    filters = service.FeedFilters(entity=entity, org_id=org_id, subtree=subtree)
    rows, position = service.feed(session, actor, filters, last, limit)
    return {"items": rows, "next": service.encode_cursor(position), "limit": limit}


def recorded_items(routes: Iterable[Any]) -> list[tuple[routing.APIRoute, Recorded]]:
    """The item GETs decorated with @recorded, in route order."""
    found = []
    for route in routes:
        if isinstance(route, routing.APIRoute) and (info := recorded_info(route.endpoint)) is not None:
            found.append((route, info))
    return found


def history_operation_id(item: routing.APIRoute) -> str:
    """`people_get` → `people_history`."""
    return (item.operation_id or item.name).removesuffix("_get") + "_history"


def history_router(routes: Iterable[Any]) -> APIRouter:
    """`GET <item path>/history` for every recorded item GET among `routes`."""
    history = APIRouter(tags=["history"])
    for route, info in recorded_items(routes):
        history.add_api_route(
            f"{route.path}/history", _history_endpoint(info), methods=["GET"], response_model=Page[Version],
            operation_id=history_operation_id(route), summary=f"The history of a {info.entity.replace('_', ' ')}",
            description=(
                f"Every recorded change of the {info.entity.replace('_', ' ')} (audit entity `{info.entity}`), "
                "newest first (`sort=id` or `sort=at` for oldest first): who, when, the action and each field's "
                "value before and after. Visible to whoever may GET the record (404 outside your scope). Personal "
                "data is masked as in the audit log."),
            responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE_DOC},
        )
    return history


def _history_endpoint(info: Recorded) -> Any:
    item = next(p for p in info.params if p.name == info.id_param)
    actor = next(p for p in info.params if p.name == info.actor_param)

    def endpoint(request: Request, session: SessionDep, page: PageDep, **kwargs: Any) -> Any:
        item_id = kwargs[item.name]
        info.check(session, kwargs[actor.name], item_id)
        present = versions(info.restore)
        items, total = fetch_page(session, history_statement(info.entity, item_id), page, allowed=HISTORY_SORTABLE,
                                  default=[col(AuditLog.id).desc()], tiebreak=AuditLog.id,
                                  present=present)
        return respond(request, Version, items, total, page, filename=f"{info.entity}-{item_id}-history")

    base = inspect.signature(endpoint)
    params = [
        item.replace(kind=inspect.Parameter.KEYWORD_ONLY), actor.replace(kind=inspect.Parameter.KEYWORD_ONLY),
        *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(p.name))
          for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD),
    ]
    endpoint.__signature__ = base.replace(parameters=params)  # type: ignore[attr-defined]
    endpoint.__name__ = f"{info.entity}_history"
    return endpoint


def _annotation(name: str) -> Any:
    return {"request": Request, "session": SessionDep, "page": PageDep}[name]
