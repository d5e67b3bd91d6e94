"""Small factories for the funds tests: budget lines, cadres, users without password hashing."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.permissions import Role, permissions_for
from app.core.scope import Actor
from app.models.accounts import User
from app.models.funds.budgets import BudgetLine
from app.models.funds.subsidies import SubsidyPolicy, SubsidyRate
from app.models.organizations import Organization
from app.models.people import Person
from tests.factories import World, access_token, make_person, make_position

_seq = itertools.count(1)
D = dt.date


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def make_line(session: Session, org: Organization, *, year: int = 2019, category: str = "party_work",
              allocated_fen: int = 100_000_00, name: str | None = None) -> BudgetLine:
    line = BudgetLine(fiscal_year=year, org_id=org.id, category=category, name=name or f"{category} {year}",
                      source="市财政", allocated_fen=allocated_fen)
    session.add(line)
    session.flush()
    return line


def reload_line(session: Session, line_id: int) -> BudgetLine:
    session.expire_all()
    line = session.scalar(select(BudgetLine).where(BudgetLine.id == line_id))
    assert line is not None
    return line


def extra_user(session: Session, world: World, role: str, org: Organization) -> User:
    """Another user of a role (no password hashing: reuses a hash)."""
    user = User(username=f"funds_user_{next(_seq)}", password_hash=world.users["v1"].password_hash, role=role,
                org_id=org.id)
    session.add(user)
    session.flush()
    return user


def headers(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(user)}"}


def actor_of(user: User, org: Organization) -> Actor:
    return Actor(user_id=user.id, username=user.username, role=user.role, org_id=org.id, org_path=org.path,
                 permissions=permissions_for(user.role))


def city_actor(world: World, who: str = "city") -> Actor:
    user = world.users[who]
    org = {"city": world.city, "auditor": world.city, "t1": world.t1, "t2": world.t2, "v1": world.v1,
           "v2": world.v2}[who]
    return actor_of(user, org)


def cadre(session: Session, org: Organization, title: str = "secretary", started: dt.date = D(2015, 1, 1),
          ended: dt.date | None = None, name: str | None = None) -> Person:
    person = make_person(session, org, name=name or f"干部{next(_seq)}")
    make_position(session, person, org, title, started, ended)
    return person


def policy(session: Session, kind: str, amount_fen: int | None = None, *, valid_from: dt.date = D(2019, 1, 1),
           valid_to: dt.date | None = None, rates: list[dict[str, Any]] | None = None) -> SubsidyPolicy:
    p = SubsidyPolicy(kind=kind, name=f"{kind} from {valid_from}", valid_from=valid_from, valid_to=valid_to)
    session.add(p)
    session.flush()
    for r in rates or [{"amount_fen": amount_fen}]:
        session.add(SubsidyRate(policy_id=p.id, **r))
    session.flush()
    return p


@contextmanager
def count_statements(engine: Engine | Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


CITY = Role.city_admin
TOWNSHIP = Role.township_admin
VILLAGE = Role.village_admin
