"""A request that only reads: its session refuses writes; its statements run in a transaction, except a short
read's on PostgreSQL.

Reads in autocommit on PostgreSQL were tried for every read (issue 8: BEGIN and COMMIT are two of a get by id's five
round trips, and at READ COMMITTED the transaction gives its statements no common snapshot). The benchmark then
found the dues arrears merge answering 500: its server-side cursors (DECLARE) need a transaction block. Now only
the short reads (one record by id, a cached summary; app.deps) run their statements alone. The other tests could
not see it, because they share one connection per test, already in a transaction. These tests therefore go through
the real engine and its pool, as the service does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from test_races import Subtree, auth, http, subtree  # noqa: F401  (fixtures)

from app.core import db as core_db
from app.models.organizations import Organization

WORKER_THREAD = "AnyIO worker thread"  # the name anyio gives the threads of run_in_threadpool


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

    # On every engine: the app's short reads on PostgreSQL run on an autocommit copy of it (app.core.db), which
    # does not see a listener its parent gets after the copy was made (once a test has made the engine again).
    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def test_reads_and_writes_run_their_statements_in_a_transaction_but_short_reads_on_postgresql(
    http: TestClient, subtree: Subtree, engine: Engine, statements: list[tuple[str, bool]],  # noqa: F811
) -> None:
    alone = engine.dialect.name == "postgresql"  # a short read's statements run on their own there
    path = f"/api/v1/organizations/{subtree.village}"
    read = http.get(path, headers=auth(subtree, "town"))
    assert read.status_code == 200, read.text
    assert statements, "the read ran its statements through the engine"
    assert [in_tx for _, in_tx in statements] == [not alone] * len(statements), statements

    # A list is not a short read: a transaction, on a connection of the same pool.
    statements.clear()
    assert http.get(f"/api/v1/organizations?org_id={subtree.town}&subtree=true",
                    headers=auth(subtree, "town")).status_code == 200
    assert len(statements) >= 2 and all(in_tx for _, in_tx in statements), statements

    # The same pool then serves a write, which has its transaction whatever connection it is given.
    statements.clear()
    written = http.patch(path, headers=auth(subtree, "town", **{"If-Match": read.headers["ETag"]}),
                         json={"name": "读写分明村"})
    assert written.status_code == 200, written.text
    kinds = {kind for kind, _ in statements}
    assert {"UPDATE", "INSERT"} <= kinds, statements  # the change and its audit row
    assert all(in_tx for _, in_tx in statements), statements

    statements.clear()
    again = http.get(path, headers=auth(subtree, "town"))
    assert again.status_code == 200 and again.json()["name"] == "读写分明村"
    assert [in_tx for _, in_tx in statements] == [not alone] * len(statements), statements


def test_a_cached_summary_is_a_short_read(
    http: TestClient, subtree: Subtree, engine: Engine, statements: list[tuple[str, bool]],  # noqa: F811
) -> None:
    url = f"/api/v1/problems/summary?year=2019&org_id={subtree.root}&rollup=true"
    for _ in range(2):  # computed, then answered from the cache
        statements.clear()
        assert http.get(url, headers=auth(subtree, "city")).status_code == 200
        assert statements and all(in_tx is (engine.dialect.name == "sqlite") for _, in_tx in statements), statements


def test_a_summary_is_computed_in_a_worker_thread_and_answered_from_memory_in_the_loop(
    http: TestClient, subtree: Subtree, engine: Engine,  # noqa: F811
) -> None:
    """A computation at city scope takes 30-300 ms: on SQLite, where a cached summary is a short read served in the
    event loop, a cold or stale one stops there before its first statement and runs again in a worker thread, so
    the loop keeps serving. On PostgreSQL every statement of a read runs in a worker thread."""
    from app.core import report_cache

    report_cache.clear()
    url = f"/api/v1/problems/summary?year=2019&org_id={subtree.root}&rollup=true"
    threads: list[tuple[str, str]] = []  # (thread, first word) of every statement but the tokens' read

    def note_thread(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "data_generation" not in statement:
            threads.append((threading.current_thread().name, statement.split(None, 1)[0].upper()))

    event.listen(Engine, "before_cursor_execute", note_thread)
    try:
        cold = http.get(url, headers=auth(subtree, "city"))
        assert cold.status_code == 200, cold.text
        computed = [name for name, kind in threads[1:]]  # after the caller's lookup
        assert computed and all(name == WORKER_THREAD for name in computed), threads
        threads.clear()
        warm = http.get(url, headers=auth(subtree, "city"))
        assert warm.status_code == 200 and warm.json() == cold.json()
        sqlite = engine.dialect.name == "sqlite"
        assert [name == WORKER_THREAD for name, _ in threads] == [not sqlite], threads  # the caller's lookup only
    finally:
        event.remove(Engine, "before_cursor_execute", note_thread)


def test_an_audited_read_that_writes_nothing_is_short(
    http: TestClient, subtree: Subtree, engine: Engine, statements: list[tuple[str, bool]],  # noqa: F811
) -> None:
    """A person by id, masked for a township administrator: a short read, as any record by id (on PostgreSQL
    its statements run alone, on SQLite in a transaction, in the event loop)."""
    from app.core.db import session_scope
    from tests.factories import id_number, make_person

    with session_scope() as s:
        village = s.get(Organization, subtree.village)
        assert village is not None
        person_id = make_person(s, village, name="短读人", id_no=id_number(birth="19700808", seq=808)).id
    path = f"/api/v1/people/{person_id}"
    threads: list[str] = []  # on SQLite a short read runs in the event loop, anything else in a worker thread

    def note_thread(*_: Any) -> None:
        threads.append(threading.current_thread().name)

    event.listen(Engine, "before_cursor_execute", note_thread)
    try:
        statements.clear()
        masked = http.get(path, headers=auth(subtree, "town"))
        assert masked.status_code == 200, masked.text
        assert "*" in masked.json()["id_number"]
        assert statements and {kind for kind, _ in statements} == {"SELECT"}, statements
        sqlite = engine.dialect.name == "sqlite"
        assert [in_tx for _, in_tx in statements] == [sqlite] * len(statements), statements
        assert threads and all((name == WORKER_THREAD) is not sqlite for name in threads), threads
        # An unmasked read (the city's) writes its audit row in a worker thread: tests/test_sessions.py, in a
        # transaction rolled back after the test; here, through the real engine, its row would be committed.
    finally:
        event.remove(Engine, "before_cursor_execute", note_thread)


def test_the_dues_arrears_merge_reads_through_server_side_cursors_of_a_read_request(
    http: TestClient, subtree: Subtree, statements: list[tuple[str, bool]],  # noqa: F811
) -> None:
    """Three streamed statements (a server-side cursor each on PostgreSQL) in one read request: 500 when the
    read ran in autocommit."""
    r = http.get(f"/api/v1/party-dues/arrears?org_id={subtree.root}&subtree=true&as_of=2019-12",
                 headers=auth(subtree, "city"))
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    assert len(statements) >= 3 and all(in_tx for _, in_tx in statements), statements


def test_a_read_only_session_refuses_to_flush_a_change(engine: Engine) -> None:
    session = core_db.new_session()
    try:
        session.add(Organization(name="不该写入", level="village", domain="rural", path="/0/"))
        with pytest.raises(RuntimeError, match="read-only session cannot write"):
            session.flush()
    finally:
        session.rollback()
        session.close()


def test_a_session_that_does_not_write_is_read_only(engine: Engine) -> None:
    for write in (True, False):
        session = core_db.new_session(write=write)
        try:
            assert session.info.get(core_db.READ_ONLY, False) is not write
        finally:
            session.close()


def test_sqlite_hands_out_a_connection_without_waiting_however_many_are_out(tmp_path: Path) -> None:
    # A SQLite read takes its connection in the event loop (app.deps): with a bounded pool, the loop would wait
    # there for a connection held by a request that needs the loop to go on (a streamed export, a queued list).
    engine = core_db.create_db_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_size=2)
    held = []
    try:
        for _ in range(12):  # 3 x (pool_size + the old overflow of pool_size)
            held.append(engine.connect())
        assert all(conn.exec_driver_sql("SELECT 1").scalar() == 1 for conn in held)
    finally:
        for conn in held:
            conn.close()
        engine.dispose()


def test_a_read_that_changed_an_entity_is_refused_when_it_ends(
    subtree: Subtree, engine: Engine,  # noqa: F811
) -> None:
    """A request's read ends without a commit on SQLite (app.deps._finish): one that changed an entity by mistake
    must still meet the read-only session's refusal, never answer as if the change were kept."""
    from app.deps import _finish

    session = core_db.new_session()
    village = session.get(Organization, subtree.village)
    assert village is not None
    village.name = "读时被改"
    with pytest.raises(RuntimeError, match="read-only session cannot write"):
        _finish(session, commit=True)
    with core_db.session_scope(write=False) as check:
        assert check.get(Organization, subtree.village).name != "读时被改"  # type: ignore[union-attr]
