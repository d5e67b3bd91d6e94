"""HTTP for login, tokens and user accounts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.core.errors import problem_response, problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.permissions import Role
from app.deps import CurrentUser, ItemId, OptionalIdQuery, SessionDep, UsersManage, UsersRead
from app.models.accounts import Me, RefreshRequest, TokenPair, UserCreate, UserPublic, UserUpdate
from app.services import accounts as service

auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users = APIRouter(prefix="/api/v1/users", tags=["accounts"])


class TokenRequest(BaseModel):
    """The OAuth2 password form (what the /docs Authorize dialog sends)."""

    grant_type: Literal["password"] | None = "password"
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=256)
    scope: str = Field(default="", max_length=500)


def _rejected(request: Request, detail: str) -> JSONResponse:
    # Returned, not raised: what the attempt recorded (a failure count, a revoked
    # token family) must be committed with the 401.
    return problem_response(request, 401, "invalid_credentials", "Authentication failed", detail,
                            headers={"WWW-Authenticate": "Bearer"})


@auth.post(
    "/token", response_model=TokenPair, operation_id="auth_token", summary="Log in with a password",
    responses=problem_responses(401, 422, 429),
)
def issue_token(request: Request, form: Annotated[TokenRequest, Form()], session: SessionDep) -> Any:
    """OAuth2 password grant (a form, as the /docs Authorize dialog sends it): the answer is an access token and a
    refresh token. A wrong username or password is a 401 invalid_credentials; repeated failures for one username
    answer 429 with Retry-After until the window passes."""
    try:
        return service.login(session, form.username, form.password).tokens
    except service.LoginThrottled as exc:
        return problem_response(
            request, 429, "too_many_login_failures", "Too many requests",
            "Too many failed logins for this username; wait before trying again.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    except service.LoginRejected:
        return _rejected(request, "Unknown username or wrong password.")


@auth.post(
    "/refresh", response_model=TokenPair, operation_id="auth_refresh",
    summary="Exchange a refresh token for a new pair (the old one is spent)",
    responses=problem_responses(401, 422),
)
def refresh_token(request: Request, body: RefreshRequest, session: SessionDep) -> Any:
    """Rotates a refresh token: the answer is a new access and refresh token pair and the refresh token sent is spent.
    Presenting a spent refresh token again is treated as theft: its whole family is revoked and the caller must log
    in again. An invalid, expired, revoked or reused token is a 401."""
    try:
        return service.refresh(session, body.refresh_token)
    except service.LoginRejected:
        return _rejected(request, "The refresh token is invalid, expired, revoked or already used.")


@auth.post(
    "/logout", status_code=204, operation_id="auth_logout", summary="Revoke a refresh token and its family",
    responses=problem_responses(401, 404, 422),
)
def logout(body: RefreshRequest, session: SessionDep, actor: CurrentUser) -> Response:
    """Revokes the refresh token sent in the body together with every token rotated from it (its family); access tokens
    already issued expire on their own. The token must be one of the caller's (404 otherwise). Answers 204 with no
    body."""
    service.logout(session, actor, body.refresh_token)
    return Response(status_code=204)


@auth.get("/me", response_model=Me, operation_id="auth_me", summary="Who am I",
          responses=problem_responses(401))
def me(session: SessionDep, actor: CurrentUser) -> Any:
    """The logged-in account: username, role, organisation and the permissions the role grants. Front ends call it
    after logging in to decide what to show."""
    return service.me(session, actor)


@users.get(
    "", response_model=Page[UserPublic], operation_id="users_list", summary="List user accounts in scope",
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE_DOC},
)
def list_users(
    request: Request, session: SessionDep, actor: UsersRead, page: PageDep,
    role: Role | None = None, org_id: OptionalIdQuery = None, subtree: bool = False,
    is_active: bool | None = None,
) -> Any:
    """Sortable by id, username, role, created_at."""
    items, total = service.list_users(session, actor, page, role=role, org_id=org_id, subtree=subtree,
                                      active=is_active)
    return respond(request, UserPublic, items, total, page, filename="users")


@users.get("/{user_id}", response_model=UserPublic, operation_id="users_get", summary="Get a user account",
           responses=problem_responses(401, 403, 404, 422))
@recorded("user")
def get_user(user_id: ItemId, session: SessionDep, actor: UsersRead) -> Any:
    """One user account in the caller's scope (a user of an organisation outside it is a 404). Password hashes are
    never part of the answer."""
    return service.get_user(session, actor, user_id)


@users.post(
    "", response_model=UserPublic, status_code=201, operation_id="users_create", summary="Create a user account",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def create_user(body: UserCreate, session: SessionDep, actor: UsersManage, response: Response) -> Any:
    """Creates a login for an organisation in the caller's scope with a role at or below the caller's own. The username
    must be unused (409 duplicate_username). The account is audited; answers 201 with Location."""
    user = service.create_user(session, actor, body)
    response.headers["Location"] = f"{users.prefix}/{user.id}"
    return user


@users.patch(
    "/{user_id}", response_model=UserPublic, operation_id="users_update",
    summary="Edit a user account (password, role or deactivation revokes their tokens)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def update_user(user_id: ItemId, body: UserUpdate, session: SessionDep, actor: UsersManage) -> Any:
    """Edits a user in scope: full name, password, role or active flag. A new password, a new role or deactivation
    revokes every token the user holds, so they must log in again. Nobody can change their own role or disable their
    own account (409 own_account)."""
    return service.update_user(session, actor, service.get_user(session, actor, user_id), body)
