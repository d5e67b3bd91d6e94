"""The audit log: one row per change in the same transaction, a hash chain nobody can edit unnoticed."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.core import audit
from app.core import db as core_db
from app.core.errors import ProblemError
from app.core.permissions import permissions_for
from app.core.scope import Actor
from app.models.accounts import User
from app.models.audit import AuditChainHead, AuditLog
from app.services import audit as audit_service
from tests.factories import World

URL = "/api/v1/audit-log"
_names = itertools.count(1)


def _new_user(client: TestClient, world: World, org_id: int | None = None, role: str = "village_admin",
              who: str = "city") -> dict[str, Any]:
    body = {"username": f"audited_{next(_names)}", "password": "long-enough-pass", "role": role,
            "org_id": org_id or world.v1.id}
    r = client.post("/api/v1/users", json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return {**r.json(), "request_id": r.headers["X-Request-ID"]}


def _rows(db: Session, **where: Any) -> list[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.id).execution_options(populate_existing=True)
    for key, value in where.items():
        stmt = stmt.where(getattr(AuditLog, key) == value)
    return list(db.scalars(stmt))


def _audit_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditLog)) or 0


def _is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


# --- one row per change ------------------------------------------------------


def test_create_writes_one_row_with_after_and_request_id(client: TestClient, world: World, db: Session) -> None:
    user = _new_user(client, world)
    rows = _rows(db, entity="user", entity_id=str(user["id"]))
    assert len(rows) == 1
    row = rows[0]
    assert row.action == "user.create" and row.before is None
    assert row.after is not None and row.after["username"] == user["username"] and row.after["role"] == "village_admin"
    assert "password_hash" not in row.after and "password" not in row.after
    assert row.user_id == world.users["city"].id and row.username == "city_admin" and row.role == "city_admin"
    assert row.actor_org_id == world.city.id and row.org_id == world.v1.id
    assert row.request_id == user["request_id"]
    previous = db.scalar(select(AuditLog.hash).where(AuditLog.id == row.id - 1)) if row.id > 1 else audit.GENESIS_HASH
    assert row.prev_hash == previous
    assert row.hash == audit.row_digest(row.prev_hash, audit.hashed_fields(row))


def test_update_writes_only_changed_fields_and_never_a_password(
    client: TestClient, world: World, db: Session
) -> None:
    user = _new_user(client, world)
    r = client.patch(f"/api/v1/users/{user['id']}", json={"full_name": "李四", "password": "another-long-one"},
                     headers=world.auth("city"))
    assert r.status_code == 200, r.text
    rows = _rows(db, entity="user", entity_id=str(user["id"]))
    assert [r.action for r in rows] == ["user.create", "user.update"]
    update = rows[1]
    assert update.before is not None and update.after is not None
    assert update.before["full_name"] is None and update.after["full_name"] == "李四"
    assert update.after["password"] == "changed" and update.before.get("password") is None
    assert update.before["token_version"] + 1 == update.after["token_version"]
    assert "username" not in update.after  # unchanged fields are left out
    stored_hash = db.scalar(select(User.password_hash).where(User.id == user["id"]))
    assert stored_hash and stored_hash not in str(update.before) + str(update.after)


def test_request_failing_after_the_audit_write_leaves_no_row_and_no_change(
    client: TestClient, world: World, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = audit.record

    def record_then_crash(*args: Any, **kwargs: Any) -> AuditLog:
        real_record(*args, **kwargs)
        raise RuntimeError("crash after the audit row was written")

    monkeypatch.setattr(audit, "record", record_then_crash)
    before = _audit_count(db)
    head_before = db.scalar(select(AuditChainHead.last_id))
    body = {"username": "never_stored", "password": "long-enough-pass", "role": "village_admin",
            "org_id": world.v1.id}
    r = client.post("/api/v1/users", json=body, headers=world.auth("city"))
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _audit_count(db) == before
    assert db.scalar(select(AuditChainHead.last_id).execution_options(populate_existing=True)) == head_before
    assert db.scalar(select(User.id).where(User.username == "never_stored")) is None


def test_problem_raised_after_the_audit_write_rolls_back_too(
    client: TestClient, world: World, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = audit.record

    def record_then_refuse(*args: Any, **kwargs: Any) -> AuditLog:
        real_record(*args, **kwargs)
        raise ProblemError(409, "late_refusal", "refused after writing")

    monkeypatch.setattr(audit, "record", record_then_refuse)
    before = _audit_count(db)
    body = {"username": "refused_late", "password": "long-enough-pass", "role": "village_admin",
            "org_id": world.v1.id}
    r = client.post("/api/v1/users", json=body, headers=world.auth("city"))
    assert r.status_code == 409 and r.json()["code"] == "late_refusal"
    assert _audit_count(db) == before
    assert db.scalar(select(User.id).where(User.username == "refused_late")) is None


def test_personal_data_never_reaches_the_audit_log_or_its_export(
    client: TestClient, world: World, db: Session
) -> None:
    from tests import pii_guard
    from tests.factories import id_number

    first, second, mobile = id_number(), id_number(), "139" + f"{next(_names):08d}"
    h = world.auth("city")
    body = {"org_id": world.v1.id, "name": "扎西", "gender": "male", "member_status": "full",
            "joined_party_on": "2001-07-01", "id_number": first, "phone": mobile}
    created = client.post("/api/v1/people", json=body, headers=h)
    assert created.status_code == 201, created.text
    url = f"/api/v1/people/{created.json()['id']}"
    r = client.patch(url, json={"id_number": second}, headers={**h, "If-Match": created.headers["ETag"]})
    assert r.status_code == 200, r.text
    assert client.get(url, headers=world.auth("auditor")).json()["phone"] == mobile  # an audited unmasked read
    entity = {"entity": "person", "entity_id": str(created.json()["id"])}
    listed = client.get(URL, params=entity, headers=world.auth("auditor"))
    exported = client.get(URL, params=entity, headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert {row["action"] for row in listed.json()["items"]} >= {"person.create", "person.update", "person.pii_read"}
    for text_ in (listed.text, exported.text):
        assert pii_guard.unmasked_values(text_) == []
        for secret in (first, second, mobile, first[6:14]):
            assert secret not in text_
    for row in listed.json()["items"]:
        keys = set(row["before"] or {}) | set(row["after"] or {})
        assert not {k for k in keys if k.endswith(("_cipher", "_hash")) or k in {"id_number", "phone"}}, row


# --- GET /audit-log ---------------------------------------------------------


def test_city_admin_and_auditor_read_the_log_others_get_403(client: TestClient, world: World) -> None:
    _new_user(client, world)
    for who in ("city", "auditor"):
        r = client.get(URL, headers=world.auth(who))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "total", "limit", "offset", "next"} and body["total"] >= 1
    for who in ("t1", "t2", "v1"):
        r = client.get(URL, headers=world.auth(who))
        assert r.status_code == 403 and r.json()["code"] == "permission_denied"
        assert client.get(f"{URL}/verify", headers=world.auth(who)).status_code == 403
    assert client.get(URL).status_code == 401


def test_filters_narrow_the_log(client: TestClient, world: World, db: Session) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    a = _new_user(client, world, world.v1.id)
    b = _new_user(client, world, world.v2.id)
    c = _new_user(client, world, world.v1.id, who="t1")
    client.patch(f"/api/v1/users/{a['id']}", json={"full_name": "王五"}, headers=world.auth("city"))
    h = world.auth("auditor")

    def ids(**params: Any) -> list[str]:
        r = client.get(URL, params={"limit": 200, **params}, headers=h)
        assert r.status_code == 200, r.text
        return [row["entity_id"] for row in r.json()["items"]]

    assert ids(entity="user", entity_id=str(a["id"])) == [str(a["id"])] * 2
    assert ids(entity="user", entity_id=str(a["id"]), action="user.update") == [str(a["id"])]
    assert str(c["id"]) in ids(user_id=world.users["t1"].id)
    assert str(a["id"]) not in ids(user_id=world.users["t1"].id)
    mine = ids(**{"from": start.isoformat()}, entity="user")
    assert set(mine) == {str(a["id"]), str(b["id"]), str(c["id"])}
    assert ids(**{"to": start.isoformat()}, entity="user", entity_id=str(a["id"])) == []
    assert set(ids(org_id=world.t1.id, subtree="true", **{"from": start.isoformat()})) == {str(a["id"]), str(c["id"])}
    assert ids(org_id=world.t1.id, **{"from": start.isoformat()}) == []
    assert set(ids(org_id=world.v2.id, **{"from": start.isoformat()})) == {str(b["id"])}
    # Newest first by default; ?sort=id is oldest first.
    default = client.get(URL, params={"entity": "user", "entity_id": str(a["id"])}, headers=h).json()["items"]
    assert default[0]["action"] == "user.update"
    ascending = client.get(URL, params={"entity": "user", "entity_id": str(a["id"]), "sort": "id"}, headers=h)
    assert [row["action"] for row in ascending.json()["items"]] == ["user.create", "user.update"]
    row = ascending.json()["items"][0]
    assert {"prev_hash", "hash", "actor_org_id", "request_id", "before", "after"} <= set(row)


def test_clumsy_filters_are_422_or_404_never_500(client: TestClient, world: World) -> None:
    h = world.auth("city")
    for params in (
        {"from": "2020-01-01T00:00:00"},  # no offset
        {"from": "yesterday"},
        {"to": "0001-01-01T00:00:00+01:00"},
        {"to": "9999-12-31T23:00:00-05:00"},
        {"sort": "username"},
        {"entity": "x" * 65},
        {"user_id": 2**31},
        {"limit": 201},
        {"entity": ""},
    ):
        r = client.get(URL, params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"], params
    assert client.get(URL, params={"org_id": 2**31 - 1}, headers=h).status_code == 404


def test_csv_export(client: TestClient, world: World) -> None:
    user = _new_user(client, world)
    r = client.get(URL, params={"entity": "user", "entity_id": str(user["id"])},
                   headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,at,user_id,username,role,actor_org_id,org_id,action,entity,entity_id")
    assert len(lines) == 2 and "user.create" in lines[1]


def test_list_runs_a_fixed_number_of_statements(client: TestClient, world: World, engine: Engine) -> None:
    for _ in range(4):
        _new_user(client, world)
    counts = []
    for limit in (1, 4):
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])  # noqa: B023

        event.listen(engine, "before_cursor_execute", count)
        try:
            r = client.get(URL, params={"limit": limit}, headers=world.auth("auditor"))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert r.status_code == 200 and len(r.json()["items"]) == limit
        counts.append(len(statements))
    assert counts[0] == counts[1]


# --- /verify and tampering -----------------------------------------------------


def test_verify_reports_an_intact_chain(client: TestClient, world: World) -> None:
    _new_user(client, world)
    r = client.get(f"{URL}/verify", headers=world.auth("auditor"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["checked"] >= 1 and body["first_broken_id"] is None


def _disable_append_only(db: Session) -> None:
    """On PostgreSQL prove the trigger refuses edits, then switch it off for this (rolled-back) transaction."""
    if not _is_postgres(db):
        return
    last = db.scalar(select(func.max(AuditLog.id)))
    for statement in (f"UPDATE audit_log SET entity_id = 'forged' WHERE id = {last}",
                      f"DELETE FROM audit_log WHERE id = {last}",
                      "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement))
    db.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))


def _enable_append_only(db: Session) -> None:
    if _is_postgres(db):
        db.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


def test_edited_row_is_found_by_verify(client: TestClient, world: World, db: Session) -> None:
    users = [_new_user(client, world) for _ in range(3)]
    middle = _rows(db, entity="user", entity_id=str(users[1]["id"]))[0]
    _disable_append_only(db)
    try:
        db.execute(text("UPDATE audit_log SET entity_id = 'forged' WHERE id = :id"), {"id": middle.id})
        r = client.get(f"{URL}/verify", headers=world.auth("city"))
    finally:
        _enable_append_only(db)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["first_broken_id"] == middle.id
    assert body["checked"] == middle.id - 1 and "hash" in body["reason"]


def test_deleted_row_and_rehashed_row_are_found_by_verify(client: TestClient, world: World, db: Session) -> None:
    users = [_new_user(client, world) for _ in range(3)]
    first = _rows(db, entity="user", entity_id=str(users[0]["id"]))[0]
    second = _rows(db, entity="user", entity_id=str(users[1]["id"]))[0]
    _disable_append_only(db)
    try:
        # A forger who recomputes the edited row's own hash still breaks the link to the next row.
        forged = dict(audit.hashed_fields(first), entity_id="forged")
        new_hash = audit.row_digest(first.prev_hash, forged)
        db.execute(text("UPDATE audit_log SET entity_id = 'forged', hash = :h WHERE id = :id"),
                   {"h": new_hash, "id": first.id})
        r = client.get(f"{URL}/verify", headers=world.auth("city")).json()
        assert r["ok"] is False and r["first_broken_id"] == second.id and "prev_hash" in r["reason"]
        db.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": second.id})
        r = client.get(f"{URL}/verify", headers=world.auth("city")).json()
        assert r["ok"] is False and r["first_broken_id"] == second.id and "missing" in r["reason"]
        # Forged last row plus a chain head moved back to it: the head's hash still names the true last row.
        db.execute(text("UPDATE audit_chain_head SET last_id = :id WHERE id = 1"), {"id": first.id})
        r = client.get(f"{URL}/verify", headers=world.auth("city")).json()
        assert r["ok"] is False and r["first_broken_id"] == first.id and "head" in r["reason"]
        db.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": first.id})
        r = client.get(f"{URL}/verify", headers=world.auth("city")).json()
        assert r["ok"] is False and r["first_broken_id"] == first.id and "missing" in r["reason"]
    finally:
        _enable_append_only(db)


def test_verify_works_in_small_batches(client: TestClient, world: World, db: Session) -> None:
    users = [_new_user(client, world) for _ in range(5)]
    assert audit_service.verify(db, batch_size=2).ok
    target = _rows(db, entity="user", entity_id=str(users[3]["id"]))[0]
    _disable_append_only(db)
    try:
        db.execute(text("UPDATE audit_log SET action = 'user.forged' WHERE id = :id"), {"id": target.id})
        result = audit_service.verify(db, batch_size=2)
    finally:
        _enable_append_only(db)
    assert result.ok is False and result.first_broken_id == target.id


# --- concurrency (real commits, outside the rolled-back fixture) -----------


@pytest.fixture
def committed_actor(engine: Engine, world: World) -> Iterator[Actor]:
    city = world.users["city"]
    assert city.id is not None
    yield Actor(city.id, city.username, city.role, city.org_id, world.city.path, permissions_for(city.role))


def test_chain_stays_valid_under_concurrent_writers(committed_actor: Actor) -> None:
    threads, per_thread = 6, 5
    marker = f"concurrency_{next(_names)}_{dt.datetime.now(dt.UTC).timestamp()}"
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                session = core_db.new_session(write=True)
                try:
                    audit.record(session, actor=committed_actor, action="test.concurrent", entity=marker,
                                 entity_id=f"{n}-{i}", after={"n": n, "i": i})
                    session.commit()
                finally:
                    session.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    with core_db.session_scope(write=False) as session:
        mine = list(session.scalars(select(AuditLog).where(AuditLog.entity == marker).order_by(AuditLog.id)))
        assert len(mine) == threads * per_thread
        assert len({r.id for r in mine}) == len(mine)
        for row in mine:
            previous = session.scalar(select(AuditLog.hash).where(AuditLog.id == row.id - 1))
            assert row.prev_hash == (previous or audit.GENESIS_HASH)
            assert row.hash == audit.row_digest(row.prev_hash, audit.hashed_fields(row))
        result = audit_service.verify(session)
        assert result.ok, result


def test_a_session_reused_across_commits_appends_after_the_real_head(committed_actor: Actor) -> None:
    """Regression: sessions keep objects after commit; a cached chain head must not be reused (the head is read
    with a plain statement now, never as an ORM object, and this keeps the chain in order across reused sessions)."""
    marker = f"reuse_{next(_names)}_{dt.datetime.now(dt.UTC).timestamp()}"
    first = core_db.new_session(write=True)
    try:
        audit.record(first, actor=committed_actor, action="test.reuse", entity=marker, entity_id="1")
        held = first.get(AuditChainHead, 1)  # anything holding the head keeps it in the identity map
        first.commit()
        with core_db.session_scope() as other:
            audit.record(other, actor=committed_actor, action="test.reuse", entity=marker, entity_id="2")
        first.connection(execution_options={"sqlite_immediate": True})  # a new write transaction
        third = audit.record(first, actor=committed_actor, action="test.reuse", entity=marker, entity_id="3")
        first.commit()
    finally:
        first.close()
    assert held is not None
    with core_db.session_scope(write=False) as session:
        ids = list(session.scalars(select(AuditLog.entity_id).where(AuditLog.entity == marker).order_by(AuditLog.id)))
        assert ids == ["1", "2", "3"]
        assert third.prev_hash == session.scalar(select(AuditLog.hash).where(AuditLog.id == third.id - 1))
        assert audit_service.verify(session).ok


def test_an_append_writes_a_pending_change_first(db: Session, world: World) -> None:
    """record() is called after the change is flushed; a caller that forgot still gets its change written before
    the audit row (the row is written with plain statements, which flush nothing themselves)."""
    from app.models.organizations import Organization

    village = db.get(Organization, world.v1.id)
    assert village is not None
    village.name = "先写后记"
    audit.record(db, actor=Actor.system(), action="organization.update", entity="organization",
                 entity_id=village.id, org_id=village.id, after={"name": "先写后记"})
    with db.no_autoflush:
        assert not db.dirty
        assert db.scalar(select(Organization.name).where(Organization.id == world.v1.id)) == "先写后记"


def test_the_row_record_returns_has_the_columns_of_the_audit_log() -> None:
    """record() writes the AppendedRow's fields as the audit_log row: the two name the same columns, in order."""
    assert audit.AppendedRow._fields == tuple(c.key for c in AuditLog.__table__.columns)


def test_an_append_moves_the_chain_head_with_its_row(db: Session, world: World) -> None:
    """One append: the head is locked, then the row written and the head moved (on PostgreSQL in one statement,
    a data-modifying WITH; SQLite has none, so two); the head then names the new row and its hash."""
    seen: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = db.get_bind()
    db.execute(select(1))  # the test's own transaction (and savepoint) begun first
    event.listen(engine, "before_cursor_execute", log)
    try:
        row = audit.record(db, actor=Actor.system(), action="test.append", entity="test", entity_id=1)
    finally:
        event.remove(engine, "before_cursor_execute", log)
    expected = 2 if engine.dialect.name == "postgresql" else 3
    assert len(seen) == expected, seen
    assert "FOR UPDATE" in seen[0] or engine.dialect.name == "sqlite"
    head = db.execute(select(AuditChainHead.last_id, AuditChainHead.last_hash)
                      .where(AuditChainHead.id == 1)).one()
    stored = db.get(AuditLog, row.id)
    assert stored is not None and tuple(head) == (row.id, row.hash) == (stored.id, stored.hash)
    assert stored.hash == audit.row_digest(stored.prev_hash, audit.hashed_fields(stored))
