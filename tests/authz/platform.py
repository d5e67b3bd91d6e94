"""Matrix cases of the platform: meta, auth, user accounts, organisations."""

from __future__ import annotations

import datetime as dt
import uuid

from app.core.security import create_token, token_digest
from app.models.accounts import RefreshToken
from app.models.organizations import Organization
from tests.authz.registry import Ctx, Expect, Req, case, if_match, unique
from tests.factories import PASSWORD, make_org

# --- meta and auth ----------------------------------------------------------


@case("meta_enums", any_user="labels for every enum: public knowledge for any logged-in user",
      targetless="the enum list concerns no organisation")
def meta_enums(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/meta/enums")


@case("auth_me", any_user="every user may see who they are", targetless="answers about the caller only")
def auth_me(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/auth/me")


_NOT_YOURS = Expect(404, "not_found", why="a refresh token is only ever its owner's to revoke, even the city's")


@case(
    "auth_logout",
    any_user="every user may end their own session",
    auditor_writes="revoking one's own refresh token changes no record an auditor guards",
    expect={("city", "sibling"): _NOT_YOURS, ("auditor", "sibling"): _NOT_YOURS},
)
def auth_logout(ctx: Ctx, owner: Organization) -> Req:
    # In scope: the caller's own refresh token. Sibling: the token of a user of the sibling organisation.
    user = ctx.user if ctx.target == "in_scope" else ctx.user_at(owner)
    issued = create_token(subject=str(user.id), token_type="refresh", lifetime=dt.timedelta(days=1),
                          claims={"ver": user.token_version, "fam": uuid.uuid4().hex})
    ctx.db.add(RefreshToken(token_hash=token_digest(issued.token), family_id=uuid.uuid4().hex, user_id=user.id,
                            expires_at=issued.expires_at))
    ctx.db.flush()
    return Req("POST", "/api/v1/auth/logout", json={"refresh_token": issued.token})


@case(
    "auth_change_password",
    any_user="every user may change their own password",
    auditor_writes="an auditor's own password is their own to change; it is no record an auditor guards",
    targetless="concerns the caller's own account only",
)
def auth_change_password(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/auth/password",
               json={"current_password": PASSWORD, "new_password": unique("a-new-long-password-")})


# --- user accounts ----------------------------------------------------------


@case("users_list")
def users_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/users", params={"org_id": owner.id, "subtree": "true"})


@case("users_get")
def users_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/users/{ctx.user_at(owner).id}")


@case("users_create")
def users_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/users", json={
        "username": unique("authz_new_"), "password": "a-long-password-1", "role": "village_admin",
        "org_id": owner.id,
    })


@case("users_update")
def users_update(ctx: Ctx, owner: Organization) -> Req:
    return Req("PATCH", f"/api/v1/users/{ctx.user_at(owner).id}", json={"full_name": "改名"})


# --- organisations ----------------------------------------------------------
# The target is the owner organisation itself, or a fresh branch under it where the operation would
# otherwise disturb the shared world (dissolve, move).


def _branch(ctx: Ctx, owner: Organization) -> Organization:
    return make_org(ctx.db, owner, level="branch", domain=owner.domain, name=unique("支部"), code=None)


@case("organizations_list")
def organizations_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/organizations", params={"org_id": owner.id, "subtree": "true"})


@case("organizations_get")
def organizations_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/organizations/{owner.id}")


@case("organizations_tree")
def organizations_tree(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/organizations/{owner.id}/tree", params={"depth": 1})


@case("organizations_create")
def organizations_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/organizations", json={
        "parent_id": owner.id, "level": "branch", "domain": owner.domain, "name": unique("新支部"),
    })


@case("organizations_update")
def organizations_update(ctx: Ctx, owner: Organization) -> Req:
    return Req("PATCH", f"/api/v1/organizations/{owner.id}", json={"altitude_m": 3000},
               headers=if_match(owner.version))


@case("organizations_dissolve")
def organizations_dissolve(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/organizations/{_branch(ctx, owner).id}/dissolve")


@case("organizations_move")
def organizations_move(ctx: Ctx, owner: Organization) -> Req:
    # A branch under the village moves up to the village's township: both ends in the same scope.
    return Req("POST", f"/api/v1/organizations/{_branch(ctx, owner).id}/move",
               json={"parent_id": ctx.parent_of(owner).id})
