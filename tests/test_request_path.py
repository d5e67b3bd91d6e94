"""The request path of issue 8: fixed SQL statements per get and list, cheap dependencies on the event loop,
and SQLite writers queued on one in-process lock that every ended transaction releases."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core import db as core_db
from app.core.pagination import page_params
from app.core.permissions import Permission
from app.deps import get_session, require
from app.routers.meta import healthz
from tests.factories import World, make_org


@contextmanager
def statements(db: Session) -> Iterator[list[str]]:
    """The statements the app sends through the test's connection, savepoints left out."""
    seen: list[str] = []
    conn = db.get_bind()

    def before(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if "SAVEPOINT" not in statement.upper():
            seen.append(statement)

    event.listen(conn, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", before)


def test_get_by_id_is_the_actor_lookup_and_the_record(client: TestClient, world: World, db: Session) -> None:
    with statements(db) as seen:
        r = client.get(f"/api/v1/organizations/{world.v1.id}", headers=world.auth("v1"))
    assert r.status_code == 200, r.text
    assert len(seen) == 2, seen  # one query finds the user, its token version and its scope; one the record


def test_lists_cost_the_same_statements_whatever_the_page_size_or_organisations(
    client: TestClient, world: World, db: Session
) -> None:
    def count(url: str, who: str) -> int:
        with statements(db) as seen:
            r = client.get(url, headers=world.auth(who))
        assert r.status_code == 200, r.text
        return len(seen)

    lists = [("/api/v1/organizations?limit={n}", "city"),
             (f"/api/v1/organizations?org_id={world.t1.id}&subtree=true&limit={{n}}", "t1"),
             (f"/api/v1/people?org_id={world.t1.id}&subtree=true&limit={{n}}", "t1")]
    before = {url: {count(url.format(n=n), who) for n in (1, 50)} for url, who in lists}
    for i in range(12):
        make_org(db, world.t1, level="village", domain="rural", name=f"加测村{i}", code=f"513301001{300 + i}")
    db.flush()
    after = {url: {count(url.format(n=n), who) for n in (1, 50)} for url, who in lists}
    for url, _ in lists:
        assert len(before[url]) == 1 and before[url] == after[url], (url, before[url], after[url])
    assert before["/api/v1/organizations?limit={n}"] == {3}  # actor, total, page


def test_dependencies_without_io_run_on_the_event_loop() -> None:
    # A sync dependency or endpoint costs a hop to a worker thread and back (about 5 % of a get-by-id's CPU
    # each on the bench); these do no I/O, so they stay async.
    assert inspect.isasyncgenfunction(get_session)
    assert inspect.iscoroutinefunction(page_params)
    assert inspect.iscoroutinefunction(require(Permission.org_read))
    assert inspect.iscoroutinefunction(healthz)


@pytest.fixture
def sqlite_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "sqlite":
        pytest.skip("the writer lock is SQLite's")
    return engine


def test_sqlite_writers_hold_the_process_lock_from_begin_until_the_connection_returns(
    sqlite_engine: Engine, world: World
) -> None:
    lock = core_db.writer_lock(sqlite_engine)
    assert lock is not None and not lock.locked()
    session = core_db.new_session(write=True)
    assert not lock.locked()  # making a writing session does no I/O and takes nothing yet
    try:
        session.execute(select(1))
        assert lock.locked()  # BEGIN IMMEDIATE, behind the lock
        session.commit()
        assert not lock.locked()
        session.execute(select(1))  # the next transaction of the same session takes it again
        assert lock.locked()
        session.rollback()
        assert not lock.locked()
        session.execute(select(1))
    finally:
        session.close()
    assert not lock.locked()
    reader = core_db.new_session()
    try:
        reader.execute(select(1))
        assert not lock.locked()  # plain reads never queue behind writers
    finally:
        reader.close()


def test_a_repeated_write_compiles_no_statement_again(client: TestClient, world: World, db: Session) -> None:
    # SQLAlchemy compiles a statement once and reuses it by its cache key; a statement it cannot key, or one built
    # so that its key differs on every call, would be compiled on every request (a few hundred microseconds each).
    # The statements an audited create runs are all served from the compiled cache the second time.
    from sqlalchemy.engine.default import CACHE_HIT

    seen: list[tuple[str, Any]] = []

    def after(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _many: bool) -> None:
        seen.append((statement.split(None, 1)[0], context.cache_hit))

    def create(name: str) -> None:
        body = {"parent_id": world.v1.id, "level": "branch", "domain": "rural", "name": name}
        assert client.post("/api/v1/organizations", json=body, headers=world.auth("t1")).status_code == 201

    create("预热支部")
    engine = db.get_bind()
    event.listen(engine, "after_cursor_execute", after)
    try:
        create("再建支部")
    finally:
        event.remove(engine, "after_cursor_execute", after)
    compiled = [(word, hit) for word, hit in seen
                if word not in ("BEGIN", "SAVEPOINT", "RELEASE") and hit is not CACHE_HIT]
    assert seen and not compiled, compiled
