"""Accounts: login, token checks, refresh rotation, throttling, user management."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.permissions import permissions_for
from app.models.accounts import LoginFailure, RefreshToken, User
from tests.factories import PASSWORD, World, access_token, make_user

TOKEN_URL = "/api/v1/auth/token"
ME = "/api/v1/auth/me"
USERS = "/api/v1/users"
_seq = itertools.count(1)


def _name(prefix: str = "acct") -> str:
    return f"{prefix}_{next(_seq)}_{uuid.uuid4().hex[:6]}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any], *, key: str | None = None, alg: str = "HS256") -> str:
    """A token made by hand (not by python-jose), so each defect is exactly the one the test names."""
    signing_input = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    if alg == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    secret = (key or get_settings().secret_key).encode()
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), digest).digest())


def _claims(user: User, **overrides: Any) -> dict[str, Any]:
    settings = get_settings()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": str(user.id), "typ": "access", "iss": settings.token_issuer, "aud": settings.token_audience,
        "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, "ver": user.token_version, "role": user.role,
        "org": user.org_id,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(TOKEN_URL, data={"username": username, "password": password})


def _assert_401(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    body = r.json()
    assert body["status"] == 401 and body["code"] in {"unauthenticated", "invalid_credentials"}


# --- login ------------------------------------------------------------------


def test_login_returns_a_short_lived_token_pair(client: TestClient, world: World) -> None:
    r = _login(client, "v1_admin")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 900
    assert r.headers["Cache-Control"] == "no-store"  # tokens must never sit in a cache
    me = client.get(ME, headers=_bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "v1_admin"


def test_login_is_case_insensitive_on_the_username(client: TestClient, world: World) -> None:
    assert _login(client, "V1_Admin").status_code == 200


def test_me_returns_user_role_organisation_and_permissions(client: TestClient, world: World) -> None:
    r = client.get(ME, headers=world.auth("t1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == world.users["t1"].id and body["username"] == "t1_admin" and body["role"] == "township_admin"
    assert body["organization"] == {"id": world.t1.id, "name": "炉城街道", "level": "township", "code": "513301001"}
    assert body["permissions"] == sorted(permissions_for("township_admin"))


# --- tokens that must be refused --------------------------------------------


def test_hand_made_valid_token_is_accepted(client: TestClient, world: World) -> None:
    # The control for the cases below: each changes one thing in this token.
    assert client.get(ME, headers=_bearer(_jwt(_claims(world.users["v1"])))).status_code == 200


@pytest.mark.parametrize("case", [
    "missing", "empty_bearer", "basic_scheme", "malformed", "garbage_segments", "alg_none", "alg_none_no_dot",
    "wrong_signature", "other_algorithm", "expired", "wrong_iss", "wrong_aud", "no_jti", "no_exp", "no_iat",
    "no_typ", "no_iss", "sub_not_a_number", "sub_unknown_user", "wrong_version", "future_iat_wrong_typ",
    "not_before",
])
def test_bad_tokens_answer_401(client: TestClient, world: World, case: str) -> None:
    user = world.users["v1"]
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers: dict[str, str] = {
        "missing": {},
        "empty_bearer": {"Authorization": "Bearer "},
        "basic_scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": _bearer("not-a-token"),
        "garbage_segments": _bearer("a.b.c"),
        "alg_none": _bearer(_jwt(_claims(user), alg="none")),
        "alg_none_no_dot": _bearer(_jwt(_claims(user), alg="none")[:-1]),
        "wrong_signature": _bearer(_jwt(_claims(user), key="another-secret-key-that-is-long-enough-000")),
        "other_algorithm": _bearer(_jwt(_claims(user), alg="HS512")),
        "expired": _bearer(_jwt(_claims(user, iat=now - 1200, exp=now - 60))),
        "wrong_iss": _bearer(_jwt(_claims(user, iss="someone-else"))),
        "wrong_aud": _bearer(_jwt(_claims(user, aud="another-api"))),
        "no_jti": _bearer(_jwt(_claims(user, jti=None))),
        "no_exp": _bearer(_jwt(_claims(user, exp=None))),
        "no_iat": _bearer(_jwt(_claims(user, iat=None))),
        "no_typ": _bearer(_jwt(_claims(user, typ=None))),
        "no_iss": _bearer(_jwt(_claims(user, iss=None))),
        "sub_not_a_number": _bearer(_jwt(_claims(user, sub="v1_admin"))),
        "sub_unknown_user": _bearer(_jwt(_claims(user, sub="2147483647"))),
        "wrong_version": _bearer(_jwt(_claims(user, ver=user.token_version + 1))),
        "future_iat_wrong_typ": _bearer(_jwt(_claims(user, typ="id"))),
        # Never issued here; python-jose would accept a past one, but its check depends on the clock, which a
        # verified token's cached claims only consult for `exp`.
        "not_before": _bearer(_jwt(_claims(user, nbf=now - 60))),
    }[case]
    _assert_401(client.get(ME, headers=headers))


def test_a_verified_token_is_refused_once_it_expires(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Verified tokens are kept by their text (app.core.security._verified); the clock is still read on every use.
    from app.core import security

    now = int(dt.datetime.now(dt.UTC).timestamp())
    token = _jwt(_claims(world.users["v1"], exp=now + 30))
    assert client.get(ME, headers=_bearer(token)).status_code == 200
    monkeypatch.setattr(security, "_now_seconds", lambda: now + 30)
    assert client.get(ME, headers=_bearer(token)).status_code == 200  # python-jose's rule: valid through exp
    monkeypatch.setattr(security, "_now_seconds", lambda: now + 31)
    _assert_401(client.get(ME, headers=_bearer(token)))


def test_a_verified_token_is_refused_under_another_secret_key(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _jwt(_claims(world.users["v1"]))
    assert client.get(ME, headers=_bearer(token)).status_code == 200
    monkeypatch.setattr(get_settings(), "secret_key", "a-rotated-secret-key-that-is-long-enough-0000000")
    _assert_401(client.get(ME, headers=_bearer(token)))
    monkeypatch.undo()
    assert client.get(ME, headers=_bearer(token)).status_code == 200


def test_decoded_claims_are_the_callers_own_copy(world: World) -> None:
    from app.core.security import TokenError, decode_token

    token = _jwt(_claims(world.users["v1"]))
    first = decode_token(token, expected_type="access")
    first["sub"], first["typ"] = "0", "refresh"
    assert decode_token(token, expected_type="access")["sub"] == str(world.users["v1"].id)
    with pytest.raises(TokenError):
        decode_token(token, expected_type="refresh")


def test_refresh_token_is_not_an_access_token(client: TestClient, world: World) -> None:
    pair = _login(client, "v1_admin").json()
    _assert_401(client.get(ME, headers=_bearer(pair["refresh_token"])))
    # ...and an access token is not a refresh token.
    _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]}))


@pytest.mark.parametrize("change", [{"password": "a-brand-new-password"}, {"role": "city_admin"},
                                    {"is_active": False}])
def test_password_role_or_disabling_kills_old_tokens(
    client: TestClient, world: World, db: Session, change: dict[str, Any]
) -> None:
    user = make_user(db, _name("victim"), "auditor", world.city)
    pair = _login(client, user.username).json()
    old_access = pair["access_token"]
    assert client.get(ME, headers=_bearer(old_access)).status_code == 200
    r = client.patch(f"{USERS}/{user.id}", json=change, headers=world.auth("city"))
    assert r.status_code == 200, r.text
    _assert_401(client.get(ME, headers=_bearer(old_access)))
    _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
    if "is_active" in change:
        _assert_401(_login(client, user.username))
    elif "password" in change:
        assert _login(client, user.username, change["password"]).status_code == 200
    else:
        assert _login(client, user.username).json()["access_token"]


# --- refresh rotation and logout ----------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient, world: World, db: Session) -> None:
    first = _login(client, "v1_admin").json()
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["token_type"] == "bearer"
    assert client.get(ME, headers=_bearer(second["access_token"])).status_code == 200
    # The spent token comes back: someone copied it. 401, and the newer refresh token dies too.
    _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}))
    _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}))
    family = db.scalars(select(RefreshToken).where(RefreshToken.user_id == world.users["v1"].id)
                        .execution_options(populate_existing=True)).all()
    assert family and all(t.revoked_at is not None for t in family)
    # Stored hashed, never the token itself.
    assert all(t.token_hash not in (first["refresh_token"], second["refresh_token"]) for t in family)


def test_garbage_refresh_tokens_answer_401(client: TestClient, world: World) -> None:
    user = world.users["v1"]
    unknown = _jwt(_claims(user, typ="refresh", fam=uuid.uuid4().hex))  # well signed, never issued
    for token in ("x", "a.b.c", unknown):
        _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": token}))
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": ""}).status_code == 422
    assert client.post("/api/v1/auth/refresh", json={}).status_code == 422


def test_logout_revokes_the_refresh_token(client: TestClient, world: World) -> None:
    pair = _login(client, "v1_admin").json()
    _assert_401(client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}))
    r = client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]},
                    headers=_bearer(pair["access_token"]))
    assert r.status_code == 204, r.text
    _assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))


def test_nobody_logs_out_someone_elses_session(client: TestClient, world: World) -> None:
    theirs = _login(client, "v2_admin").json()
    r = client.post("/api/v1/auth/logout", json={"refresh_token": theirs["refresh_token"]}, headers=world.auth("city"))
    assert r.status_code == 404
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": theirs["refresh_token"]}).status_code == 200


# --- throttling ---------------------------------------------------------------


def test_sixth_failure_is_429_with_retry_after_and_state_is_in_the_database(
    client: TestClient, world: World, db: Session
) -> None:
    from app.main import create_app

    user = make_user(db, _name("throttled"), "village_admin", world.v1)
    other_worker = TestClient(create_app(), raise_server_exceptions=False)
    bodies = []
    for attempt in range(5):
        # Alternate between two app instances (think: two worker processes) and the username's case.
        c = client if attempt % 2 == 0 else other_worker
        name = user.username if attempt % 2 == 0 else user.username.upper()
        r = _login(c, name, "wrong-password-123")
        _assert_401(r)
        bodies.append(r.json())
    assert all(b == bodies[0] for b in bodies)
    assert db.scalar(select(func.count()).select_from(LoginFailure)
                     .where(LoginFailure.username == user.username.lower())) == 5
    for c in (other_worker, client):
        r = _login(c, user.username)  # even the right password now waits
        assert r.status_code == 429, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(r.headers["Retry-After"]) <= get_settings().login_window_minutes * 60
        assert r.json()["code"] == "too_many_login_failures"


def test_unknown_user_and_wrong_password_answer_the_same(client: TestClient, world: World, db: Session) -> None:
    user = make_user(db, _name("known"), "village_admin", world.v1)
    wrong = _login(client, user.username, "wrong-password-123")
    unknown = _login(client, _name("nobody"), "wrong-password-123")
    _assert_401(wrong)
    _assert_401(unknown)
    assert wrong.json() == unknown.json()
    assert {k: v for k, v in wrong.headers.items() if k.lower() not in {"x-request-id", "content-length"}} == \
        {k: v for k, v in unknown.headers.items() if k.lower() not in {"x-request-id", "content-length"}}


def test_unknown_user_costs_a_password_hash_like_a_wrong_password(
    client: TestClient, world: World, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same time for both failures: an unknown username still runs one argon2 verification."""
    from app.core import security

    user = make_user(db, _name("timed"), "village_admin", world.v1)
    real_verify = security._password_hash.verify
    calls: list[str] = []

    def spy(password: str, hashed: str) -> bool:
        calls.append(hashed)
        return bool(real_verify(password, hashed))

    monkeypatch.setattr(security._password_hash, "verify", spy)
    _assert_401(_login(client, user.username, "wrong-password-123"))
    _assert_401(_login(client, _name("nobody"), "wrong-password-123"))
    assert len(calls) == 2 and all(h.startswith("$argon2") for h in calls)
    assert calls[0] == user.password_hash and calls[1] != user.password_hash


