"""The only place routes get their session, user and permission checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import new_session
from app.core.errors import ProblemError
from app.core.permissions import Permission, permissions_for
from app.core.scope import Actor
from app.core.security import TokenError, decode_token
from app.models.accounts import User
from app.models.common import MAX_ID
from app.models.organizations import Organization

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


# Mark a GET that writes (an audited read of personal data) with openapi_extra=AUDITED_READ:
# on SQLite its transaction then takes the write lock up front like any other write.
AUDITED_READ = {"x-audited-read": True}


def _writes(request: Request) -> bool:
    if request.method in WRITE_METHODS:
        return True
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    if not extra.get("x-audited-read"):
        return False
    # Only a caller who may read personal data gets the unmasked answer that is audited;
    # everyone else's read stays a plain read (no write lock on SQLite).
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        role = decode_token(token, expected_type="access").get("role", "")
    except TokenError:
        return False
    return Permission.pii_read in permissions_for(str(role))


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed once before the response is sent."""
    session = new_session(write=_writes(request))
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit runs when the route returns, so a failed commit
# becomes an error response and never follows a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def unauthenticated(detail: str = "A valid bearer token is required.") -> ProblemError:
    return ProblemError(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def get_current_actor(
    session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Actor:
    if not token:
        raise unauthenticated()
    try:
        claims = decode_token(token, expected_type="access")
        user_id = int(claims["sub"])
        token_version = int(claims.get("ver", -1))
    except (TokenError, ValueError, TypeError):
        raise unauthenticated("The token is invalid or expired.") from None
    row = session.execute(
        select(User, Organization.path)
        .join(Organization, Organization.id == User.org_id)
        .where(User.id == user_id)
    ).first()
    if row is None:
        raise unauthenticated("The token is invalid or expired.")
    user, path = row
    if not user.is_active or user.token_version != token_version:
        raise unauthenticated("The token has been revoked.")
    return Actor(
        user_id=user.id, username=user.username, role=user.role, org_id=user.org_id, org_path=path,
        permissions=permissions_for(user.role),
    )


CurrentUser = Annotated[Actor, Depends(get_current_actor)]


def require(permission: Permission) -> Callable[..., Actor]:
    """Dependency: the current user, who must hold `permission` (403 otherwise)."""

    def check(actor: CurrentUser) -> Actor:
        if permission not in actor.permissions:
            raise ProblemError(
                403, "permission_denied", f"Your role ({actor.role}) lacks the permission '{permission}'."
            )
        return actor

    check.__name__ = f"require_{permission.value}"
    return check


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
