"""HTTP for service clients (other systems using the client-credentials grant)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.core.errors import problem_responses
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.deps import ClientsManage, ItemId, OptionalIdQuery, SessionDep, UsersRead
from app.models.clients import ClientCreate, ClientPublic, ClientWithSecret
from app.services import clients as service

router = APIRouter(prefix="/api/v1/clients", tags=["accounts"])

@router.get(
    "", response_model=Page[ClientPublic], operation_id="clients_list",
    summary="List service clients whose scope is inside yours",
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE_DOC},
)
def list_clients(request: Request, session: SessionDep, actor: UsersRead, page: PageDep,
                 org_id: OptionalIdQuery = None, subtree: bool = False, is_active: bool | None = None) -> Any:
    """Sortable by id, name, created_at. `org_id` (with `subtree`) filters by the root of the clients' scope."""
    items, total = service.list_clients(session, actor, page, org_id=org_id, subtree=subtree, active=is_active)
    return respond(request, ClientPublic, items, total, page, filename="clients", session=session,
                   present=lambda _s, rows: [service.public(c) for c in rows])


@router.get("/{client_pk}", response_model=ClientPublic, operation_id="clients_get", summary="Get a service client",
            responses=problem_responses(401, 403, 404, 422))
def get_client(client_pk: ItemId, session: SessionDep, actor: UsersRead) -> Any:
    """Account readers (users_read) see a client whose scope root is inside their own scope; anything else is 404.
    The secret is never shown again."""
    return service.public(service.get_client(session, actor, client_pk))


@router.post(
    "", response_model=ClientWithSecret, status_code=201, operation_id="clients_create",
    summary="Create a service client (its secret is shown once)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def create_client(body: ClientCreate, session: SessionDep, actor: ClientsManage, response: Response) -> Any:
    """The client gets `POST /api/v1/auth/token` with `grant_type=client_credentials` and acts inside the subtree
    of `org_id` with `permissions` (read-only by default). Everything it changes is audited under its name.
    The answer holds the client secret: it is shown this once (only its hash is stored) and is never cached."""
    created = service.create_client(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{created.id}"
    response.headers["Cache-Control"] = "no-store"
    return created


@router.post(
    "/{client_pk}/rotate-secret", response_model=ClientWithSecret, operation_id="clients_rotate_secret",
    summary="Give a service client a new secret (the old one and its tokens stop working at once)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def rotate_secret(client_pk: ItemId, session: SessionDep, actor: ClientsManage, response: Response) -> Any:
    """City administrators (clients_manage). The client keeps its id, name, scope and permissions; a revoked client
    cannot be rotated (409 client_revoked). The answer holds the new secret: it is shown this once (only its hash
    is stored) and is never cached."""
    rotated = service.rotate_secret(session, actor, service.get_client(session, actor, client_pk))
    response.headers["Cache-Control"] = "no-store"
    return rotated


@router.post(
    "/{client_pk}/revoke", response_model=ClientPublic, operation_id="clients_revoke",
    summary="Revoke a service client: its secret and every token it holds stop working at once",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def revoke_client(client_pk: ItemId, session: SessionDep, actor: ClientsManage) -> Any:
    """City administrators (clients_manage). Revoking is final: the token endpoint refuses the client and every
    token it was issued answers 401 from now on; revoking again is a 409 client_revoked."""
    return service.public(service.revoke_client(session, actor, service.get_client(session, actor, client_pk)))