def test_success_clears_the_failure_count(client: TestClient, world: World, db: Session) -> None:
    user = make_user(db, _name("forgetful"), "village_admin", world.v1)
    for _ in range(4):
        _assert_401(_login(client, user.username, "wrong-password-123"))
    assert _login(client, user.username).status_code == 200
    assert db.scalar(select(func.count()).select_from(LoginFailure)
                     .where(LoginFailure.username == user.username.lower())) == 0
    for _ in range(5):
        _assert_401(_login(client, user.username, "wrong-password-123"))
    assert _login(client, user.username).status_code == 429


def test_old_failures_fall_out_of_the_window(client: TestClient, world: World, db: Session) -> None:
    user = make_user(db, _name("patient"), "village_admin", world.v1)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=get_settings().login_window_minutes + 1)
    db.add_all([LoginFailure(username=user.username.lower(), at=long_ago) for _ in range(10)])
    db.add_all([LoginFailure(username="someone_else", at=long_ago) for _ in range(3)])
    db.flush()
    assert _login(client, user.username).status_code == 200
    # The next failure (anyone's) sweeps out what fell out of the window: the table stays bounded.
    _assert_401(_login(client, "v2_admin", "wrong-password-123"))
    old = select(func.count()).select_from(LoginFailure).where(LoginFailure.at <= long_ago + dt.timedelta(seconds=1))
    assert db.scalar(old) == 0


