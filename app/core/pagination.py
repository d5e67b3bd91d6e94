"""The one pagination helper: limit/offset, a sort whitelist, the envelope, and exports (CSV or Excel by Accept).

Exports. Every list answers `Accept: text/csv` (UTF-8 with BOM, a header row of field names) and
`Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` with the WHOLE filtered result in
the caller's scope, personal data masked as in JSON. `limit` and `offset` apply to an export only when the
URL gives them (`?limit=` still at most 200); without them the export is every row, however many.

How a list route gets this without knowing about it:
1. `page_params` reads Accept; for an export it marks the PageParams (`export`) and lifts the default limit.
2. The service builds its statement as for a page and calls `fetch_page`, which, for an export, runs
   nothing: it keeps the ordered statement (with the service's `present`, if its rows need one) and returns
   an empty `DeferredPage`.
3. `respond` returns an `ExportResponse`. Only when the response is sent (after the request's session has
   committed and closed, see app.deps.get_session) does the body open its own read-only snapshot session
   (app.core.db.read_snapshot), run the statement once with `yield_per` (a server-side cursor on
   PostgreSQL, the SQLite cursor stepped lazily) and turn each chunk of rows into the public model
   (the service's and the route's `present`, then the response model), exactly as the JSON page does.
   The first chunk is read before the status line is sent, so a failing query is still a problem answer.
   CSV is written chunk by chunk into the response; .xlsx goes through openpyxl's write-only workbook into a
   temporary file that is then sent and deleted. Memory stays bounded by the chunk, not the result.
A list computed in Python (no statement) is exported whole from the list the route passes.

Keyset cursor (issue 8). `next` on a page is an opaque cursor of its last row; `?after=<next>` gives the page after
that row with a WHERE on the sort keys instead of an OFFSET, so a deep page reads no more than the first (the list's
index is walked from the row on). The cursor is base64url `<payload>.<mac>`: the payload is compact JSON
`[1, bind, values]` (`bind` a short hash of the list's path and its normalised `sort`, `values` the ORDER BY keys of
the last row: the sort fields, or the list's default, and the unique tiebreak), the mac a truncated HMAC-SHA256 of
the payload under SECRET_KEY. A cursor that is not ours (or forged) is a 422 `invalid_cursor`, one made for
another list or sort a 422 `cursor_mismatch`; every value is also type-checked against its column. The next page
is "after this row" in the ORDER BY's own terms: per key its direction and where its NULLs sort (NULLS LAST for
`?sort=`, the database's default for a list's default order: last ascending on PostgreSQL, first on SQLite), keys
that cannot be NULL compared as one row value (`(a, b, id) > (:a, :b, :id)`, which both databases answer from an
index). `total` stays the count of everything matching the filters; `offset` is 0 on a cursor page and `after`
with a non-zero `offset` is a 422. A sort on a column marked personal (`Column.info["personal"]`, e.g. a birth
date the answer may hide) gets no cursor: its values would travel in URLs. Lists computed in Python (no
`fetch_page`) answer `after` with 422 `cursor_unsupported`, as they answer `updated_since`. An export applies
`after` like a JSON page (the rows after the cursor).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import math
import os
import re
import tempfile
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import partial
from itertools import islice
from typing import Annotated, Any, Generic, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, ColumnElement, Select, Table, and_, false, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, TextClause, UnaryExpression
from sqlalchemy.sql.util import find_tables
from sqlalchemy.sql.visitors import iterate
from sqlalchemy.types import DateTime, TypeDecorator
from starlette.types import Receive, Scope, Send

from app.core import accept
from app.core.config import get_settings
from app.core.db import read_snapshot
from app.core.errors import ProblemError, unavailable
from app.core.loops import Abandoned, per_loop, turn
from app.core.observability import CLIENT_LEFT_SCOPE_KEY
from app.models.common import Timestamp

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_ALL = 2**62  # the limit of an export whose URL gives none: no LIMIT is applied
EXPORT_CHUNK = 1000  # rows fetched, presented and written at a time
MAX_CURSOR = 2048  # characters of `after`

# present(session, rows) -> the public items of these rows; `session` is the request's for a JSON page and the
# export's own read-only snapshot for an export.
Present = Callable[[Session, list[Any]], Sequence[Any]]


@dataclass
class Export:
    """An export asked for by Accept; `fetch_page` fills in the statement it would have paged."""

    media_type: str
    query: Select[Any] | None = None
    rows: bool = False  # the statement's rows are tuples (entity plus joined columns), not single entities
    present: Present | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, the total matching the filters, and the window asked for."""

    items: list[T]
    total: int = Field(ge=0, description="Items matching the filters, on every page", examples=[1])
    limit: int = Field(ge=1, description="Page size asked for", examples=[50])
    offset: int = Field(ge=0, description="Items skipped before this page (0 on a page asked for with `after`)",
                        examples=[0])
    next: str | None = Field(
        description="Pass as `after` (same path and `sort`) for the page after this one, read from this point "
                    "without an offset. Null when fewer than `limit` items came back, on a list computed as a whole "
                    "and on a sort by personal data (page those with `offset`)", examples=[None])

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        """`Page[PersonPublic]` is the `PersonPage` schema (not `Page_PersonPublic_`): what generated clients
        call it."""
        name = getattr(params[0], "__name__", str(params[0]))
        return f"{name.removesuffix('Public')}Page"


