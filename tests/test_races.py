"""Lost updates and state machines under races: real threads, each request its own connection and transaction,
through the HTTP API in process, against committed rows.

Two writers holding the same ETag: exactly one 200, the other 412. Two users moving one record through the same
transition (two verifiers of one problem, two finalisers of one standardisation audit, two members taking the last
place of a duty post): one wins, the other gets 409. Whatever the interleaving, the audit log holds exactly one row
per committed change and none for the refused one.

The rows live in an organisation subtree of their own (a root, a township, a village) and are deleted afterwards,
except the audit rows (append-only; the per-run database is dropped after the run). On SQLite writers are
serialised (BEGIN IMMEDIATE), so the loser reads the winner's commit; on PostgreSQL both read the same version and
the conditional UPDATE decides.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from app.core.permissions import Role
from app.models.accounts import User
from app.models.audit import AuditLog
from app.models.organizations import Organization
from app.models.people import Person
from app.models.posts import DutyPost, PostAssignment
from app.models.responsibilities.problems import Problem, ProblemRejection
from app.models.standards import AuditScore, StandardAudit, StandardItem, StandardSet
from tests.factories import World, access_token, id_number, make_org, make_person, make_standard_set

ROUNDS = 3  # each race runs a few times: one interleaving proves little


@dataclass
class Subtree:
    root: int
    town: int
    village: int
    tokens: dict[str, str]  # "city" and "town": two users above the village; "village": its own administrator
    user_ids: list[int]


@pytest.fixture
def subtree(engine: Engine, world: World) -> Iterator[Subtree]:
    from app.core.db import session_scope

    with session_scope() as s:
        root = make_org(s, None, level="city", domain="organ", name="竞态市", code=None)
        town = make_org(s, root, level="township", domain="township", name="竞态镇", code=None)
        village = make_org(s, town, level="village", domain="rural", name="竞态村", code=None)
        pw = world.users["v1"].password_hash
        users = {
            "city": User(username=f"race_city_{root.id}", password_hash=pw, role=Role.city_admin, org_id=root.id),
            "town": User(username=f"race_town_{root.id}", password_hash=pw, role=Role.township_admin,
                         org_id=town.id),
            "village": User(username=f"race_village_{root.id}", password_hash=pw, role=Role.village_admin,
                            org_id=village.id),
        }
        s.add_all(users.values())
        s.flush()
        box = Subtree(root.id, town.id, village.id,  # type: ignore[arg-type]
                      {k: access_token(u) for k, u in users.items()}, [u.id for u in users.values()])  # type: ignore[misc]
    yield box
    with session_scope() as s:
        orgs = [box.root, box.town, box.village]
        posts = select(DutyPost.id).where(DutyPost.org_id.in_(orgs))  # type: ignore[attr-defined]
        s.execute(delete(PostAssignment).where(PostAssignment.post_id.in_(posts)))  # type: ignore[attr-defined]
        s.execute(delete(DutyPost).where(DutyPost.org_id.in_(orgs)))  # type: ignore[attr-defined]
        problems = select(Problem.id).where(Problem.org_id.in_(orgs))  # type: ignore[attr-defined]
        s.execute(delete(ProblemRejection).where(ProblemRejection.problem_id.in_(problems)))  # type: ignore[attr-defined]
        s.execute(delete(Problem).where(Problem.org_id.in_(orgs)))  # type: ignore[attr-defined]
        audits = select(StandardAudit.id).where(StandardAudit.org_id.in_(orgs))  # type: ignore[attr-defined]
        sets = select(StandardAudit.set_id).where(StandardAudit.org_id.in_(orgs))  # type: ignore[attr-defined]
        set_ids = list(s.scalars(sets))
        s.execute(delete(AuditScore).where(AuditScore.audit_id.in_(audits)))  # type: ignore[attr-defined]
        s.execute(delete(StandardAudit).where(StandardAudit.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(StandardItem).where(StandardItem.set_id.in_(set_ids)))  # type: ignore[attr-defined]
        s.execute(delete(StandardSet).where(StandardSet.id.in_(set_ids)))  # type: ignore[attr-defined]
        s.execute(delete(Person).where(Person.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(User).where(User.id.in_(box.user_ids)))  # type: ignore[attr-defined]
        for org_id in (box.village, box.town, box.root):
            s.execute(delete(Organization).where(Organization.id == org_id))


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; return what each answered, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), "a request did not finish"
    return results


def audit_rows(entity: str, entity_id: int, action: str) -> int:
    from app.core.db import session_scope

    with session_scope(write=False) as s:
        return s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.entity == entity, AuditLog.entity_id == str(entity_id), AuditLog.action == action)) or 0


def statuses(responses: list[Any]) -> list[int]:
    return sorted(r.status_code for r in responses)


def codes(responses: list[Any]) -> list[str]:
    return sorted(r.json().get("code", "") for r in responses if r.status_code >= 400)


@pytest.fixture
def http(engine: Engine) -> TestClient:
    from app.main import app

    return TestClient(app, raise_server_exceptions=False)


def auth(box: Subtree, who: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {box.tokens[who]}", **extra}


# --- lost updates: the same If-Match twice --------------------------------------------------------------------


def _lost_update(http: TestClient, box: Subtree, path: str, entity: str, entity_id: int, action: str,
                 bodies: tuple[dict[str, Any], dict[str, Any]]) -> None:
    for _ in range(ROUNDS):
        before = audit_rows(entity, entity_id, action)
        etag = http.get(path, headers=auth(box, "city")).headers["ETag"]
        answers = race([partial(http.patch, path, json=b, headers=auth(box, "city", **{"If-Match": etag}))
                        for b in bodies])
        assert statuses(answers) == [200, 412], [(r.status_code, r.text) for r in answers]
        assert codes(answers) == ["version_mismatch"]
        winner = next(r for r in answers if r.status_code == 200)
        assert int(winner.headers["ETag"].strip('"')) == int(etag.strip('"')) + 1
        stored = http.get(path, headers=auth(box, "city")).json()
        assert stored == winner.json(), "what is stored is the winner's change, whole"
        assert audit_rows(entity, entity_id, action) == before + 1


def test_two_writers_with_one_etag_on_an_organisation(http: TestClient, subtree: Subtree) -> None:
    _lost_update(http, subtree, f"/api/v1/organizations/{subtree.village}", "organization", subtree.village,
                 "organization.update",
                 ({"name": "竞态村甲", "altitude_m": 1111}, {"name": "竞态村乙", "altitude_m": 2222}))


def test_two_writers_with_one_etag_on_a_person(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    with session_scope() as s:
        village = s.get(Organization, subtree.village)
        assert village is not None
        person_id = make_person(s, village, name="竞态人", id_no=id_number(birth="19700707", seq=707)).id
    assert person_id is not None
    _lost_update(http, subtree, f"/api/v1/people/{person_id}", "person", person_id, "person.update",
                 ({"name": "竞态甲"}, {"name": "竞态乙"}))


def test_two_writers_with_one_etag_on_a_problem(http: TestClient, subtree: Subtree) -> None:
    problem_id = _problem(subtree, status="open")
    _lost_update(http, subtree, f"/api/v1/problems/{problem_id}", "problem", problem_id, "problem.update",
                 ({"description": "甲的描述"}, {"description": "乙的描述"}))


# --- state machines: one transition, two actors -----------------------------------------------------------------


def _problem(box: Subtree, *, status: str) -> int:
    from app.core.db import session_scope

    with session_scope() as s:
        p = Problem(org_id=box.village, year=2019, source="other", description="竞态问题", status=status,
                    submitted_at=dt.datetime.now(dt.UTC) if status == "submitted" else None)
        s.add(p)
        s.flush()
        assert p.id is not None
        return p.id


def test_two_verifiers_of_one_problem(http: TestClient, subtree: Subtree) -> None:
    for _ in range(ROUNDS):
        problem_id = _problem(subtree, status="submitted")
        path = f"/api/v1/problems/{problem_id}/verify"
        before = audit_rows("problem", problem_id, "problem.verify")  # SQLite reuses the ids of deleted rows
        answers = race([partial(http.post, path, headers=auth(subtree, who)) for who in ("city", "town")])
        assert statuses(answers) == [200, 409], [(r.status_code, r.text) for r in answers]
        winner = next(r for r in answers if r.status_code == 200).json()
        assert winner["status"] == "verified"
        assert audit_rows("problem", problem_id, "problem.verify") == before + 1


def test_a_verifier_and_a_rejecter_of_one_problem(http: TestClient, subtree: Subtree) -> None:
    for _ in range(ROUNDS):
        problem_id = _problem(subtree, status="submitted")
        base = f"/api/v1/problems/{problem_id}"
        before = {a: audit_rows("problem", problem_id, f"problem.{a}") for a in ("verify", "reject")}
        answers = race([partial(http.post, f"{base}/verify", headers=auth(subtree, "city")),
                        partial(http.post, f"{base}/reject", json={"reason": "未整改到位"},
                                headers=auth(subtree, "town"))])
        assert statuses(answers) == [200, 409], [(r.status_code, r.text) for r in answers]
        stored = http.get(base, headers=auth(subtree, "city")).json()
        won = "verify" if answers[0].status_code == 200 else "reject"
        assert stored["status"] == ("verified" if won == "verify" else "rectifying")
        assert len(stored.get("rejections", [])) == (1 if won == "reject" else 0), "a refused rejection left a row"
        lost = "reject" if won == "verify" else "verify"
        assert audit_rows("problem", problem_id, f"problem.{won}") == before[won] + 1
        assert audit_rows("problem", problem_id, f"problem.{lost}") == before[lost]


def test_two_finalisers_of_one_standardisation_audit(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            village = s.get(Organization, subtree.village)
            assert village is not None
            std = make_standard_set(s, domain="rural", year=2030 + round_)
            a = StandardAudit(org_id=subtree.village, set_id=std.id, year=std.year, period=f"{std.year}",
                              kind="review", status="submitted", score_max=60)
            s.add(a)
            s.flush()
            items = list(s.scalars(select(StandardItem).where(StandardItem.set_id == std.id)))
            s.add_all([AuditScore(audit_id=a.id, item_id=i.id, score=9) for i in items])
            a.score_total = 9 * len(items)
            audit_id = a.id
        assert audit_id is not None
        path = f"/api/v1/audits/{audit_id}/finalize"
        before = audit_rows("standard_audit", audit_id, "standard_audit.finalize")
        answers = race([partial(http.post, path, headers=auth(subtree, who)) for who in ("city", "town")])
        assert statuses(answers) == [200, 409], [(r.status_code, r.text) for r in answers]
        assert codes(answers) == ["audit_finalized"]
        assert audit_rows("standard_audit", audit_id, "standard_audit.finalize") == before + 1


def test_two_members_taking_the_last_place_of_a_duty_post(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            village = s.get(Organization, subtree.village)
            assert village is not None
            people = [make_person(s, village, name=f"竞态党员{i}",
                                  id_no=id_number(birth="19660606", seq=600 + 3 * round_ + i)).id for i in range(3)]
            post = DutyPost(org_id=subtree.village, year=2019, title=f"竞态岗{round_}", field="stability",
                            duties="x", capacity=2)
            s.add(post)
            s.flush()
            post_id = post.id
        with session_scope(write=False) as s:
            seen = s.scalar(select(func.max(AuditLog.id))) or 0
        first = http.post("/api/v1/post-assignments", headers=auth(subtree, "village"), json={
            "post_id": post_id, "person_id": people[0], "route": "self_selected", "requested_on": "2019-03-01"})
        assert first.status_code == 201, first.text
        answers = race([
            partial(http.post, "/api/v1/post-assignments", headers=auth(subtree, who), json={
                "post_id": post_id, "person_id": pid, "route": "self_selected", "requested_on": "2019-03-02"})
            for who, pid in (("village", people[1]), ("town", people[2]))])
        assert statuses(answers) == [201, 409], [(r.status_code, r.text) for r in answers]
        assert codes(answers) == ["post_full"]
        with session_scope(write=False) as s:
            assert s.scalar(select(DutyPost.filled).where(DutyPost.id == post_id)) == 2
            held = list(s.scalars(select(PostAssignment.id).where(PostAssignment.post_id == post_id)))
            assert len(held) == 2
            rows = s.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.entity == "post_assignment", AuditLog.action == "post_assignment.apply",
                AuditLog.id > seen))
            assert rows == 2
