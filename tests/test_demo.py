"""`python -m app seed-demo`: Kangding 2019 in a fresh migrated database, and nothing more on a second run."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, inspect, select, table, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from app.core.db import create_db_engine
from app.core.security import decrypt_pii, mask_id_number, mask_phone, pii_lookup_hash, verify_password
from app.demo import demo_modules, seed_demo
from app.demo.platform import DEMO_USERS, demo_password, township_units
from app.models.accounts import User
from app.models.audit import AuditLog
from app.models.organizations import Organization
from app.models.people import Person, Position, validate_id_number, validate_phone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Seeded:
    engine: Engine
    report: str


def _migrate(url: str) -> None:
    cfg = Config(os.path.join(ROOT, "alembic.ini"))
    cfg.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "heads")


@pytest.fixture(scope="module")
def scratch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of its own (not the shared test world), on the engine the suite runs on."""
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
        return
    name = f"test_demo_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def seeded(scratch_url: str) -> Iterator[Seeded]:
    _migrate(scratch_url)
    engine = create_db_engine(scratch_url, pool_size=2)
    with Session(engine) as session:
        report = seed_demo(session)
        session.commit()
    yield Seeded(engine, report)
    engine.dispose()


def _row_counts(session: Session) -> dict[str, int]:
    """Rows in every table of the database (the migrated ones, whatever the models declare)."""
    names = inspect(session.connection()).get_table_names()
    assert "organization" in names and "audit_log" in names
    return {name: session.scalar(select(func.count()).select_from(table(name))) or 0 for name in names}


def test_platform_module_runs_first() -> None:
    modules = demo_modules()
    assert modules[0].name == "platform"
    assert [m.order for m in modules] == sorted(m.order for m in modules)


def test_seed_creates_the_city_and_its_21_township_units(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        orgs = session.scalars(select(Organization)).all()
    cities = [o for o in orgs if o.level == "city"]
    assert [(c.code, c.name, c.domain, c.altitude_m, c.path) for c in cities] == [
        ("513301", "康定市", "organ", 2560, f"/{cities[0].id}/")
    ]
    townships = {o.code: o for o in orgs if o.level == "township"}
    units = township_units()
    assert len(units) == 21
    assert sorted(townships) == sorted(code for code, _, _ in units)
    for code, name, kind in units:
        t = townships[code]
        assert t.name == name
        assert t.domain == ("street" if kind == "street" else "township")
        assert t.parent_id == cities[0].id
        assert t.path == f"{cities[0].path}{t.id}/"
    assert "created" in seeded.report and "city_admin" in seeded.report


def test_villages_have_codes_that_extend_their_townships(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        orgs = {o.id: o for o in session.scalars(select(Organization))}
    villages = [o for o in orgs.values() if o.level == "village"]
    by_township: dict[int, list[Organization]] = {}
    for v in villages:
        parent = orgs[v.parent_id]
        by_township.setdefault(parent.id, []).append(v)
        assert parent.level == "township"
        assert v.code is not None and len(v.code) == 12 and v.code.isdigit()
        assert v.code.startswith(parent.code)
        assert v.path == f"{parent.path}{v.id}/"
        assert 2500 <= v.altitude_m <= 4300
        if parent.domain == "street":
            assert v.domain == "community" and v.name.endswith("社区") and v.code[9:] < "200"
        else:
            assert v.domain == "rural" and v.name.endswith("村") and v.code[9:] >= "200"
    assert len(by_township) == 21
    assert all(3 <= len(vs) <= 5 for vs in by_township.values())
    assert len({v.code for v in villages}) == len(villages)


def test_people_have_valid_encrypted_id_numbers_and_phones(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        people = session.scalars(select(Person)).all()
        village_ids = set(session.scalars(select(Organization.id).where(Organization.level == "village")))
    assert len(people) > 500
    prefixes = set()
    for p in people:
        id_number = decrypt_pii(p.id_number_cipher)
        assert validate_id_number(id_number) == id_number
        assert id_number[6:14] == p.birth_date.strftime("%Y%m%d")
        assert int(id_number[16]) % 2 == (1 if p.gender == "male" else 0)
        assert p.id_number_hash == pii_lookup_hash(id_number)
        assert p.id_number_masked == mask_id_number(id_number)
        prefixes.add(id_number[:6])
        phone = decrypt_pii(p.phone_cipher)
        assert validate_phone(phone) == phone and p.phone_masked == mask_phone(phone)
        assert p.org_id in village_ids
        assert (p.joined_party_on is None) == (p.member_status == "none")
    assert prefixes == {"513301", "513321"}
    assert {p.member_status for p in people} == {"full", "probationary", "none"}


def test_every_village_has_a_committee_and_left_office_cadres(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        village_ids = set(session.scalars(select(Organization.id).where(Organization.level == "village")))
        positions = session.scalars(select(Position)).all()
        people = {p.id: p for p in session.scalars(select(Person))}
    current: dict[int, list[str]] = {}
    for pos in positions:
        if pos.ended_on is None:
            current.setdefault(pos.org_id, []).append(pos.title)
        else:
            years = (pos.ended_on - pos.started_on).days / 365.25
            assert 2.5 <= years <= 20.5
            assert pos.ended_on < dt.date(2019, 12, 31)
    assert set(current) == village_ids
    for titles in current.values():
        assert titles.count("secretary") == 1
        assert titles.count("deputy_secretary") == 1
        assert 2 <= titles.count("committee_member") <= 3
        assert titles.count("village_committee_director") == 1
    assert any("resident_first_secretary" in titles for titles in current.values())
    holding = {pos.person_id for pos in positions if pos.ended_on is None}
    without_office = [p for p in people.values() if p.id not in holding and p.member_status != "none"]
    assert any(p.member_status == "probationary" for p in without_office)


def test_one_user_per_role_with_the_demo_password(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        users = session.scalars(select(User)).all()
        orgs = {o.id: o.code for o in session.scalars(select(Organization))}
    assert sorted(u.role for u in users) == ["auditor", "city_admin", "township_admin", "village_admin"]
    assert {(u.username, u.role, orgs[u.org_id]) for u in users} == {
        (u.username, u.role.value, u.org_code) for u in DEMO_USERS
    }
    lucheng = next(u for u in users if u.username == "lucheng_admin")
    assert orgs[lucheng.org_id] == "513301001"
    assert verify_password(demo_password(), lucheng.password_hash)


def test_seeding_writes_one_audit_row_with_the_counts(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        rows = session.scalars(select(AuditLog)).all()
        counts = _row_counts(session)
    assert [(r.action, r.username, r.user_id) for r in rows] == [("demo.seed", "system", None)]
    assert rows[0].after["platform"] == {
        "organizations": counts["organization"], "people": counts["person"], "positions": counts["position"],
        "users": counts["user_account"],
    }
    assert set(rows[0].after) <= {m.name for m in demo_modules()}


def test_second_run_adds_nothing(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        before = _row_counts(session)
        report = seed_demo(session)
        session.commit()
        after = _row_counts(session)
    assert report.startswith("demo data: already seeded")
    assert after == before


def test_if_empty_skips_a_database_with_organisations(seeded: Seeded) -> None:
    with Session(seeded.engine) as session:
        before = _row_counts(session)
        report = seed_demo(session, only_if_empty=True)
        session.commit()
        after = _row_counts(session)
    assert report.startswith("demo data: skipped")
    assert after == before
