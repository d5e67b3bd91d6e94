"""SQL pieces for summaries computed in the database, the same on SQLite and PostgreSQL.

A city-scope summary groups by the caller's direct children: `child_of` turns an organisation's
materialised path into the id of the child of the root whose subtree holds it, so the GROUP BY happens in
the database and Python only sees one row per child, whatever the number of organisations below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, case, cast, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class _StrPos(FunctionElement[int]):
    """1-based position of `needle` in `haystack`, 0 when absent."""

    type = Integer()
    inherit_cache = True
    name = "strpos"


@compiles(_StrPos)
def _strpos_default(element: Any, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"strpos({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)})"


@compiles(_StrPos, "sqlite")
def _strpos_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)})"


class _DaysBetween(FunctionElement[float]):
    """Days (fractional) from `start` to `end`, two timestamps."""

    inherit_cache = True
    name = "days_between"


@compiles(_DaysBetween)
def _days_between_default(element: Any, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 86400.0)"


@compiles(_DaysBetween, "sqlite")
def _days_between_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(julianday({end}) - julianday({start}))"


def days_between(start: Any, end: Any) -> Any:
    return _DaysBetween(start, end)


def child_of(path_column: Any, root_path: str, root_id: int) -> Any:
    """The id of the root's direct child whose subtree holds the organisation at `path_column`; the root's own
    id for the root itself. Only meaningful for paths inside the root's subtree (filter with in_subtree)."""
    rest = func.substr(path_column, len(root_path) + 1)
    return case(
        (path_column == root_path, literal(root_id)),
        else_=cast(func.substr(rest, 1, _StrPos(rest, "/") - 1), Integer),
    )


class _JoinedText(FunctionElement[str]):
    """The values of a group joined by commas (as text), in no particular order."""

    inherit_cache = True
    name = "joined_text"


@compiles(_JoinedText)
def _joined_text_default(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    return f"string_agg(CAST({compiler.process(value, **kw)} AS TEXT), ',')"


@compiles(_JoinedText, "sqlite")
def _joined_text_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    return f"group_concat({compiler.process(value, **kw)}, ',')"


def joined_text(value: Any) -> Any:
    """An aggregate: a group's values as one comma-separated text (one row per group to fetch, not one per value)."""
    return _JoinedText(value)
