"""Engine, sessions and the column types every area shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from app.core.config import get_settings

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


def create_db_engine(url: str, *, pool_size: int | None = None) -> Engine:
    from sqlalchemy import create_engine

    parsed = make_url(url)
    size = pool_size or get_settings().db_pool_size
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Keep as many connections as requests in flight: the default pool of 5 closed every extra one
            # on return, and each new one pays its PRAGMAs (14 % of a get-by-id's CPU under load, issue 8).
            pool = {"pool_size": size, "max_overflow": size}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True,
                               **pool)
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url, pool_size=size, max_overflow=size, pool_pre_ping=True, pool_timeout=10, hide_parameters=True,
        connect_args={"connect_timeout": 5},
    )


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
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writing request takes SQLite's write lock up front: writers are
        # serialised instead of failing when a snapshot they read goes stale.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class _EngineHolder:
    engine: Engine | None = None
    factory: sessionmaker[Session] | None = None


_holder = _EngineHolder()


def configure_engine(url: str | None = None) -> Engine:
    """(Re)create the process engine; tests call it with their own database."""
    if _holder.engine is not None:
        _holder.engine.dispose()
    _holder.engine = create_db_engine(url or get_settings().database_url)
    _holder.factory = sessionmaker(bind=_holder.engine, expire_on_commit=False, autoflush=False)
    return _holder.engine


def get_engine() -> Engine:
    if _holder.engine is None:
        configure_engine()
    assert _holder.engine is not None
    return _holder.engine


def new_session(*, write: bool = False) -> Session:
    get_engine()
    assert _holder.factory is not None
    session = _holder.factory()
    if write and get_engine().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_immediate": True})
    return session


# session.info key of a session that must not write (see read_snapshot).
READ_ONLY = "read_only"


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
    session.info[READ_ONLY] = True
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
        raise RuntimeError("a read-only snapshot session cannot write")


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
