"""Demo data: Kangding as the source describes it in 2019. Running it twice changes nothing."""

from __future__ import annotations

from sqlalchemy.orm import Session


def seed_demo(session: Session, *, only_if_empty: bool = False) -> str:
    from app.demo.platform import seed_platform

    return seed_platform(session, only_if_empty=only_if_empty)
