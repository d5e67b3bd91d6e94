"""Accounts: login, token rotation and revocation, throttling, user management."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.permissions import ROLE_RANK, Role, permissions_for
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope
from app.core.security import (
    TokenError,
    create_token,
    decode_token,
    hash_password,
    token_digest,
    verify_password,
)
from app.models.accounts import (
    LoginFailure,
    Me,
    MeOrganization,
    RefreshToken,
    TokenPair,
    User,
    UserCreate,
    UserUpdate,
)
from app.models.organizations import Organization

# The organisation level each role sits at.
ROLE_LEVEL: dict[str, str] = {
    Role.city_admin: "city",
    Role.auditor: "city",
    Role.township_admin: "township",
    Role.village_admin: "village",
}
USER_SORTABLE = {"id": User.id, "username": User.username, "role": User.role, "created_at": User.created_at}


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


class LoginRejected(Exception):
    """Wrong credentials or a revoked/reused token. Its side effects must still be committed."""


@dataclass
class LoginResult:
    tokens: TokenPair
    user: User


def _issue_pair(session: Session, user: User, family_id: str) -> TokenPair:
    settings = get_settings()
    access_lifetime = dt.timedelta(minutes=settings.access_token_minutes)
    claims = {"ver": user.token_version, "role": user.role, "org": user.org_id}
    access = create_token(subject=str(user.id), token_type="access", lifetime=access_lifetime, claims=claims)
    refresh = create_token(
        subject=str(user.id), token_type="refresh",
        lifetime=dt.timedelta(days=settings.refresh_token_days),
        claims={"ver": user.token_version, "fam": family_id},
    )
    session.add(RefreshToken(token_hash=token_digest(refresh.token), family_id=family_id, user_id=user.id,
                             expires_at=refresh.expires_at))
    session.flush()
    return TokenPair(access_token=access.token, refresh_token=refresh.token,
                     expires_in=int(access_lifetime.total_seconds()))


def _throttle_window_start() -> dt.datetime:
    return utcnow() - dt.timedelta(minutes=get_settings().login_window_minutes)


# Namespace of the advisory locks that serialise password attempts per username (PostgreSQL).
_LOGIN_LOCK_NAMESPACE = 7_301


def _throttle_key(username: str) -> str:
    return username.strip().lower()[:100]


def _check_throttle(session: Session, key: str) -> None:
    """Raise LoginThrottled when `key` has used up its failures; otherwise hold it until the transaction ends.

    The count, the password check and the failure it may record must be one step, or a burst of parallel
    attempts all read the same count and all get a try. SQLite writers are serialised already (every POST
    begins IMMEDIATE); PostgreSQL takes a transaction-level advisory lock on the username, known or not, so
    attempts on one username wait for each other and each sees the failures of the ones before."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_LOGIN_LOCK_NAMESPACE, func.hashtext(key))))
    settings = get_settings()
    failures = session.execute(
        select(func.count(), func.min(LoginFailure.at))
        .where(LoginFailure.username == key, LoginFailure.at > _throttle_window_start())
    ).one()
    if failures[0] >= settings.login_max_failures:
        oldest: dt.datetime = failures[1]
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        retry = int((oldest + dt.timedelta(minutes=settings.login_window_minutes) - utcnow()).total_seconds())
        raise LoginThrottled(max(retry, 1))


