"""The three lists: responsibility letters and settlement, monthly lists and assignments, problems."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.scope import Actor
from app.models.audit import AuditLog
from app.models.organizations import Organization
from app.models.responsibilities import (
    LetterItem,
    MonthlyList,
    Problem,
    ProblemRejection,
    QuarterlyInspection,
    ResponsibilityLetter,
    TaskAssignment,
    TaskAssignmentEvent,
)
from app.services import responsibilities as svc
from app.services.responsibilities import clock
from app.services.responsibilities import monthly as monthly_service
from tests.factories import World, access_token, make_org, make_person, make_position, make_user

TODAY = dt.date(2019, 11, 20)
LETTERS = "/api/v1/responsibility-letters"
LISTS = "/api/v1/monthly-lists"
ASSIGNMENTS = "/api/v1/assignments"
PROBLEMS = "/api/v1/problems"
INSPECTIONS = "/api/v1/quarterly-inspections"
_codes = itertools.count(1)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    monkeypatch.setattr(clock, "today", lambda: TODAY)
    return TODAY


def _count(db: Session, model: Any, *where: Any) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


_AUDIT_MARK = {"id": 0}


@pytest.fixture(autouse=True)
def _audit_mark(engine: Engine) -> None:
    """The last committed audit row before the test: the concurrency tests (tests/test_races.py) commit rows of
    their own about letters, lists and problems, so counts look only at this test's rows."""
    with engine.connect() as conn:
        _AUDIT_MARK["id"] = conn.scalar(select(func.max(AuditLog.id))) or 0


def _audits(db: Session, action: str) -> int:
    return _count(db, AuditLog, AuditLog.action == action, AuditLog.id > _AUDIT_MARK["id"])


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


def _item(**over: Any) -> dict[str, Any]:
    return {"title": "软弱涣散党组织整顿", "category": "organization_building", "target": "年内完成整顿转化",
            "weight": 10, "due_date": "2019-12-31", **over}


def _new_village(db: Session, parent: Organization, name: str = "新村") -> Organization:
    n = next(_codes)
    return make_org(db, parent, level="village", domain="rural", name=f"{name}{n}", code=f"{parent.code}{n:03d}")


# ================================================================ responsibility letters


