"""HTTP for login, tokens and user accounts."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from app.core.db import WRITER_WAIT_SECONDS
from app.core.errors import PROBLEM_MEDIA_TYPE, ProblemError, invalid, problem_response, problem_responses, unavailable
from app.core.history import recorded
from app.core.loops import per_loop, turn
from app.core.openapi import problem_example
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.permissions import Role
from app.deps import CurrentUser, ItemId, OptionalIdQuery, SessionDep, UsersManage, UsersRead
from app.models.accounts import (
    GrantType,
    Me,
    PasswordChange,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.models.clients import ClientToken
from app.services import accounts as service
from app.services import clients

auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users = APIRouter(prefix="/api/v1/users", tags=["accounts"])


class TokenRequest(BaseModel):
    """The OAuth2 token request (RFC 6749): the password grant for people (what the /docs Authorize dialog
    sends), the client-credentials grant for service clients."""

    grant_type: GrantType | None = GrantType.password
    username: str | None = Field(default=None, min_length=1, max_length=100,
                                 description="password grant: the username")
    password: str | None = Field(default=None, min_length=1, max_length=256,
                                 description="password grant: the password")
    client_id: str | None = Field(default=None, min_length=1, max_length=100,
                                  description="client_credentials grant, unless sent with HTTP Basic")
    client_secret: str | None = Field(default=None, min_length=1, max_length=256,
                                      description="client_credentials grant, unless sent with HTTP Basic")
    scope: str = Field(
        default="", max_length=500,
        description="client_credentials grant (RFC 6749 §3.3): the permissions the token is to carry, "
                    "space-separated permission names as the answer's `scope` lists them (repeats and extra spaces "
                    "are ignored). Each must be one the client holds (400 invalid_scope otherwise); empty or "
                    "absent: all of them. The password grant ignores it.")

    @model_validator(mode="after")
    def _grant_fields(self) -> TokenRequest:
        if self.grant_type in (None, "password"):
            missing = [name for name in ("username", "password") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"the password grant needs {' and '.join(missing)}")
        elif self.username is not None or self.password is not None:
            raise ValueError("the client_credentials grant takes client_id and client_secret, not a username "
                             "and password")
        return self


def _rejected(request: Request, detail: str) -> JSONResponse:
    # Returned, not raised: what the attempt recorded (a failure count, a revoked
    # token family) must be committed with the 401.
    return problem_response(request, 401, "invalid_credentials", "Authentication failed", detail,
                            headers={"WWW-Authenticate": "Bearer"})


def _throttled(request: Request, exc: service.LoginThrottled) -> JSONResponse:
    return problem_response(
        request, 429, "too_many_login_failures", "Too many requests",
        "Too many failed logins for this username; wait before trying again.",
        headers={"Retry-After": str(exc.retry_after)},
    )


MALFORMED_SCOPE = "The scope must be permission names separated by spaces."


def _invalid_scope(request: Request, exc: clients.ScopeRejected) -> JSONResponse:
    # Returned like invalid_client: the service refuses before it records or issues anything.
    if exc.malformed:
        detail = msg = MALFORMED_SCOPE
    else:
        parts = []
        if exc.unknown:
            parts.append(f"no permission is named {', '.join(exc.unknown)}")
        if exc.not_held:
            parts.append(f"the client does not hold {', '.join(exc.not_held)}")
        msg = "; ".join(parts)
        detail = f"The requested scope cannot be granted: {msg}."
    return problem_response(request, 400, "invalid_scope", "Invalid scope", detail,
                            errors=[{"loc": ["body", "scope"], "msg": msg}])


def _client_credentials(request: Request, form: TokenRequest) -> tuple[str, str]:
    """client_id and client_secret from HTTP Basic or the form (RFC 6749 §2.3.1): exactly one of the two."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        if form.client_id is not None or form.client_secret is not None:
            raise invalid(["body", "client_id"], "send the client credentials once: HTTP Basic or the form")
        try:
            user, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise invalid(["header", "Authorization"], "HTTP Basic credentials are not base64 of id:secret") \
                from None
        # The id and secret are form-encoded before Basic encoding (§2.3.1).
        client_id, client_secret = unquote_plus(user), unquote_plus(secret)
        if not sep or not client_id or not client_secret or len(client_id) > 100 or len(client_secret) > 256:
            raise invalid(["header", "Authorization"], "HTTP Basic credentials must be a client_id:client_secret")
        return client_id, client_secret
    if form.client_id is None or form.client_secret is None:
        raise invalid(["body", "client_id" if form.client_id is None else "client_secret"],
                      "the client_credentials grant needs client_id and client_secret (form or HTTP Basic)")
    return form.client_id, form.client_secret