def purge_login_failures(session: Session) -> int:
    """Failures older than the window count for nothing: drop them so the table stays bounded."""
    result = session.execute(delete(LoginFailure).where(LoginFailure.at <= _throttle_window_start()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _record_failure(session: Session, key: str) -> None:
    purge_login_failures(session)
    session.add(LoginFailure(username=key))
    session.flush()


def login(session: Session, username: str, password: str) -> LoginResult:
    """Password login. Raises LoginThrottled past the failure limit, LoginRejected otherwise."""
    key = _throttle_key(username)
    _check_throttle(session, key)
    user = session.scalar(select(User).where(func.lower(User.username) == key))
    if user is not None and user.role == Role.service_client:
        user = None  # a service client's principal has no password: it is not a user one can log in as
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        _record_failure(session, key)
        raise LoginRejected()
    session.execute(delete(LoginFailure).where(LoginFailure.username == key))
    tokens = _issue_pair(session, user, uuid.uuid4().hex)
    actor = actor_for(session, user)
    audit.record(session, actor=actor, action="auth.login", entity="user", entity_id=user.id, org_id=user.org_id)
    return LoginResult(tokens=tokens, user=user)


def refresh(session: Session, token: str) -> TokenPair:
    """Rotate a refresh token. Reusing a spent one revokes its whole family."""
    try:
        claims = decode_token(token, expected_type="refresh")
    except TokenError:
        raise LoginRejected() from None
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token)).with_for_update())
    if row is None:
        raise LoginRejected()
    now = utcnow()
    if row.used_at is not None or row.revoked_at is not None:
        # A spent token came back: someone holds a copy. Kill the whole chain.
        session.execute(
            update(RefreshToken).where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        raise LoginRejected()
    user = session.get(User, row.user_id)
    if user is None or not user.is_active or user.token_version != claims.get("ver"):
        raise LoginRejected()
    # Conditional: of two concurrent refreshes with one token, only one rotates it.
    spent = session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise LoginRejected()
    return _issue_pair(session, user, row.family_id)


def logout(session: Session, actor: Actor, token: str) -> None:
    """Revoke the refresh token's family; the caller's access tokens expire on their own."""
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token)))
    if row is None or row.user_id != actor.user_id:
        raise ProblemError(404, "not_found", "That refresh token is not one of yours.")
    session.execute(
        update(RefreshToken).where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    audit.record(session, actor=actor, action="auth.logout", entity="user", entity_id=actor.user_id,
                 org_id=actor.org_id)


def _end_sessions(session: Session, user: User) -> None:
    """Every token the user holds stops working: access tokens by their version, refresh tokens revoked."""
    user.token_version += 1
    session.execute(
        update(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


class WrongPassword(Exception):
    """The current password did not match. The failure it recorded must be committed with the answer."""


def change_own_password(session: Session, actor: Actor, current: str, new: str) -> TokenPair:
    """A user changes their own password: the current one is checked (and throttled like a login, so a stolen
    access token cannot be used to guess it); every session of theirs ends and a fresh pair is returned."""
    if actor.role == Role.service_client:
        raise ProblemError(403, "client_has_no_password",
                           "A service client has no password: a city administrator rotates its secret.")
    user = session.get(User, actor.user_id)
    assert user is not None
    key = _throttle_key(user.username)
    _check_throttle(session, key)
    if not verify_password(current, user.password_hash):
        _record_failure(session, key)
        raise WrongPassword()
    if new == current:
        raise invalid(["body", "new_password"], "the new password must differ from the current one")
    if user.username.lower() in new.lower():
        raise invalid(["body", "new_password"], "the new password must not contain the username")
    session.execute(delete(LoginFailure).where(LoginFailure.username == key))
    user.password_hash = hash_password(new)
    _end_sessions(session, user)
    session.flush()
    audit.record(session, actor=actor, action="user.password_change", entity="user", entity_id=user.id,
                 org_id=user.org_id, after={"password": "changed"})
    return _issue_pair(session, user, uuid.uuid4().hex)


def actor_for(session: Session, user: User) -> Actor:
    path = session.scalar(select(Organization.path).where(Organization.id == user.org_id)) or "/"
    assert user.id is not None
    return Actor(user.id, user.username, user.role, user.org_id, path, permissions_for(user.role))


def me(session: Session, actor: Actor) -> Me:
    user = session.get(User, actor.user_id)
    org = session.get(Organization, actor.org_id)
    assert user is not None and org is not None and org.id is not None and user.id is not None
    return Me(
        id=user.id, username=user.username, full_name=user.full_name, role=user.role,
        organization=MeOrganization(id=org.id, name=org.name, level=org.level, code=org.code),
        permissions=sorted(actor.permissions),
    )


# --- user management ------------------------------------------------------


def _user_snapshot(user: User) -> dict[str, object]:
    return audit.snapshot(user, exclude={"password_hash"})


def get_user(session: Session, actor: Actor, user_id: int) -> User:
    user, _ = get_in_scope(session, actor, User, user_id, "User")
    if user.role == Role.service_client:
        raise not_found("User", user_id)  # a client's principal is managed under /api/v1/clients
    return user


def list_users(
    session: Session, actor: Actor, params: PageParams, *, role: str | None, org_id: int | None,
    subtree: bool, active: bool | None,
) -> tuple[list[User], int]:
    stmt = select(User).join(Organization, Organization.id == User.org_id).where(
        in_subtree(Organization.path, actor.org_path), User.role != Role.service_client
    )
    if role:
        stmt = stmt.where(User.role == role)
    if active is not None:
        stmt = stmt.where(col(User.is_active).is_(active))
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        stmt = stmt.where(in_subtree(Organization.path, path)) if subtree else stmt.where(User.org_id == org_id)
    return fetch_page(session, stmt, params, allowed=USER_SORTABLE, default=[User.username], tiebreak=User.id)


def _check_grant(session: Session, actor: Actor, role: str, org_id: int, loc: str) -> None:
    if role not in ROLE_LEVEL or actor.role not in ROLE_LEVEL:
        raise invalid(["body", loc], "service clients are created under /api/v1/clients, not as users")
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(actor.role)]:
        raise ProblemError(403, "role_above_own", f"You cannot grant the role {role}, which is above your own.")
    path = require_org_in_scope(session, actor, org_id)
    org = session.get(Organization, org_id)
    assert org is not None
    if org.status != "active":
        raise conflict("organization_dissolved", f"Organisation {org_id} is dissolved.")
    if org.level != ROLE_LEVEL[role]:
        raise invalid(["body", loc], f"a {role} belongs to a {ROLE_LEVEL[role]}-level organisation, "
                                     f"not a {org.level}")
    if actor.role != Role.city_admin:
        # Below the city, administrators manage only users of the levels beneath them.
        if not actor.strictly_covers(path) or role != Role.village_admin:
            raise ProblemError(403, "role_above_own",
                               "A township administrator manages only village users inside the township.")


def create_user(session: Session, actor: Actor, data: UserCreate) -> User:
    """Create a user at or below the actor's level, inside the actor's scope."""
    _check_grant(session, actor, data.role, data.org_id, "org_id")
    if session.scalar(select(User.id).where(func.lower(User.username) == data.username.lower())):
        raise conflict("duplicate_username", f"The username {data.username} is taken.")
    user = User(username=data.username, full_name=data.full_name, password_hash=hash_password(data.password),
                role=data.role, org_id=data.org_id)
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, action="user.create", entity="user", entity_id=user.id,
                 org_id=user.org_id, after=_user_snapshot(user))
    return user


def update_user(session: Session, actor: Actor, user: User, data: UserUpdate) -> User:
    """Edit a user; a new password, role or deactivation ends every token they hold."""
    _check_grant(session, actor, user.role, user.org_id, "org_id")
    changes = data.model_dump(exclude_unset=True)
    if user.id == actor.user_id and ("role" in changes or changes.get("is_active") is False):
        raise conflict("own_account", "You cannot change your own role or disable your own account.")
    if changes.get("role") is not None:
        _check_grant(session, actor, changes["role"], user.org_id, "role")
    before = _user_snapshot(user)
    revoke = False
    if changes.get("password") is not None:
        user.password_hash = hash_password(changes["password"])
        revoke = True
    if changes.get("role") is not None and changes["role"] != user.role:
        user.role = changes["role"]
        revoke = True
    if changes.get("is_active") is not None and changes["is_active"] != user.is_active:
        user.is_active = changes["is_active"]
        revoke = True
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    if revoke:
        _end_sessions(session, user)
    session.flush()
    after = _user_snapshot(user)
    if changes.get("password") is not None:
        after["password"] = "changed"
    b, a = audit.changed(before, after)
    audit.record(session, actor=actor, action="user.update", entity="user", entity_id=user.id,
                 org_id=user.org_id, before=b, after=a)
    return user