def _letter(client: TestClient, world: World, org: Organization, *, who: str = "t1", kind: str = "organization",
            holder: int | None = None, items: list[dict[str, Any]] | None = None, year: int = 2019) -> dict[str, Any]:
    default = [_item(), _item(title="扫黑除恶线索摸排", category="anti_gang_crime", weight=5)]
    body = {"year": year, "org_id": org.id, "kind": kind, "holder_person_id": holder,
            "items": items if items is not None else default}
    r = client.post(LETTERS, json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _signed(client: TestClient, world: World, org: Organization, *, above: str = "t1", own: str = "v1") -> dict:
    letter = _letter(client, world, org, who=above)
    assert client.post(f"{LETTERS}/{letter['id']}/issue", headers=world.auth(above)).status_code == 200
    r = client.post(f"{LETTERS}/{letter['id']}/sign", headers=world.auth(own))
    assert r.status_code == 200, r.text
    return r.json()


def test_level_above_drafts_and_issues_and_organisation_signs(client: TestClient, world: World,
                                                             db: Session) -> None:
    letter = _letter(client, world, world.v1)
    assert letter["status"] == "draft" and letter["item_count"] == 2 and letter["total_weight"] == 15
    assert [i["position"] for i in letter["items"]] == [1, 2]
    assert client.post(f"{LETTERS}/{letter['id']}/sign", headers=world.auth("v1")).json()["code"] == "invalid_status"
    r = client.post(f"{LETTERS}/{letter['id']}/issue", headers=world.auth("t1"))
    assert r.status_code == 200 and r.json()["status"] == "issued" and r.json()["issued_at"]
    r = client.post(f"{LETTERS}/{letter['id']}/sign", headers=world.auth("v1"))
    assert r.status_code == 200 and r.json()["status"] == "signed"
    assert r.headers["ETag"] == f'"{r.json()["version"]}"'
    assert _audits(db, "letter.create") == 1 and _audits(db, "letter.sign") == 1


def test_village_cannot_draft_or_issue_its_own_letter(client: TestClient, world: World) -> None:
    body = {"year": 2019, "org_id": world.v1.id, "kind": "organization", "items": [_item()]}
    assert client.post(LETTERS, json=body, headers=world.auth("v1")).status_code == 403
    # A township user drafting for its own township is not the level above.
    own = client.post(LETTERS, json={**body, "org_id": world.t1.id}, headers=world.auth("t1"))
    assert own.status_code == 403 and own.json()["code"] == "level_above_required"
    other = client.post(LETTERS, json={**body, "org_id": world.v2.id}, headers=world.auth("t1"))
    assert other.status_code == 404


def test_township_cannot_sign_for_its_village(client: TestClient, world: World) -> None:
    letter = _letter(client, world, world.v1)
    client.post(f"{LETTERS}/{letter['id']}/issue", headers=world.auth("t1"))
    r = client.post(f"{LETTERS}/{letter['id']}/sign", headers=world.auth("t1"))
    assert r.status_code == 403 and r.json()["code"] == "own_organization_required"
    assert client.post(f"{LETTERS}/{letter['id']}/sign", headers=world.auth("v2")).status_code == 404


def test_personal_letter_holder_must_hold_the_matching_position_that_year(
        client: TestClient, world: World, db: Session) -> None:
    secretary = make_person(db, world.v1, name="书记甲")
    make_position(db, secretary, world.v1, "secretary", dt.date(2017, 1, 1))
    former = make_person(db, world.v1, name="前书记")
    make_position(db, former, world.v1, "secretary", dt.date(2010, 1, 1), dt.date(2018, 6, 30))
    member = make_person(db, world.v1, name="委员乙")
    make_position(db, member, world.v1, "committee_member", dt.date(2019, 3, 1))
    base = {"year": 2019, "org_id": world.v1.id, "items": [_item()]}
    h = world.auth("t1")
    cases = [
        {"kind": "secretary"},  # no holder
        {"kind": "secretary", "holder_person_id": former.id},  # left before the year
        {"kind": "secretary", "holder_person_id": member.id},  # not a secretary
        {"kind": "organization", "holder_person_id": secretary.id},  # organisation letters have no holder
    ]
    for case in cases:
        r = client.post(LETTERS, json={**base, **case}, headers=h)
        assert r.status_code == 422, (case, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", "holder_person_id"]
    ok = client.post(LETTERS, json={**base, "kind": "secretary", "holder_person_id": secretary.id}, headers=h)
    assert ok.status_code == 201 and ok.json()["holder_name"] == "书记甲"
    earlier = {**base, "kind": "secretary", "holder_person_id": former.id, "year": 2018,
               "items": [_item(due_date="2018-12-31")]}
    assert client.post(LETTERS, json=earlier, headers=h).status_code == 201
    assert _count(db, ResponsibilityLetter) == 2


def test_duplicate_letters_are_conflicts(client: TestClient, world: World, db: Session) -> None:
    m1, m2 = make_person(db, world.v1, name="委员一"), make_person(db, world.v1, name="委员二")
    for m in (m1, m2):
        make_position(db, m, world.v1, "committee_member", dt.date(2018, 1, 1))
    _letter(client, world, world.v1)
    again = client.post(LETTERS, json={"year": 2019, "org_id": world.v1.id, "kind": "organization"},
                        headers=world.auth("city"))
    assert again.status_code == 409 and again.json()["code"] == "duplicate_letter"
    _letter(client, world, world.v1, kind="committee_member", holder=m1.id)
    dup = client.post(LETTERS, json={"year": 2019, "org_id": world.v1.id, "kind": "committee_member",
                                     "holder_person_id": m1.id}, headers=world.auth("t1"))
    assert dup.status_code == 409
    _letter(client, world, world.v1, kind="committee_member", holder=m2.id)
    _letter(client, world, world.v1, year=2020, items=[_item(due_date="2020-06-30")])
    assert _count(db, ResponsibilityLetter) == 4


def test_item_due_date_within_year_and_weight_positive(client: TestClient, world: World) -> None:
    h = world.auth("t1")
    for bad in ({"due_date": "2020-01-01"}, {"weight": 0}, {"weight": -3}, {"title": ""}, {"category": "x"}):
        body = {"year": 2019, "org_id": world.v1.id, "kind": "organization", "items": [_item(**bad)]}
        assert client.post(LETTERS, json=body, headers=h).status_code == 422, bad


def test_items_are_frozen_once_signed(client: TestClient, world: World, db: Session) -> None:
    draft = _letter(client, world, world.v1)
    h = world.auth("t1")
    added = client.post(f"{LETTERS}/{draft['id']}/items", json=_item(title="第三项"), headers=h)
    assert added.status_code == 201 and added.json()["position"] == 3
    item_id = added.json()["id"]
    url = f"{LETTERS}/{draft['id']}/items/{item_id}"
    assert client.patch(url, json={"weight": 8}, headers=h).status_code == 428
    r = client.patch(url, json={"weight": 8}, headers={**h, "If-Match": added.headers["ETag"]})
    assert r.status_code == 200 and r.json()["weight"] == 8
    assert client.delete(url, headers=h).status_code == 204
    client.post(f"{LETTERS}/{draft['id']}/issue", headers=h)
    client.post(f"{LETTERS}/{draft['id']}/sign", headers=world.auth("v1"))
    first = draft["items"][0]["id"]
    frozen = [
        client.post(f"{LETTERS}/{draft['id']}/items", json=_item(), headers=h),
        client.patch(f"{LETTERS}/{draft['id']}/items/{first}", json={"weight": 1}, headers={**h, "If-Match": '"1"'}),
        client.delete(f"{LETTERS}/{draft['id']}/items/{first}", headers=h),
    ]
    assert [r.status_code for r in frozen] == [409, 409, 409]
    assert all(r.json()["code"] == "items_frozen" for r in frozen)
    assert _count(db, LetterItem, LetterItem.letter_id == draft["id"]) == 2


def test_issue_needs_items(client: TestClient, world: World) -> None:
    empty = _letter(client, world, world.v1, items=[])
    r = client.post(f"{LETTERS}/{empty['id']}/issue", headers=world.auth("t1"))
    assert r.status_code == 409 and r.json()["code"] == "no_items"


def test_settlement_reported_by_organisation_scored_by_level_above(client: TestClient, world: World,
                                                                  db: Session) -> None:
    letter = _signed(client, world, world.v1)
    url = f"{LETTERS}/{letter['id']}"
    a, b = (i["id"] for i in letter["items"])
    early = client.post(f"{url}/score", json={"items": [{"item_id": a, "score": 5}]}, headers=world.auth("t1"))
    assert early.status_code == 409
    report = {"items": [{"item_id": a, "outcome": "completed", "evidence_note": "整顿验收合格"}]}
    assert client.post(f"{url}/report", json=report, headers=world.auth("t1")).status_code == 403
    r = client.post(f"{url}/report", json=report, headers=world.auth("v1"))
    assert r.status_code == 200 and r.json()["status"] == "settling"
    not_reported = client.post(f"{url}/score", json={"items": [{"item_id": b, "score": 1}]}, headers=world.auth("t1"))
    assert not_reported.status_code == 409 and not_reported.json()["code"] == "item_not_reported"
    client.post(f"{url}/report", json={"items": [{"item_id": b, "outcome": "partly_completed",
                                                  "evidence_note": "摸排线索3条"}]}, headers=world.auth("v1"))
    over = client.post(f"{url}/score", json={"items": [{"item_id": a, "score": 11}]}, headers=world.auth("t1"))
    assert over.status_code == 422
    assert client.post(f"{url}/score", json={"items": [{"item_id": a, "score": 9}]},
                       headers=world.auth("v1")).status_code == 403
    assert client.post(f"{url}/score", json={"items": [{"item_id": a, "score": 9}]},
                       headers=world.auth("t1")).status_code == 200
    unscored = client.post(f"{url}/settle", headers=world.auth("t1"))
    assert unscored.status_code == 409 and unscored.json()["code"] == "items_unscored"
    client.post(f"{url}/score", json={"items": [{"item_id": b, "score": 3}]}, headers=world.auth("city"))
    again = client.post(f"{url}/report", json=report, headers=world.auth("v1"))
    assert again.status_code == 409 and again.json()["code"] == "item_scored"
    settled = client.post(f"{url}/settle", headers=world.auth("t1"))
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert body["status"] == "settled" and body["score"] == 12 and body["score_percent"] == 80.0
    assert db.scalar(select(ResponsibilityLetter.score).where(ResponsibilityLetter.id == letter["id"])) == 12


def test_organisation_cannot_score_its_own_letter(client: TestClient, world: World) -> None:
    """A township's own letter is issued by the city; the township reports but may not score it."""
    letter = _signed(client, world, world.t1, above="city", own="t1")
    url = f"{LETTERS}/{letter['id']}"
    item = letter["items"][0]["id"]
    client.post(f"{url}/report", json={"items": [{"item_id": item, "outcome": "completed", "evidence_note": "ok"}]},
                headers=world.auth("t1"))
    r = client.post(f"{url}/score", json={"items": [{"item_id": item, "score": 10}]}, headers=world.auth("t1"))
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    assert client.post(f"{url}/settle", headers=world.auth("t1")).status_code == 403


def test_generate_creates_missing_drafts_once(client: TestClient, world: World, db: Session) -> None:
    sec = make_person(db, world.v1, name="书记")
    make_position(db, sec, world.v1, "secretary", dt.date(2016, 1, 1))
    dep = make_person(db, world.v1, name="副书记")
    make_position(db, dep, world.v1, "deputy_secretary", dt.date(2016, 1, 1))
    mem = make_person(db, world.v1, name="委员")
    make_position(db, mem, world.v1, "committee_member", dt.date(2016, 1, 1))
    gone = make_person(db, world.v1, name="已离任")
    make_position(db, gone, world.v1, "committee_member", dt.date(2012, 1, 1), dt.date(2016, 12, 31))
    template = _letter(client, world, world.v1, year=2018, items=[_item(due_date="2018-02-28"),
                                                                   _item(title="b", due_date="2018-06-30")])
    h = world.auth("t1")
    body = {"year": 2019, "org_id": world.t1.id, "subtree": True, "template_letter_id": template["id"]}
    r = client.post(f"{LETTERS}/generate", json=body, headers=h)
    assert r.status_code == 200, r.text
    # v1: organisation + secretary + 2 committee members; v1b: organisation. Never t1 itself.
    assert r.json()["created"] == 5
    letters = db.scalars(select(ResponsibilityLetter).where(ResponsibilityLetter.year == 2019)).all()
    assert {(lt.org_id, lt.kind, lt.holder_person_id) for lt in letters} == {
        (world.v1.id, "organization", None), (world.v1.id, "secretary", sec.id),
        (world.v1.id, "committee_member", dep.id), (world.v1.id, "committee_member", mem.id),
        (world.v1b.id, "organization", None)}
    assert all(lt.status == "draft" for lt in letters)
    dates = set(db.scalars(select(LetterItem.due_date).where(
        LetterItem.letter_id.in_([lt.id for lt in letters]))))
    assert dates == {dt.date(2019, 2, 28), dt.date(2019, 6, 30)}
    assert client.post(f"{LETTERS}/generate", json=body, headers=h).json() == {"created": 0, "letter_ids": []}
    own = client.post(f"{LETTERS}/generate", json={"year": 2019, "org_id": world.t1.id}, headers=h)
    assert own.status_code == 403
    assert client.post(f"{LETTERS}/generate", json={"year": 2019, "org_id": world.v2.id}, headers=h).status_code == 404
    assert _audits(db, "letter.generate") == 5


def test_letters_summary_agrees_with_rows(client: TestClient, world: World) -> None:
    settled = _signed(client, world, world.v1)
    url = f"{LETTERS}/{settled['id']}"
    items = settled["items"]
    client.post(f"{url}/report", json={"items": [{"item_id": i["id"], "outcome": "completed", "evidence_note": "x"}
                                                 for i in items]}, headers=world.auth("v1"))
    client.post(f"{url}/score", json={"items": [{"item_id": items[0]["id"], "score": 10},
                                                {"item_id": items[1]["id"], "score": 2}]}, headers=world.auth("t1"))
    assert client.post(f"{url}/settle", headers=world.auth("t1")).status_code == 200
    _letter(client, world, world.v1b)
    _letter(client, world, world.t1, who="city")
    r = client.get(f"{LETTERS}/summary", params={"year": 2019, "org_id": world.t1.id, "subtree": "true"},
                   headers=world.auth("t1"))
    assert r.status_code == 200, r.text
    rows = {row["org_id"]: row for row in r.json()}
    assert rows[world.v1.id]["letters"]["organization"]["settled"] == 1
    assert rows[world.v1.id]["settled_score"] == 12 and rows[world.v1.id]["score_percent"] == 80.0
    assert rows[world.v1b.id]["letters"]["organization"]["draft"] == 1 and rows[world.v1b.id]["score_percent"] is None
    listed = client.get(LETTERS, params={"year": 2019, "org_id": world.t1.id, "subtree": "true"},
                        headers=world.auth("t1")).json()
    assert sum(row["total"] for row in rows.values()) == listed["total"] == 3
    rolled = client.get(f"{LETTERS}/summary", params={"year": 2019, "rollup": "true"}, headers=world.auth("city"))
    by_org = {row["org_id"]: row for row in rolled.json()}
    assert by_org[world.t1.id]["total"] == 3 and by_org[world.t2.id]["total"] == 0
    assert by_org[world.t1.id]["settled_score"] == 12
    assert client.get(f"{LETTERS}/summary", params={"org_id": world.v2.id}, headers=world.auth("t1")).status_code == 404


# ================================================================ monthly lists


def _task(**over: Any) -> dict[str, Any]:
    return {"title": "党建引领脱贫攻坚: 贫困户走访", "category": "poverty_alleviation", "deadline": "2019-11-15",
            "target_mode": "all_villages", **over}


def _draft(client: TestClient, world: World, tasks: list[dict[str, Any]], month: str = "2019-11") -> dict[str, Any]:
    r = client.post(LISTS, json={"month": month, "title": f"{month} 月度清单", "tasks": tasks},
                    headers=world.auth("city"))
    assert r.status_code == 201, r.text
    return r.json()


def _issued(client: TestClient, world: World, tasks: list[dict[str, Any]], month: str = "2019-11") -> dict:
    lst = _draft(client, world, tasks, month)
    r = client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    assert r.status_code == 200, r.text
    return r.json()


def test_only_the_city_office_drafts_monthly_lists(client: TestClient, world: World) -> None:
    body = {"month": "2019-11", "title": "x", "tasks": [_task()]}
    for who in ("t1", "v1", "auditor"):
        assert client.post(LISTS, json=body, headers=world.auth(who)).status_code == 403


def test_task_deadline_inside_or_after_month_and_targets_match_mode(client: TestClient, world: World) -> None:
    h = world.auth("city")
    bad = [
        {"month": "2019-11", "title": "x", "tasks": [_task(deadline="2019-10-31")]},
        {"month": "2019-13", "title": "x", "tasks": []},
        {"month": "2019-11", "title": "x", "tasks": [_task(target_mode="chosen")]},
        {"month": "2019-11", "title": "x", "tasks": [_task(targets=[{"org_id": world.v1.id}])]},
        {"month": "2019-11", "title": "x", "tasks": [_task(target_mode="chosen", targets=[
            {"org_id": world.v1.id}, {"org_id": world.v1.id}])]},
    ]
    for body in bad:
        assert client.post(LISTS, json=body, headers=h).status_code == 422, body
    ok = _draft(client, world, [_task(deadline="2019-12-10")])
    assert ok["tasks"][0]["deadline"] == "2019-12-10"


def test_drafts_are_hidden_from_assignees(client: TestClient, world: World) -> None:
    lst = _draft(client, world, [_task()])
    assert client.get(f"{LISTS}/{lst['id']}", headers=world.auth("v1")).status_code == 404
    assert client.get(LISTS, headers=world.auth("v1")).json()["total"] == 0
    client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    assert client.get(f"{LISTS}/{lst['id']}", headers=world.auth("v1")).status_code == 200


def test_issuing_to_250_villages_creates_250_assignments_in_one_statement(client: TestClient, world: World,
                                                                         db: Session) -> None:
    town = make_org(db, world.city, level="township", domain="township", name="大乡", code="513301199")
    villages = [make_org(db, town, level="village", domain="rural", name=f"村{i}", code=f"513301199{i:03d}")
                for i in range(1, 251)]
    lst = _draft(client, world, [_task(target_mode="chosen", targets=[{"org_id": v.id} for v in villages])])
    with count_statements(db) as seen:
        r = client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "issued" and r.json()["tasks"][0]["assignment_count"] == 250
    assert _count(db, TaskAssignment, TaskAssignment.list_id == lst["id"]) == 250
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO TASK_ASSIGNMENT")]
    assert len(inserts) == 1
    assert _audits(db, "monthly_list.issue") == 1
    # With subtree, the township and its villages; the all-villages mode reaches every active village.
    sub = _issued(client, world, [_task(target_mode="chosen", targets=[{"org_id": town.id, "subtree": True}])])
    assert sub["tasks"][0]["assignment_count"] == 251
    every = _issued(client, world, [_task()])
    assert every["tasks"][0]["assignment_count"] == 253


def test_failed_issue_leaves_no_assignment(client: TestClient, world: World, db: Session,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    town = make_org(db, world.city, level="township", domain="township", name="小乡", code="513301198")
    for i in range(1, 251):
        make_org(db, town, level="village", domain="rural", name=f"村{i}", code=f"513301198{i:03d}")
    lst = _draft(client, world, [_task(target_mode="chosen", targets=[{"org_id": town.id, "subtree": True}])])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(monthly_service.audit, "record", broken)
    r = client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    assert r.status_code == 500
    assert _count(db, TaskAssignment) == 0
    assert db.scalar(select(MonthlyList.status).where(MonthlyList.id == lst["id"])) == "draft"


def test_issue_refused_when_a_task_reaches_nobody(client: TestClient, world: World, db: Session) -> None:
    lst = _draft(client, world, [_task(), _task(target_mode="all_townships")])
    empty = _draft(client, world, [])
    assert client.post(f"{LISTS}/{empty['id']}/issue", headers=world.auth("city")).json()["code"] == "no_tasks"
    client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    again = client.post(f"{LISTS}/{lst['id']}/issue", headers=world.auth("city"))
    assert again.status_code == 409 and again.json()["code"] == "list_issued"
    assert _count(db, TaskAssignment, TaskAssignment.list_id == lst["id"]) == 3 + 2


def test_issued_list_is_amended_not_edited(client: TestClient, world: World, db: Session) -> None:
    lst = _issued(client, world, [_task(), _task(title="扫黑除恶: 线索摸排", category="anti_gang_crime",
                                              target_mode="chosen", targets=[{"org_id": world.t1.id,
                                                                              "subtree": True}])])
    url = f"{LISTS}/{lst['id']}"
    h = world.auth("city")
    edit = client.patch(url, json={"title": "改"}, headers={**h, "If-Match": f'"{lst["version"]}"'})
    assert edit.status_code == 409 and edit.json()["code"] == "list_issued"
    task_edit = client.patch(f"{url}/tasks/{lst['tasks'][0]['id']}", json={"title": "改"},
                             headers={**h, "If-Match": '"1"'})
    assert task_edit.status_code == 409
    amended = client.post(f"{url}/tasks", json=_task(title="乡村振兴: 产业项目", category="rural_revitalization",
                                                     target_mode="all_townships"), headers=h)
    assert amended.status_code == 201, amended.text
    assert amended.json()["amendment"] and amended.json()["assignment_count"] == 2
    # One of the anti-gang assignments is done before the task is cancelled: it stays done.
    gang = lst["tasks"][1]["id"]
    done_id = db.scalar(select(TaskAssignment.id).where(TaskAssignment.task_id == gang,
                                                        TaskAssignment.org_id == world.v1.id))
    client.post(f"{ASSIGNMENTS}/{done_id}/progress", json={"status": "done"}, headers=world.auth("v1"))
    assert client.post(f"{url}/tasks/{gang}/cancel", json={"reason": ""}, headers=h).status_code == 422
    cancelled = client.post(f"{url}/tasks/{gang}/cancel", json={"reason": "与专项行动重复"}, headers=h)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    statuses = dict(db.execute(select(TaskAssignment.org_id, TaskAssignment.status)
                               .where(TaskAssignment.task_id == gang)).tuples().all())
    assert statuses == {world.t1.id: "cancelled", world.v1.id: "done", world.v1b.id: "cancelled"}
    history = db.scalars(select(TaskAssignmentEvent.note).where(TaskAssignmentEvent.to_status == "cancelled")).all()
    assert history == ["与专项行动重复", "与专项行动重复"]
    assert client.post(f"{url}/tasks/{gang}/cancel", json={"reason": "x"}, headers=h).status_code == 409


def test_draft_list_and_task_edits_need_if_match(client: TestClient, world: World) -> None:
    lst = _draft(client, world, [_task()])
    url = f"{LISTS}/{lst['id']}"
    h = world.auth("city")
    assert client.patch(url, json={"title": "新"}, headers=h).status_code == 428
    r = client.patch(url, json={"title": "新"}, headers={**h, "If-Match": f'"{lst["version"]}"'})
    assert r.status_code == 200 and r.json()["title"] == "新"
    bad_month = client.patch(url, json={"month": "2019-12"}, headers={**h, "If-Match": r.headers["ETag"]})
    assert bad_month.status_code == 422
    task = lst["tasks"][0]
    t = client.patch(f"{url}/tasks/{task['id']}", headers={**h, "If-Match": f'"{task["version"]}"'},
                     json={"target_mode": "chosen", "targets": [{"org_id": world.v2.id}]})
    assert t.status_code == 200 and t.json()["targets"] == [{"org_id": world.v2.id, "subtree": False}]
    issued = client.post(f"{url}/issue", headers=h).json()
    assert issued["tasks"][0]["assignment_count"] == 1


def _assignment(db: Session, list_id: int, org: Organization) -> int:
    aid = db.scalar(select(TaskAssignment.id).where(TaskAssignment.list_id == list_id,
                                                    TaskAssignment.org_id == org.id))
    assert aid is not None
    return aid


def test_assignee_reports_progress_and_done_at_is_recorded(client: TestClient, world: World, db: Session) -> None:
    lst = _issued(client, world, [_task(deadline="2019-11-30")])
    aid = _assignment(db, lst["id"], world.v1)
    url = f"{ASSIGNMENTS}/{aid}/progress"
    assert client.post(url, json={"status": "done"}, headers=world.auth("t1")).json()["code"] == \
        "own_organization_required"
    assert client.post(url, json={"status": "done"}, headers=world.auth("v2")).status_code == 404
    assert client.post(url, json={"status": "pending"}, headers=world.auth("v1")).status_code == 422
    r = client.post(url, json={"status": "in_progress", "note": "已走访12户"}, headers=world.auth("v1"))
    assert r.status_code == 200 and r.json()["status"] == "in_progress" and r.json()["done_at"] is None
    r = client.post(url, json={"status": "done", "note": "全部走访"}, headers=world.auth("v1"))
    body = r.json()
    assert body["status"] == "done" and body["done_at"] and body["done_on"] == TODAY.isoformat()
    assert body["done_late"] is False and body["overdue"] is False
    assert [e["to_status"] for e in body["events"]] == ["in_progress", "done"]
    again = client.post(url, json={"status": "in_progress"}, headers=world.auth("v1"))
    assert again.status_code == 409 and again.json()["code"] == "invalid_status"


def test_level_above_reopens_a_done_assignment_with_reason(client: TestClient, world: World, db: Session) -> None:
    lst = _issued(client, world, [_task()])
    aid = _assignment(db, lst["id"], world.v1)
    url = f"{ASSIGNMENTS}/{aid}/reopen"
    assert client.post(url, json={"reason": "材料不全"}, headers=world.auth("t1")).status_code == 409
    client.post(f"{ASSIGNMENTS}/{aid}/progress", json={"status": "done"}, headers=world.auth("v1"))
    assert client.post(url, json={"reason": "材料不全"}, headers=world.auth("v1")).status_code == 403
    assert client.post(url, json={}, headers=world.auth("t1")).status_code == 422
    r = client.post(url, json={"reason": "材料不全"}, headers=world.auth("t1"))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "in_progress" and body["done_at"] is None and body["reopen_count"] == 1
    assert body["events"][-1]["note"] == "材料不全"


def test_overdue_and_on_time_rates_at_a_fixed_today(client: TestClient, world: World, db: Session,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Q4 2019: a November task due 11-10, a December one due 12-20 (not yet due on 11-20).
    lst = _issued(client, world, [_task(deadline="2019-11-10")])
    dec = _issued(client, world, [_task(deadline="2019-12-20", category="rural_revitalization")], month="2019-12")
    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 11, 8))
    client.post(f"{ASSIGNMENTS}/{_assignment(db, lst['id'], world.v1)}/progress", json={"status": "done"},
                headers=world.auth("v1"))  # on time
    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 11, 12))
    client.post(f"{ASSIGNMENTS}/{_assignment(db, lst['id'], world.v1b)}/progress", json={"status": "done"},
                headers=_auth_for(db, world.v1b))  # late
    monkeypatch.setattr(clock, "today", lambda: TODAY)
    # v2's November assignment is open and overdue; every December one is open and not yet due.
    h = world.auth("city")
    overdue = client.get(ASSIGNMENTS, params={"overdue": "true"}, headers=h).json()
    assert [(i["org_id"], i["days_overdue"]) for i in overdue["items"]] == [(world.v2.id, 10)]
    assert client.get(ASSIGNMENTS, params={"overdue": "false"}, headers=h).json()["total"] == 5
    late = client.get(ASSIGNMENTS, params={"month": "2019-11", "status": "done"}, headers=h).json()["items"]
    assert {i["org_id"]: i["done_late"] for i in late} == {world.v1.id: False, world.v1b.id: True}
    assert client.get(ASSIGNMENTS, params={"category": "rural_revitalization"}, headers=h).json()["total"] == 3
    assert dec["tasks"][0]["assignment_count"] == 3
    r = client.get(f"{LISTS}/quarterly-review", params={"year": 2019, "quarter": 4}, headers=h)
    assert r.status_code == 200, r.text
    review = r.json()
    assert review["months"] == ["2019-10", "2019-11", "2019-12"] and review["as_of"] == TODAY.isoformat()
    rows = {row["org_id"]: row for row in review["rows"]}
    v1 = rows[world.v1.id]
    assert (v1["assigned"], v1["done_on_time"], v1["done_late"], v1["still_open"], v1["overdue"]) == (2, 1, 0, 1, 0)
    assert v1["on_time_rate"] == 50.0
    assert (rows[world.v1b.id]["done_late"], rows[world.v1b.id]["on_time_rate"]) == (1, 0.0)
    assert (rows[world.v2.id]["overdue"], rows[world.v2.id]["still_open"]) == (1, 2)
    assert rows[world.t1.id]["assigned"] == 0 and rows[world.t1.id]["on_time_rate"] is None
    # Summaries agree with the rows they count.
    assert sum(row["assigned"] for row in rows.values()) == client.get(ASSIGNMENTS, headers=h).json()["total"]
    rolled = client.get(f"{LISTS}/quarterly-review", params={"year": 2019, "quarter": 4, "rollup": "true"},
                        headers=h).json()["rows"]
    t1 = next(row for row in rolled if row["org_id"] == world.t1.id)
    assert (t1["assigned"], t1["done_on_time"], t1["done_late"], t1["on_time_rate"]) == (4, 1, 1, 25.0)
    other = client.get(f"{LISTS}/quarterly-review", params={"year": 2019, "quarter": 3}, headers=h).json()
    assert all(row["assigned"] == 0 for row in other["rows"])