_password_gates = per_loop(asyncio.Lock)
TOO_MANY_PASSWORDS = "Too many logins or password changes at once; try again shortly."


def _too_many_passwords() -> ProblemError:
    return unavailable("service_unavailable", TOO_MANY_PASSWORDS)


def _password_turn_held() -> AbstractAsyncContextManager[None]:
    return turn(_password_gates(), within=WRITER_WAIT_SECONDS, busy=_too_many_passwords)


async def _password_turn() -> AsyncIterator[None]:
    """A request that hashes or verifies a password waits for its turn in the event loop, holding no worker
    thread, until the one before it has answered.

    Argon2 runs one at a time per process (`app.core.security`), and it used to be waited for inside a worker
    thread: a burst of logins (a morning rush, someone guessing passwords) took every thread of the small pool
    (WORKER_THREADS), each waiting for the one hashing, and every other request that needed a thread stopped
    until the burst was through. Now at most one thread hashes and the others serve."""
    async with _password_turn_held():
        yield


async def _login_turn(request: Request) -> AsyncIterator[None]:
    """The token endpoint's `_password_turn`, taken only by a password login: the client-credentials grant
    compares a digest, and a request without a username and password is refused before any hashing."""
    form = await request.form()  # parsed once: FastAPI read this same form for the route's parameters
    if form.get("grant_type") not in (None, "", "password") or not form.get("username") or not form.get("password"):
        yield
        return
    async with _password_turn_held():
        yield


async def _new_password_turn(request: Request) -> AsyncIterator[None]:
    """A user edit's `_password_turn`, taken only when the edit sets a password: an edit of a name, a role or
    the active flag hashes nothing and does not wait behind logins."""
    try:
        body = json.loads(await request.body())  # the bytes FastAPI read for the route's model
    except (ValueError, RecursionError):
        body = None  # not JSON (whatever its Content-Type): the route refuses it, hashing nothing
    if not isinstance(body, dict) or body.get("password") is None:
        yield
        return
    async with _password_turn_held():
        yield


# Declared before the session: on SQLite such a request also queues for the write lock
# (app.core.db.writer_gate), always after its turn here, so two requests never hold one gate each while
# waiting for the other's.
LoginTurn = Annotated[None, Depends(_login_turn, scope="function")]
PasswordTurn = Annotated[None, Depends(_password_turn, scope="function")]
NewPasswordTurn = Annotated[None, Depends(_new_password_turn, scope="function")]


def _password_busy(path: str) -> dict[int | str, dict[str, Any]]:
    """The 503 of a route that takes a password turn, with its own example."""
    documented = problem_responses(503)[503]
    documented["content"][PROBLEM_MEDIA_TYPE]["example"] = problem_example(
        503, path, code="service_unavailable", detail=TOO_MANY_PASSWORDS)
    return {503: documented}