def test_login_form_is_validated(client: TestClient, world: World) -> None:
    for data in ({"username": "v1_admin"}, {"password": "x"}, {"username": "", "password": "x"},
                 {"username": "v1_admin", "password": "x" * 257}, {"username": "v1_admin", "password": "x",
                                                                   "grant_type": "client_credentials"}):
        r = client.post(TOKEN_URL, data=data)
        assert r.status_code == 422, (data, r.text)
        assert r.json()["errors"]


# --- user management -----------------------------------------------------------


def _create(client: TestClient, world: World, who: str, **body: Any) -> Any:
    payload = {"username": _name("new"), "password": "long-enough-pass", **body}
    return client.post(USERS, json=payload, headers=world.auth(who))


def test_city_admin_creates_users_anywhere(client: TestClient, world: World, db: Session) -> None:
    for role, org in (("city_admin", world.city), ("auditor", world.city), ("township_admin", world.t2),
                      ("village_admin", world.v2), ("village_admin", world.v1b)):
        r = _create(client, world, "city", role=role, org_id=org.id, full_name="新用户")
        assert r.status_code == 201, r.text
        body = r.json()
        assert r.headers["Location"] == f"{USERS}/{body['id']}"
        assert body["role"] == role and body["org_id"] == org.id and body["is_active"] is True
        assert "password" not in body and "password_hash" not in body
        stored = db.get(User, body["id"])
        assert stored is not None and stored.password_hash.startswith("$argon2")
        assert _login(client, body["username"], "long-enough-pass").status_code == 200


