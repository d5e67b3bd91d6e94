"""Which requests open a writing transaction (on SQLite: BEGIN IMMEDIATE, so writers never hit a stale snapshot) and
which open a read-only session (autocommit on PostgreSQL, tests/test_read_sessions.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import app.deps as deps
from app.main import app
from app.models.organizations import Organization
from tests.factories import World, make_person


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each session a request opened writes; a session that does not write is opened read-only."""
    seen: list[bool] = []
    original = deps.new_session

    def recording(*, write: bool = False, alone: bool = False) -> Any:
        seen.append(write)
        return original(write=write, alone=alone)

    monkeypatch.setattr(deps, "new_session", recording)
    return seen


def test_writes_open_a_writing_transaction(client: TestClient, world: World, opened: list[bool]) -> None:
    r = client.patch(f"/api/v1/organizations/{world.v1.id}", json={"name": "x"}, headers=world.auth("t1"))
    assert r.status_code == 428
    assert opened == [True]


def test_plain_reads_do_not(client: TestClient, world: World, opened: list[bool]) -> None:
    assert client.get("/api/v1/organizations", headers=world.auth("city")).status_code == 200
    assert opened == [False]


def test_audited_reads_of_personal_data_do(client: TestClient, world: World, opened: list[bool]) -> None:
    # A GET by a pii_read role appends an audit row: it must not start as a read transaction.
    assert client.get("/api/v1/people", headers=world.auth("auditor")).status_code == 200
    assert opened == [True]
    assert app.openapi()["paths"]["/api/v1/people/{person_id}"]["get"]["x-audited-read"] is True


def test_reads_of_people_without_pii_read_stay_plain_reads(client: TestClient, world: World,
                                                          opened: list[bool]) -> None:
    assert client.get("/api/v1/people", headers=world.auth("t1")).status_code == 200
    assert opened == [False]


def _where_each_call_runs(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Record, for each call of app.deps.<name>, whether it ran in the event loop or in a worker thread."""
    seen: list[str] = []
    original = getattr(deps, name)

    def recording(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return original(*args)

    monkeypatch.setattr(deps, name, recording)
    return seen


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each lookup of the caller ran."""
    return _where_each_call_runs(monkeypatch, "_actor_of")


def test_a_read_looks_its_caller_up_in_the_event_loop_on_sqlite_only(
    client: TestClient, world: World, db: Session, lookups: list[str]
) -> None:
    # A SQLite read waits on no lock and no network: no hop to a worker thread for one row. A PostgreSQL round
    # trip may wait on the network, which the event loop must never do.
    assert client.get(f"/api/v1/organizations/{world.v1.id}", headers=world.auth("v1")).status_code == 200
    assert lookups == ["event loop" if db.get_bind().dialect.name == "sqlite" else "worker thread"]


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each synchronous endpoint ran, with the commit of its session."""
    return _where_each_call_runs(monkeypatch, "_call_and_commit")


def test_a_read_runs_its_endpoint_in_the_event_loop_on_sqlite_only(
    client: TestClient, world: World, db: Session, endpoints: list[str]
) -> None:
    # A person by id is an audited read; for a caller without pii_read it writes nothing and is a read like the
    # others. A summary is answered from memory in the loop; the first request, which computes it, stops in the
    # loop before its first statement and runs again in a worker thread (tests/test_read_sessions.py).
    from app.core import report_cache

    report_cache.clear()
    person = make_person(db, world.v1, name="循环读")
    db.flush()
    for path in (f"/api/v1/organizations/{world.v1.id}", "/api/v1/problems/summary", "/api/v1/problems/summary",
                 f"/api/v1/people/{person.id}"):
        assert client.get(path, headers=world.auth("t1")).status_code == 200
    if db.get_bind().dialect.name == "sqlite":
        assert endpoints == ["event loop", "event loop", "worker thread", "event loop", "event loop"]
    else:
        assert endpoints == ["worker thread"] * 4


def test_other_reads_run_in_a_worker_thread(client: TestClient, world: World, db: Session,
                                            endpoints: list[str]) -> None:
    # List pages and whole-log checks may scan many rows: in a worker thread SQLite's C code runs beside the
    # event loop's Python, and the loop keeps serving. A read of a person by a pii_read caller writes its audit
    # row, which takes the write lock: it never runs in the loop.
    person = make_person(db, world.v1, name="线程读")
    db.flush()
    for who, path in (("t1", "/api/v1/organizations"), ("t1", "/api/v1/people?limit=5"),
                      ("t1", "/api/v1/assignments?limit=5"), ("city", "/api/v1/audit-log/verify"),
                      ("city", f"/api/v1/people/{person.id}")):
        assert client.get(path, headers=world.auth(who)).status_code == 200, path
    assert endpoints == ["worker thread"] * 5


def test_a_write_runs_its_endpoint_in_a_worker_thread(client: TestClient, world: World, db: Session,
                                                      endpoints: list[str]) -> None:
    version = db.get(Organization, world.v1.id)
    assert version is not None
    r = client.patch(f"/api/v1/organizations/{world.v1.id}", json={"name": "改名村"},
                     headers={**world.auth("t1"), "If-Match": f'"{version.version}"'})
    assert r.status_code == 200, r.text
    assert endpoints == ["worker thread"]


def test_a_write_looks_its_caller_up_in_a_worker_thread(client: TestClient, world: World,
                                                         lookups: list[str]) -> None:
    # On SQLite a write's first statement takes the write lock (BEGIN IMMEDIATE), which may be held elsewhere.
    r = client.patch(f"/api/v1/organizations/{world.v1.id}", json={"name": "x"}, headers=world.auth("t1"))
    assert r.status_code == 428
    assert lookups == ["worker thread"]


def test_a_revoked_token_is_refused_wherever_the_lookup_runs(client: TestClient, world: World, db: Session,
                                                              lookups: list[str]) -> None:
    from app.models.accounts import User

    headers = world.auth("v1")
    user = db.get(User, world.users["v1"].id)
    assert user is not None
    user.token_version += 1
    db.flush()
    for call in (lambda: client.get(f"/api/v1/organizations/{world.v1.id}", headers=headers),
                 lambda: client.patch(f"/api/v1/organizations/{world.v1.id}", json={"name": "x"}, headers=headers)):
        r = call()
        assert r.status_code == 401 and r.json()["detail"] == "The token has been revoked."
    assert len(lookups) == 2