class PageParams(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    limit: int
    offset: int
    sort: str | None
    export: Export | None = None
    updated_since: dt.datetime | None = None
    updated_since_applied: bool = False  # set by fetch_page; respond refuses a filter nothing applied
    after: str | None = None  # the keyset cursor asked for
    path: str = ""  # the list's URL path: a cursor is bound to it
    after_applied: bool = False  # set by fetch_page; respond refuses a cursor nothing applied
    next: str | None = None  # set by fetch_page: the cursor of the page's last row when the page is full


class DeferredPage(list[Any]):
    """What `fetch_page` returns for an export: no rows yet; `respond` streams them."""


_MEDIA_RANGE = re.compile(r"[\w.+*-]+/[\w.+*-]+")
_OFFERS = {"application/json": None, "application/*": None, "*/*": None,
           CSV_MEDIA_TYPE: CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE: XLSX_MEDIA_TYPE}


def negotiate(header: str) -> str | None:
    """The export format Accept prefers (None: JSON). Highest q wins, ties go to the type named first, q=0 is
    "not this"; media types we do not produce are ignored and JSON is the default (API.md has no 406)."""
    for media, q in accept.ranges(header, _MEDIA_RANGE):
        if q > 0 and media in _OFFERS:
            return _OFFERS[media]
    return None


async def page_params(  # no I/O: async, so no hop to a worker thread (issue 8)
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..200). An export (Accept: text/csv "
                                "or .xlsx) is the whole result unless limit is given")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    sort: Annotated[
        str | None,
        Query(max_length=200, description="Comma-separated fields; prefix with - for descending"),
    ] = None,
    updated_since: Annotated[Timestamp | None, Query(
        description="Only records changed at or after this time (ISO 8601 with offset, e.g. 2026-01-01T00:00:00Z; "
                    "compares `updated_at`, inclusive). A list of records without `updated_at` answers 422")] = None,
    after: Annotated[str | None, Query(
        min_length=1, max_length=MAX_CURSOR,
        description="The `next` of the previous page (same path and `sort`, no `offset`): the page after its last "
                    "item, read without an offset however deep. A cursor for another list or sort, or one not "
                    "issued here, answers 422; so does a list computed as a whole, or a sort by personal data")] = None,
) -> PageParams:
    if after is not None and offset:
        raise ProblemError(422, "cursor_with_offset", "Pass either `after` or `offset`, not both: the cursor already "
                           "says where the page starts.",
                           errors=[{"loc": ["query", "offset"], "msg": "must be 0 (or absent) with after"}])
    media_type = negotiate(request.headers.get("accept", ""))
    common: dict[str, Any] = {"offset": offset, "sort": sort, "updated_since": updated_since, "after": after,
                              "path": request.url.path}
    if media_type is None:
        return PageParams(limit=limit, **common)
    explicit = "limit" in request.query_params
    return PageParams(limit=limit if explicit else EXPORT_ALL, export=Export(media_type), **common)


