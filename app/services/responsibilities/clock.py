"""The business date. Every "overdue" and "late" is computed against it at request time; tests patch it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def today() -> dt.date:
    """The local business date (Beijing time); tests monkeypatch this to fix "today"."""
    return dt.datetime.now(LOCAL_TZ).date()
