"""Service clients: creation by the city, the client-credentials grant, scope and permissions through the same
Actor as users, audit under the client's name, rotation and revocation, and the ways an attacker tries to get in."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import re
from typing import Any
from urllib.parse import quote_plus

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.permissions import CLIENT_DEFAULT, Permission, Role
from app.core.scope import Actor
from app.core.security import create_token, decode_token, token_digest
from app.models.accounts import User
from app.models.audit import AuditLog
from app.models.clients import ClientCreate, ServiceClient
from app.models.organizations import Organization
from app.services import clients as service
from tests.factories import PASSWORD, World, make_person
from tests.test_sessions import opened  # noqa: F401  (a fixture: whether each request session writes)

TOKEN_URL = "/api/v1/auth/token"
CLIENTS = "/api/v1/clients"
_seq = itertools.count(1)


def _create(client: TestClient, world: World, *, org: Any = None, who: str = "city", **body: Any) -> Any:
    payload = {"name": f"数据交换平台-{next(_seq)}", "org_id": (org or world.t1).id, **body}
    return client.post(CLIENTS, json=payload, headers=world.auth(who))


def _made(client: TestClient, world: World, **kw: Any) -> dict[str, Any]:
    r = _create(client, world, **kw)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _token(client: TestClient, cid: str, secret: str, *, basic: bool = False, scope: str | None = None) -> Any:
    extra = {} if scope is None else {"scope": scope}
    if basic:
        raw = f"{quote_plus(cid)}:{quote_plus(secret)}".encode()
        return client.post(TOKEN_URL, data={"grant_type": "client_credentials", **extra},
                           headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
    return client.post(TOKEN_URL, data={"grant_type": "client_credentials", "client_id": cid,
                                        "client_secret": secret, **extra})


def _bearer(client: TestClient, made: dict[str, Any], *, scope: str | None = None) -> dict[str, str]:
    r = _token(client, made["client_id"], made["client_secret"], scope=scope)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _invalid_client(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic")


def _revoked(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "unauthenticated"


# --- creation -------------------------------------------------------------------------------------------


def test_city_creates_a_read_only_client_whose_secret_is_shown_once(
    client: TestClient, world: World, db: Session
) -> None:
    r = _create(client, world)
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["Location"] == f"{CLIENTS}/{made['id']}"
    assert r.headers["Cache-Control"] == "no-store"
    assert made["client_id"].startswith("svc_") and len(made["client_secret"]) >= 40
    assert set(made["permissions"]) == set(CLIENT_DEFAULT)
    assert all(p.endswith("_read") for p in made["permissions"]) and "pii_read" not in made["permissions"]
    row = db.get(ServiceClient, made["id"])
    assert row is not None and row.secret_hash == token_digest(made["client_secret"])
    assert made["client_secret"] not in str(row.model_dump())
    # Shown once: no read returns it again.
    for got in (client.get(f"{CLIENTS}/{made['id']}", headers=world.auth("city")).json(),
                client.get(CLIENTS, headers=world.auth("city")).json()["items"][0]):
        assert "client_secret" not in got and "secret_hash" not in got
    created = db.scalar(select(AuditLog).where(AuditLog.action == "client.create",
                                               AuditLog.entity_id == str(made["id"])))
    assert created is not None and created.username == "city_admin"
    assert created.after is not None and "secret_hash" not in created.after and made["client_secret"] not in \
        str(created.after)


def test_client_principal_is_no_user_account(client: TestClient, world: World, db: Session) -> None:
    made = _made(client, world)
    principal = db.get(User, db.get(ServiceClient, made["id"]).user_id)  # type: ignore[union-attr]
    assert principal is not None and principal.role == Role.service_client
    assert client.get(f"/api/v1/users/{principal.id}", headers=world.auth("city")).status_code == 404
    names = [u["username"] for u in client.get("/api/v1/users", params={"limit": 200},
                                               headers=world.auth("city")).json()["items"]]
    assert made["client_id"] not in names
    r = client.patch(f"/api/v1/users/{principal.id}", json={"password": "now-i-log-in-1"}, headers=world.auth("city"))
    assert r.status_code == 404
    r = client.post("/api/v1/users", json={"username": "fake_client", "password": "long-enough-pass",
                                           "role": "service_client", "org_id": world.t1.id},
                    headers=world.auth("city"))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("who", ["t1", "v1", "auditor"])
def test_only_the_city_creates_clients(client: TestClient, world: World, who: str) -> None:
    r = _create(client, world, who=who, org=world.v1)
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"


def test_bad_client_bodies_are_refused_and_store_nothing(client: TestClient, world: World, db: Session) -> None:
    before = db.scalar(select(ServiceClient.id).order_by(ServiceClient.id.desc()).limit(1))  # type: ignore[union-attr]
    for body, status in (
        ({"permissions": ["users_manage"]}, 422),  # account management is never a client's
        ({"permissions": ["clients_manage"]}, 422),
        ({"permissions": ["root"]}, 422),
        ({"name": " padded "}, 422),
        ({"name": "x"}, 422),
        ({"org_id": 2_000_000_000}, 404),
        ({"extra": 1}, 422),
    ):
        r = _create(client, world, **body)
        assert r.status_code == status, (body, r.text)
    made = _made(client, world)
    dup = _create(client, world, name=made["name"].upper())
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate_client_name"
    after = db.scalar(select(ServiceClient.id).order_by(ServiceClient.id.desc()).limit(1))  # type: ignore[union-attr]
    assert after == made["id"] and (before or 0) < after


def test_a_client_never_gets_more_than_its_creator_holds(db: Session, world: World) -> None:
    """The creator's own permissions bound the grant (the route already limits creators to the city)."""
    creator = Actor(world.users["city"].id, "limited", Role.city_admin, world.city.id, world.city.path,
                    frozenset({Permission.clients_manage, Permission.org_read}))
    with pytest.raises(Exception) as refused:
        service.create_client(db, creator, ClientCreate(name="越权客户端", org_id=world.t1.id,
                                                        permissions=[Permission.org_read, Permission.people_read]))
    assert getattr(refused.value, "code", None) == "permission_above_own"
    made = service.create_client(db, creator, ClientCreate(name="受限客户端", org_id=world.t1.id,
                                                           permissions=[Permission.org_read]))
    assert made.permissions == [Permission.org_read]


