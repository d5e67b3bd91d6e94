"""The moves of money on a budget line, each ONE conditional UPDATE, so no interleaving can overspend a line.

A line holds allocated (money in), allocated_down, approved and paid (money out), and
committed = allocated_down + approved + paid. Taking money checks `committed + amount <= allocated` in the
UPDATE's own WHERE clause; PostgreSQL locks the row for the rest of the transaction, SQLite serialises writers.
CHECK constraints hold the same invariants should any code forget. Every function returns the line's amounts
before and after (yuan strings) for the audit row the caller writes, after all its row updates (so the audit
chain's lock is always taken last).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import ProblemError
from app.core.money import fmt_yuan
from app.models.funds.budgets import BudgetLine

AMOUNT_FIELDS = ("allocated_fen", "allocated_down_fen", "approved_fen", "paid_fen", "committed_fen")
_RETURNING = [getattr(BudgetLine, f) for f in AMOUNT_FIELDS]

Amounts = dict[str, Any]


def amounts(row: Any) -> Amounts:
    """Yuan strings of a line's amounts (from a RETURNING row or a BudgetLine)."""
    values = {f: getattr(row, f) for f in AMOUNT_FIELDS}
    out = {f.removesuffix("_fen"): fmt_yuan(v) for f, v in values.items()}
    out["available"] = fmt_yuan(values["allocated_fen"] - values["committed_fen"])
    return out


def _before(after: Any, deltas: dict[str, int]) -> Amounts:
    values = {f: getattr(after, f) - deltas.get(f, 0) for f in AMOUNT_FIELDS}
    out = {f.removesuffix("_fen"): fmt_yuan(v) for f, v in values.items()}
    out["available"] = fmt_yuan(values["allocated_fen"] - values["committed_fen"])
    return out


def _execute(session: Session, line_id: int, deltas: dict[str, int], *conditions: Any) -> Any:
    values: dict[Any, Any] = {getattr(BudgetLine, f): getattr(BudgetLine, f) + d for f, d in deltas.items() if d}
    values[BudgetLine.version] = BudgetLine.version + 1
    values[BudgetLine.updated_at] = utcnow()
    stmt = (
        update(BudgetLine).where(BudgetLine.id == line_id, *conditions).values(values)
        .returning(*_RETURNING).execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).first()
    if row is not None:
        cached = session.identity_map.get(Session.identity_key(BudgetLine, line_id))
        if cached is not None:
            session.expire(cached)
    return row


def available_fen(session: Session, line_id: int) -> int:
    return int(session.scalar(
        select(BudgetLine.allocated_fen - BudgetLine.committed_fen).where(BudgetLine.id == line_id)) or 0)


def budget_exceeded(session: Session, line_id: int, amount_fen: int, what: str) -> ProblemError:
    left = available_fen(session, line_id)
    return ProblemError(
        409, "budget_exceeded",
        f"{what} of {fmt_yuan(amount_fen)} exceeds the {fmt_yuan(left)} available on budget line {line_id}.",
        errors=[{"loc": ["budget_line", line_id], "msg": f"available {fmt_yuan(left)}, "
                 f"needed {fmt_yuan(amount_fen)}, short by {fmt_yuan(amount_fen - left)}"}],
    )


def take(session: Session, line_id: int, amount_fen: int, *, into: str, what: str) -> tuple[Amounts, Amounts]:
    """Commit `amount_fen` of the line to `into` ("allocated_down" or "approved"), or 409 budget_exceeded."""
    field = f"{into}_fen"
    assert field in ("allocated_down_fen", "approved_fen") and amount_fen > 0
    deltas = {field: amount_fen, "committed_fen": amount_fen}
    row = _execute(session, line_id, deltas, BudgetLine.committed_fen + amount_fen <= BudgetLine.allocated_fen)
    if row is None:
        raise budget_exceeded(session, line_id, amount_fen, what)
    return _before(row, deltas), amounts(row)


def receive(session: Session, line_id: int, amount_fen: int) -> tuple[Amounts, Amounts]:
    """Money into the line: an allocation from above, or party dues collected."""
    assert amount_fen > 0
    deltas = {"allocated_fen": amount_fen}
    row = _execute(session, line_id, deltas)
    assert row is not None
    return _before(row, deltas), amounts(row)


def pay(session: Session, line_id: int, amount_fen: int) -> tuple[Amounts, Amounts]:
    """Approved money paid out: approved → paid (committed is unchanged)."""
    deltas = {"approved_fen": -amount_fen, "paid_fen": amount_fen}
    row = _execute(session, line_id, deltas, BudgetLine.approved_fen >= amount_fen)
    if row is None:
        raise ProblemError(409, "ledger_mismatch", f"Budget line {line_id} holds less approved money than "
                           f"{fmt_yuan(amount_fen)}.")
    return _before(row, deltas), amounts(row)


def release(session: Session, line_id: int, amount_fen: int, *, from_: str) -> tuple[Amounts, Amounts]:
    """Give money back to the line: an approval cancelled ("approved") or a payment reversed ("paid")."""
    field = f"{from_}_fen"
    assert field in ("approved_fen", "paid_fen") and amount_fen > 0
    deltas = {field: -amount_fen, "committed_fen": -amount_fen}
    row = _execute(session, line_id, deltas, getattr(BudgetLine, field) >= amount_fen)
    if row is None:
        raise ProblemError(409, "ledger_mismatch", f"Budget line {line_id} holds less {from_} money than "
                           f"{fmt_yuan(amount_fen)}.")
    return _before(row, deltas), amounts(row)
