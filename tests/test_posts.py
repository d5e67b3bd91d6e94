from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.core.permissions import Role, permissions_for
from app.core.scope import Actor
from app.models.audit import AuditLog
from app.models.organizations import Organization
from app.models.people import Person
from app.models.posts import AssignmentCreate, DutyPost, PostAssignment, PostLog, PostPolicy
from app.services import posts as service
from tests.factories import World, id_number, make_org, make_person, make_position

POSTS = "/api/v1/duty-posts"
ASSIGNMENTS = "/api/v1/post-assignments"
LOGS = "/api/v1/post-logs"
POLICIES = "/api/v1/duty-post-policies"
D = dt.date


def members(db: Session, org: Organization, n: int, **kw: Any) -> list[Person]:
    return [make_person(db, org, name=f"党员{i}", **kw) for i in range(n)]


def new_post(client: TestClient, world: World, who: str = "v1", org: Organization | None = None,
             **kw: Any) -> dict[str, Any]:
    body = {"org_id": (org or world.v1).id, "year": 2019, "title": "政策宣传员", "field": "policy_publicity",
            "duties": "每月入户宣讲政策", "capacity": 2, **kw}
    r = client.post(POSTS, json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def apply(client: TestClient, world: World, post: dict[str, Any], person: Person, who: str = "v1",
          route: str = "self_selected", on: str = "2019-03-01") -> Any:
    return client.post(ASSIGNMENTS, headers=world.auth(who), json={
        "post_id": post["id"], "person_id": person.id, "route": route, "requested_on": on})


def held(client: TestClient, world: World, post: dict[str, Any], person: Person, on: str = "2019-03-05",
         who: str = "v1") -> dict[str, Any]:
    a = apply(client, world, post, person, who=who)
    assert a.status_code == 201, a.text
    r = client.post(f"{ASSIGNMENTS}/{a.json()['id']}/approve", headers=world.auth(who), json={"assigned_on": on})
    assert r.status_code == 200, r.text
    return r.json()


def filled(db: Session, post_id: int) -> int:
    return db.scalar(select(DutyPost.filled).where(DutyPost.id == post_id)) or 0


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


# ---------------------------------------------------------------------------
# Posts


def test_village_sets_post_and_township_sees_it(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    assert post["status"] == "open" and post["filled"] == 0 and post["capacity"] == 2
    assert client.get(f"{POSTS}/{post['id']}", headers=world.auth("t1")).status_code == 200
    assert client.get(f"{POSTS}/{post['id']}", headers=world.auth("t2")).status_code == 404
    assert client.get(f"{POSTS}/{post['id']}", headers=world.auth("auditor")).status_code == 200
    assert db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "duty_post.create")) == 1