@auth.post(
    "/token", response_model=TokenPair | ClientToken, operation_id="auth_token",
    summary="Get an access token: log in with a password, or as a service client with its credentials",
    responses={**problem_responses(400, 401, 422, 429), **_password_busy("/api/v1/auth/token")},
)
def issue_token(request: Request, form: Annotated[TokenRequest, Form()], _turn: LoginTurn, session: SessionDep,
                response: Response) -> Any:
    """`grant_type=password` (the default): a user's access and refresh tokens; five failures within the window
    answer 429 until it passes. `grant_type=client_credentials`: a service client's access token (no refresh
    token; ask again when it expires), with `client_id` and `client_secret` in the form or in HTTP Basic. By
    default the token carries all the client's permissions; `scope` narrows it to the permissions named there,
    and a name the client does not hold, or that is no permission, answers 400 `invalid_scope` and issues
    nothing. The token acts with its scope within what the client holds at the time of each call. The password
    grant ignores `scope`. Passwords are verified one at a time; a login that waits longer than 30 s for its
    turn answers 503 with Retry-After."""
    response.headers["Cache-Control"] = "no-store"
    if form.grant_type == "client_credentials":
        client_id, client_secret = _client_credentials(request, form)
        try:
            return clients.issue_token(session, client_id, client_secret, scope=form.scope)
        except clients.ClientRejected:
            return problem_response(request, 401, "invalid_client", "Client authentication failed",
                                    "Unknown client, wrong secret or a revoked client.",
                                    headers={"WWW-Authenticate": 'Basic realm="api"'})
        except clients.ScopeRejected as exc:
            return _invalid_scope(request, exc)
    assert form.username is not None and form.password is not None
    try:
        return service.login(session, form.username, form.password).tokens
    except service.LoginThrottled as exc:
        return _throttled(request, exc)
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


@auth.post(
    "/password", response_model=TokenPair, operation_id="auth_change_password",
    summary="Change your own password (every session of yours ends; a fresh token pair is returned)",
    responses={**problem_responses(401, 403, 422, 429), **_password_busy("/api/v1/auth/password")},
)
def change_password(request: Request, body: PasswordChange, _turn: PasswordTurn, session: SessionDep,
                    actor: CurrentUser, response: Response) -> Any:
    """Any user, at any level. A wrong current password is a 403 `wrong_password` and counts as a failed login of
    the account (five within the window answer 429), so a stolen access token cannot be used to guess it.
    Passwords are hashed one at a time; a request that waits longer than 30 s for its turn answers 503 with
    Retry-After."""
    response.headers["Cache-Control"] = "no-store"
    try:
        return service.change_own_password(session, actor, body.current_password, body.new_password)
    except service.LoginThrottled as exc:
        return _throttled(request, exc)
    except service.WrongPassword:
        # Returned, not raised: the failure it recorded is committed with the answer.
        return problem_response(request, 403, "wrong_password", "Wrong password",
                                "The current password is wrong.",
                                errors=[{"loc": ["body", "current_password"], "msg": "wrong password"}])


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
    responses={**problem_responses(401, 403, 404, 409, 422), **_password_busy("/api/v1/users")},
)
def create_user(body: UserCreate, _turn: PasswordTurn, session: SessionDep, actor: UsersManage,
                response: Response) -> Any:
    """Creates a login for an organisation in the caller's scope with a role at or below the caller's own. The username
    must be unused (409 duplicate_username). The account is audited; answers 201 with Location. Passwords are
    hashed one at a time; a request that waits longer than 30 s for its turn answers 503 with Retry-After."""
    user = service.create_user(session, actor, body)
    response.headers["Location"] = f"{users.prefix}/{user.id}"
    return user


@users.patch(
    "/{user_id}", response_model=UserPublic, operation_id="users_update",
    summary="Edit a user account (password, role or deactivation revokes their tokens)",
    responses={**problem_responses(401, 403, 404, 409, 422), **_password_busy("/api/v1/users/1")},
)
def update_user(user_id: ItemId, body: UserUpdate, _turn: NewPasswordTurn, session: SessionDep,
                actor: UsersManage) -> Any:
    """Edits a user in scope: full name, password, role or active flag. A new password, a new role or deactivation
    revokes every token the user holds, so they must log in again. Nobody can change their own role or disable their
    own account (409 own_account). An edit that sets a password waits for its turn to hash it (503 with Retry-After
    after 30 s)."""
    return service.update_user(session, actor, service.get_user(session, actor, user_id), body)