# --- the token endpoint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("basic", [False, True])
def test_client_credentials_issue_an_access_token_only(client: TestClient, world: World, db: Session,
                                                       basic: bool) -> None:
    made = _made(client, world)
    r = _token(client, made["client_id"], made["client_secret"], basic=basic)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert "refresh_token" not in body and body["token_type"] == "bearer" and body["expires_in"] > 0
    assert set(body["scope"].split()) == set(made["permissions"])
    claims = decode_token(body["access_token"], expected_type="access")
    assert claims["sub"] == f"client:{made['client_id']}" and claims["role"] == "service_client"
    issued = db.scalar(select(AuditLog).where(AuditLog.action == "client.token", AuditLog.entity_id == str(made["id"])))
    assert issued is not None and issued.username == made["name"] and issued.role == "service_client"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["role"] == "service_client"
    assert set(me.json()["permissions"]) == set(made["permissions"])


def test_wrong_or_unknown_client_credentials_answer_the_same(client: TestClient, world: World) -> None:
    made = _made(client, world)
    wrong = _token(client, made["client_id"], made["client_secret"] + "x")
    unknown = _token(client, "svc_" + "0" * 24, made["client_secret"])
    swapped = _token(client, made["client_secret"], made["client_id"])
    for r in (wrong, unknown, swapped, _token(client, made["client_id"], made["client_secret"][:-1], basic=True)):
        _invalid_client(r)
    assert wrong.json() == unknown.json() == swapped.json()


