"""Reports answered from memory while the tables they read are unchanged (issue 8).

A summary at city scope aggregates a year of records: 30-300 ms of database time per request, live. Most
requests for a report find nothing changed since the last one, so each worker keeps the reports it computed,
and a report is computed again only when a table it read has been written since.

How a change is seen, whatever wrote it and in whichever worker or host:
- Every INSERT, UPDATE or DELETE that goes through SQLAlchemy notes its table on the connection
  (`after_cursor_execute`, from the statement's text, so ORM flushes, bulk statements and raw SQL alike).
- When a session commits, each table it wrote gets a new random token in `data_generation`, in the same
  transaction, as the last statement before COMMIT: the new token becomes visible exactly when the data does,
  and a rolled-back write leaves no token behind. Tokens are random, never counters, so a token once seen
  never comes back (a rolled-back transaction cannot make an old entry look current again).
- A report is computed after reading the tokens (data read later is never older than the tokens); the
  tables it read are taken from the statements it ran. The entry keeps those tables' tokens.
- A later request for the same report (same function and arguments, same scope root and permissions of the
  caller, same business dates) reads the tokens of the entry's tables, one statement, and is answered from
  memory if none changed.

Not cached: a report computed in a transaction that has written (it could see its own uncommitted rows).
Authorisation is part of the key: the caller's scope root and permissions decide what the computation may
read, and the organisation tree it checks against is one of the tables whose tokens are compared.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from pydantic_core import to_json
from sqlalchemy import BigInteger, Column, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel
from starlette.responses import Response

from app.core.observability import REGISTRY
from app.core.scope import Actor

MAX_ENTRIES = 512
WRITTEN = "report_cache.written"  # Connection.info: tables written in the open transaction

_BEIJING = ZoneInfo("Asia/Shanghai")  # the business date's zone (app.services.*.today)
CACHE_LOOKUPS = Counter("report_cache_lookups_total", "Report cache lookups", ["result"], registry=REGISTRY)


class DataGeneration(SQLModel, table=True):
    """The token of a table's last committed write (a random number, new at every commit that wrote it)."""

    __tablename__ = "data_generation"

    name: str = Field(primary_key=True, max_length=64)
    token: int = Field(sa_column=Column(BigInteger, nullable=False))


