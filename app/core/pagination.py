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
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Annotated, Any, Generic, TypeVar

import anyio
from fastapi import Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from app.core import accept
from app.core.db import read_snapshot
from app.core.errors import ProblemError
from app.models.common import Timestamp

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_ALL = 2**62  # the limit of an export whose URL gives none: no LIMIT is applied
EXPORT_CHUNK = 1000  # rows fetched, presented and written at a time

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
    offset: int = Field(ge=0, description="Items skipped before this page", examples=[0])

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
) -> PageParams:
    media_type = negotiate(request.headers.get("accept", ""))
    if media_type is None:
        return PageParams(limit=limit, offset=offset, sort=sort, updated_since=updated_since)
    explicit = "limit" in request.query_params
    return PageParams(limit=limit if explicit else EXPORT_ALL, offset=offset, sort=sort, export=Export(media_type),
                      updated_since=updated_since)


PageDep = Annotated[PageParams, Depends(page_params)]


def order_by(stmt: Select[Any], sort: str | None, allowed: Mapping[str, Any], default: Sequence[Any],
             tiebreak: Any) -> Select[Any]:
    """Apply `?sort=` over a whitelist; always end with a unique key so pages are stable."""
    if not sort:
        return stmt.order_by(*default, tiebreak)
    clauses = []
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
    return stmt.order_by(*clauses, tiebreak)


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


def fetch_page(
    session: Session, stmt: Select[Any], params: PageParams, *, allowed: Mapping[str, Any],
    default: Sequence[Any], tiebreak: Any, rows: bool = False, present: Present | None = None,
) -> tuple[list[Any], int]:
    """Items of one page and the total, in two statements whatever the page size.

    `rows=True`: the statement selects an entity plus joined columns (items are tuples); `present` turns
    the fetched rows into what the list shows. For an export nothing runs here (see the module docstring)."""
    stmt = changed_since(stmt, params)
    ordered = order_by(stmt, params.sort, allowed, default, tiebreak)
    if params.limit < EXPORT_ALL:
        ordered = ordered.limit(params.limit)
    if params.offset:
        ordered = ordered.offset(params.offset)
    if params.export is not None:
        if params.export.query is not None:
            raise RuntimeError("one list, one statement: fetch_page was called twice for an export")
        params.export.query, params.export.rows, params.export.present = ordered, rows, present
        return DeferredPage(), 0
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
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


class ExportResponse(StreamingResponse):
    """A CSV or .xlsx file of the rows `source()` yields in chunks; nothing is read before the response is sent."""

    def __init__(self, source: Callable[[], Chunks], fields: Sequence[str], filename: str, media_type: str) -> None:
        self._source, self._fields, self._title = source, list(fields), filename
        self._xlsx = media_type == XLSX_MEDIA_TYPE
        extension = "xlsx" if self._xlsx else "csv"
        super().__init__(
            self._csv_chunks(), media_type=XLSX_MEDIA_TYPE if self._xlsx else "text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.{extension}"', "Vary": "Accept"},
        )

    async def _csv_chunks(self) -> AsyncGenerator[bytes, None]:
        body = _csv_body(self._source(), self._fields)
        try:
            while (piece := await run_in_threadpool(next, body, None)) is not None:
                yield piece
        finally:
            with anyio.CancelScope(shield=True):  # a client that went away still gets its session closed
                await run_in_threadpool(body.close)

    async def stream_response(self, send: Send) -> None:
        chunks = self._csv_chunks_iter
        # The statement runs and the first rows are written before the status line goes out: a failure here
        # is answered with a problem by the error handlers, not with a 200 cut short.
        first = await anext(chunks, b"")
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for piece in chunks:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @property
    def _csv_chunks_iter(self) -> AsyncGenerator[bytes, None]:
        assert isinstance(self.body_iterator, AsyncGenerator)
        return self.body_iterator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._xlsx:
            await super().__call__(scope, receive, send)
            return
        await self._csv_chunks_iter.aclose()  # not used for a workbook
        fd, path = tempfile.mkstemp(prefix="export-", suffix=".xlsx")
        os.close(fd)
        try:
            await run_in_threadpool(_write_xlsx, self._source(), self._fields, self._title, path)
            file = FileResponse(path, media_type=XLSX_MEDIA_TYPE, headers={
                "Content-Disposition": f'attachment; filename="{self._title}.xlsx"', "Vary": "Accept"})
            await file(scope, receive, send)
        finally:
            os.unlink(path)


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
    return ExportResponse(partial(_in_chunks, rows), fields, filename, media_type)


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
    export = params.export
    if export is None:
        if present is not None:
            assert session is not None, "respond(present=...) needs the request's session"
            items = list(present(session, items))
        return {"items": items, "total": total, "limit": params.limit, "offset": params.offset}
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
    return ExportResponse(source, fields, filename, export.media_type)


CSV_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                      XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "The page as JSON; with `Accept: text/csv` (UTF-8 with BOM, a header row of field names) "
                         f"or `Accept: {XLSX_MEDIA_TYPE}` the whole filtered result in scope as a file, streamed "
                         "(`limit`/`offset` apply to an export only when given). Personal data is masked as in "
                         "JSON."},
}
