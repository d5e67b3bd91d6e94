"""Money: integer fen in the database, a two-decimal yuan string in the API. Never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MAX_FEN_DIGITS = 15
MAX_FEN = 10**MAX_FEN_DIGITS  # a quadrillion fen: far beyond any budget, well inside BIGINT


def _parse_yuan(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError("send amounts as strings such as \"800.00\", not as floats")
    if isinstance(value, bool):
        raise ValueError("not an amount")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError("not an amount: use a decimal string such as \"800.00\"") from None
    if not amount.is_finite():
        raise ValueError("not a finite amount")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("amounts have at most two decimal places")
    # By its digits, not by arithmetic: "1E+1000000" is a finite Decimal that no multiplication survives
    # (decimal.Overflow, not a ValueError, would have been a 500).
    if amount and amount.adjusted() + 2 >= MAX_FEN_DIGITS:  # |amount| × 100 ≥ MAX_FEN
        raise ValueError("amount out of range")
    return amount.quantize(Decimal("0.01"))


Yuan = Annotated[
    Decimal,
    BeforeValidator(_parse_yuan),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$", "examples": ["800.00"]}),
]


def to_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def round_fen(amount: Decimal) -> int:
    """Half up to the fen (per line, as the subsidy rules require)."""
    return int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def fmt_yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
