"""Engine, sessions and the column types every area shares."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from app.core.config import get_settings
from app.core.loops import per_loop

# Must be set before any table class is defined so constraint names are stable
# across engines and migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as UTC; always returned timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


WRITER_WAIT_SECONDS = 30  # as long as SQLite's busy_timeout below
_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def writer_lock(engine: Engine) -> threading.Lock | None:
    """The lock this process's SQLite writers queue on (None on PostgreSQL)."""
    return _WRITER_LOCKS.get(engine)


def create_db_engine(url: str, *, pool_size: int | None = None, statement_timeout_ms: int | None = None) -> Engine:
    """The engine for `url`. `statement_timeout_ms` (PostgreSQL; None: the service's setting, 0: no limit)."""
    from sqlalchemy import create_engine

    parsed = make_url(url)
    settings = get_settings()
    size = pool_size or settings.db_pool_size
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Keep as many connections as requests in flight: the default pool of 5 closed every extra one
            # on return, and each new one pays its PRAGMAs (14 % of a get-by-id's CPU under load, issue 8).
            # No upper limit: a read's caller lookup takes its connection in the event loop (app.deps), which
            # must never wait for one held by a request that needs the loop to go on (a streamed export, a
            # list queued for a worker thread). A SQLite connection is a file handle.
            pool = {"pool_size": size, "max_overflow": -1}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True,
                               **pool)
        _configure_sqlite(engine)
        return engine
    timeout = settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    engine = create_engine(
        url, pool_size=size, max_overflow=size, pool_timeout=10, hide_parameters=True,
        # Whatever the server's default: the short reads' autocommit (new_session(alone=True)) answers as their
        # transaction would only at READ COMMITTED, where each statement sees its own snapshot anyway.
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": 5,
            # A network that drops packets silently (a dead peer, a firewall forgetting the flow) is noticed in
            # about a minute, not when the operating system gives up on the connection after hours.
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
            "options": f"-c statement_timeout={timeout}",
        },
    )
    # Instead of pool_pre_ping (a SELECT 1 round trip on every checkout, one of a get by id's three; issue 8).
    event.listen(engine, "checkout", functools.partial(_closed_by_server, engine.dialect))
    event.listen(engine, "checkin", _idle_from_now)
    return engine


# A connection idle this long is pinged on checkout (keepalives_idle above: a peer gone without a word may not have
# been noticed yet). Under load none is idle that long; a quiet service pays one SELECT 1 after a quiet spell.
IDLE_PING_SECONDS = 30


