"""Training: classes, enrolment and attendance, coverage of the target roles, schools and monthly compliance."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, event, func, select
from sqlalchemy.orm import Session

from app.models.audit import AuditLog
from app.models.funds.budgets import BudgetLine
from app.models.organizations import Organization
from app.models.people import Person
from app.models.training import School, SchoolSession, TrainingClass, TrainingEnrolment
from app.services import training as training_service
from tests.factories import World, make_org, make_person, make_position

TODAY = dt.date(2019, 11, 20)
CLASSES = "/api/v1/training-classes"
ENROLMENTS = "/api/v1/training-enrolments"
COVERAGE = "/api/v1/training/coverage"
POLICIES = "/api/v1/training/policies"
SCHOOLS = "/api/v1/schools"
COMPLIANCE = "/api/v1/schools/compliance"
_codes = itertools.count(500)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    monkeypatch.setattr(training_service, "today", lambda: TODAY)
    return TODAY


@contextmanager
def count_statements(db: Session) -> Iterator[list[str]]:
    engine = db.get_bind().engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _count(db: Session, model: Any, *where: Any) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _class(client: TestClient, world: World, *, year: int = 2019, org: Organization | None = None,
           roles: list[str] | None = None, starts: str | None = None, hours: int = 16, is_main: bool = True,
           who: str = "city", **extra: Any) -> dict[str, Any]:
    starts = starts or f"{year}-03-04"
    body = {"year": year, "title": "村(社区)党组织书记培训班", "org_id": (org or world.city).id, "starts_on": starts,
            "ends_on": starts, "hours": hours, "is_main": is_main,
            "target_roles": roles or ["secretary", "village_committee_director"], **extra}
    r = client.post(CLASSES, json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _enrol(client: TestClient, world: World, class_id: int, people: list[Person], who: str = "city",
           hours: int | None = None) -> list[dict[str, Any]]:
    r = client.post(f"{CLASSES}/{class_id}/enrolments", json={"person_ids": [p.id for p in people]},
                    headers=world.auth(who))
    assert r.status_code == 201, r.text
    rows = r.json()
    if hours is not None:
        for row in rows:
            a = client.post(f"{ENROLMENTS}/{row['id']}/attendance", json={"attended_hours": hours},
                            headers=world.auth(who))
            assert a.status_code == 200, a.text
    return rows


def _cadre(db: Session, org: Organization, title: str, start: dt.date, end: dt.date | None = None,
           name: str = "扎西") -> Person:
    person = make_person(db, org, name=name)
    make_position(db, person, org, title, start, end)
    return person


# ================================================================ classes


def test_city_plans_a_class_with_target_roles_and_audit(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world, roles=["resident_first_secretary", "secretary"])
    assert c["target_roles"] == ["secretary", "resident_first_secretary"]  # in the catalogue's order
    assert c["status"] == "planned" and c["enrolled"] == 0 and c["org_name"] == "康定市"
    assert _count(db, AuditLog, AuditLog.action == "training_class.create", AuditLog.entity_id == str(c["id"])) == 1
    r = client.get(f"{CLASSES}/{c['id']}", headers=world.auth("v1"))
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'


def test_township_cannot_plan_a_class_and_auditor_changes_nothing(client: TestClient, world: World) -> None:
    body = {"year": 2019, "title": "x", "org_id": world.t1.id, "starts_on": "2019-03-01", "ends_on": "2019-03-02",
            "hours": 8, "target_roles": ["secretary"]}
    assert client.post(CLASSES, json=body, headers=world.auth("t1")).status_code == 403
    assert client.post(CLASSES, json=body, headers=world.auth("auditor")).status_code == 403


def test_class_input_is_validated(client: TestClient, world: World) -> None:
    base = {"year": 2019, "title": "x", "org_id": world.city.id, "starts_on": "2019-03-05", "ends_on": "2019-03-04",
            "hours": 8, "target_roles": ["secretary"]}
    h = world.auth("city")
    assert client.post(CLASSES, json=base, headers=h).status_code == 422  # ends before it starts
    assert client.post(CLASSES, json={**base, "ends_on": "2019-03-06", "starts_on": "2020-01-01"},
                       headers=h).status_code == 422  # not in its year
    assert client.post(CLASSES, json={**base, "ends_on": "2019-03-06", "target_roles": ["secretary", "secretary"]},
                       headers=h).status_code == 422
    assert client.post(CLASSES, json={**base, "ends_on": "2019-03-06", "hours": 0}, headers=h).status_code == 422
    assert client.post(CLASSES, json={**base, "ends_on": "2019-03-06", "target_roles": []},
                       headers=h).status_code == 422
    assert client.post(CLASSES, json={**base, "ends_on": "2019-03-06", "surprise": 1}, headers=h).status_code == 422


def test_class_of_a_township_is_hidden_from_its_sibling(client: TestClient, world: World) -> None:
    c = _class(client, world, org=world.t1)
    assert client.get(f"{CLASSES}/{c['id']}", headers=world.auth("t2")).status_code == 404
    assert client.get(f"{CLASSES}/{c['id']}", headers=world.auth("v1")).status_code == 200
    ids = [i["id"] for i in client.get(CLASSES, headers=world.auth("v2")).json()["items"]]
    assert c["id"] not in ids


def test_a_class_links_only_to_a_training_budget_line_of_its_year(client: TestClient, world: World,
                                                                  db: Session) -> None:
    line = BudgetLine(fiscal_year=2019, org_id=world.city.id, category="training", name="培训经费",
                      allocated_fen=70_000_000)
    other = BudgetLine(fiscal_year=2019, org_id=world.city.id, category="party_work", name="党建工作经费")
    db.add_all([line, other])
    db.flush()
    c = _class(client, world, budget_line_id=line.id)
    assert c["budget_line_id"] == line.id
    body = {"year": 2019, "title": "x", "org_id": world.city.id, "starts_on": "2019-03-01", "ends_on": "2019-03-01",
            "hours": 8, "target_roles": ["secretary"]}
    r = client.post(CLASSES, json={**body, "budget_line_id": other.id}, headers=world.auth("city"))
    assert r.status_code == 422 and "training" in r.json()["detail"]
    r = client.post(CLASSES, json={**body, "year": 2020, "starts_on": "2020-03-01", "ends_on": "2020-03-01",
                                   "budget_line_id": line.id}, headers=world.auth("city"))
    assert r.status_code == 422
    assert client.post(CLASSES, json={**body, "budget_line_id": 99999}, headers=world.auth("city")).status_code == 404


def test_update_needs_if_match_and_cancel_is_final(client: TestClient, world: World) -> None:
    c = _class(client, world)
    h = world.auth("city")
    assert client.patch(f"{CLASSES}/{c['id']}", json={"title": "新"}, headers=h).status_code == 428
    r = client.patch(f"{CLASSES}/{c['id']}", json={"title": "新", "target_roles": ["committee_member"]},
                     headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["title"] == "新" and r.json()["target_roles"] == ["committee_member"]
    assert client.patch(f"{CLASSES}/{c['id']}", json={"title": "再"}, headers={**h, "If-Match": '"1"'}).status_code \
        == 412
    assert client.post(f"{CLASSES}/{c['id']}/cancel", headers=h).json()["status"] == "cancelled"
    r = client.post(f"{CLASSES}/{c['id']}/cancel", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "class_cancelled"


# ================================================================ enrolment and attendance


def test_township_enrols_its_people_and_records_attendance(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world, hours=16)
    a, b = make_person(db, world.v1, name="甲"), make_person(db, world.v1b, name="乙")
    rows = _enrol(client, world, c["id"], [a, b], who="t1")
    assert [r["person_name"] for r in rows] == ["甲", "乙"] and rows[0]["attended"] is False
    r = client.post(f"{ENROLMENTS}/{rows[0]['id']}/attendance", json={"attended_hours": 16}, headers=world.auth("v1"))
    assert r.status_code == 200 and r.json()["attended"] is True
    assert db.get(TrainingEnrolment, rows[0]["id"]).attended_hours == 16  # type: ignore[union-attr]
    got = client.get(f"{CLASSES}/{c['id']}", headers=world.auth("city")).json()
    assert (got["enrolled"], got["attended"]) == (2, 1)
    assert _count(db, AuditLog, AuditLog.action == "training_enrolment.attendance") == 1


def test_attended_hours_cannot_exceed_the_class_hours(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world, hours=16)
    row = _enrol(client, world, c["id"], [make_person(db, world.v1)])[0]
    r = client.post(f"{ENROLMENTS}/{row['id']}/attendance", json={"attended_hours": 17}, headers=world.auth("city"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "attended_hours"]
    assert client.post(f"{ENROLMENTS}/{row['id']}/attendance", json={"attended_hours": -1},
                       headers=world.auth("city")).status_code == 422
    ok = client.post(f"{ENROLMENTS}/{row['id']}/attendance", json={"attended_hours": 16}, headers=world.auth("city"))
    assert ok.status_code == 200
    # and the class cannot then shrink below what was attended
    r = client.patch(f"{CLASSES}/{c['id']}", json={"hours": 8}, headers={**world.auth("city"), "If-Match": '"1"'})
    assert r.status_code == 409 and r.json()["code"] == "hours_below_attendance"


def test_attendance_waits_for_the_class_to_begin(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world, starts="2019-12-02")
    row = _enrol(client, world, c["id"], [make_person(db, world.v1)])[0]
    r = client.post(f"{ENROLMENTS}/{row['id']}/attendance", json={"attended_hours": 4}, headers=world.auth("city"))
    assert r.status_code == 409 and r.json()["code"] == "class_not_started"


def test_village_cannot_enrol_a_sibling_village_person(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world)
    other = make_person(db, world.v1b)
    r = client.post(f"{CLASSES}/{c['id']}/enrolments", json={"person_ids": [other.id]}, headers=world.auth("v1"))
    assert r.status_code == 404
    assert _count(db, TrainingEnrolment, TrainingEnrolment.class_id == c["id"]) == 0


def test_enrolling_twice_or_in_a_cancelled_class_is_a_conflict(client: TestClient, world: World,
                                                               db: Session) -> None:
    c = _class(client, world)
    p = make_person(db, world.v1)
    _enrol(client, world, c["id"], [p])
    r = client.post(f"{CLASSES}/{c['id']}/enrolments", json={"person_ids": [p.id]}, headers=world.auth("city"))
    assert r.status_code == 409 and r.json()["code"] == "already_enrolled"
    assert client.post(f"{CLASSES}/{c['id']}/enrolments", json={"person_ids": [p.id, p.id]},
                       headers=world.auth("city")).status_code == 422
    client.post(f"{CLASSES}/{c['id']}/cancel", headers=world.auth("city"))
    r = client.post(f"{CLASSES}/{c['id']}/enrolments", json={"person_ids": [make_person(db, world.v1).id]},
                    headers=world.auth("city"))
    assert r.status_code == 409 and r.json()["code"] == "class_cancelled"


def test_enrolment_list_shows_only_people_in_scope(client: TestClient, world: World, db: Session) -> None:
    c = _class(client, world)
    _enrol(client, world, c["id"], [make_person(db, world.v1), make_person(db, world.v2)])
    assert client.get(f"{CLASSES}/{c['id']}/enrolments", headers=world.auth("city")).json()["total"] == 2
    items = client.get(f"{CLASSES}/{c['id']}/enrolments", headers=world.auth("t1")).json()["items"]
    assert [i["org_id"] for i in items] == [world.v1.id]


# ================================================================ coverage


def _region(db: Session, world: World) -> Organization:
    """A fresh township with two villages, so coverage counts only this test's people."""
    n = next(_codes)
    town = make_org(db, world.city, level="township", domain="township", name=f"新镇{n}", code=f"513301{n:03d}")
    make_org(db, town, level="village", domain="rural", name=f"甲村{n}", code=f"513301{n:03d}001")
    make_org(db, town, level="village", domain="rural", name=f"乙村{n}", code=f"513301{n:03d}002")
    return town


