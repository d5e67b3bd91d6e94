"""Matrix cases of service clients (other systems): city administrators manage them, readers of accounts see them."""

from __future__ import annotations

from app.core.permissions import CLIENT_DEFAULT, Role
from app.core.security import token_digest
from app.models.accounts import User
from app.models.clients import ServiceClient
from app.models.organizations import Organization
from tests.authz.registry import Ctx, Req, case, unique


def client_at(ctx: Ctx, owner: Organization) -> ServiceClient:
    """A client whose scope is `owner`'s subtree, made directly (no secret hashing beyond one SHA-256)."""
    client_id = unique("svc_authz_")
    principal = User(username=client_id, password_hash="!service-client", role=Role.service_client, org_id=owner.id)
    ctx.db.add(principal)
    ctx.db.flush()
    assert principal.id is not None
    client = ServiceClient(client_id=client_id, name=unique("授权矩阵客户端"), user_id=principal.id, org_id=owner.id,
                           permissions=sorted(CLIENT_DEFAULT), secret_hash=token_digest(client_id))
    ctx.db.add(client)
    ctx.db.flush()
    return client


@case("clients_list")
def clients_list(ctx: Ctx, owner: Organization) -> Req:
    client_at(ctx, owner)
    return Req("GET", "/api/v1/clients", params={"org_id": owner.id, "subtree": "true"})


@case("clients_get")
def clients_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/clients/{client_at(ctx, owner).id}")


@case("clients_create")
def clients_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/clients", json={"name": unique("新客户端"), "org_id": owner.id})


@case("clients_revoke")
def clients_revoke(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/clients/{client_at(ctx, owner).id}/revoke")


@case("clients_rotate_secret")
def clients_rotate_secret(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/clients/{client_at(ctx, owner).id}/rotate-secret")
