"""The only place routes get their session, user and permission checks."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.openapi.models import OAuthFlowClientCredentials
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core import report_cache
from app.core.db import WRITER_WAIT_SECONDS, new_session, waits_on_nothing, writer_gate
from app.core.errors import ProblemError, unavailable
from app.core.loops import turn
from app.core.observability import PRINCIPAL_SCOPE_KEY
from app.core.permissions import CITY_WIDE, Permission, Role, permissions_for
from app.core.scope import Actor
from app.core.security import TokenError, decode_token
from app.models.accounts import User
from app.models.common import MAX_ID
from app.models.organizations import Organization
from app.services import clients

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TOKEN_URL = "/api/v1/auth/token"


class BearerToken(OAuth2PasswordBearer):
    """`Authorization: Bearer` from the token endpoint, documented with both of its OAuth2 flows: the password
    flow for people and the client-credentials flow for service clients (other systems)."""

    def __init__(self) -> None:
        super().__init__(tokenUrl=TOKEN_URL, scheme_name="OAuth2", auto_error=False)
        self.model.flows.clientCredentials = OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes={})  # type: ignore[attr-defined]


oauth2_scheme = BearerToken()


# Mark a GET that writes (an audited read of personal data) with openapi_extra=AUDITED_READ:
# on SQLite its transaction then takes the write lock up front like any other write.
AUDITED_READ = {"x-audited-read": True}


def audited_read(route: object) -> bool:
    """Whether the route was marked AUDITED_READ."""
    return bool((getattr(route, "openapi_extra", None) or {}).get("x-audited-read"))


def _writes(request: Request) -> bool:
    if request.method in WRITE_METHODS:
        return True
    if not audited_read(request.scope.get("route")):
        return False
    # Only a caller who may read personal data gets the unmasked answer that is audited;
    # everyone else's read stays a plain read (no write lock on SQLite).
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        claims = decode_token(token, expected_type="access")
    except TokenError:
        return False
    if Permission.pii_read in permissions_for(str(claims.get("role", ""))):
        return True
    if not str(claims.get("sub", "")).startswith(clients.SUBJECT_PREFIX):
        return False
    # A service client acts with the permissions named in its token's scope claim (app.services.clients).
    try:
        return Permission.pii_read.value in clients.scope_claim(claims)
    except ValueError:
        return False  # refused as an invalid token when the actor is resolved


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request, committed once before the response is sent.

    Async, so making the session (no I/O: its first statement begins the transaction) costs no hop to a worker
    thread; only the commit or rollback, when a transaction was begun, runs in one (issue 8: every hop cost
    about 5 % of a get-by-id's CPU). The blocking session is used in worker threads only."""
    write = _writes(request)
    async with turn(writer_gate() if write else None, within=WRITER_WAIT_SECONDS, busy=_database_busy):
        route = request.scope.get("route")
        session = new_session(write=write, alone=getattr(getattr(route, "endpoint", None), SHORT_READ, False))
        try:
            yield session
        except BaseException:
            await _end(session, commit=False)
            raise
        await _end(session, commit=True)


def _database_busy() -> ProblemError:
    return unavailable("database_unavailable", "The database is busy with other changes; try again shortly.")


async def _end(session: Session, *, commit: bool) -> None:
    if not session.in_transaction():
        session.close()  # nothing began: no connection to give back, no I/O
        return
    if waits_on_nothing(session):
        _finish(session, commit)  # ends a SQLite read: no lock to release, nothing to wait for
        return
    await run_in_threadpool(_finish, session, commit)


