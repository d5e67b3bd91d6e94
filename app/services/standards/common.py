"""Small rules shared by the standards modules: percentages, ratings, townships from paths."""

from __future__ import annotations

from app.models.standards import Aspect, Rating

ASPECT_ORDER: dict[str, int] = {a.value: i for i, a in enumerate(Aspect)}


def percentage(score: int, maximum: int) -> float:
    """Score as a percentage of the maximum, two decimals (0 when there is nothing to score)."""
    if maximum <= 0:
        return 0.0
    return round(score * 100 / maximum, 2)


def rating_for(score: int, maximum: int, *, demonstration_min_pct: int, compliant_min_pct: int) -> Rating:
    """示范 / 达标 / 后进 by the set's thresholds, compared in integers so 90 % is exactly 90 %."""
    if maximum > 0 and score * 100 >= demonstration_min_pct * maximum:
        return Rating.demonstration
    if maximum > 0 and score * 100 >= compliant_min_pct * maximum:
        return Rating.compliant
    return Rating.backward


def below_backward_threshold(score: int, maximum: int, compliant_min_pct: int) -> bool:
    return maximum > 0 and score * 100 < compliant_min_pct * maximum


def township_id_of(path: str) -> int | None:
    """The township an organisation belongs to (itself for a township), from its materialised path."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    return int(parts[1])


def period_key(year: int, quarter: int | None) -> str:
    return f"{year}" if quarter is None else f"{year}-Q{quarter}"