def _auth_for(db: Session, org: Organization) -> dict[str, str]:
    """Headers of a new village administrator of `org`."""
    user = make_user(db, f"admin_of_{org.id}_{next(_codes)}", "village_admin", org)
    return {"Authorization": f"Bearer {access_token(user)}"}


# ================================================================ problems


def _problem(client: TestClient, world: World, org: Organization, *, who: str = "v1", **over: Any) -> dict:
    body = {"org_id": org.id, "year": 2019, "source": "debriefing_appraisal",
            "description": "三会一课落实不到位", "cause_analysis": "支部书记重视不够",
            "rectification_measures": "建立台账、按月督促", "deadline": "2019-10-31", **over}
    r = client.post(PROBLEMS, json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _to_submitted(client: TestClient, world: World, pid: int, who: str = "v1") -> None:
    assert client.post(f"{PROBLEMS}/{pid}/rectify", headers=world.auth(who)).status_code == 200
    assert client.post(f"{PROBLEMS}/{pid}/submit", json={"note": "已整改"}, headers=world.auth(who)).status_code == 200


def test_problem_goes_open_rectifying_submitted_verified(client: TestClient, world: World, db: Session) -> None:
    # Only this test's rows: the concurrency tests commit audit rows about problems they delete after, whose ids
    # SQLite then reuses.
    mark = db.scalar(select(func.max(AuditLog.id))) or 0
    p = _problem(client, world, world.v1)
    assert p["status"] == "open" and p["overdue"] is True and p["days_overdue"] == 20
    url = f"{PROBLEMS}/{p['id']}"
    assert client.post(f"{url}/submit", json={}, headers=world.auth("v1")).json()["code"] == "invalid_status"
    assert client.post(f"{url}/verify", headers=world.auth("t1")).status_code == 409
    _to_submitted(client, world, p["id"])
    r = client.post(f"{url}/verify", headers=world.auth("t1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "verified" and body["verified_by"] == world.users["t1"].id and body["verified_at"]
    assert body["overdue"] is False
    assert client.post(f"{url}/reject", json={"reason": "x"}, headers=world.auth("t1")).status_code == 409
    actions = db.scalars(select(AuditLog.action).where(AuditLog.entity == "problem", AuditLog.id > mark,
                                                       AuditLog.entity_id == str(p["id"])).order_by(AuditLog.id))
    assert list(actions) == ["problem.open", "problem.rectify", "problem.submit", "problem.verify"]


def test_village_admin_cannot_verify_own_problem(client: TestClient, world: World) -> None:
    p = _problem(client, world, world.v1)
    _to_submitted(client, world, p["id"])
    r = client.post(f"{PROBLEMS}/{p['id']}/verify", headers=world.auth("v1"))
    assert r.status_code == 403
    assert client.post(f"{PROBLEMS}/{p['id']}/reject", json={"reason": "x"}, headers=world.auth("v1")).status_code \
        == 403


def test_township_cannot_verify_its_own_problem(client: TestClient, world: World) -> None:
    p = _problem(client, world, world.t1, who="t1")
    _to_submitted(client, world, p["id"], who="t1")
    r = client.post(f"{PROBLEMS}/{p['id']}/verify", headers=world.auth("t1"))
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    assert client.post(f"{PROBLEMS}/{p['id']}/verify", headers=world.auth("city")).status_code == 200


def test_township_cannot_verify_problem_of_village_in_another_township(client: TestClient, world: World,
                                                                       db: Session) -> None:
    p = _problem(client, world, world.v2, who="v2")
    _to_submitted(client, world, p["id"], who="v2")
    r = client.post(f"{PROBLEMS}/{p['id']}/verify", headers=world.auth("t1"))
    assert r.status_code == 404
    assert db.scalar(select(Problem.status).where(Problem.id == p["id"])) == "submitted"


def test_rejection_sends_back_to_rectifying_with_reason_and_is_counted(client: TestClient, world: World,
                                                                      db: Session) -> None:
    p = _problem(client, world, world.v1)
    url = f"{PROBLEMS}/{p['id']}"
    _to_submitted(client, world, p["id"])
    assert client.post(f"{url}/reject", json={}, headers=world.auth("t1")).status_code == 422
    r = client.post(f"{url}/reject", json={"reason": "台账不完整"}, headers=world.auth("t1"))
    assert r.status_code == 200 and r.json()["status"] == "rectifying" and r.json()["rejection_count"] == 1
    client.post(f"{url}/submit", json={"note": "补齐台账"}, headers=world.auth("v1"))
    client.post(f"{url}/reject", json={"reason": "仍缺会议记录"}, headers=world.auth("city"))
    detail = client.get(url, headers=world.auth("v1")).json()
    assert detail["rejection_count"] == 2
    assert [x["reason"] for x in detail["rejections"]] == ["台账不完整", "仍缺会议记录"]
    assert _count(db, ProblemRejection, ProblemRejection.problem_id == p["id"]) == 2


def test_problem_edits_and_deadline_rules(client: TestClient, world: World) -> None:
    p = _problem(client, world, world.v1)
    url = f"{PROBLEMS}/{p['id']}"
    h = {**world.auth("v1"), "If-Match": f'"{p["version"]}"'}
    assert client.patch(url, json={"cause_analysis": "x"}, headers=world.auth("v1")).status_code == 428
    moved = client.patch(url, json={"deadline": "2019-12-31"}, headers=h)
    assert moved.status_code == 403 and moved.json()["code"] == "level_above_required"
    r = client.patch(url, json={"cause_analysis": "制度执行不严"}, headers=h)
    assert r.status_code == 200 and r.json()["cause_analysis"] == "制度执行不严"
    r = client.patch(url, json={"deadline": "2019-12-31"}, headers={**world.auth("t1"), "If-Match": r.headers["ETag"]})
    assert r.status_code == 200 and r.json()["overdue"] is False
    _to_submitted(client, world, p["id"])
    locked = client.patch(url, json={"cause_analysis": "y"}, headers={**world.auth("v1"), "If-Match": '"99"'})
    assert locked.status_code in (409, 412)
    fresh = client.get(url, headers=world.auth("v1")).headers["ETag"]
    locked = client.patch(url, json={"cause_analysis": "y"}, headers={**world.auth("v1"), "If-Match": fresh})
    assert locked.status_code == 409 and locked.json()["code"] == "invalid_status"


def test_problem_input_is_validated_and_scoped(client: TestClient, world: World, db: Session) -> None:
    other = make_person(db, world.v2, name="外村")
    h = world.auth("v1")
    base = {"org_id": world.v1.id, "year": 2019, "source": "other", "description": "x"}
    assert client.post(PROBLEMS, json={**base, "source": "gossip"}, headers=h).status_code == 422
    assert client.post(PROBLEMS, json={**base, "description": ""}, headers=h).status_code == 422
    assert client.post(PROBLEMS, json={**base, "year": 1999}, headers=h).status_code == 422
    assert client.post(PROBLEMS, json={**base, "org_id": world.v2.id}, headers=h).status_code == 404
    assert client.post(PROBLEMS, json={**base, "responsible_person_id": other.id}, headers=h).status_code == 404
    assert client.post(PROBLEMS, json={**base, "org_id": 2**31}, headers=h).status_code == 422
    assert client.post(PROBLEMS, json=base, headers=world.auth("auditor")).status_code == 403
    assert _count(db, Problem) == 0


def test_escalation_of_problems_overdue_beyond_the_setting_is_idempotent(client: TestClient, world: World,
                                                                         db: Session) -> None:
    long_overdue = _problem(client, world, world.v1, deadline="2019-10-10")  # 41 days
    _problem(client, world, world.v2, who="v2", deadline="2019-11-01")  # 19 days: not yet
    done = _problem(client, world, world.v1b, who="t1", deadline="2019-09-01")
    _to_submitted(client, world, done["id"], who="t1")
    client.post(f"{PROBLEMS}/{done['id']}/verify", headers=world.auth("city"))
    township = _problem(client, world, world.t2, who="t2", deadline="2019-01-31")
    assert client.post(f"{PROBLEMS}/escalate-overdue", headers=world.auth("t1")).status_code == 403
    r = client.post(f"{PROBLEMS}/escalate-overdue", headers=world.auth("city"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["threshold_days"] == 30 and body["as_of"] == TODAY.isoformat()
    assert sorted(body["problem_ids"]) == sorted([long_overdue["id"], township["id"]])
    esc = client.get(f"{PROBLEMS}/{long_overdue['id']}", headers=world.auth("v1")).json()
    assert esc["escalated"] and esc["escalated_at"] == TODAY.isoformat()
    assert (esc["escalation_level"], esc["escalated_to_org_id"]) == ("township", world.t1.id)
    top = client.get(f"{PROBLEMS}/{township['id']}", headers=world.auth("t2")).json()
    assert (top["escalation_level"], top["escalated_to_org_id"]) == ("city", world.city.id)
    again = client.post(f"{PROBLEMS}/escalate-overdue", headers=world.auth("city")).json()
    assert again["escalated"] == 0
    listed = client.get(PROBLEMS, params={"escalated": "true"}, headers=world.auth("city")).json()
    assert {i["id"] for i in listed["items"]} == set(body["problem_ids"])
    assert client.get(PROBLEMS, params={"escalated": "false"}, headers=world.auth("city")).json()["total"] == 2
    assert _audits(db, "problem.escalate") == 2


def test_quarterly_inspection_opens_linked_problems_in_the_same_request(client: TestClient, world: World,
                                                                        db: Session) -> None:
    body = {"org_id": world.t1.id, "visited_on": "2019-10-15", "inspectors": "市委组织部 李某、王某",
            "findings": "部分社区阵地利用率不高",
            "problems": [{"description": "活动室长期闭门", "deadline": "2019-12-31"},
                         {"org_id": world.v1.id, "description": "党员积分台账缺失"}]}
    assert client.post(INSPECTIONS, json=body, headers=world.auth("t1")).status_code == 403  # not the level above
    assert client.post(INSPECTIONS, json=body, headers=world.auth("v1")).status_code == 403
    stray = {**body, "problems": [{"org_id": world.v2.id, "description": "x"}]}
    assert client.post(INSPECTIONS, json=stray, headers=world.auth("city")).status_code == 422
    future = {**body, "visited_on": "2019-12-01"}
    assert client.post(INSPECTIONS, json=future, headers=world.auth("city")).status_code == 422
    assert _count(db, QuarterlyInspection) == 0 and _count(db, Problem) == 0
    r = client.post(INSPECTIONS, json=body, headers=world.auth("city"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["quarter"] == 4 and out["problem_count"] == 2
    assert {(p["org_id"], p["source"], p["link_entity"], p["link_id"]) for p in out["problems"]} == {
        (world.t1.id, "quarterly_inspection", "quarterly_inspection", out["id"]),
        (world.v1.id, "quarterly_inspection", "quarterly_inspection", out["id"])}
    # The village sees the visit's problems that are its own.
    mine = client.get(PROBLEMS, params={"link_entity": "quarterly_inspection", "link_id": out["id"]},
                      headers=world.auth("v1")).json()
    assert mine["total"] == 1
    assert client.get(f"{INSPECTIONS}/{out['id']}", headers=world.auth("v1")).status_code == 404
    listed = client.get(INSPECTIONS, params={"year": 2019, "quarter": 4}, headers=world.auth("t1")).json()
    assert listed["total"] == 1 and listed["items"][0]["problem_count"] == 2


def test_open_problem_with_origin_key_opens_once(db: Session, world: World) -> None:
    actor = Actor.system()
    first = svc.open_problem(db, actor, org_id=world.v1.id, year=2019, source="standards_audit",
                             description="阵地缺少党员活动室", origin_key="standards_audit:1:venue")
    second = svc.open_problem(db, actor, org_id=world.v1.id, year=2019, source="standards_audit",
                              description="again", origin_key="standards_audit:1:venue")
    assert first.id == second.id and first.status == "open"
    assert _count(db, Problem) == 1 and _audits(db, "problem.open") == 1


def test_problem_summary_agrees_with_the_rows_it_counts(client: TestClient, world: World,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 10, 1))
    opened = _problem(client, world, world.v1, deadline="2019-09-30")
    rect = _problem(client, world, world.v1, deadline="2019-12-31")
    client.post(f"{PROBLEMS}/{rect['id']}/rectify", headers=world.auth("v1"))
    sub = _problem(client, world, world.v1b, who="t1")
    _to_submitted(client, world, sub["id"], who="t1")
    ver = _problem(client, world, world.v1b, who="t1")
    _to_submitted(client, world, ver["id"], who="t1")
    client.post(f"{PROBLEMS}/{ver['id']}/verify", headers=world.auth("t1"))
    _problem(client, world, world.v2, who="v2", year=2018)
    monkeypatch.setattr(clock, "today", lambda: TODAY)
    client.post(f"{PROBLEMS}/escalate-overdue", headers=world.auth("city"))
    h = world.auth("t1")
    r = client.get(f"{PROBLEMS}/summary", params={"year": 2019, "org_id": world.t1.id, "subtree": "true"}, headers=h)
    assert r.status_code == 200, r.text
    rows = {row["org_id"]: row for row in r.json()}
    assert {k: rows[world.v1.id][k] for k in ("open", "rectifying", "submitted", "verified", "overdue")} == {
        "open": 1, "rectifying": 1, "submitted": 0, "verified": 0, "overdue": 1}
    assert rows[world.v1.id]["escalated"] == 1 and rows[world.v1.id]["avg_days_to_verify"] is None
    assert (rows[world.v1b.id]["submitted"], rows[world.v1b.id]["verified"]) == (1, 1)
    assert rows[world.v1b.id]["avg_days_to_verify"] is not None
    for status in ("open", "rectifying", "submitted", "verified"):
        listed = client.get(PROBLEMS, params={"year": 2019, "status": status, "org_id": world.t1.id,
                                              "subtree": "true"}, headers=h).json()["total"]
        assert listed == sum(row[status] for row in rows.values()), status
    overdue = client.get(PROBLEMS, params={"year": 2019, "overdue": "true"}, headers=h).json()
    assert overdue["total"] == sum(row["overdue"] for row in rows.values()) == 2
    assert {i["id"] for i in overdue["items"]} == {opened["id"], sub["id"]}
    rolled = client.get(f"{PROBLEMS}/summary", params={"rollup": "true"}, headers=world.auth("city")).json()
    by_org = {row["org_id"]: row for row in rolled}
    assert (by_org[world.t1.id]["total"], by_org[world.t2.id]["total"]) == (4, 1)


# ================================================================ reading: scope, CSV, fixed query counts


def _seed_rows(client: TestClient, world: World, n: int) -> None:
    for _ in range(n):
        _problem(client, world, world.v1)
    for month in range(1, n + 1):
        _issued(client, world, [_task(deadline=f"2019-{month:02d}-28")], month=f"2019-{month:02d}")
    for i in range(n):
        client.post(INSPECTIONS, json={"org_id": world.v1.id, "visited_on": "2019-10-01", "inspectors": "x",
                                       "findings": f"f{i}", "problems": [{"description": "p"}]},
                    headers=world.auth("t1"))


@pytest.mark.parametrize("path", [PROBLEMS, ASSIGNMENTS, LISTS, INSPECTIONS, LETTERS])
def test_list_endpoints_issue_a_fixed_number_of_queries(path: str, client: TestClient, world: World,
                                                        db: Session) -> None:
    for year in range(2010, 2016):
        _letter(client, world, world.v1, year=year, items=[_item(due_date=f"{year}-06-30")])
    _seed_rows(client, world, 6)
    h = world.auth("t1")
    counts = []
    for limit in (1, 6):
        with count_statements(db) as seen:
            r = client.get(path, params={"limit": limit}, headers=h)
        assert r.status_code == 200 and len(r.json()["items"]) == limit, r.text
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("path", [f"{PROBLEMS}/summary", f"{LETTERS}/summary", f"{LISTS}/quarterly-review"])
@pytest.mark.parametrize("shape", [{"rollup": "true"}, {"subtree": "true"}, {}])
def test_summaries_issue_a_fixed_number_of_statements(path: str, shape: dict, client: TestClient, world: World,
                                                      db: Session) -> None:
    """Grouped in the database: more organisations and more records below cost no more statements, and a
    rollup answers one row per direct child (plus the organisation's own) however deep the tree."""
    params = {"year": 2019, "quarter": 4, **shape}
    h = world.auth("city")

    def summary() -> tuple[Any, int]:
        with count_statements(db) as seen:
            r = client.get(path, params=params, headers=h)
        assert r.status_code == 200, r.text
        return r.json(), len(seen)

    _, few = summary()
    for i in range(4):
        village = make_org(db, world.t1, level="village", domain="rural", name=f"新村{i}", code=f"51010100199{i}")
        _problem(client, world, village, who="city")
        _problem(client, world, world.v1)
        _letter(client, world, village, year=2019, items=[_item(due_date="2019-06-30")])
    _issued(client, world, [_task(deadline="2019-10-28")], month="2019-10")
    body, many = summary()
    assert many == few, (few, many)
    if shape:
        rows = body["rows"] if isinstance(body, dict) else body
        ids = {row["org_id"] for row in rows}
        if "rollup" in shape:
            assert ids <= {world.city.id, world.t1.id, world.t2.id}
        else:
            assert world.v1.id in ids


def test_csv_export_of_problems(client: TestClient, world: World) -> None:
    _problem(client, world, world.v1, description="=cmd|' /C calc'!A0")
    r = client.get(PROBLEMS, headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.startswith("\ufeffid,org_id") and "'=cmd" in r.text


def test_auditor_reads_everything_and_changes_nothing(client: TestClient, world: World) -> None:
    p = _problem(client, world, world.v2, who="v2")
    h = world.auth("auditor")
    assert client.get(f"{PROBLEMS}/{p['id']}", headers=h).status_code == 200
    assert client.get(f"{PROBLEMS}/summary", params={"subtree": "true"}, headers=h).status_code == 200
    assert client.post(f"{PROBLEMS}/{p['id']}/rectify", headers=h).status_code == 403
    assert client.post(f"{PROBLEMS}/escalate-overdue", headers=h).status_code == 403
    assert client.post(f"{LETTERS}/generate", json={"year": 2019, "org_id": world.t1.id}, headers=h).status_code \
        == 403


def test_sort_whitelist_and_bounds(client: TestClient, world: World) -> None:
    h = world.auth("city")
    assert client.get(PROBLEMS, params={"sort": "description"}, headers=h).status_code == 422
    assert client.get(PROBLEMS, params={"sort": "-deadline,id"}, headers=h).status_code == 200
    assert client.get(ASSIGNMENTS, params={"month": "2019-1"}, headers=h).status_code == 422
    assert client.get(f"{LISTS}/quarterly-review", params={"year": 2019, "quarter": 5}, headers=h).status_code == 422
    assert client.get(f"{PROBLEMS}/{2**31}", headers=h).status_code == 422
    assert client.get(f"{LETTERS}/999999", headers=h).status_code == 404


def test_demo_seed_is_idempotent_and_covers_every_status(db: Session, world: World) -> None:
    from app.demo import responsibilities as demo

    first = demo.seed(db)
    assert first["letters"] and first["monthly_lists"] == 2 and first["assignments"] and first["problems"]
    assert not any(demo.seed(db).values())
    statuses = set(db.scalars(select(Problem.status).where(Problem.year == 2018)))
    assert statuses == {"open", "rectifying", "submitted", "verified"}
    assert _count(db, Problem, Problem.escalated_at.is_not(None)) == 1
    assert _count(db, ResponsibilityLetter, ResponsibilityLetter.status == "settled") > 0
    late = _count(db, TaskAssignment, TaskAssignment.status == "done", TaskAssignment.done_on > TaskAssignment.deadline)
    assert late > 0