def test_a_users_password_is_no_client_secret_and_a_client_secret_no_password(
    client: TestClient, world: World
) -> None:
    _invalid_client(_token(client, "v1_admin", PASSWORD))
    _invalid_client(_token(client, str(world.users["v1"].id), PASSWORD))
    made = _made(client, world)
    r = client.post(TOKEN_URL, data={"username": made["client_id"], "password": made["client_secret"]})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    # A user's access token is no client secret either (it does not even fit the field).
    r = _token(client, made["client_id"], world.token("city"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "client_secret"]


def test_token_request_shapes_are_validated(client: TestClient, world: World) -> None:
    made = _made(client, world)
    basic = "Basic " + base64.b64encode(f"{made['client_id']}:{made['client_secret']}".encode()).decode()
    for data, headers in (
        ({"grant_type": "client_credentials"}, {}),
        ({"grant_type": "client_credentials", "client_id": made["client_id"]}, {}),
        ({"grant_type": "client_credentials", "username": "v1_admin", "password": PASSWORD}, {}),
        ({"grant_type": "client_credentials", "client_id": made["client_id"]}, {"Authorization": basic}),
        ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!!"}),
        ({"grant_type": "client_credentials"}, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}),
        ({"grant_type": "authorization_code", "client_id": "x", "client_secret": "y"}, {}),
    ):
        r = client.post(TOKEN_URL, data=data, headers=headers)
        assert r.status_code == 422, (data, headers, r.text)
        assert r.json()["errors"]


# --- a narrower scope (RFC 6749 §3.3) -------------------------------------------------------------------


def _last_audit_id(db: Session) -> int:
    return db.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)) or 0


def _me_permissions(client: TestClient, auth: dict[str, str]) -> list[str]:
    r = client.get("/api/v1/auth/me", headers=auth)
    assert r.status_code == 200, r.text
    return list(r.json()["permissions"])


