"""Accept-style request headers (Accept, Accept-Language): the ranges they list with their q-values."""

from __future__ import annotations

import re

_MAX_HEADER = 1000
_MAX_RANGES = 32


def ranges(header: str | None, token: re.Pattern[str]) -> list[tuple[str, float]]:
    """The header's ranges that match `token` (lower-cased) with their q-values, best first (ties keep the header's
    order); unreadable ranges and q-values outside 0..1 are dropped. q=0 stays in: it says "not this"."""
    if not header:
        return []
    found: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:_MAX_HEADER].split(",")[:_MAX_RANGES]):
        name, *params = (p.strip() for p in part.split(";"))
        if not token.fullmatch(name):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if not 0.0 <= q <= 1.0:  # also rejects nan
            continue
        found.append((q, index, name.lower()))
    found.sort(key=lambda r: (-r[0], r[1]))
    return [(name, q) for q, _, name in found]
