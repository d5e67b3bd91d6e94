"""Record history (`GET <item>/history`) and `?as_of=` on item GETs, rebuilt from the audit log (app.core.history).

Every recorded item GET is covered by the generated tests (the authorisation matrix covers who may read which
history: tests/authz/changes.py); people, positions and organisations have hand-written ones.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.history import recorded
from app.deps import ItemId, PeopleRead, SessionDep
from app.models.audit import AuditLog
from app.routers import ROUTERS
from app.routers.changes import history_operation_id, recorded_items
from tests.authz import load_all
from tests.authz.registry import CASES, Ctx
from tests.factories import World, id_number
from tests.funds_support import count_statements

load_all()

RECORDED = [(route, info) for route, info in recorded_items(r for router in ROUTERS for r in router.routes)]
ITEM_GETS = {"people_get", "positions_get", "organizations_get", "users_get"}  # the core ones must be recorded


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _tick() -> dt.datetime:
    """A moment strictly between two changes (audit times have microseconds; SQLite keeps them)."""
    time.sleep(0.002)
    moment = _now()
    time.sleep(0.002)
    return moment


# --- generated: every recorded item ---------------------------------------------------------------------------


def test_the_core_item_gets_are_recorded() -> None:
    ops = {route.operation_id for route, _ in RECORDED}
    assert ops >= ITEM_GETS, ITEM_GETS - ops
    assert len(RECORDED) >= 30  # one per audited collection with an item GET


@pytest.mark.parametrize(("route", "info"), RECORDED, ids=[r.operation_id for r, _ in RECORDED])
def test_every_recorded_item_has_history_and_as_of(route: Any, info: Any, client: TestClient, db: Session,
                                                   world: World) -> None:
    """Built by the item GET's matrix case for the township role (which reads every area but holds no pii_read,
    as history and as_of answers are masked): its history answers a page of versions of that record only, and
    `as_of` a moment from now answers what the GET answers."""
    case = CASES[route.operation_id]
    ctx = Ctx(db=db, world=world, role="t1", target="in_scope")
    req = case.build(ctx, ctx.org(case.owner_key("t1", "in_scope")))
    db.flush()
    h = world.auth("t1")
    current = client.get(req.path, params=req.params, headers=h)
    assert current.status_code == 200, current.text

    r = client.get(f"{req.path}/history", headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"items", "total", "limit", "offset", "next"} and page["total"] == len(page["items"])
    ids = [v["audit_id"] for v in page["items"]]
    assert ids == sorted(ids, reverse=True)
    item_id = req.path.rstrip("/").rsplit("/", 1)[-1]
    for version in page["items"]:
        row = db.get(AuditLog, version["audit_id"])
        assert row is not None and row.entity == info.entity and row.entity_id == item_id
        assert version["action"] == row.action and version["user_id"] == row.user_id

    later = client.get(req.path, params={**(req.params or {}), "as_of": _iso(_now() + dt.timedelta(days=1))},
                       headers=h)
    assert later.status_code == 200, later.text
    assert later.json() == current.json()
    assert "ETag" not in later.headers  # a past version is not something to send If-Match with

    if "created_at" in current.json():
        before = client.get(req.path, params={**(req.params or {}), "as_of": "1971-01-01T00:00:00Z"}, headers=h)
        assert before.status_code == 404, before.text
        assert before.json()["code"] == "not_found"


def test_history_operation_ids_read_well() -> None:
    for route, _ in RECORDED:
        assert history_operation_id(route).endswith("_history")
        assert "__" not in history_operation_id(route)


# --- people -----------------------------------------------------------------------------------------------------


def _person(client: TestClient, world: World, **kw: Any) -> dict[str, Any]:
    body = {"org_id": world.v1.id, "name": "扎西", "gender": "male", "member_status": "full",
            "joined_party_on": "2001-07-01", **kw}
    r = client.post("/api/v1/people", json=body, headers=world.auth("city"))
    assert r.status_code == 201, r.text
    return r.json()


def _patch(client: TestClient, world: World, url: str, version: int, body: dict[str, Any],
           who: str = "city") -> dict[str, Any]:
    r = client.patch(url, json=body, headers={**world.auth(who), "If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text
    return r.json()


def test_person_history_newest_first_with_field_changes_and_masked_pii(client: TestClient, world: World) -> None:
    number, phone, new_phone = id_number(seq=901), "13800138001", "13900139002"
    person = _person(client, world, id_number=number, phone=phone)
    url = f"/api/v1/people/{person['id']}"
    person = _patch(client, world, url, person["version"], {"name": "扎西次仁"})
    _patch(client, world, url, person["version"], {"phone": new_phone}, who="t1")

    r = client.get(f"{url}/history", headers=world.auth("auditor"))  # an auditor holds pii_read: still masked
    assert r.status_code == 200, r.text
    for secret in (number, phone, new_phone):
        assert secret not in r.text
    versions = r.json()["items"]
    assert [v["action"] for v in versions] == ["person.update", "person.update", "person.create"]
    assert r.json()["total"] == 3  # the auditor's unmasked GETs and pii_read rows are not versions
    newest, renamed, created = versions
    assert newest["username"] == world.users["t1"].username and newest["role"] == "township_admin"
    assert [c["field"] for c in newest["changes"] if c["field"] == "phone"] == ["phone"]
    phone_change = next(c for c in newest["changes"] if c["field"] == "phone")
    assert phone_change["before"].startswith("138") and "*" in phone_change["before"]
    assert phone_change["after"].startswith("139") and "*" in phone_change["after"]
    assert {"field": "name", "before": "扎西", "after": "扎西次仁"} in renamed["changes"]
    created_fields = {c["field"]: c for c in created["changes"]}
    assert created_fields["name"] == {"field": "name", "before": None, "after": "扎西"}
    assert created_fields["birth_year"]["after"] == int(number[6:10])  # not the birth date
    assert "birth_date" not in created_fields and "id_number_cipher" not in created_fields

    oldest_first = client.get(f"{url}/history", params={"sort": "id"}, headers=world.auth("city")).json()
    assert [v["audit_id"] for v in oldest_first["items"]] == [v["audit_id"] for v in reversed(versions)]
    paged = client.get(f"{url}/history", params={"limit": 1, "offset": 1}, headers=world.auth("city")).json()
    assert [v["audit_id"] for v in paged["items"]] == [renamed["audit_id"]] and paged["total"] == 3


def test_person_as_of_rebuilds_each_version(client: TestClient, world: World, db: Session) -> None:
    person = _person(client, world, phone="13800138003")
    url = f"/api/v1/people/{person['id']}"
    first = _tick()
    person = _patch(client, world, url, person["version"], {"name": "卓玛"})
    second = _tick()
    _patch(client, world, url, person["version"], {"phone": "13900139004", "ethnicity": "藏族"})

    h = world.auth("city")
    then = client.get(url, params={"as_of": _iso(first)}, headers=h)
    assert then.status_code == 200, then.text
    assert then.json()["name"] == "扎西" and then.json()["version"] == 1 and then.json()["ethnicity"] is None
    assert then.json()["phone"].startswith("138") and "*" in then.json()["phone"]  # masked, as in the log
    mid = client.get(url, params={"as_of": _iso(second)}, headers=h).json()
    assert mid["name"] == "卓玛" and mid["version"] == 2 and mid["phone"].startswith("138")
    now = client.get(url, headers=h).json()
    assert now["name"] == "卓玛" and now["version"] == 3 and now["phone"] == "13900139004"  # city: unmasked

    created = dt.datetime.fromisoformat(person["created_at"])
    gone = client.get(url, params={"as_of": _iso(created - dt.timedelta(seconds=1))}, headers=h)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"


def test_as_of_and_history_answer_404_outside_scope(client: TestClient, world: World) -> None:
    person = _person(client, world)
    url = f"/api/v1/people/{person['id']}"
    for who in ("v2", "t2"):
        assert client.get(url, params={"as_of": _iso(_now())}, headers=world.auth(who)).status_code == 404
        assert client.get(f"{url}/history", headers=world.auth(who)).status_code == 404
    assert client.get("/api/v1/people/2147483647/history", headers=world.auth("city")).status_code == 404


@pytest.mark.parametrize("bad", ["2026-01-01T00:00:00", "yesterday", "1900-01-01T00:00:00Z", "2026-13-01T00:00Z"])
def test_as_of_must_be_a_time_with_offset(bad: str, client: TestClient, world: World) -> None:
    r = client.get(f"/api/v1/organizations/{world.v1.id}", params={"as_of": bad}, headers=world.auth("city"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_as_of_reads_no_personal_data_and_writes_no_audit_row(client: TestClient, world: World,
                                                              db: Session) -> None:
    person = _person(client, world, phone="13800138005")
    url = f"/api/v1/people/{person['id']}"
    last = db.query(AuditLog.id).order_by(AuditLog.id.desc()).limit(1).scalar()
    r = client.get(url, params={"as_of": _iso(_now())}, headers=world.auth("auditor"))
    assert r.status_code == 200 and "13800138005" not in r.text
    h = client.get(f"{url}/history", headers=world.auth("auditor"))
    assert h.status_code == 200 and "13800138005" not in h.text
    assert db.query(AuditLog).filter(AuditLog.id > last).count() == 0  # no person.pii_read row: nothing revealed


# --- positions and organisations ----------------------------------------------------------------------------------


def test_position_end_is_a_version_and_as_of_before_it_shows_it_open(client: TestClient, world: World) -> None:
    person = _person(client, world)
    h = world.auth("city")
    r = client.post("/api/v1/positions", json={"person_id": person["id"], "org_id": world.v1.id,
                                               "title": "committee_member", "started_on": "2020-01-01"}, headers=h)
    assert r.status_code == 201, r.text
    url = f"/api/v1/positions/{r.json()['id']}"
    before_end = _tick()
    assert client.post(f"{url}/end", json={"ended_on": "2024-06-30"}, headers=h).status_code == 200
    assert client.get(url, headers=h).json()["ended_on"] == "2024-06-30"
    assert client.get(url, params={"as_of": _iso(before_end)}, headers=h).json()["ended_on"] is None
    versions = client.get(f"{url}/history", headers=h).json()["items"]
    assert versions[0]["action"] == "position.end"
    assert {"field": "ended_on", "before": None, "after": "2024-06-30"} in versions[0]["changes"]


def test_organization_rename_history_and_as_of(client: TestClient, world: World, db: Session) -> None:
    h = world.auth("city")
    r = client.post("/api/v1/organizations", json={"parent_id": world.t1.id, "level": "village",
                                                   "domain": "community", "name": "历史社区",
                                                   "code": "513301001991"}, headers=h)
    assert r.status_code == 201, r.text
    org = r.json()
    url = f"/api/v1/organizations/{org['id']}"
    before_rename = _tick()
    _patch(client, world, url, org["version"], {"name": "新名社区"})
    assert client.get(url, params={"as_of": _iso(before_rename)}, headers=h).json()["name"] == "历史社区"
    versions = client.get(f"{url}/history", headers=h).json()["items"]
    assert [v["action"] for v in versions] == ["organization.update", "organization.create"]
    assert {"field": "name", "before": "历史社区", "after": "新名社区"} in versions[0]["changes"]


def test_a_record_without_a_creation_row_is_rebuilt_from_the_rows_it_has(client: TestClient, world: World,
                                                                         db: Session) -> None:
    """Records made before auditing (or by data migrations) have no creation row: as_of undoes what is logged."""
    h = world.auth("city")
    url = f"/api/v1/organizations/{world.v1b.id}"
    org = client.get(url, headers=h).json()
    moment = _tick()
    _patch(client, world, url, org["version"], {"name": "向阳新社区"})
    assert client.get(url, params={"as_of": _iso(moment)}, headers=h).json()["name"] == org["name"]


# --- cost -----------------------------------------------------------------------------------------------------------


def test_history_and_as_of_cost_the_same_statements_however_many_versions(client: TestClient, world: World,
                                                                          db: Session) -> None:
    h = world.auth("city")
    few = _person(client, world)
    many = _person(client, world)
    created = _tick()
    version = many["version"]
    for n in range(8):
        version = _patch(client, world, f"/api/v1/people/{many['id']}", version, {"name": f"名{n}"})["version"]
    counts = []
    for person in (few, many):
        url = f"/api/v1/people/{person['id']}"
        with count_statements(db.get_bind().engine) as history:
            assert client.get(f"{url}/history", headers=h).status_code == 200
        with count_statements(db.get_bind().engine) as as_of:
            assert client.get(url, params={"as_of": "2000-01-01T00:00:00Z"}, headers=h).status_code == 404
        with count_statements(db.get_bind().engine) as as_of_now:
            assert client.get(url, params={"as_of": _iso(created)}, headers=h).status_code == 200
        counts.append((len(history), len(as_of), len(as_of_now)))
    assert counts[0] == counts[1], counts



# --- generated: records created through the API ---------------------------------------------------------------------


def _creations() -> list[Any]:
    """(item route, its collection's create operation) for every recorded item whose collection has a POST."""
    from fastapi import routing

    creates = {r.path: r for router in ROUTERS for r in router.routes
               if isinstance(r, routing.APIRoute) and "POST" in r.methods and r.operation_id in CASES}
    found = []
    for route, info in RECORDED:
        create = creates.get(route.path.rsplit("/", 1)[0])
        if create is not None:
            found.append(pytest.param(route, info, create.operation_id, id=route.operation_id))
    return found


CREATIONS = _creations()


def test_most_recorded_items_are_created_through_their_collection() -> None:
    assert len(CREATIONS) >= 20, [c.id for c in CREATIONS]


@pytest.mark.parametrize(("route", "info", "create_op"), CREATIONS)
def test_a_record_created_through_the_api_has_its_creation_as_first_version(
        route: Any, info: Any, create_op: str, client: TestClient, db: Session, world: World) -> None:
    """The collection's create (its matrix case, by the first role allowed to) makes the record; its history
    starts with that creation, and as_of just before it is 404 while as_of now is the GET's answer."""
    case = CASES[create_op]
    # Rows of other records with the same id are older: the concurrency tests commit audit rows about records they
    # delete after, and SQLite reuses those ids.
    mark = db.scalar(select(func.max(AuditLog.id))) or 0
    for role in ("city", "t1", "v1"):
        ctx = Ctx(db=db, world=world, role=role, target="in_scope")
        req = case.build(ctx, ctx.org(case.owner_key(role, "in_scope")))
        db.flush()
        before_creation = _tick()
        r = client.request(req.method, req.path, params=req.params, json=req.json, data=req.data,
                           headers={**world.auth(role), **req.headers})
        if r.status_code in (200, 201):
            break
    assert r.status_code in (200, 201), f"{create_op}: no role could create: {r.status_code} {r.text[:300]}"
    item_id = r.json()["id"]
    url = re.sub(r"\{" + info.id_param + r"(:[^}]*)?\}", str(item_id), route.path)
    # The township reads every area in v1 and holds no pii_read (history and as_of are masked); what only the
    # creator sees (e.g. the city's own draft), the creator reads.
    h = world.auth("t1") if client.get(url, headers=world.auth("t1")).status_code == 200 else world.auth(role)
    history = client.get(f"{url}/history", params={"sort": "id"}, headers=h)
    assert history.status_code == 200, history.text
    first = next(v for v in history.json()["items"] if v["audit_id"] > mark)
    row = db.get(AuditLog, first["audit_id"])
    assert row is not None and row.entity == info.entity and row.entity_id == str(item_id) and row.before is None
    assert first["changes"] and all(c["before"] is None for c in first["changes"])
    assert client.get(url, params={"as_of": _iso(before_creation)}, headers=h).status_code == 404
    now = client.get(url, headers=h)
    assert client.get(url, params={"as_of": _iso(_now())}, headers=h).json() == now.json()


def test_a_later_row_without_before_is_not_taken_for_the_creation(client: TestClient, world: World,
                                                                  db: Session) -> None:
    """Positions keep no created_at: existence comes from the first audit row. A later row that records something
    without a `before` (like user.password_change) neither hides the record nor changes it."""
    from app.core import audit
    from app.core.scope import Actor

    person = _person(client, world)
    h = world.auth("city")
    r = client.post("/api/v1/positions", json={"person_id": person["id"], "org_id": world.v1.id,
                                               "title": "committee_member", "started_on": "2020-01-01"}, headers=h)
    assert r.status_code == 201, r.text
    url = f"/api/v1/positions/{r.json()['id']}"
    moment = _tick()
    audit.record(db, actor=Actor.system(), action="position.note", entity="position", entity_id=r.json()["id"],
                 org_id=world.v1.id, after={"note": "checked"})
    db.flush()
    then = client.get(url, params={"as_of": _iso(moment)}, headers=h)
    assert then.status_code == 200, then.text
    assert then.json() == client.get(url, headers=h).json()
    versions = client.get(f"{url}/history", headers=h).json()["items"]
    assert [v["action"] for v in versions] == ["position.note", "position.create"]


def test_recorded_refuses_at_import_a_get_it_could_not_call() -> None:
    def get_thing(thing_id: ItemId, session: SessionDep, actor: PeopleRead, request: Request) -> Any:
        return None

    def no_actor(thing_id: ItemId, session: SessionDep) -> Any:
        return None

    for endpoint, message in ((get_thing, "cannot fill parameters ['request']"), (no_actor, "needs one ItemId")):
        with pytest.raises(TypeError, match=re.escape(message)):
            recorded("thing")(endpoint)