def _villages(db: Session, town: Organization) -> list[Organization]:
    return list(db.scalars(select(Organization).where(Organization.parent_id == town.id).order_by(Organization.id)))


def test_coverage_counts_each_holder_of_a_role_in_the_year_exactly_once(client: TestClient, world: World,
                                                                        db: Session) -> None:
    town = _region(db, world)
    va, vb = _villages(db, town)
    # secretary in one village until June, then in the other: one person, two positions
    moved = _cadre(db, va, "secretary", dt.date(2016, 11, 1), dt.date(2019, 6, 30), name="调任书记")
    make_position(db, moved, vb, "secretary", dt.date(2019, 7, 1))
    left = _cadre(db, vb, "secretary", dt.date(2016, 11, 1), dt.date(2019, 1, 10), name="年初离任")
    _cadre(db, va, "secretary", dt.date(2010, 1, 1), dt.date(2018, 12, 31), name="去年离任")  # not in 2019
    _cadre(db, vb, "secretary", dt.date(2020, 1, 1), name="明年上任")  # not in 2019
    director = _cadre(db, va, "village_committee_director", dt.date(2016, 11, 1), name="主任")
    make_position(db, director, va, "secretary", dt.date(2019, 7, 1))  # 一肩挑 from July: counted in both roles
    c = _class(client, world)
    _enrol(client, world, c["id"], [moved], hours=16)
    _enrol(client, world, c["id"], [left], hours=0)  # enrolled, absent: not trained
    r = client.get(COVERAGE, params={"year": 2019, "org_id": town.id, "subtree": "true",
                                     "role": ["secretary", "village_committee_director"]}, headers=world.auth("t1"))
    assert r.status_code == 404  # another township
    r = client.get(COVERAGE, params={"year": 2019, "org_id": town.id, "subtree": "true",
                                     "role": ["secretary", "village_committee_director"]}, headers=world.auth("city"))
    assert r.status_code == 200, r.text
    body = r.json()
    sec, dire = body["roles"]
    assert sec["role"] == "secretary" and sec["held"] == 3 and sec["trained"] == 1
    assert sorted(p["name"] for p in sec["untrained"]) == ["主任", "年初离任"]
    assert sec["coverage_pct"] == pytest.approx(33.3)
    assert (dire["held"], dire["trained"]) == (1, 0)
    assert body["people_held"] == 3 and body["people_trained"] == 1


