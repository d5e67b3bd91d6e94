"""Shared field types of the funds area: months as "YYYY-MM", fiscal years, yuan amounts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

YEAR_MIN = 2000
YEAR_MAX = 2100
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def parse_month(value: Any) -> dt.date:
    """ "2019-03" → date(2019, 3, 1); a date is truncated to its month."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.replace(day=1)
    if not isinstance(value, str) or len(value) != 7 or value[4] != "-":
        raise ValueError('months are written "YYYY-MM"')
    try:
        year, month = int(value[:4]), int(value[5:])
        day = dt.date(year, month, 1)
    except ValueError:
        raise ValueError('months are written "YYYY-MM"') from None
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"the year must be between {YEAR_MIN} and {YEAR_MAX}")
    return day


def month_str(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_start(year: int, month: int) -> dt.date:
    return dt.date(year, month, 1)


def month_end(day: dt.date) -> dt.date:
    nxt = add_months(day.replace(day=1), 1)
    return nxt - dt.timedelta(days=1)


def add_months(day: dt.date, n: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + n
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """First days of every month from `first` to `last`, both included."""
    out = []
    cur = first.replace(day=1)
    while cur <= last:
        out.append(cur)
        cur = add_months(cur, 1)
    return out


# A month in the API: "YYYY-MM" in and out, the month's first day inside.
Month = Annotated[
    dt.date,
    BeforeValidator(parse_month),
    PlainSerializer(month_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONTH_PATTERN, "examples": ["2019-03"]}),
]

FiscalYear = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX, description="Fiscal year")]