def _finish(session: Session, commit: bool) -> None:
    """Commit (or roll back) and close. A read on SQLite (`waits_on_nothing`) with nothing pending is only
    closed: the ROLLBACK its connection gets on going back to the pool ends its read transaction as a COMMIT
    would, without the ORM's commit (a flush, its events): 3 % of a get by id's instructions (issue 8). A read
    that changed an entity still goes through the flush, which refuses it (app.core.db: a 500, never a change
    answered and not kept)."""
    try:
        if waits_on_nothing(session) and not (session.new or session.dirty or session.deleted):
            return
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def as_async_endpoint(
    endpoint: Callable[..., Any], *, short_read: bool, audited: bool = False
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """A synchronous endpoint as an async one (app.main wraps every synchronous route with it): it runs together
    with the commit of its request's session, in one worker thread, or in the event loop when it is a
    `short_read` (one record by id, or a cached summary) and its session waits on nothing (`waits_on_nothing`: a
    read on SQLite). An `audited` read (AUDITED_READ) runs there only for a caller who may not read personal
    data: anyone else's answer writes an audit row, which waits for the write lock.

    On this kind of machine (two virtual CPUs) a hop to a worker thread and back cost more CPU than a get by id's
    own work: without it a SQLite get by id served about 1.3 times the requests, a cached summary 1.7 times
    (issue 8). Anything else may scan many rows (a list page, a deep offset, the audit chain's verification, a
    compliance report): in a worker thread SQLite's C code runs beside the event loop's Python, without the
    interpreter lock, and the loop keeps serving; in the loop a deep page served 0.55 times the requests with
    twice the p99. A cached summary that must be computed afresh (the first request, or the first after a write)
    is not computed in the loop: the request stops there (`report_cache.NotInMemory`, before the computation's
    first statement) and runs again in a worker thread. It has only read by then, in a transaction that the
    worker thread goes on with."""

    def in_the_loop(values: Iterable[Any]) -> bool:
        values = list(values)
        if not short_read or not any(isinstance(v, Session) and waits_on_nothing(v) for v in values):
            return False
        # An audited read's answer to a caller who may read personal data writes its audit row.
        return not (audited and any(isinstance(v, Actor) and v.can(Permission.pii_read) for v in values))

    @functools.wraps(endpoint)
    async def run(**arguments: Any) -> Any:
        if in_the_loop(arguments.values()):
            try:
                with report_cache.from_memory_only():
                    return _call_and_commit(endpoint, arguments)
            except report_cache.NotInMemory:
                pass  # a summary to compute afresh: the request runs again in a worker thread
        return await run_in_threadpool(_call_and_commit, endpoint, arguments)

    setattr(run, SHORT_READ, short_read)  # its reads need no transaction of their own either (get_session)
    return run


# Marks the endpoint (as_async_endpoint) of a short read: its request's session, if it does not write, runs each
# statement on its own on PostgreSQL (app.core.db.new_session(alone=True)).
SHORT_READ = "__short_read__"


def _call_and_commit(endpoint: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    answer = endpoint(**arguments)
    for value in arguments.values():
        # The request's session (SessionDep) commits here, in the endpoint's thread, and stays open while the
        # answer is validated. A read on SQLite has nothing to commit: get_session's end closes it (`_finish`).
        if isinstance(value, Session) and value.in_transaction() and not waits_on_nothing(value):
            value.commit()
    return answer


# scope="function": the commit runs when the route returns, so a failed commit
# becomes an error response and never follows a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def unauthenticated(detail: str = "A valid bearer token is required.") -> ProblemError:
    return ProblemError(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


# Built once (the statement, its cache key and compiled form are reused); the tables' columns, not a User entity
# nor its mapped attributes: the lookup runs on every authenticated request, an ORM entity load cost it about
# 0.5 ms more and the ORM's compile step for mapped columns about 23 us more than this plain Core statement
# (issue 8). Never cached across requests: a raised token_version or a deactivation takes effect on the very next
# request.
_USERS, _ORGS = User.__table__.c, Organization.__table__.c  # type: ignore[attr-defined]
_ACTOR_QUERY = (
    select(_USERS.id, _USERS.username, _USERS.role, _USERS.org_id, _USERS.is_active, _USERS.token_version,
           _ORGS.path)
    .join_from(User.__table__, Organization.__table__, _ORGS.id == _USERS.org_id)  # type: ignore[attr-defined]
    .where(_USERS.id == bindparam("user_id"))
)


async def get_current_actor(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Actor:
    """The caller, checked against the database on every request (one row by primary key).

    A request that only reads on SQLite looks it up in the event loop: the read waits on no lock and no network,
    and the hop to a worker thread and back cost more than the lookup (about a fifth of a get by id's rate,
    issue 8). A write, which may wait for SQLite's write lock, and PostgreSQL, whose round trips wait on the
    network, look it up in a worker thread, so the event loop never waits on them."""
    if waits_on_nothing(session):
        actor = _actor_of(session, token)
    else:
        actor = await run_in_threadpool(_actor_of, session, token)
    # The access log names who made each call, users and service clients alike (app.core.observability).
    request.scope[PRINCIPAL_SCOPE_KEY] = (actor.username, str(actor.role))
    return actor


def _actor_of(session: Session, token: str | None) -> Actor:
    if not token:
        raise unauthenticated()
    try:
        claims = decode_token(token, expected_type="access")
        subject = str(claims["sub"])
        token_version = int(claims.get("ver", -1))
        if subject.startswith(clients.SUBJECT_PREFIX):
            # A service client's token: the same Actor, scoped as the client was created, permitted as the
            # token's scope claim names, within what the client holds now.
            client_actor = clients.actor_from_token(session, subject, token_version,
                                                    scope=clients.scope_claim(claims))
            if client_actor is None:
                raise unauthenticated("The token has been revoked.")
            return client_actor
        user_id = int(subject)
    except (TokenError, ValueError, TypeError):
        raise unauthenticated("The token is invalid or expired.") from None
    user = session.execute(_ACTOR_QUERY, {"user_id": user_id}).first()
    if user is None:
        raise unauthenticated("The token is invalid or expired.")
    path = user.path
    if not user.is_active or user.token_version != token_version or user.role == Role.service_client:
        # A client's principal acts only through a client token (above), never as a user.
        raise unauthenticated("The token has been revoked.")
    return Actor(
        user_id=user.id, username=user.username, role=user.role, org_id=user.org_id, org_path=path,
        permissions=permissions_for(user.role),
    )


CurrentUser = Annotated[Actor, Depends(get_current_actor)]


_ACTOR_RESOLVERS: set[Callable[..., Any]] = {get_current_actor}


def resolves_actor(dependency: Callable[..., Any]) -> bool:
    """Whether the dependency resolves the caller from their token (401 without one): CurrentUser or a
    permission check (`require`)."""
    return dependency in _ACTOR_RESOLVERS


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Actor]]:
    """Dependency: the current user, who must hold `permission` (403 otherwise)."""

    # The caller's dependencies are its own, not CurrentUser's: one level less for FastAPI to solve on every
    # request (issue 8). Async: no hop to a worker thread of its own (get_current_actor chooses).
    async def check(
        request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
    ) -> Actor:
        actor = await get_current_actor(request, session, token)
        if permission not in actor.permissions:
            raise ProblemError(
                403, "permission_denied", f"Your role ({actor.role}) lacks the permission '{permission}'."
            )
        if permission in CITY_WIDE and not actor.sees_everything:
            raise city_only(permission)
        return actor

    check.__name__ = f"require_{permission.value}"
    _ACTOR_RESOLVERS.add(check)
    if permission in CITY_WIDE:
        _CITY_WIDE_CHECKS.add(check)
    return check


_CITY_WIDE_CHECKS: set[Callable[..., Any]] = set()


def checks_city_wide(dependency: Callable[..., Any]) -> bool:
    """Whether the dependency asks for a city-wide permission (`require`): 403 city_only below the city."""
    return dependency in _CITY_WIDE_CHECKS


def city_only(permission: Permission) -> ProblemError:
    return ProblemError(403, "city_only", f"'{permission}' changes what holds for the whole city: only a caller "
                        "scoped at the city may use it.")


def _needs(permission: Permission) -> object:
    return Depends(require(permission))


P = Permission
# One alias per permission: `actor: OrgWrite` in a route signature.
OrgRead = Annotated[Actor, _needs(P.org_read)]
OrgWrite = Annotated[Actor, _needs(P.org_write)]
PeopleRead = Annotated[Actor, _needs(P.people_read)]
PeopleWrite = Annotated[Actor, _needs(P.people_write)]
UsersRead = Annotated[Actor, _needs(P.users_read)]
UsersManage = Annotated[Actor, _needs(P.users_manage)]
ClientsManage = Annotated[Actor, _needs(P.clients_manage)]
AuditRead = Annotated[Actor, _needs(P.audit_read)]

# Ids fit PostgreSQL's INTEGER: larger ones are 422, never a database error.

ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The record's id")]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

# standards
StandardsRead = Annotated[Actor, _needs(P.standards_read)]
StandardsManage = Annotated[Actor, _needs(P.standards_manage)]
AuditsWrite = Annotated[Actor, _needs(P.audits_write)]
VenuesWrite = Annotated[Actor, _needs(P.venues_write)]
MeetingsWrite = Annotated[Actor, _needs(P.meetings_write)]

# responsibilities
LettersRead = Annotated[Actor, _needs(P.letters_read)]
LettersManage = Annotated[Actor, _needs(P.letters_manage)]
LettersSignReport = Annotated[Actor, _needs(P.letters_sign_report)]
ListsRead = Annotated[Actor, _needs(P.lists_read)]
ListsManage = Annotated[Actor, _needs(P.lists_manage)]
AssignmentsReport = Annotated[Actor, _needs(P.assignments_report)]
AssignmentsReopen = Annotated[Actor, _needs(P.assignments_reopen)]
ProblemsRead = Annotated[Actor, _needs(P.problems_read)]
ProblemsWrite = Annotated[Actor, _needs(P.problems_write)]
ProblemsVerify = Annotated[Actor, _needs(P.problems_verify)]
ProblemsEscalate = Annotated[Actor, _needs(P.problems_escalate)]
InspectionsWrite = Annotated[Actor, _needs(P.inspections_write)]

# posts
PostsRead = Annotated[Actor, _needs(P.posts_read)]
PostsWrite = Annotated[Actor, _needs(P.posts_write)]
PostsConfigure = Annotated[Actor, _needs(P.posts_configure)]

# evaluations
EvaluationsRead = Annotated[Actor, _needs(P.evaluations_read)]
EvaluationsWrite = Annotated[Actor, _needs(P.evaluations_write)]
EvaluationsConfigure = Annotated[Actor, _needs(P.evaluations_configure)]

# funds
FundsRead = Annotated[Actor, _needs(P.funds_read)]
FundsManage = Annotated[Actor, _needs(P.funds_manage)]
FundsConfigure = Annotated[Actor, _needs(P.funds_configure)]
FundsRequest = Annotated[Actor, _needs(P.funds_request)]
FundsApprove = Annotated[Actor, _needs(P.funds_approve)]
DuesRead = Annotated[Actor, _needs(P.dues_read)]
DuesWrite = Annotated[Actor, _needs(P.dues_write)]

# training
TrainingRead = Annotated[Actor, _needs(P.training_read)]
TrainingManage = Annotated[Actor, _needs(P.training_manage)]
TrainingWrite = Annotated[Actor, _needs(P.training_write)]

# frontline
FrontlineRead = Annotated[Actor, _needs(P.frontline_read)]
FrontlineManage = Annotated[Actor, _needs(P.frontline_manage)]
FrontlineWrite = Annotated[Actor, _needs(P.frontline_write)]