def test_coverage_ignores_cancelled_classes_and_other_years(client: TestClient, world: World, db: Session) -> None:
    town = _region(db, world)
    va, _vb = _villages(db, town)
    a = _cadre(db, va, "secretary", dt.date(2016, 11, 1), name="甲")
    b = _cadre(db, va, "committee_member", dt.date(2016, 11, 1), name="乙")
    old = _class(client, world, year=2018, starts="2018-05-01")
    _enrol(client, world, old["id"], [a], hours=8)
    dropped = _class(client, world)
    _enrol(client, world, dropped["id"], [b], hours=8)
    client.post(f"{CLASSES}/{dropped['id']}/cancel", headers=world.auth("city"))
    body = client.get(COVERAGE, params={"year": 2019, "org_id": town.id, "subtree": "true"},
                      headers=world.auth("city")).json()
    assert [r["role"] for r in body["roles"]] == ["resident_first_secretary", "secretary",
                                                  "village_committee_director", "committee_member"]
    assert body["people_held"] == 2 and body["people_trained"] == 0


def test_main_classes_are_counted_against_the_yearly_target(client: TestClient, world: World) -> None:
    for month in range(1, 12):  # eleven main classes ended by 20 November
        _class(client, world, starts=f"2019-{month:02d}-05")
    _class(client, world, starts="2019-12-10")  # planned, not yet held
    _class(client, world, starts="2019-06-10", is_main=False)  # not a main class
    body = client.get(COVERAGE, params={"year": 2019}, headers=world.auth("city")).json()
    assert (body["main_classes_held"], body["main_classes_planned"]) == (11, 12)
    assert body["main_classes_target"] == 12 and body["main_classes_target_met"] is False
    r = client.post(POLICIES, json={"effective_year": 2019, "main_classes_target": 10, "school_min_sessions": 3,
                                    "school_min_hours": 6}, headers=world.auth("city"))
    assert r.status_code == 201
    body = client.get(COVERAGE, params={"year": 2019}, headers=world.auth("city")).json()
    assert body["main_classes_target"] == 10 and body["main_classes_target_met"] is True
    # earlier years keep the default
    assert client.get(COVERAGE, params={"year": 2018}, headers=world.auth("city")).json()["main_classes_target"] == 12


