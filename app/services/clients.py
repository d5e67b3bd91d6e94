"""Service clients: creation, the client-credentials grant, rotation and revocation.

A client acts through the same Actor as a user: its scope is the subtree of its organisation (the one scope
filter) and its permissions are checked by the same route dependencies. An access token carries the permissions
its request asked for (the OAuth2 `scope`, all the client's by default) and acts with those the client still
holds at each call. Its principal is a user_account row of role service_client, so every record it writes and
every audit row name that row, with the client's name as the audit username. Revoking or rotating bumps that
row's token_version: tokens issued before stop working at once, as a user's do when their password changes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.permissions import CLIENT_DEFAULT, CLIENT_GRANTABLE, Permission, Role
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope
from app.core.security import create_token, new_secret, token_digest
from app.models.accounts import User
from app.models.clients import ClientCreate, ClientPublic, ClientToken, ClientWithSecret, ServiceClient
from app.models.organizations import Organization

# The `sub` of a client's access token: "client:<client_id>". A user's is their numeric id, so the two never meet.
SUBJECT_PREFIX = "client:"
# A password hash no password matches: a client's principal never logs in with the password grant.
NO_PASSWORD = "!service-client"
CLIENT_SORTABLE = {"id": ServiceClient.id, "name": ServiceClient.name, "created_at": ServiceClient.created_at}
_DUMMY_DIGEST = token_digest(secrets.token_hex(16))


class ClientRejected(Exception):
    """Unknown client, wrong secret or a revoked client: one answer for all (401 invalid_client)."""


class ScopeRejected(Exception):
    """The requested scope is not a set of permissions the client holds (400 invalid_scope).

    `malformed`: the scope is not permission-shaped text at all (RFC 6749 §3.3), so its names are not repeated
    back; otherwise `unknown` names no permission and `not_held` names permissions the client does not hold."""

    def __init__(self, *, malformed: bool = False, unknown: list[str] | None = None,
                 not_held: list[str] | None = None) -> None:
        self.malformed = malformed
        self.unknown = unknown or []
        self.not_held = not_held or []
        super().__init__("invalid scope")


def granted(stored: list[str]) -> frozenset[Permission]:
    """The permissions a client acts with: what was granted, still within what clients may ever hold."""
    known = {p.value for p in Permission}
    return frozenset(Permission(p) for p in stored if p in known) & CLIENT_GRANTABLE


# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), tokens separated by spaces.
_SCOPE_TEXT = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]*")


def requested_scope(scope: str, held: frozenset[Permission]) -> frozenset[Permission]:
    """The permissions a token request asks for: all the client holds when `scope` is empty, else exactly the
    names it lists (repeats and extra spaces allowed), each of which the client must hold."""
    if _SCOPE_TEXT.fullmatch(scope) is None:
        raise ScopeRejected(malformed=True)
    names = set(scope.split(" ")) - {""}
    if not names:
        return held
    known = {p.value for p in Permission}
    unknown = sorted(names - known)
    not_held = sorted(n for n in names & known if Permission(n) not in held)
    if unknown or not_held:
        raise ScopeRejected(unknown=unknown, not_held=not_held)
    return frozenset(Permission(n) for n in names)


def scope_claim(claims: dict[str, Any]) -> frozenset[str]:
    """The permission names a client's access token grants: its scope claim, which every client token carries
    (`issue_token`). ValueError when the claim is absent or not text: such a token is not one of ours."""
    scope = claims.get("scope")
    if not isinstance(scope, str):
        raise ValueError("a client token's scope claim is missing or not text")
    return frozenset(scope.split(" ")) - {""}


def public(client: ServiceClient) -> ClientPublic:
    return ClientPublic.model_validate(client, update={"permissions": sorted(granted(client.permissions))})


def _snapshot(client: ServiceClient) -> dict[str, Any]:
    return audit.snapshot(client, exclude={"secret_hash"})


def _new_client_id() -> str:
    return "svc_" + secrets.token_hex(12)


# --- management (city administrators) ---------------------------------------------------------------


def create_client(session: Session, actor: Actor, data: ClientCreate) -> ClientWithSecret:
    """A client scoped to an organisation in the actor's scope with at most the actor's permissions."""
    wanted = frozenset(data.permissions) if data.permissions is not None else CLIENT_DEFAULT
    never = sorted(wanted - CLIENT_GRANTABLE)
    if never:
        raise invalid(["body", "permissions"], f"a service client cannot hold {', '.join(never)}")
    above = sorted(wanted - actor.permissions)
    if above:
        raise ProblemError(403, "permission_above_own",
                           f"You cannot grant {', '.join(above)}, which you do not hold yourself.")
    require_org_in_scope(session, actor, data.org_id)
    org = session.get(Organization, data.org_id)
    assert org is not None
    if org.status != "active":
        raise conflict("organization_dissolved", f"Organisation {data.org_id} is dissolved.")
    if session.scalar(select(ServiceClient.id).where(func.lower(ServiceClient.name) == data.name.lower())):
        raise conflict("duplicate_client_name", f"A service client named {data.name} exists.")
    client_id = _new_client_id()
    principal = User(username=client_id, full_name=data.name[:50], password_hash=NO_PASSWORD,
                     role=Role.service_client, org_id=org.id)
    session.add(principal)
    session.flush()
    assert principal.id is not None
    secret = new_secret()
    client = ServiceClient(client_id=client_id, name=data.name, user_id=principal.id, org_id=org.id,
                           permissions=sorted(p.value for p in wanted), secret_hash=token_digest(secret),
                           created_by=actor.user_id)
    session.add(client)
    session.flush()
    audit.record(session, actor=actor, action="client.create", entity="service_client", entity_id=client.id,
                 org_id=client.org_id, after=_snapshot(client))
    return ClientWithSecret(**public(client).model_dump(), client_secret=secret)


def get_client(session: Session, actor: Actor, client_pk: int) -> ServiceClient:
    return get_in_scope(session, actor, ServiceClient, client_pk, "Service client")[0]


def list_clients(
    session: Session, actor: Actor, params: PageParams, *, org_id: int | None, subtree: bool, active: bool | None,
) -> tuple[list[ServiceClient], int]:
    stmt = select(ServiceClient).join(Organization, Organization.id == ServiceClient.org_id).where(
        in_subtree(Organization.path, actor.org_path))
    if active is not None:
        stmt = stmt.where(col(ServiceClient.is_active).is_(active))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = stmt.where(in_subtree(Organization.path, path)) if subtree else stmt.where(
            ServiceClient.org_id == org_id)
    return fetch_page(session, stmt, params, allowed=CLIENT_SORTABLE, default=[ServiceClient.name],
                      tiebreak=ServiceClient.id)


def _end_tokens(session: Session, client: ServiceClient) -> User:
    """Every access token issued to the client so far stops working (the principal's token_version moves on)."""
    principal = session.get(User, client.user_id)
    assert principal is not None
    principal.token_version += 1
    return principal


def revoke_client(session: Session, actor: Actor, client: ServiceClient) -> ServiceClient:
    if not client.is_active:
        raise conflict("client_revoked", f"Service client {client.id} is already revoked.")
    before = _snapshot(client)
    principal = _end_tokens(session, client)
    principal.is_active = False
    client.is_active = False
    client.revoked_at = utcnow()
    session.flush()
    b, a = audit.changed(before, _snapshot(client))
    audit.record(session, actor=actor, action="client.revoke", entity="service_client", entity_id=client.id,
                 org_id=client.org_id, before=b, after=a)
    return client


def rotate_secret(session: Session, actor: Actor, client: ServiceClient) -> ClientWithSecret:
    """A new secret; the old one and every token issued with it stop working at once."""
    if not client.is_active:
        raise conflict("client_revoked", f"Service client {client.id} is revoked; create a new one.")
    before = _snapshot(client)
    _end_tokens(session, client)
    secret = new_secret()
    client.secret_hash = token_digest(secret)
    client.secret_rotated_at = utcnow()
    session.flush()
    b, a = audit.changed(before, _snapshot(client))
    audit.record(session, actor=actor, action="client.rotate_secret", entity="service_client",
                 entity_id=client.id, org_id=client.org_id, before=b, after=a)
    return ClientWithSecret(**public(client).model_dump(), client_secret=secret)


# --- authentication ------------------------------------------------------------------------------------


def _actor(client: ServiceClient, principal: User, org_path: str, permissions: frozenset[Permission]) -> Actor:
    return Actor(user_id=principal.id, username=client.name, role=Role.service_client, org_id=client.org_id,
                 org_path=org_path, permissions=permissions)


def _load(session: Session, client_id: str) -> tuple[ServiceClient, User, str] | None:
    row = session.execute(
        select(ServiceClient, User, Organization.path)
        .join(User, User.id == ServiceClient.user_id)
        .join(Organization, Organization.id == ServiceClient.org_id)
        .where(ServiceClient.client_id == client_id)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def issue_token(session: Session, client_id: str, client_secret: str, *, scope: str = "") -> ClientToken:
    """The client-credentials grant, for all the client's permissions or the narrower `scope` it asks for
    (RFC 6749 §3.3). Raises ClientRejected whatever is wrong with the client, then ScopeRejected when the scope
    asks for what the client does not hold; either way nothing is issued or recorded."""
    found = _load(session, client_id)
    # Compare a digest whether or not the client exists, in constant time.
    digest = found[0].secret_hash if found else _DUMMY_DIGEST
    matches = hmac.compare_digest(digest, token_digest(client_secret))
    if found is None or not matches:
        raise ClientRejected()
    client, principal, path = found
    if not client.is_active or not principal.is_active:
        raise ClientRejected()
    settings = get_settings()
    lifetime = dt.timedelta(minutes=settings.access_token_minutes)
    permissions = requested_scope(scope, granted(client.permissions))
    granted_scope = " ".join(sorted(permissions))
    access = create_token(
        subject=SUBJECT_PREFIX + client.client_id, token_type="access", lifetime=lifetime,
        claims={"ver": principal.token_version, "role": Role.service_client, "org": client.org_id,
                "scope": granted_scope},
    )
    audit.record(session, actor=_actor(client, principal, path, permissions), action="client.token",
                 entity="service_client", entity_id=client.id, org_id=client.org_id)
    return ClientToken(access_token=access.token, expires_in=int(lifetime.total_seconds()), scope=granted_scope)


def actor_from_token(session: Session, subject: str, token_version: int, *, scope: frozenset[str]) -> Actor | None:
    """The Actor of a client's access token, or None when the client is unknown, revoked or rotated since.

    `scope` is the token's scope claim (`scope_claim`): the Actor holds only those of the named permissions the
    client still holds."""
    found = _load(session, subject.removeprefix(SUBJECT_PREFIX))
    if found is None:
        return None
    client, principal, path = found
    if not client.is_active or not principal.is_active or principal.token_version != token_version:
        return None
    return _actor(client, principal, path, frozenset(p for p in granted(client.permissions) if p.value in scope))