PageDep = Annotated[PageParams, Depends(page_params)]


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY key: the expression, its direction and where its NULLs go (None: the database's default)."""

    expr: Any
    desc: bool
    nulls_last: bool | None


@dataclass(frozen=True)
class Ordering:
    clauses: list[Any]  # what ORDER BY applies, unchanged from before cursors
    keys: list[OrderKey]
    signature: str  # the normalised `sort` ("" for the list's default): a cursor is bound to it


def _order_key(clause: Any) -> OrderKey:
    """The key of a default ORDER BY entry (a column, `col(x).desc()`, `....nulls_last()`)."""
    expr = clause.__clause_element__() if hasattr(clause, "__clause_element__") else clause
    desc, nulls_last = False, None
    while isinstance(expr, UnaryExpression) and expr.modifier in (
            operators.desc_op, operators.asc_op, operators.nulls_first_op, operators.nulls_last_op):
        if expr.modifier in (operators.desc_op, operators.asc_op):
            desc = expr.modifier is operators.desc_op
        else:
            nulls_last = expr.modifier is operators.nulls_last_op
        expr = expr.element
    return OrderKey(expr, desc, nulls_last)


def ordering(sort: str | None, allowed: Mapping[str, Any], default: Sequence[Any], tiebreak: Any) -> Ordering:
    """`?sort=` over a whitelist (or the list's default); always ending with a unique key so pages are stable."""
    if not sort:
        clauses = [*default, tiebreak]
        return Ordering(clauses, [_order_key(c) for c in clauses], "")
    clauses, keys, names = [], [], []
    for raw in sort.split(","):
        name = raw.strip()
        desc = name.startswith("-")
        name = name.lstrip("-+")
        if name not in allowed:
            raise ProblemError(
                422, "invalid_sort",
                f"Cannot sort by '{name}'. Sortable fields: {', '.join(sorted(allowed))}.",
                errors=[{"loc": ["query", "sort"], "msg": f"unknown sort field '{name}'"}],
            )
        column = allowed[name]
        # NULLs last in both directions, the same on SQLite and PostgreSQL.
        clauses.append((column.desc() if desc else column.asc()).nulls_last())
        keys.append(OrderKey(_order_key(column).expr, desc, True))
        names.append(("-" if desc else "") + name)
    return Ordering([*clauses, tiebreak], [*keys, _order_key(tiebreak)], ",".join(names))


def order_by(stmt: Select[Any], sort: str | None, allowed: Mapping[str, Any], default: Sequence[Any],
             tiebreak: Any) -> Select[Any]:
    """Apply `?sort=` over a whitelist; always end with a unique key so pages are stable."""
    return stmt.order_by(*ordering(sort, allowed, default, tiebreak).clauses)


# --------------------------------------------------------------------------------------------- keyset cursor

_CURSOR_VERSION = 1
_MAC_BYTES = 16
_MAC_CONTEXT = b"records-page-cursor\x00"
CURSOR_DETAIL = ("The cursor is not one this service issued; pass `next` of an earlier answer unchanged, or leave "
                 "`after` out to start from the beginning.")
_SUPPORTED = (bool, int, float, Decimal, dt.datetime, dt.date, str)


def invalid_cursor() -> ProblemError:
    return ProblemError(422, "invalid_cursor", CURSOR_DETAIL,
                        errors=[{"loc": ["query", "after"], "msg": "not a cursor this service issued"}])


def cursor_unsupported(detail: str) -> ProblemError:
    return ProblemError(422, "cursor_unsupported", detail,
                        errors=[{"loc": ["query", "after"], "msg": "not available on this list or sort"}])


CURSOR_OFFSET_ONLY = ("This list pages with `offset` only (it is computed as a whole, or its order cannot be "
                      "resumed from a cursor); leave `after` out.")
CURSOR_PERSONAL = ("This sort includes personal data, which a cursor never carries; page it with `offset` or sort "
                   "by another field.")


@dataclass(frozen=True)
class _Column:
    """What the cursor needs to know of an ORDER BY key to write and check its value."""

    key: OrderKey
    python_type: type | None  # None: a type the cursor cannot carry
    aware: bool  # a datetime with time zone
    never_null: bool
    personal: bool


def _column(key: OrderKey, tables: set[Any]) -> _Column:
    expr, sql_type = key.expr, key.expr.type
    while isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    try:
        python_type: type | None = sql_type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is not None and not (issubclass(python_type, Enum) or python_type in _SUPPORTED):
        python_type = None
    # Only a NOT NULL column of the listed entity's own table is surely never NULL (an outer join's is not).
    never_null = isinstance(expr, Column) and not expr.nullable and expr.table in tables
    personal = bool(isinstance(expr, Column) and expr.info.get("personal"))
    return _Column(key, python_type, isinstance(sql_type, DateTime) and bool(sql_type.timezone), never_null,
                   personal)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: bytes) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, _MAC_CONTEXT + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _bind(path: str, signature: str) -> str:
    return hashlib.sha256(f"{path}\n{signature}".encode()).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, dt.date | Decimal):  # datetime is a date
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"a cursor cannot carry {type(value).__name__}")