def test_policy_is_data_set_by_the_city_once_a_year(client: TestClient, world: World) -> None:
    body = {"effective_year": 2030, "main_classes_target": 14, "school_min_sessions": 4, "school_min_hours": 8}
    assert client.post(POLICIES, json=body, headers=world.auth("t1")).status_code == 403
    assert client.post(POLICIES, json=body, headers=world.auth("city")).status_code == 201
    assert client.post(POLICIES, json=body, headers=world.auth("city")).json()["code"] == "duplicate_policy"
    rows = client.get(POLICIES, headers=world.auth("auditor")).json()
    assert rows[0]["effective_year"] == 2000 and rows[0]["main_classes_target"] == 12
    assert (rows[0]["school_min_sessions"], rows[0]["school_min_hours"]) == (3, 6)


def test_coverage_runs_a_fixed_number_of_statements(client: TestClient, world: World, db: Session) -> None:
    counts = []
    for villages in (1, 6):
        town = _region(db, world)
        for i in range(villages):
            v = make_org(db, town, level="village", domain="rural", name=f"多村{i}", code=f"{town.code}{100 + i}")
            for title in ("secretary", "village_committee_director", "committee_member"):
                _cadre(db, v, title, dt.date(2017, 1, 1))
        with count_statements(db) as seen:
            r = client.get(COVERAGE, params={"year": 2019, "org_id": town.id, "subtree": "true"},
                           headers=world.auth("city"))
        assert r.status_code == 200
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


