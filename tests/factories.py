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


# --- standards ----------------------------------------------------------------

# Years 2040..2099 in turn: a test never makes sixty sets, and years stay inside the API bounds.
_standard_years = itertools.cycle(range(2040, 2100))
# Item codes of make_standard_set: "OPS-1", "VEN-1", "LIF-1", "EXC-1", "REC-1", "ASS-1".
ASPECT_CODES = {"organization_operation": "OPS", "venue": "VEN", "organizational_life": "LIF",
                "excellence": "EXC", "records": "REC", "assessment": "ASS"}


def make_standard_set(session: Session, *, domain: str, year: int | None = None, status: str = "published",
                      items_per_aspect: int = 1, max_score: int = 10, meeting_type: str | None = None) -> Any:
    """A standard set with `items_per_aspect` items in each of the six aspects (max `max_score` each).

    Without `year`, each call takes a year of its own, so two published sets never collide."""
    from app.models.standards import Aspect, StandardItem, StandardSet

    std = StandardSet(year=year or next(_standard_years), domain=domain, edition=1, name=f"{domain} 标准",
                      status=status, published_at=dt.datetime.now(dt.UTC) if status != "draft" else None)
    session.add(std)
    session.flush()
    for aspect in Aspect:
        for n in range(1, items_per_aspect + 1):
            session.add(StandardItem(
                set_id=std.id, aspect=aspect, code=f"{ASPECT_CODES[aspect]}-{n}", requirement=f"{aspect.zh}要求{n}",
                max_score=max_score, position=n,
                meeting_type=meeting_type if aspect == Aspect.organizational_life else None))
    session.flush()
    return std


def make_audit(session: Session, org: Organization, std: Any, *, kind: str = "self_assessment",
               status: str = "draft", quarter: int | None = None, score: int | None = None,
               scores: dict[str, int] | None = None) -> Any:
    """An audit; `score` gives every item that score, `scores` sets items by code (others get `score`)."""
    from sqlalchemy import select

    from app.models.standards import AuditScore, StandardAudit, StandardItem

    items = list(session.scalars(select(StandardItem).where(StandardItem.set_id == std.id)))
    period = f"{std.year}" if quarter is None else f"{std.year}-Q{quarter}"
    audit_row = StandardAudit(org_id=org.id, set_id=std.id, year=std.year, quarter=quarter, period=period,
                              kind=kind, status=status, score_max=sum(i.max_score for i in items))
    session.add(audit_row)
    session.flush()
    total = 0
    for item in items:
        value = (scores or {}).get(item.code, score)
        if value is not None:
            session.add(AuditScore(audit_id=audit_row.id, item_id=item.id, score=value))
            total += value
    audit_row.score_total = total
    if status == "finalized":
        audit_row.finalized_at = dt.datetime.now(dt.UTC)
        pct = total * 100 / audit_row.score_max
        audit_row.rating = ("demonstration" if pct >= std.demonstration_min_pct
                            else "compliant" if pct >= std.compliant_min_pct else "backward")
    session.flush()
    return audit_row


def make_meeting(session: Session, org: Organization, meeting_type: str, held_on: dt.date, *,
                 expected: int = 10, present: int = 8) -> Any:
    from app.models.standards import MeetingRecord

    row = MeetingRecord(org_id=org.id, meeting_type=meeting_type, held_on=held_on, topic="学习",
                        expected_count=expected, present_count=present)
    session.add(row)
    session.flush()
    return row


def facility_type_id(session: Session, code: str) -> int:
    from sqlalchemy import select

    from app.models.standards import FacilityType

    found = session.scalar(select(FacilityType.id).where(FacilityType.code == code))
    assert found is not None, code
    return found


def make_facility(session: Session, org: Organization, code: str = "activity_room", *, area_m2: int | None = 60,
                  year_built: int | None = 2018) -> Any:
    from app.models.standards import Facility

    row = Facility(org_id=org.id, facility_type_id=facility_type_id(session, code), area_m2=area_m2,
                   year_built=year_built)
    session.add(row)
    session.flush()
    return row


def make_investment(session: Session, org: Organization, *, year: int = 2019, amount_fen: int = 100_000_00,
                    status: str = "recorded") -> Any:
    from app.models.standards import VenueInvestment

    row = VenueInvestment(org_id=org.id, year=year, amount_fen=amount_fen, funding_source="city_finance",
                          description="活动场所建设", status=status)
    session.add(row)
    session.flush()
    return row
