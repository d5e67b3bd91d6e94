"""Which requests open a writing transaction (on SQLite: BEGIN IMMEDIATE, so writers never hit a stale snapshot) and
which open a read-only session (autocommit on PostgreSQL, tests/test_read_sessions.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import app.deps as deps
from app.main import app
from tests.factories import World


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each session a request opened writes; a session that does not write is opened read-only."""
    seen: list[bool] = []
    original = deps.new_session

    def recording(*, write: bool = False, reads_only: bool = False) -> Any:
        assert reads_only is not write, "a request's session either writes or only reads"
        seen.append(write)
        return original(write=write, reads_only=reads_only)

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
