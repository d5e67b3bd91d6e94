"""A request that only reads: its session refuses writes, and on PostgreSQL it spends no round trips on BEGIN and
COMMIT (issue 8).

PostgreSQL runs at READ COMMITTED, where every statement of a transaction sees its own snapshot: wrapping a read
request's statements in BEGIN … COMMIT bought nothing but two of its three to five round trips. Writes, and reads
that write an audit row, keep their transaction. On SQLite a read keeps its transaction, which there does hold one
snapshot for all of its statements.

Through the real engine (not the per-test connection the other tests share), so the pool, the reader engine and
the reset of a connection between a read and a write are the ones the service uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from test_races import Subtree, auth, http, subtree  # noqa: F401  (fixtures)

from app.core import db as core_db
from app.models.organizations import Organization


def _in_transaction(dbapi_connection: Any) -> bool:
    """Whether the driver connection runs the statement inside a transaction it began."""
    if hasattr(dbapi_connection, "autocommit") and hasattr(dbapi_connection, "info"):  # psycopg 3
        return not dbapi_connection.autocommit
    return bool(dbapi_connection.in_transaction)  # sqlite3: BEGIN was sent before this statement


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """(first word of each statement, whether it ran in a transaction), for every statement the service runs."""
    seen: list[tuple[str, bool]] = []

    def note(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.upper().startswith("BEGIN"):  # SQLite's own, sent by app.core.db when a transaction begins
            return
        seen.append((statement.split(None, 1)[0].upper(), _in_transaction(conn.connection.dbapi_connection)))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_read_runs_without_begin_and_commit_on_postgresql_and_in_one_transaction_on_sqlite(
    http: TestClient, subtree: Subtree, engine: Engine, statements: list[tuple[str, bool]],  # noqa: F811
) -> None:
    path = f"/api/v1/organizations/{subtree.village}"
    read = http.get(path, headers=auth(subtree, "town"))
    assert read.status_code == 200, read.text
    assert statements, "the read ran its statements through the engine"
    if engine.dialect.name == "postgresql":
        assert not any(in_tx for _, in_tx in statements), statements
    else:
        assert all(in_tx for _, in_tx in statements), statements

    # The same pool then serves a write, which has its transaction whatever connection it is given.
    statements.clear()
    written = http.patch(path, headers=auth(subtree, "town", **{"If-Match": read.headers["ETag"]}),
                         json={"name": "读写分明村"})
    assert written.status_code == 200, written.text
    kinds = {kind for kind, _ in statements}
    assert {"UPDATE", "INSERT"} <= kinds, statements  # the change and its audit row
    assert all(in_tx for _, in_tx in statements), statements

    # And a read after the write is a read again: no connection keeps the write's mode or the read's.
    statements.clear()
    again = http.get(path, headers=auth(subtree, "town"))
    assert again.status_code == 200 and again.json()["name"] == "读写分明村"
    assert all(in_tx == (engine.dialect.name == "sqlite") for _, in_tx in statements), statements


def test_a_read_only_session_refuses_to_flush_a_change(engine: Engine) -> None:
    session = core_db.new_session(reads_only=True)
    try:
        session.add(Organization(name="不该写入", level="village", domain="rural", path="/0/"))
        with pytest.raises(RuntimeError, match="read-only session cannot write"):
            session.flush()
    finally:
        session.rollback()
        session.close()


def test_a_write_session_is_not_read_only(engine: Engine) -> None:
    for write in (True, False):
        session = core_db.new_session(write=write)
        try:
            assert core_db.READ_ONLY not in session.info
        finally:
            session.close()
    reading = core_db.new_session(reads_only=True)
    try:
        assert reading.info[core_db.READ_ONLY] is True
        assert (reading.get_bind().dialect.name == "postgresql") == (reading.get_bind() is not core_db.get_engine())
    finally:
        reading.close()
