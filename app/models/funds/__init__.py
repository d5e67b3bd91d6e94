"""Funds (保: money): the budget ledger, subsidy policies and entitlement runs, party dues.

Every amount is integer fen in a BigInteger `*_fen` column and a two-decimal yuan string
(`Yuan`) in the API. Invariants the money depends on are CHECK constraints in the database.
"""

from app.models.funds import budgets, dues, subsidies  # noqa: F401
from app.models.funds.common import Month, month_end, month_start, month_str, parse_month  # noqa: F401
