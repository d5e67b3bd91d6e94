"""Small factories and the shared base world: a city, two townships, three villages, a user per role."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.core.permissions import Role
from app.core.security import (
    create_token,
    encrypt_pii,
    hash_password,
    mask_id_number,
    mask_phone,
    pii_lookup_hash,
)
from app.models.accounts import User
from app.models.organizations import Organization
from app.models.people import Person, Position

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


@dataclass
class World:
    city: Organization
    t1: Organization  # 炉城街道 (street)
    t2: Organization  # 姑咱镇 (town)
    v1: Organization  # a community under t1
    v1b: Organization  # a second community under t1
    v2: Organization  # a village under t2
    users: dict[str, User] = field(default_factory=dict)

    def token(self, who: str) -> str:
        user = self.users[who]
        return access_token(user)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}


def access_token(user: User, **overrides: Any) -> str:
    claims = {"ver": user.token_version, "role": user.role, "org": user.org_id}
    return create_token(subject=str(user.id), token_type="access", lifetime=dt.timedelta(minutes=15),
                        claims=claims, **overrides).token


def make_org(session: Session, parent: Organization | None, *, level: str, domain: str, name: str,
             code: str | None, altitude_m: int | None = None) -> Organization:
    org = Organization(parent_id=parent.id if parent else None, level=level, domain=domain, name=name,
                       code=code, altitude_m=altitude_m, path="tmp/")
    session.add(org)
    session.flush()
    org.path = f"{parent.path if parent else '/'}{org.id}/"
    session.flush()
    return org


def make_user(session: Session, username: str, role: str, org: Organization, password: str = PASSWORD) -> User:
    user = User(username=username, password_hash=hash_password(password), role=role, org_id=org.id)
    session.add(user)
    session.flush()
    return user


def id_number(prefix: str = "513301", birth: str = "19800101", seq: int | None = None) -> str:
    from stdnum.cn import ric

    n = seq if seq is not None else next(_seq)
    body = f"{prefix}{birth}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def make_person(session: Session, org: Organization, *, name: str = "张三", member_status: str = "full",
                id_no: str | None = None, phone: str | None = None, gender: str = "male") -> Person:
    id_no = id_no or id_number(seq=next(_seq))
    person = Person(
        org_id=org.id, name=name, gender=gender, member_status=member_status,
        joined_party_on=dt.date(2000, 7, 1) if member_status != "none" else None,
        id_number_cipher=encrypt_pii(id_no), id_number_hash=pii_lookup_hash(id_no),
        id_number_masked=mask_id_number(id_no),
        phone_cipher=encrypt_pii(phone) if phone else None, phone_hash=pii_lookup_hash(phone) if phone else None,
        phone_masked=mask_phone(phone) if phone else None,
    )
    session.add(person)
    session.flush()
    return person


def make_position(session: Session, person: Person, org: Organization, title: str, started_on: dt.date,
                  ended_on: dt.date | None = None) -> Position:
    pos = Position(person_id=person.id, org_id=org.id, title=title, started_on=started_on, ended_on=ended_on)
    session.add(pos)
    session.flush()
    return pos


def build_world(session: Session) -> World:
    city = make_org(session, None, level="city", domain="organ", name="康定市", code="513301")
    t1 = make_org(session, city, level="township", domain="street", name="炉城街道", code="513301001",
                  altitude_m=2560)
    t2 = make_org(session, city, level="township", domain="township", name="姑咱镇", code="513301101",
                  altitude_m=1400)
    v1 = make_org(session, t1, level="village", domain="community", name="将军桥社区", code="513301001001",
                  altitude_m=2600)
    v1b = make_org(session, t1, level="village", domain="community", name="向阳社区", code="513301001002",
                   altitude_m=2650)
    v2 = make_org(session, t2, level="village", domain="rural", name="日头村", code="513301101001",
                  altitude_m=3720)
    w = World(city=city, t1=t1, t2=t2, v1=v1, v1b=v1b, v2=v2)
    w.users = {
        "city": make_user(session, "city_admin", Role.city_admin, city),
        "auditor": make_user(session, "auditor", Role.auditor, city),
        "t1": make_user(session, "t1_admin", Role.township_admin, t1),
        "t2": make_user(session, "t2_admin", Role.township_admin, t2),
        "v1": make_user(session, "v1_admin", Role.village_admin, v1),
        "v2": make_user(session, "v2_admin", Role.village_admin, v2),
    }
    return w