def encode_cursor(path: str, signature: str, values: Sequence[Any]) -> str:
    payload = json.dumps([_CURSOR_VERSION, _bind(path, signature), [_encode_value(v) for v in values]],
                         separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    return f"{_b64(payload)}.{_b64(_mac(payload))}"


def _decode_value(raw: Any, column: _Column) -> Any:
    """The typed value of one key, or ValueError."""
    if raw is None:
        if column.never_null:
            raise ValueError("NULL in a column that has none")
        return None
    kind = column.python_type
    if kind is None:
        raise ValueError("unsupported column")
    if issubclass(kind, Enum):
        if type(raw) is not str:
            raise ValueError(raw)
        return kind(raw)
    if kind is bool:
        if type(raw) is not bool:
            raise ValueError(raw)
        return raw
    if kind is int:
        if type(raw) is not int:
            raise ValueError(raw)
        return raw
    if kind is float:
        if type(raw) not in (int, float) or not math.isfinite(raw):
            raise ValueError(raw)
        return float(raw)
    if type(raw) is not str:
        raise ValueError(raw)
    if kind is str:
        return raw
    if kind is Decimal:
        number = Decimal(raw)
        if not number.is_finite():
            raise ValueError(raw)
        return number
    if kind is dt.datetime:
        moment = dt.datetime.fromisoformat(raw)
        if (moment.tzinfo is not None) != column.aware:
            raise ValueError(raw)
        return moment.astimezone(dt.UTC) if column.aware else moment
    return dt.date.fromisoformat(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def decode_cursor(cursor: str, path: str, signature: str, columns: Sequence[_Column]) -> list[Any]:
    """The last row's key values a cursor carries; 422 if it is not ours, or not for this list and sort."""
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise invalid_cursor() from None
    if not hmac.compare_digest(mac, _mac(payload)):
        raise invalid_cursor()
    try:
        version, bind, raw = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, TypeError):
        raise invalid_cursor() from None
    if version != _CURSOR_VERSION or not isinstance(bind, str) or not isinstance(raw, list):
        raise invalid_cursor()
    if bind != _bind(path, signature):
        raise ProblemError(422, "cursor_mismatch", "This cursor belongs to another list or another sort; pass it "
                           "with the path and `sort` of the page it came from.",
                           errors=[{"loc": ["query", "after"], "msg": "made for another list or sort"}])
    if len(raw) != len(columns):
        raise invalid_cursor()
    try:
        return [_decode_value(value, column) for value, column in zip(raw, columns, strict=True)]
    except (ValueError, TypeError, InvalidOperation):
        raise invalid_cursor() from None


def _after(columns: Sequence[_Column], values: Sequence[Any], i: int, dialect: str) -> ColumnElement[bool]:
    """Rows after the one whose keys are `values`, in the ORDER BY of `columns` (from key `i` on)."""
    if i == len(columns):
        return false()  # the tiebreak is unique: equal on every key is the row itself
    first = columns[i]
    if first.never_null:
        # A run of NOT NULL keys in one direction: one row-value comparison, which an index answers.
        j = i
        while j < len(columns) and columns[j].never_null and columns[j].key.desc == first.key.desc:
            j += 1
        exprs = [c.key.expr for c in columns[i:j]]
        binds = [literal(v, c.key.expr.type) for c, v in zip(columns[i:j], values[i:j], strict=True)]
        left: Any = exprs[0] if len(exprs) == 1 else tuple_(*exprs)
        right: Any = binds[0] if len(binds) == 1 else tuple_(*binds)
        strict = left < right if first.key.desc else left > right
        if j == len(columns):
            return strict
        bound = left <= right if first.key.desc else left >= right
        return and_(bound, or_(strict, and_(left == right, _after(columns, values, j, dialect))))
    expr, value, rest = first.key.expr, values[i], _after(columns, values, i + 1, dialect)
    nulls_last = first.key.nulls_last
    if nulls_last is None:  # the database's default: PostgreSQL sorts NULL as the largest value, SQLite the smallest
        nulls_last = first.key.desc == (dialect == "sqlite")
    if value is None:
        if nulls_last:  # after a NULL only NULLs follow in this column
            return and_(expr.is_(None), rest)
        return or_(expr.is_not(None), and_(expr.is_(None), rest))
    bind = literal(value, expr.type)
    strict = expr < bind if first.key.desc else expr > bind
    if nulls_last:
        strict = or_(strict, expr.is_(None))
    return or_(strict, and_(expr == bind, rest))


def updated_since_unsupported() -> ProblemError:
    return ProblemError(422, "updated_since_unsupported", "This list's records keep no updated_at, so "
                        "updated_since cannot filter it.",
                        errors=[{"loc": ["query", "updated_since"], "msg": "not available on this list"}])


def changed_since(stmt: Select[Any], params: PageParams) -> Select[Any]:
    """`?updated_since=`: rows of the listed entity (the statement's first) with updated_at at or after it."""
    if params.updated_since is None:
        return stmt
    entity = stmt.column_descriptions[0].get("entity")
    table, column = getattr(entity, "__table__", None), getattr(entity, "updated_at", None)
    if table is None or column is None or "updated_at" not in table.c:
        raise updated_since_unsupported()
    params.updated_since_applied = True
    return stmt.where(column >= params.updated_since)


def count_of(stmt: Select[Any]) -> Select[Any]:
    """`SELECT count(*)` of the rows `stmt` yields.

    Outer joins that only bring columns to show cannot change how many rows there are: a LEFT OUTER JOIN on the
    joined table's whole (one-column) primary key, to a table nothing else in the statement mentions (its WHERE
    clause, even inside a subquery, or another join's condition). PostgreSQL's planner leaves such joins out of a
    count; SQLite's does not, so the count leaves them out itself: a city's 155,520 assignments, joined to their
    tasks and organisations for the names a page shows, counted in 9.8 ms with the joins and 0.01 ms without
    (issue 8). A statement with DISTINCT, GROUP BY, HAVING, LIMIT, OFFSET or an explicit FROM, or with no such
    join, is counted whole, as a subquery. Read from the statement as built (its joins as `.join()` and
    `.outerjoin()` recorded them): asking SQLAlchemy for the final FROM clause cost 0.7 ms a request."""
    joins = stmt._setup_joins  # (target, onclause, explicit left side, {"isouter", "full"}), in order
    if (not joins or stmt._distinct or stmt._group_by_clauses or stmt._having_criteria or stmt._from_obj
            or stmt._limit_clause is not None or stmt._offset_clause is not None or stmt._fetch_clause is not None
            # joins written as `target, condition` to a table (not a relationship, an alias, a LATERAL subquery)
            or any(left is not None or not isinstance(onclause, ColumnElement) or not isinstance(_plain(target), Table)
                   for target, onclause, left, _ in joins)
            # rows as they come from the tables: a function or an aggregate among the columns may change their number
            or not all(isinstance(_plain(c), Column) for c in stmt.selected_columns)
            # text the count could not see the tables of
            or (stmt.whereclause is not None and any(isinstance(e, TextClause) for e in iterate(stmt.whereclause)))):
        return _whole_count(stmt)
    targets = [_plain(target) for target, *_ in joins]
    driving = [t for t in map(_plain, stmt.columns_clause_froms) if all(t is not j for j in targets)]
    if len(driving) != 1:
        return _whole_count(stmt)
    where = [] if stmt.whereclause is None else [stmt.whereclause]
    counted, left_out = select(func.count()).select_from(driving[0]), False
    for index, (target, onclause, _, flags) in enumerate(joins):
        others = where + [other[1] for at, other in enumerate(joins) if at != index]
        if _only_shows(targets[index], onclause, flags, others):
            left_out = True
        else:
            counted = counted.join(target, onclause, isouter=flags.get("isouter", False), full=flags.get("full", False))
    if not left_out:
        return _whole_count(stmt)
    return counted if stmt.whereclause is None else counted.where(stmt.whereclause)


def _whole_count(stmt: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())


def _only_shows(table: Any, condition: Any, flags: Mapping[str, Any], others: Sequence[Any]) -> bool:
    """Whether a join is a LEFT OUTER JOIN of at most one row per row (on the table's one-column primary key) to a
    table none of `others` mentions."""
    if not flags.get("isouter") or flags.get("full") or not isinstance(table, Table) \
            or not isinstance(condition, BinaryExpression) or condition.operator is not operators.eq:
        return False
    key = list(table.primary_key.columns)
    on_table = [side for side in (_plain(condition.left), _plain(condition.right))
                if getattr(side, "table", None) is table]
    if len(key) != 1 or len(on_table) != 1 or on_table[0] is not key[0]:
        return False
    return all(_plain(t) is not table for clause in others
               for t in find_tables(clause, check_columns=True, include_aliases=True, include_joins=True))


def _plain(element: Any) -> Any:
    """The element without SQLAlchemy's ORM annotations (the Table or Column itself)."""
    return element._deannotate() if hasattr(element, "_deannotate") else element


def fetch_page(
    session: Session, stmt: Select[Any], params: PageParams, *, allowed: Mapping[str, Any],
    default: Sequence[Any], tiebreak: Any, rows: bool = False, present: Present | None = None,
) -> tuple[list[Any], int]:
    """Items of one page and the total, in two statements whatever the page size.

    `rows=True`: the statement selects an entity plus joined columns (items are tuples); `present` turns
    the fetched rows into what the list shows. For an export nothing runs here (see the module docstring)."""
    stmt = changed_since(stmt, params)
    order = ordering(params.sort, allowed, default, tiebreak)
    entity = stmt.column_descriptions[0].get("entity")
    tables = {entity.__table__} if hasattr(entity, "__table__") else set()
    columns = [_column(key, tables) for key in order.keys]
    keyset = all(c.python_type is not None and not c.personal for c in columns)
    ordered = stmt.order_by(*order.clauses)
    if params.after is not None:
        if not keyset:
            raise cursor_unsupported(CURSOR_PERSONAL if any(c.personal for c in columns) else CURSOR_OFFSET_ONLY)
        values = decode_cursor(params.after, params.path, order.signature, columns)
        ordered = ordered.where(_after(columns, values, 0, session.get_bind().dialect.name))
        params.after_applied = True
    if params.limit < EXPORT_ALL:
        ordered = ordered.limit(params.limit)
    if params.offset:
        ordered = ordered.offset(params.offset)
    if params.export is not None:
        if params.export.query is not None:
            raise RuntimeError("one list, one statement: fetch_page was called twice for an export")
        params.export.query, params.export.rows, params.export.present = ordered, rows, present
        return DeferredPage(), 0
    total = session.scalar(count_of(stmt)) or 0
    if keyset:  # the key values ride along as extra columns: the cursor of the last row costs no statement
        width = len(stmt.column_descriptions)
        result = session.execute(ordered.add_columns(*(c.key.expr for c in columns))).all()
        found = [tuple(r[:width]) if rows else r[0] for r in result]
        if len(result) == params.limit:
            params.next = encode_cursor(params.path, order.signature, result[-1][width:])
    else:
        found = list(session.execute(ordered).all()) if rows else list(session.scalars(ordered))
    return (list(present(session, found)) if present else found), total


# --------------------------------------------------------------------------------------------- cells


def _xlsx_cell(value: Any) -> Any:
    """Numbers and booleans stay typed; everything else is text (never a formula)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", str(value))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    text = "" if value is None else str(value)
    # Keep spreadsheet formulas from running when an auditor opens the file.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------- writers

Chunks = Generator[Sequence[Mapping[str, Any]], None, None]


def _csv_body(chunks: Chunks, fields: Sequence[str]) -> Generator[bytes, None, None]:
    """BOM, header row, then one piece of the body per chunk of rows."""
    with closing(chunks):
        buf = io.StringIO()
        writer = csv.writer(buf)
        buf.write("\ufeff")
        writer.writerow(fields)
        for chunk in chunks:
            for row in chunk:
                writer.writerow([_csv_cell(row.get(f)) for f in fields])
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
        if buf.tell():
            yield buf.getvalue().encode("utf-8")


def _write_xlsx(chunks: Chunks, fields: Sequence[str], title: str, path: str) -> None:
    """One worksheet: a header row of field names, then one row per item; text cells typed as strings.
    openpyxl's write-only workbook streams rows to disk (inline strings, no shared-string table)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=re.sub(r"[\\/*?:\[\]]", "_", title)[:31] or "export")
    sheet.append(list(fields))
    with closing(chunks):
        for chunk in chunks:
            for row in chunk:
                cells = []
                for field in fields:
                    cell = WriteOnlyCell(sheet, value=_xlsx_cell(row.get(field)))
                    if isinstance(cell.value, str):
                        cell.data_type = "s"  # "=..." is text, not a formula
                    cells.append(cell)
                sheet.append(cells)
    book.save(path)


# Exports run their database and file work in threads outside the pool the routes run in (WORKER_THREADS);
# further steps wait in the event loop. A workbook holds its thread from the first row to the saved file
# (seconds for a large list), and a CSV step that writes an audit row (an unmasked export) may wait for
# SQLite's write lock inside its thread: in the routes' pool a few exports took every thread, so every other
# request that needed one waited for them, among them the writer holding that lock (a wedge until the lock's
# 30 s timeout). Workbooks have threads of their own, so a CSV export's short steps never queue behind one.
EXPORT_THREADS = 2  # CSV steps at once per worker process
WORKBOOK_THREADS = 1  # .xlsx workbooks written at once per worker process
_csv_threads = per_loop(lambda: anyio.CapacityLimiter(EXPORT_THREADS))
_workbook_threads = per_loop(lambda: anyio.CapacityLimiter(WORKBOOK_THREADS))

# Exports reading the database at once per worker process. Each holds a database connection (its read snapshot)
# from its first row to its last, as long as its client takes to read them: a burst of exports took every
# connection of the pool (PostgreSQL: 20 and 20 more) and every other request waited `pool_timeout` for one, then
# answered 503. Further exports wait for their turn in the event loop, holding nothing, at most
# EXPORT_WAIT_SECONDS; then they answer 503 with Retry-After. One whose client leaves first stops, reading nothing:
# a client that gave up keeps no place in the queue. A workbook first waits for its own turn (one at a time, as its
# thread) and takes a reading turn only while it is written, not while the file is sent; rows already in memory (a
# list computed whole, a report) take no reading turn.
EXPORTS_AT_ONCE = 4
EXPORT_WAIT_SECONDS = 30
TOO_MANY_EXPORTS = "Too many exports are being written; try again shortly."
_export_turns = per_loop(lambda: asyncio.Semaphore(EXPORTS_AT_ONCE))
_workbook_turns = per_loop(lambda: asyncio.Semaphore(WORKBOOK_THREADS))


def _exports_busy() -> ProblemError:
    return unavailable("service_unavailable", TOO_MANY_EXPORTS)


class ExportResponse(StreamingResponse):
    """A CSV or .xlsx file of the rows `source()` yields in chunks; nothing is read before the response is sent."""

    def __init__(self, source: Callable[[], Chunks], fields: Sequence[str], filename: str, media_type: str, *,
                 reads_database: bool = True) -> None:
        self._source, self._fields, self._title = source, list(fields), filename
        self._reads_database = reads_database  # False: the rows are in memory already (no reading turn)
        self._xlsx = media_type == XLSX_MEDIA_TYPE
        extension = "xlsx" if self._xlsx else "csv"
        super().__init__(
            self._csv_chunks(), media_type=XLSX_MEDIA_TYPE if self._xlsx else "text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.{extension}"', "Vary": "Accept"},
        )

    async def _csv_chunks(self) -> AsyncGenerator[bytes, None]:
        body = _csv_body(self._source(), self._fields)
        try:
            while (piece := await anyio.to_thread.run_sync(next, body, None, limiter=_csv_threads())) is not None:
                yield piece
        finally:
            with anyio.CancelScope(shield=True):  # a client that went away still gets its session closed
                await anyio.to_thread.run_sync(body.close, limiter=_csv_threads())

    async def stream_response(self, send: Send) -> None:
        chunks = self._csv_chunks_iter
        try:
            # The statement runs and the first rows are written before the status line goes out: a failure here
            # is answered with a problem by the error handlers, not with a 200 cut short.
            first = await anext(chunks, b"")
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for piece in chunks:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            # A client that went away mid-send: its snapshot is closed now, before its reading turn is given back,
            # not whenever the collector finds the generator.
            with anyio.CancelScope(shield=True):
                await chunks.aclose()

    @property
    def _csv_chunks_iter(self) -> AsyncGenerator[bytes, None]:
        assert isinstance(self.body_iterator, AsyncGenerator)
        return self.body_iterator

    def _reading_turn(self, receive: Receive) -> Any:
        """Wait for a turn to read the database (before the status line: a 503 is a problem document)."""
        return turn(_export_turns() if self._reads_database else None, within=EXPORT_WAIT_SECONDS,
                    busy=_exports_busy, gone=partial(_client_gone, receive))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An export whose client leaves while it waits for its turn stops there: nothing is read nor sent, and it is
        logged as 499 (app.core.observability)."""
        try:
            await self._answer(scope, receive, send)
        except Abandoned:
            await self._csv_chunks_iter.aclose()
            scope[CLIENT_LEFT_SCOPE_KEY] = True

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._xlsx:
            async with self._reading_turn(receive):
                await super().__call__(scope, receive, send)
            return
        await self._csv_chunks_iter.aclose()  # not used for a workbook
        fd, path = tempfile.mkstemp(prefix="export-", suffix=".xlsx")
        os.close(fd)
        try:
            async with turn(_workbook_turns(), within=EXPORT_WAIT_SECONDS, busy=_exports_busy,
                            gone=partial(_client_gone, receive)), self._reading_turn(receive):
                await anyio.to_thread.run_sync(_write_xlsx, self._source(), self._fields, self._title, path,
                                               limiter=_workbook_threads())
            file = FileResponse(path, media_type=XLSX_MEDIA_TYPE, headers={
                "Content-Disposition": f'attachment; filename="{self._title}.xlsx"', "Vary": "Accept"})
            await file(scope, receive, send)
        finally:
            os.unlink(path)


async def _client_gone(receive: Receive) -> None:
    """Ends when the client has disconnected (what it still sends of its request is read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _dump(model: type[BaseModel], item: Any) -> dict[str, Any]:
    return model.model_validate(item).model_dump(mode="json")


def _streamed(export: Export, stages: Sequence[Present], model: type[BaseModel]) -> Chunks:
    """The export's statement, run once in a read-only snapshot, presented chunk by chunk."""
    assert export.query is not None
    with read_snapshot() as session:
        result = session.execute(export.query, execution_options={"yield_per": EXPORT_CHUNK})
        parts = result.partitions() if export.rows else result.scalars().partitions()
        for part in parts:
            items: Sequence[Any] = list(part)
            for present in stages:
                items = present(session, list(items))
            # The identity map holds rows weakly: a chunk is freed once it is written.
            yield [_dump(model, i) for i in items]


def _in_chunks(rows: Iterable[Mapping[str, Any]]) -> Chunks:
    iterator = iter(rows)
    while chunk := list(islice(iterator, EXPORT_CHUNK)):
        yield chunk


def export_response(request: Request, rows: Iterable[Mapping[str, Any]], fields: Sequence[str],
                    filename: str) -> Response | None:
    """CSV or .xlsx of these rows when Accept asks for one (None: answer JSON): for tables that are not lists."""
    media_type = negotiate(request.headers.get("accept", ""))
    if media_type is None:
        return None
    return ExportResponse(partial(_in_chunks, rows), fields, filename, media_type, reads_database=False)


def respond(
    request: Request, model: type[BaseModel], items: list[Any], total: int, params: PageParams,
    *, filename: str = "export", session: Session | None = None, present: Present | None = None,
) -> Any:
    """The list response: the JSON envelope of the page, or, when Accept asks for an export, the whole
    filtered result in scope as CSV / .xlsx (same filters, scope, presentation and masking as JSON).

    `present(session, items)`: what the route shows for the service's items (pass `session`); it runs on the
    page for JSON and on each chunk, in the export's own session, for an export."""
    if params.updated_since is not None and not params.updated_since_applied:
        raise updated_since_unsupported()
    if params.after is not None and not params.after_applied:
        raise cursor_unsupported(CURSOR_OFFSET_ONLY)
    export = params.export
    if export is None:
        if present is not None:
            assert session is not None, "respond(present=...) needs the request's session"
            items = list(present(session, items))
        return {"items": items, "total": total, "limit": params.limit, "offset": params.offset, "next": params.next}
    fields = list(model.model_fields)
    if export.query is not None:
        if not isinstance(items, DeferredPage):
            raise RuntimeError(f"{filename}: the list's items were changed outside fetch_page(present=) or "
                               "respond(present=); an export would not show them")
        stages = [p for p in (export.present, present) if p is not None]
        source: Callable[[], Chunks] = partial(_streamed, export, stages, model)
    else:  # a list computed in Python is whole and in memory already
        if present is not None:
            assert session is not None, "respond(present=...) needs the request's session"
            items = list(present(session, items))
        source = partial(_in_chunks, [_dump(model, i) for i in items])
        return ExportResponse(source, fields, filename, export.media_type, reads_database=False)
    return ExportResponse(source, fields, filename, export.media_type)


CSV_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                      XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "The page as JSON; with `Accept: text/csv` (UTF-8 with BOM, a header row of field names) "
                         f"or `Accept: {XLSX_MEDIA_TYPE}` the whole filtered result in scope as a file, streamed "
                         "(`limit`/`offset` apply to an export only when given). Personal data is masked as in "
                         "JSON."},
}