def _denied(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "permission_denied"


@pytest.mark.parametrize("basic", [False, True])
def test_a_narrowed_token_does_what_it_asked_and_nothing_more(client: TestClient, world: World, db: Session,
                                                               basic: bool) -> None:
    made = _made(client, world, org=world.t1, permissions=["org_read", "org_write", "people_read"])
    mark = _last_audit_id(db)
    r = _token(client, made["client_id"], made["client_secret"], basic=basic, scope="org_read")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "org_read"
    assert decode_token(body["access_token"], expected_type="access")["scope"] == "org_read"
    issued = db.scalars(select(AuditLog).where(AuditLog.id > mark, AuditLog.action == "client.token")).all()
    assert [row.entity_id for row in issued] == [str(made["id"])]
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert _me_permissions(client, auth) == ["org_read"]
    assert client.get(f"/api/v1/organizations/{world.v1.id}", headers=auth).status_code == 200
    # Held by the client, not asked for: refused as a user lacking the permission is.
    _denied(client.get("/api/v1/people", headers=auth))
    mark = _last_audit_id(db)
    _denied(client.post("/api/v1/organizations", json={"parent_id": world.v1.id, "level": "branch",
                                                        "domain": "community", "name": "窄令牌支部"}, headers=auth))
    assert _last_audit_id(db) == mark
    # Asking for two of the three gives exactly those two.
    both = _bearer(client, made, scope="people_read org_write")
    assert _me_permissions(client, both) == ["org_write", "people_read"]
    r = client.post("/api/v1/organizations", json={"parent_id": world.v1.id, "level": "branch",
                                                    "domain": "community", "name": "窄令牌建的支部"}, headers=both)
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/people", headers=both).status_code == 200
    _denied(client.get(f"/api/v1/organizations/{world.v1.id}", headers=both))


@pytest.mark.parametrize(("scope", "named"), [
    ("org_write", ["org_write"]),  # a permission the read-only client lacks
    ("org_read org_write pii_read", ["org_write", "pii_read"]),
    ("users_manage", ["users_manage"]),  # never a client's
    ("root", ["root"]),  # no permission at all
    ("org_read root org_write", ["root", "org_write"]),
    ("ORG_READ", ["ORG_READ"]),
])
def test_a_scope_beyond_the_client_is_refused_and_issues_nothing(
    client: TestClient, world: World, db: Session, scope: str, named: list[str]
) -> None:
    made = _made(client, world, org=world.t1)
    mark = _last_audit_id(db)
    r = _token(client, made["client_id"], made["client_secret"], scope=scope)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "invalid_scope" and problem["type"].endswith("/invalid-scope")
    assert "access_token" not in problem
    for name in named:
        assert name in problem["detail"], problem
    assert problem["errors"][0]["loc"] == ["body", "scope"]
    assert _last_audit_id(db) == mark


@pytest.mark.parametrize("scope", ["org_read\torg_write", "org_read\n", "\r\n", "权限", '"org_read"',
                                   "org_read\\", "\x7f", "r" * 500])
def test_a_malformed_scope_is_a_clear_400(client: TestClient, world: World, db: Session, scope: str) -> None:
    made = _made(client, world, org=world.t1)
    mark = _last_audit_id(db)
    r = _token(client, made["client_id"], made["client_secret"], scope=scope)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_scope" and r.json()["errors"][0]["loc"] == ["body", "scope"]
    # NUL is refused for the whole form before the route runs.
    nul = _token(client, made["client_id"], made["client_secret"], scope="org_read\x00")
    assert nul.status_code == 422 and nul.json()["code"] == "validation_error", nul.text
    assert _last_audit_id(db) == mark
    too_long = _token(client, made["client_id"], made["client_secret"], scope="org_read " * 60)
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["loc"] == ["body", "scope"]
    assert _last_audit_id(db) == mark


def test_a_bad_scope_from_a_stranger_is_still_invalid_client(client: TestClient, world: World) -> None:
    """Client authentication comes first: who is not the client learns nothing about its permissions."""
    made = _made(client, world)
    _invalid_client(_token(client, made["client_id"], made["client_secret"] + "x", scope="org_write"))
    _invalid_client(_token(client, made["client_id"], made["client_secret"] + "x", scope="bad\tscope"))


def test_repeats_and_extra_spaces_ask_for_each_name_once(client: TestClient, world: World) -> None:
    made = _made(client, world)
    r = _token(client, made["client_id"], made["client_secret"], scope="  people_read org_read   people_read ")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "org_read people_read"
    assert decode_token(r.json()["access_token"], expected_type="access")["scope"] == "org_read people_read"


@pytest.mark.parametrize("scope", [None, "", "   "])
def test_no_scope_asks_for_all_the_clients_permissions(client: TestClient, world: World, scope: str | None) -> None:
    made = _made(client, world, permissions=["org_read", "org_write", "people_read"])
    r = _token(client, made["client_id"], made["client_secret"], scope=scope)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "org_read org_write people_read"
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert _me_permissions(client, auth) == ["org_read", "org_write", "people_read"]


def test_the_password_grant_ignores_a_scope(client: TestClient, world: World) -> None:
    r = client.post(TOKEN_URL, data={"username": world.users["city"].username, "password": PASSWORD,
                                     "scope": "org_read no_such\tthing"})
    assert r.status_code == 200, r.text
    assert "scope" not in r.json()
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert "users_manage" in me.json()["permissions"]


def test_a_token_acts_only_with_what_the_client_still_holds(client: TestClient, world: World, db: Session) -> None:
    """The scope claim is an upper bound: a permission taken from the client after the token was issued is gone
    from the token at once, and one given to the client later is not in it."""
    made = _made(client, world, org=world.t1, permissions=["org_read", "org_write"])
    full = _bearer(client, made)
    narrowed = _bearer(client, made, scope="org_write")
    row = db.get(ServiceClient, made["id"])
    assert row is not None
    row.permissions = ["org_read", "people_read"]  # no API edits a client's permissions
    db.flush()
    assert _me_permissions(client, full) == ["org_read"]
    assert _me_permissions(client, narrowed) == []
    for auth in (full, narrowed):
        _denied(client.post("/api/v1/organizations", json={"parent_id": world.v1.id, "level": "branch",
                                                            "domain": "community", "name": "收回后的支部"},
                            headers=auth))
        _denied(client.get("/api/v1/people", headers=auth))
    _denied(client.get(f"/api/v1/organizations/{world.v1.id}", headers=narrowed))
    assert client.get(f"/api/v1/organizations/{world.v1.id}", headers=full).status_code == 200
    # A fresh token carries what the client holds now.
    assert _me_permissions(client, _bearer(client, made)) == ["org_read", "people_read"]


def _client_token(db: Session, made: dict[str, Any], **claims: Any) -> dict[str, str]:
    """A client access token signed with the service's key, carrying `claims` besides the ones every token has."""
    row = db.get(ServiceClient, made["id"])
    assert row is not None
    principal = db.get(User, row.user_id)
    assert principal is not None
    token = create_token(subject=f"client:{made['client_id']}", token_type="access",
                         lifetime=dt.timedelta(minutes=5),
                         claims={"ver": principal.token_version, "role": Role.service_client, "org": row.org_id,
                                 **claims})
    return {"Authorization": f"Bearer {token.token}"}


def test_a_client_token_without_a_scope_claim_is_refused(
    client: TestClient, world: World, db: Session, opened: list[bool]  # noqa: F811  (the fixture)
) -> None:
    """Every client token the service issues carries its scope; one without (signed with the key, made some
    other way) acts with nothing, not with all the client holds: 401 on reads, writes and audited reads."""
    made = _made(client, world, org=world.t1, permissions=["org_read", "org_write", "people_read", "pii_read"])
    bare = _client_token(db, made)
    assert _me_permissions(client, _client_token(db, made, scope="org_read")) == ["org_read"]
    person = make_person(db, world.v1, name="赵六", phone="13912345678")
    mark = _last_audit_id(db)
    opened.clear()
    answers = [
        client.get("/api/v1/auth/me", headers=bare),
        client.get(f"/api/v1/organizations/{world.v1.id}", headers=bare),
        client.post("/api/v1/organizations", json={"parent_id": world.v1.id, "level": "branch",
                                                   "domain": "community", "name": "无范围令牌的支部"}, headers=bare),
        client.get(f"/api/v1/people/{person.id}", headers=bare),
    ]
    for r in answers:
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
        assert "13912345678" not in r.text
    assert opened[-1] is False  # the audited read did not take a writing session for it
    assert _last_audit_id(db) == mark
    assert db.scalar(select(func.count()).select_from(Organization).where(
        Organization.name == "无范围令牌的支部")) == 0


def test_personal_data_follows_the_tokens_scope(client: TestClient, world: World, db: Session,
                                                opened: list[bool]) -> None:  # noqa: F811  (the fixture)
    person = make_person(db, world.v1, name="钱七", phone="13712345678")
    made = _made(client, world, org=world.t1, permissions=["people_read", "pii_read"])
    narrowed, full = _bearer(client, made, scope="people_read"), _bearer(client, made, scope="people_read pii_read")
    mark = _last_audit_id(db)
    opened.clear()
    masked = client.get(f"/api/v1/people/{person.id}", headers=narrowed)
    assert masked.status_code == 200 and "13712345678" not in masked.text, masked.text
    assert db.scalar(select(AuditLog).where(AuditLog.id > mark, AuditLog.action == "person.pii_read")) is None
    unmasked = client.get(f"/api/v1/people/{person.id}", headers=full)
    assert unmasked.status_code == 200 and "13712345678" in unmasked.text
    assert db.scalar(select(AuditLog).where(AuditLog.id > mark, AuditLog.action == "person.pii_read")) is not None
    assert opened == [False, True]  # only the audited read takes a writing session


def test_a_scope_claim_that_is_not_text_is_an_invalid_token(client: TestClient, world: World, db: Session) -> None:
    r = client.get("/api/v1/auth/me", headers=_client_token(db, _made(client, world), scope=["org_read"]))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


# --- scope and permissions: the same Actor as users -----------------------------------------------------


def test_a_read_only_client_reads_its_subtree_and_nothing_else(client: TestClient, world: World) -> None:
    auth = _bearer(client, _made(client, world, org=world.t1))
    assert client.get(f"/api/v1/organizations/{world.v1.id}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/organizations/{world.t1.id}", headers=auth).status_code == 200
    for outside in (world.v2, world.t2, world.city):
        r = client.get(f"/api/v1/organizations/{outside.id}", headers=auth)
        assert r.status_code == 404, r.text
    listed = client.get("/api/v1/organizations", params={"limit": 200}, headers=auth).json()["items"]
    assert listed and all(o["path"].startswith(world.t1.path) for o in listed)
    r = client.get("/api/v1/organizations", params={"org_id": world.v2.id}, headers=auth)
    assert r.status_code == 404


def test_a_read_only_client_cannot_write(client: TestClient, world: World, db: Session) -> None:
    auth = _bearer(client, _made(client, world, org=world.t1))
    last = db.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1))
    for method, path, body in (
        ("POST", "/api/v1/organizations", {"parent_id": world.v1.id, "level": "branch", "domain": "community",
                                           "name": "客户端支部"}),
        ("POST", "/api/v1/users", {"username": "made_by_client", "password": "long-enough-pass",
                                   "role": "village_admin", "org_id": world.v1.id}),
        ("POST", CLIENTS, {"name": "客户端造客户端", "org_id": world.v1.id}),
        ("POST", "/api/v1/people", {"org_id": world.v1.id, "name": "李四"}),
    ):
        r = client.request(method, path, json=body, headers=auth)
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", (path, r.text)
    assert db.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)) == last