_TABLE = "data_generation"
_DML = re.compile(r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
# A statement that begins WITH may write in its common table expressions as well as in its body (the audit writer's
# append on PostgreSQL: WITH moved_head AS (UPDATE audit_chain_head ...) INSERT INTO audit_log ...): every table it
# writes is noted. `FOR UPDATE` locks, it writes nothing.
_WITH = re.compile(r"\s*WITH\b", re.IGNORECASE)
_DML_IN_WITH = re.compile(r'\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|(?<!FOR )UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
_reading: ContextVar[set[str] | None] = ContextVar("report_cache_reading", default=None)


# ------------------------------------------------------------------------------------------- writes


@event.listens_for(Engine, "after_cursor_execute")
def _note(conn: Connection, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
    reading = _reading.get()
    if reading is not None:
        reading.update(_tables_in(statement))
    first = _DML.match(statement)
    written = [first.group(1)] if first else _DML_IN_WITH.findall(statement) if _WITH.match(statement) else []
    for table in written:
        if table != _TABLE:
            conn.info.setdefault(WRITTEN, set()).add(table)


@event.listens_for(Engine, "rollback")
def _forget(conn: Connection) -> None:
    if conn.invalidated:
        return  # the connection was lost (and its info with it): reading info would try to reconnect
    conn.info.pop(WRITTEN, None)


@event.listens_for(Engine, "commit")
def _unannounced(conn: Connection) -> None:
    # Writes committed outside a Session (a raw connection: migrations, the benchmark's bulk loader) get no
    # new tokens. The service itself writes only through sessions; this process forgets what it holds, and
    # other running workers must be restarted after such a write (a deploy restarts them anyway).
    if conn.info.pop(WRITTEN, None):
        _cache.clear()


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.get_transaction() is not None:
        session.flush()  # what the commit would flush next is written, and noted, now
        announce(session)


def announce(session: Session) -> None:
    """Give every table the session's transaction wrote a new token. Runs last thing before COMMIT, in name
    order (two writers of the same tables queue on their rows in the same order and never deadlock). Tests
    call it after writing through their own session without committing (the app's sessions share its
    connection there), as a commit would."""
    transaction = session.get_transaction()
    if transaction is None:
        return
    connections = {c for c, *_ in transaction._connections.values()}  # the connections it holds, none begun here
    written = set().union(*(c.info.pop(WRITTEN, set()) for c in connections))
    if not written:
        return
    (conn,) = connections
    rows = [{"name": name, "token": _new_token()} for name in sorted(written)]
    conn.execute(_upsert_tokens(conn.dialect.name), rows)


@functools.lru_cache(maxsize=2)
def _upsert_tokens(dialect: str) -> Any:
    """The statement `announce` runs, built once per dialect (building it cost about 5 % of a create's CPU)."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DataGeneration)
    return insert.on_conflict_do_update(index_elements=["name"], set_={"token": insert.excluded.token})


def _new_token() -> int:
    return secrets.randbits(63)


# -------------------------------------------------------------------------------------------- reads


@functools.lru_cache(maxsize=1)
def _table_pattern() -> re.Pattern[str]:
    names = sorted((t for t in SQLModel.metadata.tables if t != _TABLE), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")


@functools.lru_cache(maxsize=4096)
def _tables_in(statement: str) -> frozenset[str]:
    """Every table a statement names (a column or parameter with a table's name only adds a dependency)."""
    return frozenset(_table_pattern().findall(statement))


_TOKENS = select(DataGeneration.name, DataGeneration.token)  # a row per table ever written: a few dozen


@dataclass
class _Entry:
    value: Any
    tokens: tuple[tuple[str, int], ...]  # the tables read and their tokens when the value was computed
    json: bytes | None = None  # the value as sent, made by the first request answered from memory (serves_json)


_served: ContextVar[_Entry | None] = ContextVar("report_cache_served", default=None)


class _Cache:
    def __init__(self) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, tuple[threading.Lock, int]] = {}  # key -> its lock, threads holding or waiting

    @contextmanager
    def computing(self, key: Hashable) -> Iterator[None]:
        """Hold the key's lock: concurrent misses of one report compute it once (the rest find the entry)."""
        with self._lock:
            lock, users = self._computing.get(key, (threading.Lock(), 0))
            self._computing[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._computing[key]
                if users == 1:
                    del self._computing[key]
                else:
                    self._computing[key] = (lock, users - 1)

    def get(self, key: Hashable) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_cache = _Cache()


def clear() -> None:
    """Forget every entry (tests that change settings a report depends on)."""
    _cache.clear()


def _has_written(session: Session) -> bool:
    if session.new or session.dirty or session.deleted:
        return True
    return bool(session.connection().info.get(WRITTEN))


class NotInMemory(Exception):
    """Raised instead of computing a report while `from_memory_only()` holds: its caller runs the request again
    where a computation may take its time (app.deps.as_async_endpoint: a worker thread, not the event loop)."""


_memory_only: ContextVar[bool] = ContextVar("report_cache_memory_only", default=False)


@contextmanager
def from_memory_only() -> Iterator[None]:
    """Within it a report is answered from memory or not at all (`NotInMemory`): a computation (30-300 ms at city
    scope) would hold the event loop, and every other request with it."""
    token = _memory_only.set(True)
    try:
        yield
    finally:
        _memory_only.reset(token)


def _compute_here() -> None:
    if _memory_only.get():
        raise NotInMemory


def cached(session: Session, key: Hashable, compute: Callable[[], Any]) -> Any:
    """The value of `compute()` for `key`, from memory when none of the tables it read has been written since."""
    if _has_written(session):
        _compute_here()
        CACHE_LOOKUPS.labels("bypass").inc()
        return compute()
    # One statement, hit or not, and before the computation's first one: data it reads is at least this new.
    tokens: dict[str, int] = {name: token for name, token in session.execute(_TOKENS)}
    entry = _cache.get(key)
    if entry is not None and all(tokens.get(name, 0) == token for name, token in entry.tokens):
        CACHE_LOOKUPS.labels("hit").inc()
        _served.set(entry)
        return entry.value
    _compute_here()
    with _cache.computing(key):  # one computation per key at a time; the others wait for its result
        entry = _cache.get(key)
        if entry is not None and all(tokens.get(name, 0) == token for name, token in entry.tokens):
            CACHE_LOOKUPS.labels("hit").inc()
            _served.set(entry)
            return entry.value
        CACHE_LOOKUPS.labels("miss" if entry is None else "stale").inc()
        reading = _reading.set(set())
        try:
            value = compute()
            tables = _reading.get() or set()
        finally:
            _reading.reset(reading)
        if not _has_written(session):
            _cache.put(key, _Entry(value, tuple(sorted((name, tokens.get(name, 0)) for name in tables))))
    return value


P = ParamSpec("P")
R = TypeVar("R")


def cached_report(*, dates: Callable[[], dt.date] | None = None,
                  skip: Callable[[dict[str, Any]], bool] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Serve `fn(session, actor, **arguments)` through the cache.

    The key is the function, its keyword arguments, the caller's scope root and permissions, and the
    business date (`dates`: the function's own notion of today, which tests may patch; the UTC and Beijing
    dates are always in the key). `skip(arguments)`: computed live, never stored (e.g. a whole export)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            session, actor = args
            assert isinstance(session, Session) and isinstance(actor, Actor), f"{name}(session, actor, **kw)"
            if skip is not None and skip(kwargs):
                _compute_here()
                return fn(*args, **kwargs)
            key = (name, actor.org_id, actor.org_path, actor.permissions, _today_utc(), _today_local(),
                   dates() if dates is not None else None, tuple(sorted(kwargs.items())))
            return cached(session, key, lambda: fn(*args, **kwargs))

        return wrapper

    return decorate


def serves_json(endpoint: Callable[P, R]) -> Callable[P, R | Response]:
    """Route decorator: a report answered from memory is sent as the JSON bytes made when it was first sent
    from memory, instead of being validated and serialised again (half the CPU of a cached city summary of
    360 townships). The first answer after a computation is serialised by FastAPI as usual; a test checks
    that both are the same bytes."""

    @functools.wraps(endpoint)
    def serve(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        served = _served.set(None)
        try:
            value = endpoint(*args, **kwargs)
            entry = _served.get()
        finally:
            _served.reset(served)
        if entry is None or entry.value is not value:
            return value
        if entry.json is None:
            entry.json = to_json(value, by_alias=True)
        return Response(entry.json, media_type="application/json")

    serve.__serves_json__ = True  # type: ignore[attr-defined]
    return serve


def serves_json_from_cache(endpoint: Any) -> bool:
    """Whether the route's endpoint is a cached summary (`serves_json`)."""
    return getattr(endpoint, "__serves_json__", False) is True


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _today_local() -> dt.date:
    return dt.datetime.now(_BEIJING).date()