def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def _closed_by_server(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has closed is replaced before use, mostly without a round trip.

    A server that ends a connection (a restart, pg_terminate_backend, an idle timeout, a proxy going away) sends
    its last message and closes the socket, so the idle socket polls readable; a live idle connection has nothing
    to read (the service never LISTENs). A peer that vanished without a word (a crashed host, a lost NAT entry)
    leaves nothing to read, so a connection idle longer than IDLE_PING_SECONDS is asked `SELECT 1` as
    pool_pre_ping did. DisconnectionError makes the pool drop the connection and check out another (a new one when
    the server is gone: that connect fails as any would, 503)."""
    if dbapi_connection.closed:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")
    idle_since = record.info.get("idle_since") if record is not None else None
    if idle_since is not None and time.monotonic() - idle_since > IDLE_PING_SECONDS:
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the connection did not answer a ping") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (so writes can BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 1 MiB of page cache per connection, not SQLite's 2 MiB: the pool keeps a connection per request in flight
        # (a dozen under the benchmark's load), each filling its own cache, and the worker's peak RSS reached
        # 250-252 MB of the 250 the issue allows (issue 8); the pages come from the OS's cache when they are not
        # in SQLite's. A process-wide soft_heap_limit of 16 MiB saved as much but slowed the deep page by a fifth.
        cursor.execute("PRAGMA cache_size=-1024")
        # LIKE as PostgreSQL has it, case-sensitive: SQLite can then serve a prefix LIKE from an index, as the
        # subtree filter `path LIKE '/1/2/%'` (app.core.scope) on ix_organization_path, instead of scanning
        # every organisation twice per scoped query (a township page's count: 2.2 ms -> 0.1 ms, issue 8);
        # and a `q` search finds the same rows on both databases.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    # Writers of this process queue on a lock before BEGIN IMMEDIATE instead of in SQLite's busy handler,
    # which sleeps in growing steps (up to 100 ms) and wakes waiters in no order: under load a create's p99
    # was 2-3 s (issue 8). The lock is held from BEGIN IMMEDIATE until the connection goes back to the pool
    # (after its COMMIT or ROLLBACK); other processes still meet SQLite's own lock and busy_timeout.
    writers = _WRITER_LOCKS[engine] = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writing request takes SQLite's write lock up front: writers are
        # serialised instead of failing when a snapshot they read goes stale.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        if immediate:
            if not conn.info.get("holds_writer_lock"):
                # On timeout, BEGIN IMMEDIATE still waits its busy_timeout and fails the driver's way.
                conn.info["holds_writer_lock"] = writers.acquire(timeout=WRITER_WAIT_SECONDS)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        try:
            # A read's BEGIN (deferred) takes no lock and waits on nothing: sent on the driver's connection,
            # without SQLAlchemy's statement machinery (its events, its result object): 3 % of a get by id's
            # instructions (issue 8).
            conn.connection.driver_connection.execute("BEGIN")
        except Exception:
            conn.exec_driver_sql("BEGIN")  # once more the SQLAlchemy way: a failure raises as any statement's

    def _release(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is not None and record.info.pop("holds_writer_lock", False):
            writers.release()

    event.listen(engine, "checkin", _release)
    event.listen(engine, "invalidate", _release)


class _EngineHolder:
    engine: Engine | None = None
    factory: sessionmaker[Session] | None = None
    writer: Engine | None = None  # SQLite: the engine whose transactions begin IMMEDIATE
    autocommit: Engine | None = None  # PostgreSQL: the engine whose connections run each statement alone


_holder = _EngineHolder()


def configure_engine(url: str | None = None) -> Engine:
    """(Re)create the process engine; tests call it with their own database."""
    if _holder.engine is not None:
        _holder.engine.dispose()
    engine = _holder.engine = create_db_engine(url or get_settings().database_url)
    _holder.factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
    _holder.writer = engine.execution_options(sqlite_immediate=True) if engine.dialect.name == "sqlite" else None
    postgresql = engine.dialect.name == "postgresql"
    _holder.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else None
    return engine


_writer_gates = per_loop(asyncio.Lock)


def writer_gate() -> asyncio.Lock | None:
    """SQLite: the lock a writing request of this event loop holds from before its first statement until its
    commit (None on PostgreSQL, whose writers do not queue).

    Writers wait for it in the event loop, holding no worker thread. Otherwise a writer waits for the write lock
    (`writer_lock`) inside a worker thread, while the request that holds it may need one more thread for its
    next step: with every thread taken by waiting writers, nothing moves until the wait times out. That kept
    the thread pool at anyio's 40 threads; behind this gate it can be small (WORKER_THREADS, issue 8)."""
    if _holder.writer is None:
        return None
    return _writer_gates()


def get_engine() -> Engine:
    if _holder.engine is None:
        configure_engine()
    assert _holder.engine is not None
    return _holder.engine


# session.info key of a session that must not write (new_session(write=False), read_snapshot).
READ_ONLY = "read_only"


def new_session(*, write: bool = False, alone: bool = False) -> Session:
    """A session; no I/O until its first statement.

    `write`: on SQLite its transactions take the write lock up front (BEGIN IMMEDIATE), so writers are
    serialised instead of failing on a stale snapshot. A session that does not write only reads: it refuses to
    flush a change (`READ_ONLY`), and on SQLite its short steps may run in the event loop (`waits_on_nothing`).
    It reads in a transaction, on PostgreSQL too, although at READ COMMITTED a transaction gives its statements
    no common snapshot: a server-side cursor (`yield_per`, the dues arrears merge) needs one, and autocommit for
    every read broke it.

    `alone` (a read of app.deps' short kind: one record by id, a cached summary, which use no server-side
    cursor): on PostgreSQL its statements run in autocommit, each on its own, without the BEGIN and COMMIT round
    trips (two of a get by id's five; +11 % requests/s, issue 8). At READ COMMITTED each statement would see its
    own snapshot inside a transaction as well, so they answer the same. SQLite keeps the transaction: there it is
    what gives a read's statements one snapshot."""
    get_engine()
    assert _holder.factory is not None
    session = _holder.factory()
    if not write:
        session.info[READ_ONLY] = True
        if alone and _holder.autocommit is not None and session.bind is _holder.engine:
            session.bind = _holder.autocommit
    elif _holder.writer is not None and session.bind is _holder.engine:
        # The first statement begins the transaction, IMMEDIATE: making the session does no I/O.
        session.bind = _holder.writer
    return session


def waits_on_nothing(session: Session) -> bool:
    """Whether the session's statements can wait on no lock and no network: a session that only reads
    (READ_ONLY) on SQLite, whose WAL readers take no lock. Short steps of such a session may run in the event
    loop instead of a worker thread (app.deps). A write may wait for the write lock, and a PostgreSQL round
    trip for the network, so theirs run in a worker thread."""
    return bool(session.info.get(READ_ONLY)) and session.get_bind().dialect.name == "sqlite"


@contextmanager
def read_snapshot() -> Iterator[Session]:
    """A read-only unit of work whose statements all see one snapshot of the database.

    For work that outlives its request's session, like a streamed export: the request's session commits and
    closes before the first byte of the body is sent, so the body reads through a session of its own.
    PostgreSQL: REPEATABLE READ, READ ONLY (one snapshot for every statement, writes refused by the server).
    SQLite (WAL): a deferred read transaction sees the snapshot of its first read until it ends, and never
    blocks writers. Writes are refused in the session itself (`before_flush`); audit rows are written by
    app.core.audit in a short transaction of their own."""
    session = new_session()
    try:
        # Tests bind the factory to one connection already in a transaction: its isolation is the test's.
        if isinstance(session.get_bind(), Engine) and session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
        yield session
        session.commit()  # nothing to write: ends the read transaction
    finally:
        session.close()


@event.listens_for(Session, "before_flush")
def _refuse_read_only_writes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("a read-only session cannot write")


@contextmanager
def session_scope(*, write: bool = True) -> Iterator[Session]:
    """A unit of work outside HTTP (CLI, seeding): commit on success, roll back on error."""
    session = new_session(write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
