"""The one pagination helper: limit/offset, a sort whitelist, the envelope, CSV or Excel by Accept."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.core.errors import ProblemError

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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
    limit: int
    offset: int
    sort: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..200)")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    sort: Annotated[
        str | None,
        Query(max_length=200, description="Comma-separated fields; prefix with - for descending"),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, offset=offset, sort=sort)


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


def fetch_page(
    session: Session, stmt: Select[Any], params: PageParams, *, allowed: Mapping[str, Any],
    default: Sequence[Any], tiebreak: Any,
) -> tuple[list[Any], int]:
    """Rows of one page and the total, in two statements whatever the page size."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    ordered = order_by(stmt, params.sort, allowed, default, tiebreak)
    rows = list(session.scalars(ordered.limit(params.limit).offset(params.offset)))
    return rows, total


def wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return CSV_MEDIA_TYPE in accept and "application/json" not in accept.split(",")[0]


def wants_xlsx(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return XLSX_MEDIA_TYPE in accept and "application/json" not in accept.split(",")[0]


def _xlsx_cell(value: Any) -> Any:
    """Numbers and booleans stay typed; everything else is text (never a formula)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | dict):
        import json

        value = json.dumps(value, ensure_ascii=False)
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", str(value))


def xlsx_response(rows: Iterable[Mapping[str, Any]], fields: Sequence[str], filename: str) -> Response:
    """One worksheet: a header row of field names, then one row per item; text cells typed as strings."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=re.sub(r"[\\/*?:\[\]]", "_", filename)[:31] or "export")
    sheet.append(fields)
    for row in rows:
        cells = []
        for field in fields:
            cell = WriteOnlyCell(sheet, value=_xlsx_cell(row.get(field)))
            if isinstance(cell.value, str):
                cell.data_type = "s"  # "=..." is text, not a formula
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return Response(out.getvalue(), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}.xlsx"'})


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        import json

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


def csv_response(rows: Iterable[Mapping[str, Any]], fields: Sequence[str], filename: str) -> StreamingResponse:
    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        buf.write("\ufeff")
        writer.writerow(fields)
        for row in rows:
            writer.writerow([_csv_cell(row.get(f)) for f in fields])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        generate(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


def export_response(request: Request, rows: Iterable[Mapping[str, Any]], fields: Sequence[str],
                    filename: str) -> Response | None:
    """CSV or .xlsx of these rows when Accept asks for one (None otherwise): for tables that are not pages."""
    xlsx, csv_ = wants_xlsx(request), wants_csv(request)
    if xlsx and csv_:  # both asked for: the one named first
        accept = request.headers.get("accept", "")
        xlsx = accept.index(XLSX_MEDIA_TYPE) < accept.index(CSV_MEDIA_TYPE)
    if xlsx:
        return xlsx_response(rows, fields, filename)
    if csv_:
        return csv_response(rows, fields, filename)
    return None


def respond(
    request: Request, model: type[BaseModel], items: list[Any], total: int, params: PageParams,
    *, filename: str = "export",
) -> Any:
    """The list response: the JSON envelope, or CSV / .xlsx of the same page (same filters, scope and masking)
    when Accept asks for it."""
    if wants_csv(request) or wants_xlsx(request):
        dumped = (model.model_validate(i).model_dump(mode="json") for i in items)
        return export_response(request, dumped, list(model.model_fields), filename)
    return {"items": items, "total": total, "limit": params.limit, "offset": params.offset}


CSV_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                      XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "The page; CSV (UTF-8 with BOM) when `Accept: text/csv`, an Excel workbook when "
                         f"`Accept: {XLSX_MEDIA_TYPE}`"},
}
