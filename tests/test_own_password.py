"""POST /api/v1/auth/password: any user changes their own password; every old session ends."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.models.accounts import LoginFailure, User
from app.models.audit import AuditLog
from tests.factories import PASSWORD, World, make_user

PASSWORD_URL = "/api/v1/auth/password"
TOKEN_URL = "/api/v1/auth/token"
NEW = "a-brand-new-passphrase"
_seq = itertools.count(1)


def _login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(TOKEN_URL, data={"username": username, "password": password})


def _user(db: Session, world: World, role: str = "village_admin") -> User:
    org = {"village_admin": world.v1, "township_admin": world.t1}[role]
    return make_user(db, f"pw_{role}_{next(_seq)}", role, org)


def _change(client: TestClient, token: str, current: str = PASSWORD, new: str = NEW) -> Any:
    return client.post(PASSWORD_URL, json={"current_password": current, "new_password": new},
                       headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("role", ["village_admin", "township_admin"])
def test_a_user_changes_their_own_password_and_old_sessions_end(
    client: TestClient, world: World, db: Session, role: str
) -> None:
    user = _user(db, world, role)
    first = _login(client, user.username).json()
    other = _login(client, user.username).json()  # a second device
    r = _change(client, first["access_token"])
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    fresh = r.json()
    for pair in (first, other):
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}) \
            .status_code == 401
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}) \
        .json()["username"] == user.username
    assert _login(client, user.username).status_code == 401
    assert _login(client, user.username, NEW).status_code == 200
    row = db.scalar(select(AuditLog).where(AuditLog.action == "user.password_change",
                                           AuditLog.entity_id == str(user.id)))
    assert row is not None and row.user_id == user.id and row.after == {"password": "changed"}
    assert "$argon2" not in str(row.after)


def test_a_wrong_current_password_is_refused_counted_and_throttled(
    client: TestClient, world: World, db: Session
) -> None:
    user = _user(db, world)
    token = _login(client, user.username).json()["access_token"]
    for _ in range(get_settings().login_max_failures):
        r = _change(client, token, current="not-my-password")
        assert r.status_code == 403 and r.json()["code"] == "wrong_password", r.text
        assert r.json()["errors"][0]["loc"] == ["body", "current_password"]
    assert db.scalar(select(func.count()).select_from(LoginFailure)
                     .where(LoginFailure.username == user.username.lower())) == get_settings().login_max_failures
    # Guessing is over for the window, even with the right password, here and at the login.
    r = _change(client, token)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert _login(client, user.username).status_code == 429
    db.refresh(user)
    assert user.token_version == 1


def test_the_new_password_follows_the_policy_and_nothing_changes_otherwise(
    client: TestClient, world: World, db: Session
) -> None:
    user = _user(db, world)
    token = _login(client, user.username).json()["access_token"]
    for body in (
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": "x" * 129},
        {"current_password": PASSWORD, "new_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": f"my-{user.username.upper()}-pass"},
        {"current_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW, "username": "someone_else"},
    ):
        r = client.post(PASSWORD_URL, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"]
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _login(client, user.username).status_code == 200


def test_changing_a_password_needs_a_token(client: TestClient, world: World) -> None:
    r = client.post(PASSWORD_URL, json={"current_password": PASSWORD, "new_password": NEW})
    assert r.status_code == 401