def test_posts_only_in_village_or_branch_and_in_scope(client: TestClient, world: World) -> None:
    body = {"org_id": world.t1.id, "year": 2019, "title": "x", "field": "other", "duties": "x"}
    r = client.post(POSTS, json=body, headers=world.auth("t1"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "org_id"]
    r = client.post(POSTS, json={**body, "org_id": world.v2.id}, headers=world.auth("v1"))
    assert r.status_code == 404
    for bad in ({"capacity": 0}, {"year": 1999}, {"field": "war"}, {"title": ""}, {"extra": 1},
                {"org_id": 2**31}, {"duties": "x" * 4001}):
        assert client.post(POSTS, json={**body, "org_id": world.v1.id, **bad},
                           headers=world.auth("v1")).status_code == 422, bad


def test_auditor_reads_but_cannot_write(client: TestClient, world: World) -> None:
    body = {"org_id": world.v1.id, "year": 2019, "title": "x", "field": "other", "duties": "x"}
    r = client.post(POSTS, json=body, headers=world.auth("auditor"))
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert client.get(POSTS, headers=world.auth("auditor")).status_code == 200
    assert client.get(POSTS).status_code == 401


def test_patch_needs_if_match_and_capacity_cannot_go_below_filled(
    client: TestClient, world: World, db: Session
) -> None:
    post = new_post(client, world, capacity=2)
    people = members(db, world.v1, 2)
    for p in people:
        assert apply(client, world, post, p).status_code == 201
    url = f"{POSTS}/{post['id']}"
    h = world.auth("v1")
    assert client.patch(url, json={"capacity": 3}, headers=h).status_code == 428
    etag = client.get(url, headers=h).headers["ETag"]
    r = client.patch(url, json={"capacity": 1}, headers={**h, "If-Match": etag})
    assert r.status_code == 409 and r.json()["code"] == "capacity_below_filled"
    r = client.patch(url, json={"capacity": 3, "title": "宣讲员"}, headers={**h, "If-Match": etag})
    assert r.status_code == 200 and r.json()["capacity"] == 3 and r.json()["filled"] == 2
    assert client.patch(url, json={"filled": 0}, headers={**h, "If-Match": r.headers["ETag"]}).status_code == 422


def test_database_refuses_filled_above_capacity(world: World, db: Session) -> None:
    post = DutyPost(org_id=world.v1.id, year=2019, title="x", field="other", duties="x", capacity=1)
    db.add(post)
    db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(update(DutyPost).where(DutyPost.id == post.id).values(filled=2))


def test_close_refuses_applications_and_reopen(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    h = world.auth("v1")
    assert client.post(f"{POSTS}/{post['id']}/close", headers=h).json()["status"] == "closed"
    assert client.post(f"{POSTS}/{post['id']}/close", headers=h).status_code == 409
    r = apply(client, world, post, p)
    assert r.status_code == 409 and r.json()["code"] == "post_closed"
    assert client.post(f"{POSTS}/{post['id']}/reopen", headers=h).status_code == 200
    assert apply(client, world, post, p).status_code == 201


# ---------------------------------------------------------------------------
# Who may hold a post


def test_member_without_office_applies_and_is_approved(client: TestClient, world: World, db: Session) -> None:
    # Only this test's audit rows: the race tests commit (and delete) assignments, and SQLite reuses their ids.
    mark = db.scalar(select(func.coalesce(func.max(AuditLog.id), 0)))
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1, member_status="probationary")
    r = apply(client, world, post, p)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["status"] == "applied" and a["route"] == "self_selected" and a["person_name"] == p.name
    assert r.headers["Location"].endswith(f"/{a['id']}")
    assert filled(db, post["id"]) == 1
    r = client.post(f"{ASSIGNMENTS}/{a['id']}/approve", headers=world.auth("v1"), json={"assigned_on": "2019-03-02"})
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["assigned_on"] == "2019-03-02"
    assert filled(db, post["id"]) == 1
    actions = db.scalars(select(AuditLog.action).where(AuditLog.entity == "post_assignment",
                                                       AuditLog.entity_id == str(a["id"]), AuditLog.id > mark)
                         .order_by(AuditLog.id))
    assert list(actions) == ["post_assignment.apply", "post_assignment.approve"]


def test_cadre_with_position_cannot_take_post(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    (cadre,) = members(db, world.v1, 1)
    make_position(db, cadre, world.v1, "committee_member", D(2017, 1, 1))
    r = apply(client, world, post, cadre)
    assert r.status_code == 422 and r.json()["code"] == "not_eligible"
    assert "holds a position" in r.json()["detail"] and "committee_member" in r.json()["detail"]
    assert r.json()["errors"][0]["loc"] == ["body", "person_id"]
    assert filled(db, post["id"]) == 0
    assert db.scalar(select(func.count()).select_from(PostAssignment)
                     .where(PostAssignment.person_id == cadre.id)) == 0


def test_position_counts_through_its_last_day(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    a, b = members(db, world.v1, 2)
    make_position(db, a, world.v1, "committee_member", D(2016, 1, 1), ended_on=D(2019, 3, 1))
    make_position(db, b, world.v1, "committee_member", D(2016, 1, 1), ended_on=D(2019, 2, 28))
    assert apply(client, world, post, a, on="2019-03-01").status_code == 422  # still in office that day
    assert apply(client, world, post, a, on="2019-03-02").status_code == 201
    assert apply(client, world, post, b, on="2019-03-01").status_code == 201


def test_a_position_elsewhere_also_counts(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    make_position(db, p, world.t1, "other", D(2019, 1, 1))
    assert apply(client, world, post, p).status_code == 422


def test_non_members_and_members_of_other_organisations_are_refused_with_every_reason(
    client: TestClient, world: World, db: Session
) -> None:
    post = new_post(client, world)
    outsider = make_person(db, world.v1b, name="外支部", member_status="none")
    r = apply(client, world, post, outsider, who="t1")
    assert r.status_code == 422
    msgs = [e["msg"] for e in r.json()["errors"]]
    assert len(msgs) == 2 and "not a member of organisation" in msgs[0] and "party member" in msgs[1]
    removed = make_person(db, world.v1, name="已除名")
    db.execute(update(Person).where(Person.id == removed.id).values(status="removed"))
    r = apply(client, world, post, removed)
    assert r.status_code == 422 and "not on the roll" in r.json()["detail"]
    # a person outside the caller's scope does not exist for them
    far = make_person(db, world.v2, name="远村")
    assert apply(client, world, post, far).status_code == 404


def test_eligibility_is_checked_again_when_the_member_takes_the_post(
    client: TestClient, world: World, db: Session
) -> None:
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    a = apply(client, world, post, p).json()
    make_position(db, p, world.v1, "committee_member", D(2019, 4, 1))
    url = f"{ASSIGNMENTS}/{a['id']}/approve"
    r = client.post(url, headers=world.auth("v1"), json={"assigned_on": "2019-04-01"})
    assert r.status_code == 422 and r.json()["code"] == "not_eligible"
    r = client.post(url, headers=world.auth("v1"), json={"assigned_on": "2019-03-31"})
    assert r.status_code == 200


def test_dates_must_fall_in_the_posts_year(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    r = apply(client, world, post, p, on="2018-12-31")
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "requested_on"]
    a = apply(client, world, post, p, on="2019-05-01").json()
    url = f"{ASSIGNMENTS}/{a['id']}/approve"
    assert client.post(url, headers=world.auth("v1"), json={"assigned_on": "2019-04-30"}).status_code == 422
    assert client.post(url, headers=world.auth("v1"), json={"assigned_on": "2020-01-01"}).status_code == 422


def test_future_dates_are_refused(client: TestClient, world: World, db: Session,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service.rules, "today", lambda: D(2019, 6, 30))
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    assert apply(client, world, post, p, on="2019-07-01").status_code == 422
    assert apply(client, world, post, p, on="2019-06-30").status_code == 201


# ---------------------------------------------------------------------------
# Capacity and the yearly cap


def test_full_post_is_conflict_and_rejection_frees_the_place(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world, capacity=1)
    a, b = members(db, world.v1, 2)
    first = apply(client, world, post, a).json()
    r = apply(client, world, post, b)
    assert r.status_code == 409 and r.json()["code"] == "post_full"
    r = client.post(f"{ASSIGNMENTS}/{first['id']}/reject", headers=world.auth("v1"), json={"reason": "另有安排"})
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["decision_reason"] == "另有安排"
    assert filled(db, post["id"]) == 0
    assert apply(client, world, post, b).status_code == 201
    assert filled(db, post["id"]) == 1


def test_same_member_cannot_hold_a_post_twice(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world, capacity=5)
    (p,) = members(db, world.v1, 1)
    assert apply(client, world, post, p).status_code == 201
    r = apply(client, world, post, p, route="org_assisted")
    assert r.status_code == 409 and r.json()["code"] == "already_assigned"


def test_member_holds_at_most_the_policy_number_of_posts_a_year(
    client: TestClient, world: World, db: Session
) -> None:
    (p,) = members(db, world.v1, 1)
    posts = [new_post(client, world, title=f"岗位{i}") for i in range(4)]
    assert apply(client, world, posts[0], p).status_code == 201
    assert apply(client, world, posts[1], p, route="org_assisted").status_code == 201
    r = apply(client, world, posts[2], p)
    assert r.status_code == 409 and r.json()["code"] == "post_limit_reached" and "limit is 2" in r.json()["detail"]
    # another year has its own count
    other_year = new_post(client, world, year=2020, title="2020岗位")
    assert apply(client, world, other_year, p, on="2020-01-02").status_code == 201
    # the city raises the limit from 2019 on: data, not code
    assert client.post(POLICIES, headers=world.auth("t1"),
                       json={"effective_year": 2019, "max_posts_per_member": 3}).status_code == 403
    r = client.post(POLICIES, headers=world.auth("city"), json={"effective_year": 2019, "max_posts_per_member": 3})
    assert r.status_code == 201
    assert client.post(POLICIES, headers=world.auth("city"),
                       json={"effective_year": 2019, "max_posts_per_member": 4}).status_code == 409
    assert apply(client, world, posts[2], p).status_code == 201
    assert apply(client, world, posts[3], p).status_code == 409
    listed = client.get(POLICIES, headers=world.auth("auditor")).json()
    assert [(x["effective_year"], x["max_posts_per_member"]) for x in listed] == [(2000, 2), (2019, 3)]


def test_a_rejected_application_no_longer_counts_toward_the_cap(
    client: TestClient, world: World, db: Session
) -> None:
    (p,) = members(db, world.v1, 1)
    posts = [new_post(client, world, title=f"岗位{i}") for i in range(3)]
    first = apply(client, world, posts[0], p).json()
    assert apply(client, world, posts[1], p).status_code == 201
    client.post(f"{ASSIGNMENTS}/{first['id']}/reject", headers=world.auth("v1"), json={"reason": "x"})
    assert apply(client, world, posts[2], p).status_code == 201


def test_capacity_holds_under_concurrent_applications(engine: Engine, world: World) -> None:
    """Real threads, each with its own session and transaction, race for 3 places."""
    from app.core.db import new_session, session_scope

    with session_scope() as s:
        root = make_org(s, None, level="city", domain="organ", name="并发测试市", code=None)
        town = make_org(s, root, level="township", domain="township", name="并发镇", code=None)
        village = make_org(s, town, level="village", domain="rural", name="并发村", code=None)
        people = [make_person(s, village, name=f"并发{i}", id_no=id_number(birth="19650505", seq=900 + i))
                  for i in range(10)]
        post = DutyPost(org_id=village.id, year=2019, title="并发岗", field="stability", duties="x", capacity=3)
        s.add(post)
        s.flush()
        ids = {"root": root.id, "town": town.id, "village": village.id, "post": post.id,
               "people": [p.id for p in people]}
        actor = Actor(user_id=None, username="race", role=Role.city_admin, org_id=root.id, org_path=root.path,
                      permissions=permissions_for(Role.city_admin))

    barrier = threading.Barrier(len(ids["people"]))
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(person_id: int) -> None:
        barrier.wait()
        session = new_session(write=True)
        try:
            service.create_assignment(session, actor, AssignmentCreate(
                post_id=ids["post"], person_id=person_id, route="self_selected", requested_on=D(2019, 3, 1)))
            session.commit()
            result = "ok"
        except ProblemError as exc:
            session.rollback()
            result = exc.code
        except Exception as exc:  # a lost race must never become anything but a clean refusal
            session.rollback()
            result = type(exc).__name__
        finally:
            session.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(pid,)) for pid in ids["people"]]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["ok"] * 3 + ["post_full"] * 7, outcomes
        with session_scope(write=False) as s:
            assert s.scalar(select(DutyPost.filled).where(DutyPost.id == ids["post"])) == 3
            live = s.scalar(select(func.count()).select_from(PostAssignment)
                            .where(PostAssignment.post_id == ids["post"]))
            assert live == 3
    finally:
        with session_scope() as s:
            s.execute(delete(PostAssignment).where(PostAssignment.post_id == ids["post"]))
            s.execute(delete(DutyPost).where(DutyPost.id == ids["post"]))
            s.execute(delete(Person).where(Person.id.in_(ids["people"])))  # type: ignore[attr-defined]
            for key in ("village", "town", "root"):
                s.execute(delete(Organization).where(Organization.id == ids[key]))


# ---------------------------------------------------------------------------
# Routes: self-selection and organisation-assisted


def test_org_assisted_proposal_is_accepted_or_declined_by_the_member(
    client: TestClient, world: World, db: Session
) -> None:
    post = new_post(client, world, capacity=2)
    a, b = members(db, world.v1, 2)
    pa = apply(client, world, post, a, route="org_assisted").json()
    pb = apply(client, world, post, b, route="org_assisted").json()
    assert pa["status"] == "proposed"
    h = world.auth("v1")
    wrong = client.post(f"{ASSIGNMENTS}/{pa['id']}/approve", headers=h, json={"assigned_on": "2019-03-03"})
    assert wrong.status_code == 409 and wrong.json()["code"] == "wrong_route"
    r = client.post(f"{ASSIGNMENTS}/{pa['id']}/accept", headers=h, json={"assigned_on": "2019-03-03"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    r = client.post(f"{ASSIGNMENTS}/{pb['id']}/decline", headers=h, json={"reason": "外出务工"})
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert filled(db, post["id"]) == 1
    again = client.post(f"{ASSIGNMENTS}/{pb['id']}/accept", headers=h, json={"assigned_on": "2019-03-03"})
    assert again.status_code == 409 and again.json()["code"] == "wrong_status"


def test_decisions_happen_once(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    (p,) = members(db, world.v1, 1)
    a = apply(client, world, post, p).json()
    h = world.auth("v1")
    assert client.post(f"{ASSIGNMENTS}/{a['id']}/approve", headers=h, json={"assigned_on": "2019-03-02"}).status_code \
        == 200
    r = client.post(f"{ASSIGNMENTS}/{a['id']}/reject", headers=h, json={"reason": "x"})
    assert r.status_code == 409 and r.json()["code"] == "wrong_status"
    assert client.post(f"{ASSIGNMENTS}/{a['id']}/approve", headers=h,
                       json={"assigned_on": "2019-03-02"}).status_code == 409
    assert filled(db, post["id"]) == 1


def test_end_frees_the_place(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world, capacity=1)
    a, b = members(db, world.v1, 2)
    held_a = held(client, world, post, a)
    url = f"{ASSIGNMENTS}/{held_a['id']}/end"
    h = world.auth("v1")
    assert client.post(url, headers=h, json={"ended_on": "2019-03-04", "reason": "x"}).status_code == 422
    assert client.post(url, headers=h, json={"ended_on": "2020-01-01", "reason": "x"}).status_code == 422
    r = client.post(url, headers=h, json={"ended_on": "2019-08-31", "reason": "外出务工"})
    assert r.status_code == 200 and r.json()["status"] == "ended" and r.json()["ended_on"] == "2019-08-31"
    assert client.post(url, headers=h, json={"ended_on": "2019-08-31", "reason": "x"}).status_code == 409
    assert apply(client, world, post, b, on="2019-09-01").status_code == 201


def test_removed_member_posts_end_and_pending_ones_are_cancelled(
    client: TestClient, world: World, db: Session
) -> None:
    post1 = new_post(client, world, capacity=1, title="一")
    post2 = new_post(client, world, capacity=1, title="二")
    (p,) = members(db, world.v1, 1)
    a1 = held(client, world, post1, p)
    a2 = apply(client, world, post2, p).json()
    actor = Actor(user_id=world.users["t1"].id, username="t1_admin", role=Role.township_admin, org_id=world.t1.id,
                  org_path=world.t1.path, permissions=permissions_for(Role.township_admin))
    changed = service.end_member_posts(db, actor, person_id=p.id, on=D(2019, 10, 1), reason="除名")
    assert {a.id: a.status for a in changed} == {a1["id"]: "ended", a2["id"]: "cancelled"}
    assert filled(db, post1["id"]) == 0 and filled(db, post2["id"]) == 0
    assert db.scalar(select(PostAssignment.ended_on).where(PostAssignment.id == a1["id"])) == D(2019, 10, 1)


# ---------------------------------------------------------------------------
# Logs and reviews


def test_log_entries_only_while_the_post_is_held(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    a, b = members(db, world.v1, 2)
    holding = held(client, world, post, a, on="2019-03-05")
    pending = apply(client, world, post, b).json()
    h = world.auth("v1")
    entry = {"assignment_id": holding["id"], "entry_date": "2019-04-02", "description": "走访易地搬迁户12户",
             "hours": "3.5"}
    r = client.post(LOGS, headers=h, json=entry)
    assert r.status_code == 201, r.text
    log = r.json()
    assert log["hours"] == "3.5" and log["person_id"] == a.id
    assert db.scalar(select(PostLog.hours_tenths).where(PostLog.id == log["id"])) == 35
    assert client.get(f"{LOGS}/{log['id']}", headers=world.auth("t1")).json()["description"] == entry["description"]
    assert client.get(f"{LOGS}/{log['id']}", headers=world.auth("t2")).status_code == 404
    for bad in ({"entry_date": "2019-03-04"}, {"entry_date": "2020-01-01"}, {"hours": 2.5}, {"hours": "24.5"},
                {"hours": "1.25"}, {"hours": "-1"}, {"description": ""}):
        assert client.post(LOGS, headers=h, json={**entry, **bad}).status_code == 422, bad
    r = client.post(LOGS, headers=h, json={**entry, "assignment_id": pending["id"]})
    assert r.status_code == 409 and r.json()["code"] == "not_held"
    assert client.post(LOGS, headers=world.auth("v2"), json=entry).status_code == 404
    listed = client.get(f"{LOGS}?assignment_id={holding['id']}", headers=world.auth("t1")).json()
    assert listed["total"] == 1 and listed["items"][0]["hours"] == "3.5"


def test_year_end_review_once(client: TestClient, world: World, db: Session) -> None:
    post = new_post(client, world)
    a, b = members(db, world.v1, 2)
    holding = held(client, world, post, a)
    pending = apply(client, world, post, b).json()
    h = world.auth("v1")
    review = {"grade": "excellent", "comment": "带头宣讲", "reviewed_on": "2019-12-20"}
    r = client.post(f"{ASSIGNMENTS}/{pending['id']}/review", headers=h, json=review)
    assert r.status_code == 409 and r.json()["code"] == "not_held"
    assert client.post(f"{ASSIGNMENTS}/{holding['id']}/review", headers=h,
                       json={**review, "reviewed_on": "2021-01-05"}).status_code == 422
    assert client.post(f"{ASSIGNMENTS}/{holding['id']}/review", headers=h,
                       json={**review, "grade": "superb"}).status_code == 422
    r = client.post(f"{ASSIGNMENTS}/{holding['id']}/review", headers=h, json=review)
    assert r.status_code == 200 and r.json()["review_grade"] == "excellent"
    r = client.post(f"{ASSIGNMENTS}/{holding['id']}/review", headers=h, json={**review, "grade": "poor"})
    assert r.status_code == 409 and r.json()["code"] == "already_reviewed"
    listed = client.get(f"{ASSIGNMENTS}?review_grade=excellent&org_id={world.t1.id}&subtree=true",
                        headers=world.auth("t1")).json()
    assert [x["id"] for x in listed["items"]] == [holding["id"]]


# ---------------------------------------------------------------------------
# Lists and summary


def test_lists_filter_sort_scope_and_csv(client: TestClient, world: World, db: Session) -> None:
    p1 = new_post(client, world, field="stability", title="稳定")
    new_post(client, world, field="relocation", title="搬迁")
    new_post(client, world, who="v2", org=world.v2, field="stability", title="村稳定")
    h = world.auth("city")
    assert client.get(f"{POSTS}?field=stability", headers=h).json()["total"] == 2
    assert client.get(f"{POSTS}?field=stability", headers=world.auth("v1")).json()["total"] == 1
    r = client.get(f"{POSTS}?org_id={world.t1.id}&subtree=true&sort=title", headers=h).json()
    assert [x["title"] for x in r["items"]] == ["搬迁", "稳定"]
    assert client.get(f"{POSTS}?org_id={world.v2.id}", headers=world.auth("v1")).status_code == 404
    assert client.get(f"{POSTS}?sort=duties", headers=h).status_code == 422
    (p,) = members(db, world.v1, 1)
    apply(client, world, p1, p)
    r = client.get(ASSIGNMENTS, headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert r.status_code == 200 and r.text.startswith("\ufeffid,post_id,person_id,person_name")
    assert p.name in r.text


def test_assignment_list_uses_a_fixed_number_of_statements(
    client: TestClient, world: World, db: Session, engine: Engine
) -> None:
    post = new_post(client, world, capacity=20)
    people = members(db, world.v1, 12)
    apply(client, world, post, people[0])
    h = world.auth("v1")
    with count_statements(engine) as few:
        assert client.get(ASSIGNMENTS, headers=h).json()["total"] == 1
    for p in people[1:]:
        apply(client, world, post, p)
    with count_statements(engine) as many:
        assert client.get(ASSIGNMENTS, headers=h).json()["total"] == 12
    assert len(few) == len(many)


def test_summary_counts_coverage_fields_and_grades(
    client: TestClient, world: World, db: Session, engine: Engine
) -> None:
    post = new_post(client, world, capacity=3, field="stability")
    new_post(client, world, capacity=2, field="relocation", title="搬迁")
    people = members(db, world.v1, 4)
    cadre = make_person(db, world.v1, name="村干部")
    make_position(db, cadre, world.v1, "secretary", D(2016, 1, 1))
    make_person(db, world.v1, name="群众", member_status="none")
    a = held(client, world, post, people[0])
    held(client, world, post, people[1])
    apply(client, world, post, people[2])  # pending: not a holder
    client.post(f"{ASSIGNMENTS}/{a['id']}/review", headers=world.auth("v1"),
                json={"grade": "good", "reviewed_on": "2019-12-20"})
    with count_statements(engine) as seen:
        r = client.get(f"{POSTS}/summary?year=2019&org_id={world.t1.id}&subtree=true", headers=world.auth("t1"))
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["members"], s["members_without_office"], s["holders_without_office"]) == (5, 4, 2)
    assert s["coverage_percent"] == "50.00"
    assert (s["posts"], s["capacity"]) == (2, 5)
    by_field = {f["field"]: f for f in s["by_field"]}
    assert by_field["stability"] == {"field": "stability", "posts": 1, "capacity": 3, "holders": 2}
    assert by_field["relocation"]["holders"] == 0 and by_field["mediation"]["posts"] == 0
    grades = {g["grade"]: g["count"] for g in s["review_grades"]}
    assert grades == {"excellent": 0, "good": 1, "fair": 0, "poor": 0} and s["unreviewed_holdings"] == 1
    # more data, same number of statements
    more = members(db, world.v1b, 6)
    other = new_post(client, world, who="t1", org=world.v1b, capacity=6, field="mediation", title="调解")
    for p in more:
        held(client, world, other, p, who="t1")
    with count_statements(engine) as seen_more:
        s2 = client.get(f"{POSTS}/summary?year=2019&org_id={world.t1.id}&subtree=true",
                        headers=world.auth("t1")).json()
    assert len(seen_more) == len(seen)
    assert s2["holders_without_office"] == 8 and s2["coverage_percent"] == "80.00"
    # one organisation only, and out of scope
    only = client.get(f"{POSTS}/summary?year=2019&org_id={world.v1b.id}", headers=world.auth("t1")).json()
    assert only["members_without_office"] == 6 and only["coverage_percent"] == "100.00"
    assert client.get(f"{POSTS}/summary?year=2019&org_id={world.v1.id}",
                      headers=world.auth("t2")).status_code == 404
    empty = client.get(f"{POSTS}/summary?year=2019", headers=world.auth("v2")).json()
    assert empty["coverage_percent"] is None
    assert client.get(f"{POSTS}/summary", headers=world.auth("t1")).status_code == 422


def test_coverage_rounds_half_up() -> None:
    from decimal import Decimal

    from app.models.posts import percentage, round_half_up

    assert percentage(1, 3) == Decimal("33.33")
    assert percentage(2, 3) == Decimal("66.67")
    assert round_half_up(Decimal("0.125")) == Decimal("0.13")  # banker's rounding would give 0.12
    assert percentage(0, 0) is None


def test_policy_is_seeded_by_the_migration(db: Session) -> None:
    assert db.scalar(select(PostPolicy.max_posts_per_member).where(PostPolicy.effective_year == 2000)) == 2
    assert service.max_posts_for_year(db, 2019) == 2
    with pytest.raises(ProblemError):
        db.execute(delete(PostPolicy))
        service.max_posts_for_year(db, 2019)

