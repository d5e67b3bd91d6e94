"""The change feed (GET /api/v1/changes) and `updated_since` on lists.

The feed's promise, "resume exactly: no change missed or repeated, even while writes commit", rests on audit ids
being handed out in commit order (app.services.changes explains why); the concurrency test at the end checks it
with real commits from several threads, a reader paging with the cursor meanwhile, and rollbacks mixed in.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core import audit
from app.core import db as core_db
from app.core.errors import ProblemError
from app.core.permissions import Permission, permissions_for
from app.core.scope import Actor
from app.models.audit import AuditLog
from app.models.organizations import Organization
from app.models.people import Person
from app.routers.changes import FEED_MAX
from app.services import audit as audit_service
from app.services import changes as service
from tests.factories import World, id_number, make_person
from tests.funds_support import count_statements

URL = "/api/v1/changes"
_names = itertools.count(1)


def _head(db: Session) -> int:
    return db.scalar(select(func.coalesce(func.max(AuditLog.id), 0))) or 0


def _cursor_at(db: Session) -> str:
    return service.encode_cursor(_head(db))


def _person(client: TestClient, world: World, who: str = "city", org_id: int | None = None,
            **kw: Any) -> dict[str, Any]:
    body = {"org_id": org_id or world.v1.id, "name": "扎西", "gender": "male", "member_status": "full",
            "joined_party_on": "2001-07-01", **kw}
    r = client.post("/api/v1/people", json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _actor(world: World, key: str) -> Actor:
    """A caller scoped to `key`'s organisation that may read the audit log (as a scoped service account would)."""
    user, org = world.users[key], getattr(world, key)
    return Actor(user.id, user.username, user.role, org.id, org.path,
                 permissions_for(user.role) | {Permission.audit_read})


# --- the feed -------------------------------------------------------------------------------------------------------