def test_a_writing_client_is_audited_under_its_name(client: TestClient, world: World, db: Session) -> None:
    made = _made(client, world, org=world.t1, permissions=["org_read", "org_write"])
    auth = _bearer(client, made)
    r = client.post("/api/v1/organizations", json={"parent_id": world.v1.id, "level": "branch",
                                                    "domain": "community", "name": "客户端建的支部"}, headers=auth)
    assert r.status_code == 201, r.text
    principal = db.get(ServiceClient, made["id"]).user_id  # type: ignore[union-attr]
    row = db.scalar(select(AuditLog).where(AuditLog.action.like("organization.%"),
                                           AuditLog.entity_id == str(r.json()["id"])))
    assert row is not None
    assert (row.username, row.role, row.user_id, row.actor_org_id) == (made["name"], "service_client", principal,
                                                                      world.t1.id)
    # Out of its subtree a writing client is refused like a township user: 404.
    r = client.post("/api/v1/organizations", json={"parent_id": world.v2.id, "level": "branch",
                                                    "domain": "rural", "name": "越界支部"}, headers=auth)
    assert r.status_code == 404, r.text


def test_every_call_of_a_client_is_logged_under_its_name(client: TestClient, world: World) -> None:
    """Reads write no audit row (for users neither); the access log names the client on every call."""
    import io
    import json as jsonlib
    import logging

    from app.core.observability import JsonFormatter

    made = _made(client, world, org=world.t1)
    auth = _bearer(client, made)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("app.access")
    saved = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        assert client.get("/api/v1/organizations", headers=auth).status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(saved)
    entries = [jsonlib.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert any(e.get("route") == "/api/v1/organizations" and e.get("user") == made["name"]
               and e.get("role") == "service_client" for e in entries), entries


def test_maker_checker_and_idempotency_hold_for_a_client(client: TestClient, world: World, db: Session) -> None:
    """The client's principal is the id every record it writes refers to: keys replay for it alone and it cannot
    approve what it requested, as a user cannot."""
    from tests.funds_support import make_line

    line = make_line(db, world.t1)
    made = _made(client, world, org=world.t1, permissions=["funds_read", "funds_request", "funds_approve"])
    auth = {**_bearer(client, made), "Idempotency-Key": "client-disb-1"}
    body = {"line_id": line.id, "payee_kind": "other", "payee_name": "康定印刷厂", "purpose": "资料印制",
            "disbursed_on": "2019-05-06", "amount": "12.00"}
    first = client.post("/api/v1/disbursements", headers=auth, json=body)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/disbursements", headers=auth, json=body)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    principal = db.get(ServiceClient, made["id"]).user_id  # type: ignore[union-attr]
    assert first.json()["created_by"] == principal
    r = client.post(f"/api/v1/disbursements/{first.json()['id']}/approve", headers=_bearer(client, made))
    assert r.status_code == 403 and r.json()["code"] == "maker_checker", r.text
    assert client.post(f"/api/v1/disbursements/{first.json()['id']}/approve", headers=world.auth("t1")) \
        .status_code == 200


def test_personal_data_follows_the_clients_permissions(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1, name="王五", phone="13812345678")
    masked = _bearer(client, _made(client, world, org=world.t1))
    body = client.get(f"/api/v1/people/{person.id}", headers=masked).json()
    assert "13812345678" not in str(body)  # the suite's PII guard checks every answer to a client without pii_read
    made = _made(client, world, org=world.t1, permissions=["people_read", "pii_read"])
    unmasked = client.get(f"/api/v1/people/{person.id}", headers=_bearer(client, made))
    assert unmasked.status_code == 200 and "13812345678" in unmasked.text
    row = db.scalar(select(AuditLog).where(AuditLog.action == "person.pii_read",
                                           AuditLog.entity_id == str(person.id)))
    assert row is not None and row.username == made["name"] and row.role == "service_client"


def test_a_township_client_with_funds_configure_still_cannot_set_city_rates(client: TestClient,
                                                                            world: World) -> None:
    auth = _bearer(client, _made(client, world, org=world.t1, permissions=["funds_read", "funds_configure"]))
    r = client.post("/api/v1/subsidy-policies", headers=auth, json={
        "kind": "pension_subsidy", "name": "养老补贴", "valid_from": "2044-01-01", "rates": [{"amount": "1.00"}]})
    assert r.status_code == 403 and r.json()["code"] == "city_only", r.text


def _city_wide_routes() -> list[tuple[str, str, str]]:
    """(method, path, permission) of every operation that asks for a city-wide permission a client may hold."""
    from test_authz_matrix import OPERATIONS, required_permissions

    from app.core.permissions import CITY_WIDE, CLIENT_GRANTABLE

    return sorted((op.method, re.sub(r"\{[^}]+\}", "1", op.path), permission.value)
                  for op in OPERATIONS.values()
                  for permission in required_permissions(op.route) & CITY_WIDE & CLIENT_GRANTABLE)


def test_every_city_wide_permission_is_refused_to_a_client_below_the_city(client: TestClient,
                                                                           world: World) -> None:
    """A client holds what the city chose for it, but a permission that changes what holds for the whole city
    (rates, thresholds, the catalogue, the monthly lists ...) works only at the city's scope: 403 city_only below
    it, on every route that asks for one, before anything is read or changed."""
    from app.core.permissions import CITY_WIDE, CLIENT_GRANTABLE

    routes = _city_wide_routes()
    wide = sorted(p.value for p in CITY_WIDE & CLIENT_GRANTABLE)
    assert {permission for *_, permission in routes} == set(wide), routes  # every one is asked for somewhere
    below = _bearer(client, _made(client, world, org=world.t1, permissions=wide))
    city = _bearer(client, _made(client, world, org=world.city, permissions=wide))
    for method, path, permission in routes:
        r = client.request(method, path, headers=below, json={})
        assert r.status_code == 403 and r.json()["code"] == "city_only", (method, path, permission, r.text)
        assert permission in r.json()["detail"]
        r = client.request(method, path, headers=city, json={})
        assert r.status_code != 403, (method, path, r.text)
    # The contract says so on exactly the operations that ask for a city-wide permission.
    from test_authz_matrix import OPERATIONS, required_permissions

    from app.core.permissions import CITY_WIDE
    from app.main import app

    contract = app.openapi()["paths"]
    for op in OPERATIONS.values():
        forbidden = contract[op.path][op.method.lower()]["responses"].get("403", {}).get("description", "")
        assert ("city_only" in forbidden) is bool(required_permissions(op.route) & CITY_WIDE), op.operation_id


def test_a_client_has_no_password_to_change(client: TestClient, world: World) -> None:
    auth = _bearer(client, _made(client, world))
    r = client.post("/api/v1/auth/password", json={"current_password": "x", "new_password": "y" * 12},
                    headers=auth)
    assert r.status_code == 403 and r.json()["code"] == "client_has_no_password"


# --- listing in scope --------------------------------------------------------------------------------------


def test_clients_are_listed_and_read_within_scope(client: TestClient, world: World) -> None:
    mine = _made(client, world, org=world.v1)
    theirs = _made(client, world, org=world.v2)
    t1_ids = {c["id"] for c in client.get(CLIENTS, params={"limit": 200}, headers=world.auth("t1")).json()["items"]}
    assert mine["id"] in t1_ids and theirs["id"] not in t1_ids
    assert client.get(f"{CLIENTS}/{theirs['id']}", headers=world.auth("t1")).status_code == 404
    assert client.get(f"{CLIENTS}/{mine['id']}", headers=world.auth("auditor")).status_code == 200
    assert client.get(CLIENTS, headers=world.auth("v1")).status_code == 403


# --- revocation and rotation ----------------------------------------------------------------------------


def test_revoking_ends_the_secret_and_every_token_at_once(client: TestClient, world: World, db: Session) -> None:
    made = _made(client, world)
    auth = _bearer(client, made)
    assert client.get("/api/v1/auth/me", headers=auth).status_code == 200
    r = client.post(f"{CLIENTS}/{made['id']}/revoke", headers=world.auth("city"))
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["revoked_at"]
    _revoked(client.get("/api/v1/auth/me", headers=auth))
    _invalid_client(_token(client, made["client_id"], made["client_secret"]))
    again = client.post(f"{CLIENTS}/{made['id']}/revoke", headers=world.auth("city"))
    assert again.status_code == 409 and again.json()["code"] == "client_revoked"
    rotate = client.post(f"{CLIENTS}/{made['id']}/rotate-secret", headers=world.auth("city"))
    assert rotate.status_code == 409
    listed = client.get(CLIENTS, params={"is_active": "false", "limit": 200}, headers=world.auth("city")).json()
    assert made["id"] in {c["id"] for c in listed["items"]}
    row = db.scalar(select(AuditLog).where(AuditLog.action == "client.revoke", AuditLog.entity_id == str(made["id"])))
    assert row is not None and row.after == {"is_active": False, "revoked_at": row.after["revoked_at"],
                                             "updated_at": row.after["updated_at"]}


def test_rotation_ends_the_old_secret_and_its_tokens(client: TestClient, world: World) -> None:
    made = _made(client, world)
    old_auth = _bearer(client, made)
    r = client.post(f"{CLIENTS}/{made['id']}/rotate-secret", headers=world.auth("city"))
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    rotated = r.json()
    assert rotated["client_id"] == made["client_id"] and rotated["client_secret"] != made["client_secret"]
    _revoked(client.get("/api/v1/auth/me", headers=old_auth))
    _invalid_client(_token(client, made["client_id"], made["client_secret"]))
    assert client.get("/api/v1/auth/me", headers=_bearer(client, rotated)).status_code == 200


@pytest.mark.parametrize("who", ["t1", "auditor"])
def test_only_the_city_revokes_or_rotates(client: TestClient, world: World, who: str) -> None:
    made = _made(client, world, org=world.v1)
    for action in ("revoke", "rotate-secret"):
        r = client.post(f"{CLIENTS}/{made['id']}/{action}", headers=world.auth(who))
        assert r.status_code == 403, r.text
    assert _token(client, made["client_id"], made["client_secret"]).status_code == 200


# --- token confusion --------------------------------------------------------------------------------------


def test_tokens_of_one_kind_never_pass_as_the_other(client: TestClient, world: World, db: Session) -> None:
    made = _made(client, world)
    row = db.get(ServiceClient, made["id"])
    assert row is not None
    principal = db.get(User, row.user_id)
    assert principal is not None
    minute = dt.timedelta(minutes=5)

    def bearer(subject: str, **claims: Any) -> dict[str, str]:
        token = create_token(subject=subject, token_type=claims.pop("typ", "access"), lifetime=minute,
                             claims={"ver": principal.token_version, **claims}).token
        return {"Authorization": f"Bearer {token}"}

    # A user-shaped token for the client's principal: the principal never acts as a user.
    _revoked(client.get("/api/v1/auth/me", headers=bearer(str(principal.id), role="city_admin")))
    # A refresh-typed token with the client's subject.
    r = client.get("/api/v1/auth/me", headers=bearer(f"client:{made['client_id']}", typ="refresh"))
    assert r.status_code == 401
    # A client subject that names no client, or a user's id dressed as a client.
    _revoked(client.get("/api/v1/auth/me", headers=bearer("client:svc_unknown")))
    _revoked(client.get("/api/v1/auth/me", headers=bearer(f"client:{world.users['city'].username}")))
    # An old version (as after a rotation) and the claims of a role it does not have change nothing.
    _revoked(client.get("/api/v1/auth/me", headers=bearer(f"client:{made['client_id']}",
                                                          ver=principal.token_version - 1)))
    forged_role = bearer(f"client:{made['client_id']}", role="city_admin", scope="org_write users_manage")
    me = client.get("/api/v1/auth/me", headers=forged_role).json()
    assert me["role"] == "service_client" and "org_write" not in me["permissions"]
    # A client's access token is no refresh token.
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": _bearer(client, made)["Authorization"][7:]})
    assert r.status_code == 401


def test_the_openapi_document_offers_both_flows(client: TestClient) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    flows = next(s["flows"] for s in schemes.values() if s.get("type") == "oauth2")
    assert flows["password"]["tokenUrl"] == flows["clientCredentials"]["tokenUrl"] == TOKEN_URL