# ================================================================ schools and compliance


def _school(client: TestClient, world: World, org: Organization, kind: str = "night_school",
            name: str | None = None, opened: str = "2018-01-01") -> dict[str, Any]:
    r = client.post(SCHOOLS, json={"org_id": org.id, "kind": kind, "name": name or f"{org.name}夜校",
                                   "opened_on": opened}, headers=world.auth("city"))
    assert r.status_code == 201, r.text
    return r.json()


def _sessions(client: TestClient, world: World, school_id: int, hours: list[int], month: str = "2019-10",
              who: str = "city") -> None:
    for day, h in enumerate(hours, start=1):
        r = client.post(f"{SCHOOLS}/{school_id}/sessions", json={
            "held_on": f"{month}-{day:02d}", "hours": h, "topic": "gratitude", "attendance_count": 30,
            "teacher": "洛桑"}, headers=world.auth(who))
        assert r.status_code == 201, r.text


def test_a_central_school_belongs_to_a_township_and_a_night_school_to_a_village(client: TestClient,
                                                                                 world: World) -> None:
    h = world.auth("city")
    r = client.post(SCHOOLS, json={"org_id": world.v1.id, "kind": "central_school", "name": "中心校",
                                   "opened_on": "2018-01-01"}, headers=h)
    assert r.status_code == 422
    _school(client, world, world.t1, "central_school", "炉城街道中心校")
    r = client.post(SCHOOLS, json={"org_id": world.t1.id, "kind": "central_school", "name": "第二中心校",
                                   "opened_on": "2018-01-01"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "duplicate_school"
    assert client.post(SCHOOLS, json={"org_id": world.v1.id, "kind": "night_school", "name": "x",
                                      "opened_on": "2018-01-01"}, headers=world.auth("t1")).status_code == 403


def test_sessions_are_recorded_in_scope_on_days_the_school_was_open(client: TestClient, world: World,
                                                                     db: Session) -> None:
    s = _school(client, world, world.v1, opened="2019-05-01")
    body = {"held_on": "2019-04-30", "hours": 2, "topic": "policy", "attendance_count": 10, "teacher": "x"}
    r = client.post(f"{SCHOOLS}/{s['id']}/sessions", json=body, headers=world.auth("v1"))
    assert r.status_code == 409 and r.json()["code"] == "school_not_open"
    r = client.post(f"{SCHOOLS}/{s['id']}/sessions", json={**body, "held_on": "2019-11-21"}, headers=world.auth("v1"))
    assert r.status_code == 422  # tomorrow
    assert client.post(f"{SCHOOLS}/{s['id']}/sessions", json={**body, "held_on": "2019-06-01"},
                       headers=world.auth("t2")).status_code == 404
    assert client.post(f"{SCHOOLS}/{s['id']}/sessions", json={**body, "held_on": "2019-06-01", "hours": 25},
                       headers=world.auth("v1")).status_code == 422
    r = client.post(f"{SCHOOLS}/{s['id']}/sessions", json={**body, "held_on": "2019-06-01"}, headers=world.auth("v1"))
    assert r.status_code == 201 and r.json()["org_id"] == world.v1.id
    assert _count(db, AuditLog, AuditLog.action == "school_session.create") == 1
    listed = client.get(f"{SCHOOLS}/{s['id']}/sessions", params={"year": 2019, "month": 6},
                        headers=world.auth("auditor")).json()
    assert listed["total"] == 1
    closed = client.post(f"{SCHOOLS}/{s['id']}/close", json={"closed_on": "2019-05-31"}, headers=world.auth("city"))
    assert closed.status_code == 422  # a session was held after that
    closed = client.post(f"{SCHOOLS}/{s['id']}/close", json={"closed_on": "2019-06-30"}, headers=world.auth("city"))
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    r = client.post(f"{SCHOOLS}/{s['id']}/sessions", json={**body, "held_on": "2019-07-01"}, headers=world.auth("v1"))
    assert r.status_code == 409


@pytest.mark.parametrize(("hours", "compliant", "sessions_short", "hours_short"), [
    ([2, 2, 2], True, 0, 0),          # exactly 3 sessions and 6 hours
    ([1, 1, 4], True, 0, 0),          # 3 sessions, 6 hours however spread
    ([3, 3], False, 1, 0),            # 6 hours but only 2 sessions
    ([2, 2, 1], False, 0, 1),         # 3 sessions but 5 hours
    ([1, 1, 1, 1, 1, 1], True, 0, 0),  # 6 sessions of 1 hour
    ([], False, 3, 6),
])
def test_compliance_at_the_three_session_six_hour_boundary(hours: list[int], compliant: bool, sessions_short: int,
                                                           hours_short: int, client: TestClient, world: World,
                                                           db: Session) -> None:
    town = _region(db, world)
    va, _vb = _villages(db, town)
    s = _school(client, world, va)
    _sessions(client, world, s["id"], hours)
    _sessions(client, world, s["id"], [4, 4, 4], month="2019-09")  # another month counts for nothing
    r = client.get(COMPLIANCE, params={"year": 2019, "month": 10, "org_id": town.id, "subtree": "true"},
                   headers=world.auth("city"))
    assert r.status_code == 200, r.text
    (row,) = r.json()["schools"]
    assert (row["sessions"], row["hours"]) == (len(hours), sum(hours))
    assert (row["compliant"], row["sessions_short"], row["hours_short"]) == (compliant, sessions_short, hours_short)
    assert r.json()["townships"][0]["township_id"] == town.id


def test_compliance_gives_each_township_its_share_of_compliant_schools(client: TestClient, world: World,
                                                                       db: Session) -> None:
    town = _region(db, world)
    va, vb = _villages(db, town)
    central = _school(client, world, town, "central_school", "中心校")
    good = _school(client, world, va)
    _school(client, world, vb)  # holds nothing
    _school(client, world, vb, name="后开夜校", opened="2019-11-01")  # not open in October: not counted
    _sessions(client, world, central["id"], [2, 2, 2])
    _sessions(client, world, good["id"], [2, 2, 2])
    body = client.get(COMPLIANCE, params={"year": 2019, "month": 10, "org_id": town.id, "subtree": "true"},
                      headers=world.auth("city")).json()
    assert (body["compliant"], body["total"]) == (2, 3)
    (t,) = body["townships"]
    assert (t["township_id"], t["schools"], t["compliant"], t["compliant_pct"]) == (town.id, 3, 2, 66.7)
    assert (body["min_sessions"], body["min_hours"]) == (3, 6)


def test_compliance_follows_the_policy_of_the_year(client: TestClient, world: World, db: Session) -> None:
    town = _region(db, world)
    va, _vb = _villages(db, town)
    s = _school(client, world, va)
    db.add(SchoolSession(school_id=s["id"], org_id=va.id, held_on=dt.date(2031, 10, 1), hours=6, topic="policy",
                         attendance_count=5, teacher="x"))
    db.flush()
    client.post(POLICIES, json={"effective_year": 2031, "main_classes_target": 12, "school_min_sessions": 1,
                                "school_min_hours": 6}, headers=world.auth("city"))
    body = client.get(COMPLIANCE, params={"year": 2031, "month": 10, "org_id": town.id, "subtree": "true"},
                      headers=world.auth("city")).json()
    assert body["min_sessions"] == 1 and body["schools"][0]["compliant"] is True


def test_compliance_runs_a_fixed_number_of_statements(client: TestClient, world: World, db: Session) -> None:
    counts = []
    for n in (1, 5):
        town = _region(db, world)
        for i in range(n):
            v = make_org(db, town, level="village", domain="rural", name=f"校村{i}", code=f"{town.code}{200 + i}")
            school = School(org_id=v.id, kind="night_school", name="夜校", opened_on=dt.date(2018, 1, 1))
            db.add(school)
            db.flush()
            db.add(SchoolSession(school_id=school.id, org_id=v.id, held_on=dt.date(2019, 10, 3), hours=2,
                                 topic="policy", attendance_count=5, teacher="x"))
        db.flush()
        with count_statements(db) as seen:
            r = client.get(COMPLIANCE, params={"year": 2019, "month": 10}, headers=world.auth("city"))
        assert r.status_code == 200
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


def test_compliance_of_a_village_user_covers_its_own_schools_only(client: TestClient, world: World) -> None:
    _school(client, world, world.v1, name="将军桥夜校")
    _school(client, world, world.v2, name="日头夜校")
    body = client.get(COMPLIANCE, params={"year": 2019, "month": 10}, headers=world.auth("v1")).json()
    assert {s["org_id"] for s in body["schools"]} == {world.v1.id}
    assert client.get(COMPLIANCE, params={"year": 2019, "month": 10, "org_id": world.v2.id},
                      headers=world.auth("v1")).status_code == 404
    assert client.get(COMPLIANCE, params={"year": 2019, "month": 13}, headers=world.auth("v1")).status_code == 422


def test_lists_run_a_fixed_number_of_statements(client: TestClient, world: World, db: Session) -> None:
    for i in range(4):
        c = _class(client, world, starts=f"2019-0{i + 1}-05")
        _enrol(client, world, c["id"], [make_person(db, world.v1)])
    counts = []
    for limit in (1, 4):
        with count_statements(db) as seen:
            r = client.get(CLASSES, params={"limit": limit, "year": 2019}, headers=world.auth("t1"))
        assert r.status_code == 200 and len(r.json()["items"]) == limit
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


def test_csv_export_and_sort_whitelist(client: TestClient, world: World) -> None:
    _class(client, world)
    r = client.get(CLASSES, headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert r.status_code == 200 and r.text.startswith("\ufeffid,year")
    assert client.get(CLASSES, params={"sort": "hours"}, headers=world.auth("city")).status_code == 422
    assert client.get(f"{CLASSES}/{2**31}", headers=world.auth("city")).status_code == 422


def test_nothing_is_left_in_the_database_by_a_refused_request(client: TestClient, world: World, db: Session) -> None:
    before = _count(db, TrainingClass)
    client.post(CLASSES, json={"year": 2019}, headers=world.auth("city"))
    assert _count(db, TrainingClass) == before


def test_demo_seed_is_idempotent_and_leaves_a_few_untrained_and_some_months_short(db: Session,
                                                                                 world: World) -> None:
    from app.demo import training as demo

    for org in (world.v1, world.v1b, world.v2):
        for title in ("secretary", "village_committee_director", "committee_member", "committee_member"):
            _cadre(db, org, title, dt.date(2016, 11, 1))
    first = demo.seed(db)
    assert first["training_classes"] == 14 and first["enrolments"] > 0
    assert first["schools"] == 2 + 3 and first["school_sessions"] > 12 * 5 * 2  # 2 central, 3 night schools
    assert not any(demo.seed(db).values())
    assert _count(db, TrainingClass, TrainingClass.year == 2019, TrainingClass.is_main == True) >= 12  # noqa: E712
    months = db.execute(select(SchoolSession.school_id, func.count(), func.sum(SchoolSession.hours))
                        .group_by(SchoolSession.school_id, func.substr(func.cast(SchoolSession.held_on, String), 1, 7))
                        ).all()
    assert any(n < 3 or h < 6 for _s, n, h in months) and any(n >= 3 and h >= 6 for _s, n, h in months)