def test_township_admin_creates_only_village_users_inside_its_township(
    client: TestClient, world: World, db: Session
) -> None:
    ok = _create(client, world, "t1", role="village_admin", org_id=world.v1b.id)
    assert ok.status_code == 201, ok.text
    for role, org, status in (
        ("village_admin", world.v2, 404),    # another township: out of scope
        ("village_admin", world.city, 404),  # above it: out of scope
        ("township_admin", world.t1, 403),   # its own level
        ("auditor", world.city, 403),        # above its role
        ("city_admin", world.city, 403),
    ):
        before = db.scalar(select(func.count()).select_from(User))
        r = _create(client, world, "t1", role=role, org_id=org.id)
        assert r.status_code == status, (role, r.text)
        assert db.scalar(select(func.count()).select_from(User)) == before


def test_nobody_grants_a_role_above_their_own(client: TestClient, world: World, db: Session) -> None:
    village_user = make_user(db, _name("climber"), "village_admin", world.v1)
    r = client.patch(f"{USERS}/{village_user.id}", json={"role": "city_admin"}, headers=world.auth("t1"))
    assert r.status_code == 403 and r.json()["code"] == "role_above_own"
    assert db.scalar(select(User.role).where(User.id == village_user.id)) == "village_admin"
    for who in ("v1", "auditor"):
        r = _create(client, world, who, role="village_admin", org_id=world.v1.id)
        assert r.status_code == 403 and r.json()["code"] == "permission_denied"


