"""Which requests open a writing transaction (on SQLite: BEGIN IMMEDIATE, so writers never hit a stale snapshot)."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request

from app.deps import _writes
from app.main import app


def _request(method: str, operation_id: str) -> Request:
    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.operation_id == operation_id)
    return Request({"type": "http", "method": method, "headers": [], "route": route, "path": route.path})


def test_writes_open_a_writing_transaction() -> None:
    assert _writes(_request("POST", "organizations_create"))
    assert _writes(_request("PATCH", "organizations_update"))


def test_plain_reads_do_not() -> None:
    assert not _writes(_request("GET", "organizations_list"))


def test_audited_reads_of_personal_data_do() -> None:
    # A GET by a pii_read role appends an audit row: it must not start as a read transaction.
    assert _writes(_request("GET", "people_get"))
    assert _writes(_request("GET", "people_list"))
    spec = app.openapi()
    assert spec["paths"]["/api/v1/people/{person_id}"]["get"]["x-audited-read"] is True
