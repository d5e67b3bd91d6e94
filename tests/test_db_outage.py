"""The database goes away: requests answer a 503 problem with Retry-After within a bounded time, a transaction cut
off in the middle leaves nothing behind, and the service recovers without a restart when the database is back.

PostgreSQL: the app's connections are killed from a separate admin connection (pg_terminate_backend), and the
server "goes away" behind a loopback TCP relay that is stopped and started again on the same port. SQLite: a
database file locked by another process answers 503 (not 500) once the busy timeout runs out.
These tests use the committed base world and change nothing in it.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url

from app.core import db as core_db
from app.models.audit import AuditLog
from app.models.organizations import Organization
from tests.factories import World
from tests.pg_waits import lock_waiters

BOUND_S = 10.0  # connect_timeout (5 s) and pool_timeout (10 s) bound every wait; a refused connection is at once


def _on(engine: Engine, dialect: str) -> None:
    if engine.dialect.name != dialect:
        pytest.skip(f"{dialect} only")


@pytest.fixture(autouse=True)
def _suite_engine_back(engine: Engine) -> Iterator[None]:
    """These tests point the service at engines of their own; afterwards the suite's engine (the one the `engine`
    fixture and its SQLite writer lock belong to) is the service's again, and theirs are disposed."""
    holder = core_db._holder
    saved = (holder.engine, holder.factory, holder.writer)
    yield
    for own in {holder.engine, holder.writer} - {saved[0], saved[2], None}:
        own.dispose()  # type: ignore[union-attr]
    holder.engine, holder.factory, holder.writer = saved


@pytest.fixture
def http(engine: Engine) -> TestClient:
    from app.main import app

    return TestClient(app, raise_server_exceptions=False)


def _assert_unavailable(r: Any, elapsed: float) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "database_unavailable"
    assert r.headers["Retry-After"].isdigit()
    # As the contract documents it for every route that uses the database (app.core.openapi).
    from app.main import app

    documented = app.openapi()["components"]["responses"]["DatabaseUnavailable"]
    example = documented["content"]["application/problem+json"]["example"]
    assert {k: r.json()[k] for k in ("type", "title", "status", "code")} == {
        k: example[k] for k in ("type", "title", "status", "code")}
    assert elapsed < BOUND_S, f"answered after {elapsed:.1f} s"


def _timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    r = call()
    return r, time.monotonic() - start


def _state(org_id: int) -> tuple[Any, ...]:
    with core_db.session_scope(write=False) as s:
        org = s.get(Organization, org_id)
        assert org is not None
        audit_rows = s.scalar(select(func.count()).select_from(AuditLog))
        return org.name, org.version, audit_rows


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


class Relay:
    """A loopback TCP relay in front of PostgreSQL: stop() is the server going away, start() its return."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
        self.listener.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(engine: Engine, database_url: str) -> Iterator[Relay]:
    _on(engine, "postgresql")
    url = make_url(database_url)
    box = Relay((url.host or "127.0.0.1", url.port or 5432))
    box.start()
    core_db.configure_engine(url.set(host="127.0.0.1", port=box.port).render_as_string(hide_password=False))
    try:
        yield box
    finally:
        core_db.configure_engine(database_url)
        with contextlib.suppress(OSError):
            box.stop()


def test_server_gone_answers_503_quickly_and_the_service_recovers_when_it_is_back(
    http: TestClient, world: World, relay: Relay
) -> None:
    path, h = f"/api/v1/organizations/{world.v1.id}", world.auth("city")
    warm = http.get(path, headers=h)
    assert warm.status_code == 200
    before = _state(world.v1.id)
    relay.stop()
    for call in (lambda: http.get(path, headers=h),
                 lambda: http.patch(path, headers={**h, "If-Match": warm.headers["ETag"]}, json={"name": "断线村"})):
        _assert_unavailable(*_timed(call))
    relay.start()  # the database is back, on the same address; the service was not restarted
    again = http.get(path, headers=h)
    assert again.status_code == 200 and again.json() == warm.json()
    assert _state(world.v1.id) == before


def _admin(database_url: str) -> Engine:
    return create_engine(database_url, isolation_level="AUTOCOMMIT")


def test_connections_killed_under_the_app_are_replaced_without_a_restart(
    http: TestClient, world: World, engine: Engine, database_url: str
) -> None:
    _on(engine, "postgresql")
    path, h = f"/api/v1/organizations/{world.v1.id}", world.auth("city")
    assert http.get(path, headers=h).status_code == 200  # the pool holds live connections
    admin = _admin(database_url)
    try:
        with admin.connect() as conn:
            killed = conn.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        assert killed
        for _ in range(3):  # every pooled connection was dead: each is found closed on checkout and replaced
            assert http.get(path, headers=h).status_code == 200
    finally:
        admin.dispose()


def test_a_connection_idle_past_the_keepalive_is_pinged_and_replaced_if_it_does_not_answer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer gone without a word leaves nothing to read on the socket: a pooled connection idle longer than
    IDLE_PING_SECONDS is asked SELECT 1 on checkout (and replaced if that fails); one used recently is not."""
    _on(engine, "postgresql")
    engine.dispose()
    pings: list[Any] = []
    answer = engine.dialect.do_ping
    fail = {"next": False}

    def ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        if fail.pop("next", False):
            raise engine.dialect.loaded_dbapi.OperationalError("no answer")
        return answer(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", ping)
    with engine.connect() as conn:
        first = conn.connection.dbapi_connection
    with engine.connect() as conn:  # just checked in: no ping
        assert conn.connection.dbapi_connection is first and conn.scalar(text("SELECT 1")) == 1
    assert pings == []
    monkeypatch.setattr(core_db, "IDLE_PING_SECONDS", -1)
    with engine.connect() as conn:  # "idle too long": pinged, answers, kept
        assert conn.connection.dbapi_connection is first
    assert pings == [first]
    fail["next"] = True
    with engine.connect() as conn:  # pinged, no answer: replaced by a new connection that works
        assert conn.connection.dbapi_connection is not first and conn.scalar(text("SELECT 1")) == 1
    assert pings[-1] is first


def test_a_transaction_killed_mid_write_leaves_nothing_behind(
    http: TestClient, world: World, engine: Engine, database_url: str
) -> None:
    """The PATCH has updated the organisation and waits for the audit chain's head (held by the admin connection)
    when its backend is terminated: the answer is a 503 and neither the change nor an audit row remains."""
    _on(engine, "postgresql")
    path, h = f"/api/v1/organizations/{world.v1.id}", world.auth("city")
    etag = http.get(path, headers=h).headers["ETag"]
    before = _state(world.v1.id)
    admin = _admin(database_url)
    result: list[tuple[Any, float]] = []
    try:
        with admin.connect() as holder, admin.connect() as killer:
            holder.execute(text("BEGIN"))
            holder.execute(text("SELECT * FROM audit_chain_head FOR UPDATE"))
            writer = threading.Thread(target=lambda: result.append(_timed(
                lambda: http.patch(path, headers={**h, "If-Match": etag}, json={"name": "半途村"}))))
            writer.start()
            waiting = lock_waiters(killer)
            assert waiting, "the PATCH never reached the audit chain's lock"
            killer.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) AS pid"),
                           {"p": waiting})
            writer.join(timeout=30)
            holder.execute(text("ROLLBACK"))
    finally:
        admin.dispose()
    assert result, "the PATCH did not answer"
    _assert_unavailable(*result[0])
    assert _state(world.v1.id) == before
    assert http.get(path, headers=h).headers["ETag"] == etag  # and the service answers again


