"""Platform demo data: the city, its township units, villages, people and one user per role."""

from __future__ import annotations

from sqlalchemy.orm import Session


def seed_platform(session: Session, *, only_if_empty: bool = False) -> str:
    return "demo data: not yet written"
