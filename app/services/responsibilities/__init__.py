"""The rules of the three lists (实): responsibility letters, monthly lists, problem lists.

Every overdue/late rule is computed against `clock.today()`; tests patch
`app.services.responsibilities.clock.today`.
"""

import datetime as dt

from app.services.responsibilities import clock
from app.services.responsibilities.problems import open_problem


def today() -> dt.date:
    """The business date (delegates to clock.today, which is what tests patch)."""
    return clock.today()


__all__ = ["clock", "open_problem", "today"]