def test_feed_lists_changes_oldest_first_and_resumes_after_the_cursor(client: TestClient, world: World,
                                                                      db: Session) -> None:
    h = world.auth("auditor")
    start = _cursor_at(db)
    made = [_person(client, world, who="t1", name=f"变更{n}")["id"] for n in range(5)]  # a row each
    seen: list[dict[str, Any]] = []
    cursor, calls = start, 0
    while True:
        r = client.get(URL, params={"after": cursor, "limit": 2}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["limit"] == 2 and len(body["items"]) <= 2
        seen += body["items"]
        calls += 1
        if not body["items"]:
            assert body["next"] == cursor  # nothing new: the same position to poll again with
            break
        cursor = body["next"]
    assert calls == 4  # 2 + 2 + 1, then the empty answer
    ids = [row["id"] for row in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no hole
    created = [int(row["entity_id"]) for row in seen if row["action"] == "person.create"]
    assert created == made

    later = _person(client, world, name="又一个")
    r = client.get(URL, params={"after": cursor}, headers=h).json()
    assert [row["entity_id"] for row in r["items"] if row["action"] == "person.create"] == [str(later["id"])]
    again = client.get(URL, params={"after": r["next"]}, headers=h).json()
    assert again["items"] == [] and again["next"] == r["next"]


def test_the_first_call_starts_from_the_beginning(client: TestClient, world: World, db: Session) -> None:
    _person(client, world)
    r = client.get(URL, params={"limit": 3}, headers=world.auth("city"))
    assert r.status_code == 200, r.text
    assert [row["id"] for row in r.json()["items"]] == [1, 2, 3][: len(r.json()["items"])]


def test_entity_and_org_filters_and_the_cursor_moves_past_what_they_skip(client: TestClient, world: World,
                                                                         db: Session) -> None:
    h = world.auth("city")
    start = _cursor_at(db)
    in_v1 = _person(client, world, org_id=world.v1.id)
    in_v2 = _person(client, world, org_id=world.v2.id)
    r = client.post("/api/v1/positions", headers=h, json={"person_id": in_v1["id"], "org_id": world.v1.id,
                                                          "title": "committee_member", "started_on": "2020-01-01"})
    assert r.status_code == 201, r.text

    people = client.get(URL, params={"after": start, "entity": "person"}, headers=h).json()
    assert {row["entity_id"] for row in people["items"]} == {str(in_v1["id"]), str(in_v2["id"])}
    assert people["next"] == _cursor_at(db)  # past the position row it skipped: a poll does not rescan it

    t1 = client.get(URL, params={"after": start, "org_id": world.t1.id, "subtree": "true"}, headers=h).json()
    assert {row["entity"] for row in t1["items"]} == {"person", "position"}
    assert all(row["org_id"] == world.v1.id for row in t1["items"])
    only_t1 = client.get(URL, params={"after": start, "org_id": world.t1.id}, headers=h).json()
    assert only_t1["items"] == []


def test_a_scoped_caller_sees_only_changes_of_its_subtree(client: TestClient, world: World, db: Session) -> None:
    start = _head(db)
    _person(client, world, org_id=world.v1.id)
    _person(client, world, org_id=world.v2.id)
    rows, position = service.feed(db, _actor(world, "t1"), service.FeedFilters(), start, 100)
    assert rows and {r.org_id for r in rows} == {world.v1.id}
    assert position == _head(db)
    with pytest.raises(ProblemError) as caught:  # a filter on an organisation outside the subtree
        service.feed(db, _actor(world, "t1"), service.FeedFilters(org_id=world.v2.id), start, 100)
    assert caught.value.status == 404
    city_rows, _ = service.feed(db, _actor(world, "city"), service.FeedFilters(), start, 100)
    assert {r.org_id for r in city_rows} == {world.v1.id, world.v2.id}


def test_personal_data_is_masked(client: TestClient, world: World, db: Session) -> None:
    number, phone = id_number(seq=777), "13800138777"
    start = _cursor_at(db)
    person = _person(client, world, id_number=number, phone=phone)
    client.get(f"/api/v1/people/{person['id']}", headers=world.auth("auditor"))  # an unmasked read, audited
    r = client.get(URL, params={"after": start}, headers=world.auth("auditor"))
    assert r.status_code == 200
    assert number not in r.text and phone not in r.text
    actions = [row["action"] for row in r.json()["items"]]
    assert "person.create" in actions and "person.pii_read" in actions
    created = next(row for row in r.json()["items"] if row["action"] == "person.create")
    assert created["after"]["id_number_masked"] != number and "*" in created["after"]["phone_masked"]


def test_the_feed_needs_audit_read(client: TestClient, world: World) -> None:
    for who in ("t1", "v1"):
        r = client.get(URL, headers=world.auth(who))
        assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize("bad", [
    "garbage!", base64.urlsafe_b64encode(b"c1:-1").decode(), base64.urlsafe_b64encode(b"12").decode(),
    base64.urlsafe_b64encode(b"c1:").decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode(), "=",
    base64.urlsafe_b64encode(b"c1:" + b"9" * 30).decode()[:64],
])
def test_a_cursor_we_did_not_issue_is_a_422(bad: str, client: TestClient, world: World, db: Session) -> None:
    last = _head(db)
    r = client.get(URL, params={"after": bad}, headers=world.auth("city"))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_cursor" and r.json()["errors"][0]["loc"] == ["query", "after"]
    assert _head(db) == last
    zh = client.get(URL, params={"after": bad}, headers={**world.auth("city"), "Accept-Language": "zh-CN"})
    assert zh.json()["title"] == "游标无效" and zh.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": FEED_MAX + 1}, {"org_id": 0}, {"entity": ""}])
def test_bad_feed_parameters_are_422(params: dict[str, Any], client: TestClient, world: World) -> None:
    r = client.get(URL, params=params, headers=world.auth("city"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


def test_the_cursor_is_opaque_and_round_trips() -> None:
    for n in (0, 1, 41, 2**40):
        cursor = service.encode_cursor(n)
        assert str(n) not in cursor or n < 10
        assert service.decode_cursor(cursor) == n
    assert service.decode_cursor(None) == 0


def test_a_feed_call_costs_the_same_statements_for_any_batch(client: TestClient, world: World,
                                                             db: Session) -> None:
    start = _cursor_at(db)
    for n in range(6):
        _person(client, world, name=f"计数{n}")
    counts = []
    for limit in (1, 6):
        with count_statements(db.get_bind().engine) as seen:
            r = client.get(URL, params={"after": start, "limit": limit, "org_id": world.v1.id},
                           headers=world.auth("city"))
            assert r.status_code == 200 and len(r.json()["items"]) == limit
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


# --- updated_since ----------------------------------------------------------------------------------------------------


def _age(db: Session, model: Any, ids: list[int], when: dt.datetime) -> None:
    db.execute(update(model).where(model.id.in_(ids)).values(updated_at=when).execution_options(
        synchronize_session=False))
    db.flush()


def test_updated_since_filters_lists_by_updated_at(client: TestClient, world: World, db: Session) -> None:
    old, new = make_person(db, world.v1, name="旧人"), make_person(db, world.v1, name="新人")
    _age(db, Person, [old.id], dt.datetime(2020, 1, 1, tzinfo=dt.UTC))  # type: ignore[list-item]
    _age(db, Person, [new.id], dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC))  # type: ignore[list-item]
    h = world.auth("city")

    def names(since: str) -> set[str]:
        r = client.get("/api/v1/people", params={"org_id": world.v1.id, "updated_since": since, "limit": 200},
                       headers=h)
        assert r.status_code == 200, r.text
        return {p["name"] for p in r.json()["items"]} & {"旧人", "新人"}

    assert names("2019-12-31T00:00:00Z") == {"旧人", "新人"}
    assert names("2024-06-01T08:00:00Z") == {"新人"}  # inclusive
    assert names("2024-06-01T16:00:00+08:00") == {"新人"}  # the same instant in Beijing time
    assert names("2024-06-01T08:00:00.000001Z") == set()
    r = client.get("/api/v1/people", params={"org_id": world.v1.id, "updated_since": "2024-01-01T00:00:00Z"},
                   headers=h)
    assert r.json()["total"] == len(r.json()["items"])  # the total counts the filtered list

    _age(db, Organization, [world.v1b.id], dt.datetime(2099, 1, 1, tzinfo=dt.UTC))  # type: ignore[list-item]
    orgs = client.get("/api/v1/organizations", params={"updated_since": "2098-01-01T00:00:00Z"}, headers=h)
    assert orgs.status_code == 200, orgs.text
    assert [o["id"] for o in orgs.json()["items"]] == [world.v1b.id]


def test_updated_since_applies_to_exports_too(client: TestClient, world: World, db: Session) -> None:
    old, new = make_person(db, world.v1, name="导出旧"), make_person(db, world.v1, name="导出新")
    _age(db, Person, [old.id], dt.datetime(2020, 1, 1, tzinfo=dt.UTC))  # type: ignore[list-item]
    _age(db, Person, [new.id], dt.datetime(2097, 1, 1, tzinfo=dt.UTC))  # type: ignore[list-item]
    r = client.get("/api/v1/people", params={"updated_since": "2096-01-01T00:00:00Z"},
                   headers={**world.auth("t1"), "Accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert "导出新" in r.text and "导出旧" not in r.text


@pytest.mark.parametrize("bad", ["2024-06-01T08:00:00", "2024-06-01", "yesterday", "2024-13-01T00:00:00Z",
                                 "1900-01-01T00:00:00Z", ""])
def test_updated_since_must_be_a_time_with_offset(bad: str, client: TestClient, world: World) -> None:
    r = client.get("/api/v1/people", params={"updated_since": bad}, headers=world.auth("city"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["loc"] == ["query", "updated_since"]


def test_a_list_without_updated_at_refuses_updated_since(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/audit-log", params={"updated_since": "2024-01-01T00:00:00Z"}, headers=world.auth("city"))
    assert r.status_code == 422 and r.json()["code"] == "updated_since_unsupported"
    zh = client.get("/api/v1/audit-log", params={"updated_since": "2024-01-01T00:00:00Z"},
                    headers={**world.auth("city"), "Accept-Language": "zh"})
    assert zh.json()["title"] == "该列表不支持按更新时间筛选"


def _list_operations() -> list[str]:
    from app.main import app

    paths = app.openapi()["paths"]
    return sorted(path for path, ops in paths.items() if "get" in ops and "{" not in path
                  and any(p["name"] == "updated_since" for p in ops["get"].get("parameters", [])))


@pytest.mark.parametrize("path", _list_operations())
def test_every_list_filters_by_updated_since_or_says_it_cannot(path: str, client: TestClient,
                                                               world: World) -> None:
    """Nothing was updated in 2099: a list that keeps updated_at is empty, one that does not says so (422)."""
    r = client.get(path, params={"updated_since": "2099-12-31T00:00:00Z"}, headers=world.auth("city"))
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json()["items"] == [] and r.json()["total"] == 0, r.text[:300]
    elif r.json()["code"] != "updated_since_unsupported":  # a list that needs another parameter first
        assert r.json()["code"] == "validation_error"
        assert all(e["loc"][-1] != "updated_since" for e in r.json()["errors"]), r.text


# --- commit order under concurrent writers ------------------------------------------------------------------------


@pytest.fixture
def committed_actor(engine: Engine, world: World) -> Iterator[Actor]:
    city = world.users["city"]
    assert city.id is not None
    yield Actor(city.id, city.username, city.role, city.org_id, world.city.path, permissions_for(city.role))


def test_paging_while_writers_commit_misses_nothing_and_repeats_nothing(committed_actor: Actor,
                                                                         world: World) -> None:
    """Writers append and commit (or roll back) in their own transactions, each holding its transaction open a
    little after its audit row is written; meanwhile a reader pages through the feed over HTTP with the cursor.
    What the reader collected must be exactly the committed rows, in id order, with no hole in the ids."""
    from app.main import app

    threads, per_thread = 5, 8
    marker = f"feed_{next(_names)}_{dt.datetime.now(dt.UTC).timestamp()}"
    committed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            barrier.wait()
            for i in range(per_thread):
                session = core_db.new_session(write=True)
                try:
                    for part in range(rng.randint(1, 2)):  # one or two rows in the transaction
                        audit.record(session, actor=committed_actor, action="test.feed", entity=marker,
                                     entity_id=f"{n}-{i}-{part}", org_id=world.v1.id)
                    time.sleep(rng.uniform(0, 0.01))  # commit well after the id was handed out
                    if rng.random() < 0.2:
                        session.rollback()
                    else:
                        keys = [f"{n}-{i}-{p}" for p in range(part + 1)]
                        session.commit()
                        with lock:
                            committed.extend(keys)
                finally:
                    session.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with core_db.session_scope(write=False) as s:
        start = service.encode_cursor(s.scalar(select(func.coalesce(func.max(AuditLog.id), 0))) or 0)
    seen: list[tuple[int, str]] = []
    polls = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        h = world.auth("city")
        workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()

        def poll(cursor: str) -> str:
            nonlocal polls
            r = client.get(URL, params={"after": cursor, "limit": 3, "entity": marker}, headers=h)
            assert r.status_code == 200, r.text
            polls += 1
            seen.extend((row["id"], row["entity_id"]) for row in r.json()["items"])
            return str(r.json()["next"])

        cursor = start
        while any(w.is_alive() for w in workers):
            cursor = poll(cursor)
        for w in workers:
            w.join(timeout=120)
        while True:  # drain what committed after the last poll
            before = len(seen)
            cursor = poll(cursor)
            if len(seen) == before:
                break
    assert not errors, errors
    assert polls > threads  # the reader really paged while the writers were committing
    ids = [i for i, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "a row was repeated or came out of order"
    assert sorted(key for _, key in seen) == sorted(committed), "the feed missed a committed row"
    with core_db.session_scope(write=False) as s:
        assert audit_service.verify(s).ok  # the committed ids are 1..n without a hole