def test_a_statement_stuck_past_the_statement_timeout_answers_503_and_leaves_nothing_behind(
    http: TestClient, world: World, engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATCH whose UPDATE waits on a row lock that is never released: the server cancels the statement after
    DB_STATEMENT_TIMEOUT_MS, the answer is a 503 that says so, nothing is stored, and the next request works."""
    _on(engine, "postgresql")
    from app.core.config import get_settings

    monkeypatch.setattr(get_settings(), "db_statement_timeout_ms", 700)
    core_db.configure_engine(database_url)
    try:
        path, h = f"/api/v1/organizations/{world.v1.id}", world.auth("city")
        etag = http.get(path, headers=h).headers["ETag"]
        before = _state(world.v1.id)
        admin = _admin(database_url)
        try:
            with admin.connect() as holder:
                holder.execute(text("BEGIN"))
                holder.execute(text("SELECT * FROM organization WHERE id = :id FOR UPDATE"), {"id": world.v1.id})
                r, elapsed = _timed(lambda: http.patch(path, headers={**h, "If-Match": etag}, json={"name": "久等村"}))
                holder.execute(text("ROLLBACK"))
        finally:
            admin.dispose()
        _assert_unavailable(r, elapsed)
        assert r.json()["detail"] == "The database did not answer in the time allowed; try again shortly."
        assert elapsed >= 0.7
        assert _state(world.v1.id) == before
        with core_db.get_engine().connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "700ms"
        assert http.get(path, headers=h).headers["ETag"] == etag
    finally:
        # The tests after this one get the service's own statement timeout again, not 700 ms.
        monkeypatch.undo()
        core_db.configure_engine(database_url)
    with core_db.get_engine().connect() as conn:
        assert conn.scalar(text("SHOW statement_timeout")) != "700ms"


def test_migrations_and_bulk_loads_run_without_the_statement_timeout(engine: Engine, database_url: str) -> None:
    _on(engine, "postgresql")
    own = core_db.create_db_engine(database_url, pool_size=1, statement_timeout_ms=0)
    try:
        with own.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        own.dispose()


# --- SQLite -------------------------------------------------------------------------------------------------------


def test_a_locked_database_file_answers_503_with_retry_after(
    http: TestClient, world: World, engine: Engine, database_url: str
) -> None:
    _on(engine, "sqlite")
    # The service waits up to 30 s for SQLite's write lock (busy_timeout); the test waits 0.3 s.
    short = core_db.configure_engine(database_url)

    @event.listens_for(short, "connect")
    def _short_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=300")

    path, h = f"/api/v1/organizations/{world.v1.id}", world.auth("city")
    etag = http.get(path, headers=h).headers["ETag"]
    before = _state(world.v1.id)
    other = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        r, elapsed = _timed(lambda: http.patch(path, headers={**h, "If-Match": etag}, json={"name": "锁住村"}))
        _assert_unavailable(r, elapsed)
        assert http.get(path, headers=h).status_code == 200  # readers are not blocked (WAL)
        other.execute("ROLLBACK")
    finally:
        other.close()
        core_db.configure_engine(database_url)
    assert _state(world.v1.id) == before
    assert http.get(path, headers=h).headers["ETag"] == etag