def test_township_admin_cannot_touch_users_elsewhere(client: TestClient, world: World, db: Session) -> None:
    other = make_user(db, _name("elsewhere"), "village_admin", world.v2)
    assert client.get(f"{USERS}/{other.id}", headers=world.auth("t1")).status_code == 404
    r = client.patch(f"{USERS}/{other.id}", json={"full_name": "x"}, headers=world.auth("t1"))
    assert r.status_code == 404
    r = client.patch(f"{USERS}/{world.users['t2'].id}", json={"is_active": False}, headers=world.auth("t1"))
    assert r.status_code == 404
    listed = client.get(USERS, params={"limit": 200}, headers=world.auth("t1")).json()["items"]
    assert other.id not in {u["id"] for u in listed} and world.users["v1"].id in {u["id"] for u in listed}


def test_duplicate_username_is_409_whatever_the_case(client: TestClient, world: World) -> None:
    for name in ("v1_admin", "V1_ADMIN"):
        r = _create(client, world, "city", username=name, role="village_admin", org_id=world.v1.id)
        assert r.status_code == 409 and r.json()["code"] == "duplicate_username"


def test_bad_user_bodies_are_422_and_store_nothing(client: TestClient, world: World, db: Session) -> None:
    before = db.scalar(select(func.count()).select_from(User))
    for body in (
        {"password": "short-pw1", "role": "village_admin", "org_id": world.v1.id},
        {"password": "x" * 129, "role": "village_admin", "org_id": world.v1.id},
        {"username": "a b", "role": "village_admin", "org_id": world.v1.id},
        {"username": "ab", "role": "village_admin", "org_id": world.v1.id},
        {"role": "superuser", "org_id": world.v1.id},
        {"role": "village_admin", "org_id": 0},
        {"role": "village_admin", "org_id": 2**31},
        {"role": "village_admin", "org_id": world.v1.id, "is_admin": True},
        {"role": "village_admin", "org_id": world.t1.id},  # a village role at a township
    ):
        r = _create(client, world, "city", **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"], body
    assert db.scalar(select(func.count()).select_from(User)) == before


def test_admin_cannot_disable_or_demote_themself(client: TestClient, world: World) -> None:
    me = world.users["city"].id
    for change in ({"is_active": False}, {"role": "auditor"}):
        r = client.patch(f"{USERS}/{me}", json=change, headers=world.auth("city"))
        assert r.status_code == 409 and r.json()["code"] == "own_account"


def test_disabled_user_cannot_log_in_and_answers_like_a_wrong_password(
    client: TestClient, world: World, db: Session
) -> None:
    user = make_user(db, _name("gone"), "village_admin", world.v1)
    assert client.patch(f"{USERS}/{user.id}", json={"is_active": False}, headers=world.auth("city")).status_code == 200
    disabled = _login(client, user.username)
    wrong = _login(client, "v2_admin", "wrong-password-123")
    assert disabled.status_code == 401 and disabled.json() == wrong.json()


def test_factory_tokens_match_login_tokens(client: TestClient, world: World) -> None:
    # tests.factories.access_token is what every other test uses: it must be as strict as a real login.
    token = access_token(world.users["auditor"])
    assert client.get(ME, headers=_bearer(token)).status_code == 200
