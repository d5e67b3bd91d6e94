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

No If-Match, no 412: a client that sent none is never asked to resend one. Two identical transitions without
If-Match (two dissolvers of an organisation, two issuers of a letter or a monthly list, two closers of a duty post,
two reviewers of a disposal case) give one 200 and the 409 the transition's own check gives the loser's new state.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from app.core.permissions import Role
from app.models.accounts import RefreshToken, User
from app.models.audit import AuditLog
from app.models.evaluations.members import DemocraticEvaluation, DemocraticEvaluationEntry, DisposalCase
from app.models.organizations import Organization
from app.models.people import Person
from app.models.posts import DutyPost, PostAssignment
from app.models.responsibilities.letters import LetterItem, ResponsibilityLetter
from app.models.responsibilities.monthly import (
    MonthlyList,
    MonthlyTask,
    MonthlyTaskTarget,
    TaskAssignment,
    TaskAssignmentEvent,
)
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
    extra_orgs: list[int] = field(default_factory=list)  # made by a test, deepest last; deleted first


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
        box = Subtree(root.id, town.id, village.id,
                      {k: access_token(u) for k, u in users.items()}, [u.id for u in users.values()])  # type: ignore[misc]
    yield box
    with session_scope() as s:
        orgs = [box.root, box.town, box.village, *box.extra_orgs]
        letters = select(ResponsibilityLetter.id).where(ResponsibilityLetter.org_id.in_(orgs))  # type: ignore[attr-defined]
        s.execute(delete(LetterItem).where(LetterItem.letter_id.in_(letters)))  # type: ignore[attr-defined]
        s.execute(delete(ResponsibilityLetter).where(ResponsibilityLetter.org_id.in_(orgs)))  # type: ignore[attr-defined]
        lists = select(MonthlyList.id).where(MonthlyList.org_id.in_(orgs))  # type: ignore[attr-defined]
        tasks = select(MonthlyTask.id).where(MonthlyTask.list_id.in_(lists))  # type: ignore[attr-defined]
        handed_out = select(TaskAssignment.id).where(TaskAssignment.list_id.in_(lists))  # type: ignore[attr-defined]
        s.execute(delete(TaskAssignmentEvent).where(TaskAssignmentEvent.assignment_id.in_(handed_out)))  # type: ignore[attr-defined]
        s.execute(delete(TaskAssignment).where(TaskAssignment.list_id.in_(lists)))  # type: ignore[attr-defined]
        s.execute(delete(MonthlyTaskTarget).where(MonthlyTaskTarget.task_id.in_(tasks)))  # type: ignore[attr-defined]
        s.execute(delete(MonthlyTask).where(MonthlyTask.list_id.in_(lists)))  # type: ignore[attr-defined]
        s.execute(delete(MonthlyList).where(MonthlyList.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(DisposalCase).where(DisposalCase.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(DemocraticEvaluationEntry).where(DemocraticEvaluationEntry.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(DemocraticEvaluation).where(DemocraticEvaluation.org_id.in_(orgs)))  # type: ignore[attr-defined]
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
        s.execute(delete(StandardSet).where(StandardSet.id.in_(set_ids)))
        s.execute(delete(Person).where(Person.org_id.in_(orgs)))  # type: ignore[attr-defined]
        s.execute(delete(RefreshToken).where(RefreshToken.user_id.in_(box.user_ids)))  # type: ignore[attr-defined]
        s.execute(delete(User).where(User.id.in_(box.user_ids)))
        for org_id in (*reversed(box.extra_orgs), box.village, box.town, box.root):
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


# --- state machines without If-Match: one 200, the loser's own 409, never a 412 ---------------------------------


def audit_mark() -> int:
    """The last audit row now: a test counts only the rows after it (SQLite reuses the ids of deleted records)."""
    from app.core.db import session_scope

    with session_scope(write=False) as s:
        return s.scalar(select(func.max(AuditLog.id))) or 0


def audit_rows_since(mark: int, entity: str, entity_id: int, action: str) -> int:
    from app.core.db import session_scope

    with session_scope(write=False) as s:
        return s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.id > mark, AuditLog.entity == entity, AuditLog.entity_id == str(entity_id),
            AuditLog.action == action)) or 0


def _one_transition_wins(http: TestClient, box: Subtree, path: str, who: tuple[str, str], code: str, *,
                         entity: str, entity_id: int, action: str, json: dict[str, Any] | None = None) -> Any:
    """Two identical transitions, no If-Match: 200 and the 409 `code`, one audit row. Returns the winner's body."""
    mark = audit_mark()
    answers = race([partial(http.post, path, json=json, headers=auth(box, w)) for w in who])
    assert statuses(answers) == [200, 409], [(r.status_code, r.text) for r in answers]
    assert codes(answers) == [code], [r.text for r in answers]
    assert audit_rows_since(mark, entity, entity_id, action) == 1
    return next(r for r in answers if r.status_code == 200).json()


def test_two_dissolvers_of_one_organisation(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            town = s.get(Organization, subtree.town)
            assert town is not None
            org_id = make_org(s, town, level="village", domain="rural", name=f"竞态撤并村{round_}", code=None).id
        assert org_id is not None
        subtree.extra_orgs.append(org_id)
        won = _one_transition_wins(http, subtree, f"/api/v1/organizations/{org_id}/dissolve", ("city", "town"),
                                   "already_dissolved", entity="organization", entity_id=org_id,
                                   action="organization.dissolve")
        assert won["status"] == "dissolved"


def test_two_movers_of_one_organisation(http: TestClient, subtree: Subtree) -> None:
    """Both move a branch from the village to the township: one moves it (and its subtree's paths), the other is
    told it is already there; the paths stay those of the tree."""
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            village = s.get(Organization, subtree.village)
            assert village is not None
            branch = make_org(s, village, level="branch", domain="rural", name=f"竞态支部{round_}", code=None)
            cell = make_org(s, branch, level="branch", domain="rural", name=f"竞态小组{round_}", code=None)
            branch_id, cell_id = branch.id, cell.id
        assert branch_id is not None and cell_id is not None
        subtree.extra_orgs += [branch_id, cell_id]
        won = _one_transition_wins(http, subtree, f"/api/v1/organizations/{branch_id}/move", ("city", "town"),
                                   "same_parent", entity="organization", entity_id=branch_id,
                                   action="organization.move", json={"parent_id": subtree.town})
        assert won["parent_id"] == subtree.town
        with session_scope(write=False) as s:
            paths: dict[int, str] = dict(s.execute(select(Organization.id, Organization.path).where(
                Organization.id.in_([subtree.town, branch_id, cell_id]))).all())
        assert paths[branch_id] == f"{paths[subtree.town]}{branch_id}/"
        assert paths[cell_id] == f"{paths[branch_id]}{cell_id}/"


def _letter(box: Subtree, year: int, *, status: str = "draft", items: int = 1) -> tuple[int, list[int]]:
    from app.core.db import session_scope

    with session_scope() as s:
        letter = ResponsibilityLetter(year=year, org_id=box.village, kind="organization", status=status)
        s.add(letter)
        s.flush()
        assert letter.id is not None
        rows = [LetterItem(letter_id=letter.id, position=n + 1, title=f"竞态事项{n}", category="other", target="x",
                           weight=10, due_date=dt.date(year, 12, 1)) for n in range(items)]
        s.add_all(rows)
        s.flush()
        return letter.id, [r.id for r in rows if r.id is not None]


def test_two_issuers_of_one_responsibility_letter(http: TestClient, subtree: Subtree) -> None:
    for round_ in range(ROUNDS):
        letter_id, _ = _letter(subtree, 2020 + round_)
        won = _one_transition_wins(http, subtree, f"/api/v1/responsibility-letters/{letter_id}/issue",
                                   ("city", "town"), "invalid_status", entity="responsibility_letter",
                                   entity_id=letter_id, action="letter.issue")
        assert won["status"] == "issued"


def test_two_reports_on_one_signed_letter_both_stand(http: TestClient, subtree: Subtree) -> None:
    """Two reports on different items of a signed letter: each is allowed whichever comes first, so both stand; the
    letter moves to settling once."""
    for round_ in range(ROUNDS):
        letter_id, items = _letter(subtree, 2020 + round_, status="signed", items=2)
        mark = audit_mark()
        path = f"/api/v1/responsibility-letters/{letter_id}/report"
        answers = race([partial(http.post, path, headers=auth(subtree, "village"), json={"items": [
            {"item_id": item_id, "outcome": "completed", "evidence_note": "台账齐全"}]}) for item_id in items])
        assert statuses(answers) == [200, 200], [(r.status_code, r.text) for r in answers]
        stored = http.get(f"/api/v1/responsibility-letters/{letter_id}", headers=auth(subtree, "city")).json()
        assert stored["status"] == "settling"
        assert audit_rows_since(mark, "responsibility_letter", letter_id, "letter.settle_start") == 1
        for item_id in items:
            assert audit_rows_since(mark, "responsibility_letter_item", item_id, "letter_item.report") == 1


def test_two_issuers_of_one_monthly_list(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            lst = MonthlyList(org_id=subtree.root, month=f"2019-0{round_ + 1}", title=f"竞态清单{round_}")
            s.add(lst)
            s.flush()
            assert lst.id is not None
            s.add(MonthlyTask(list_id=lst.id, position=1, title="竞态任务", category="other",
                              deadline=dt.date(2019, round_ + 1, 28), target_mode="all_villages"))
            list_id = lst.id
        won = _one_transition_wins(http, subtree, f"/api/v1/monthly-lists/{list_id}/issue", ("city", "city"),
                                   "list_issued", entity="monthly_list", entity_id=list_id,
                                   action="monthly_list.issue")
        assert won["status"] == "issued"
        with session_scope(write=False) as s:
            sent = s.scalar(select(func.count()).select_from(TaskAssignment).where(TaskAssignment.list_id == list_id))
        assert sent == 1, "the refused issue sent the task out again"


def test_two_closers_of_one_duty_post(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            post = DutyPost(org_id=subtree.village, year=2019, title=f"竞态关岗{round_}", field="stability",
                            duties="x", capacity=2)
            s.add(post)
            s.flush()
            post_id = post.id
        assert post_id is not None
        won = _one_transition_wins(http, subtree, f"/api/v1/duty-posts/{post_id}/close", ("city", "town"),
                                   "already_closed", entity="duty_post", entity_id=post_id, action="duty_post.close")
        assert won["status"] == "closed"


def test_two_reviewers_sending_back_one_disposal_case(http: TestClient, subtree: Subtree) -> None:
    from app.core.db import session_scope

    for round_ in range(ROUNDS):
        with session_scope() as s:
            village = s.get(Organization, subtree.village)
            assert village is not None
            person = make_person(s, village, name=f"竞态处置{round_}",
                                 id_no=id_number(birth="19710101", seq=710 + round_))
            ev = DemocraticEvaluation(org_id=subtree.village, year=2019 + round_, status="finalized")
            s.add(ev)
            s.flush()
            assert ev.id is not None and person.id is not None
            entry = DemocraticEvaluationEntry(evaluation_id=ev.id, person_id=person.id, org_id=subtree.village,
                                              year=ev.year, rating="unqualified")
            s.add(entry)
            s.flush()
            assert entry.id is not None
            case = DisposalCase(entry_id=entry.id, person_id=person.id, org_id=subtree.village, year=ev.year,
                                status="decided", measure="persuade_to_withdraw",
                                decided_on=dt.date(2020 + round_, 1, 5))
            s.add(case)
            s.flush()
            case_id = case.id
        assert case_id is not None
        won = _one_transition_wins(http, subtree, f"/api/v1/disposal-cases/{case_id}/reject", ("city", "town"),
                                   "wrong_status", entity="disposal_case", entity_id=case_id,
                                   action="disposal_case.reject", json={"reason": "措施不当"})
        assert won["status"] == "open"


def test_approving_a_removal_while_the_person_is_being_edited_waits_for_the_edit(
    http: TestClient, subtree: Subtree, engine: Engine
) -> None:
    """PostgreSQL: another transaction holds the person's row, changed, when the level above approves the removal
    of that member. The approval waits for it and then removes the member as the edit left them: 200, not a 412
    about a version the approver never sent."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers, so the edit cannot come between")
    from sqlalchemy import create_engine, text

    from app.core.db import session_scope
    from tests.pg_waits import lock_waiters

    with session_scope() as s:
        village = s.get(Organization, subtree.village)
        assert village is not None
        person = make_person(s, village, name="竞态除名", id_no=id_number(birth="19720202", seq=731))
        ev = DemocraticEvaluation(org_id=subtree.village, year=2019, status="finalized")
        s.add(ev)
        s.flush()
        assert ev.id is not None and person.id is not None
        entry = DemocraticEvaluationEntry(evaluation_id=ev.id, person_id=person.id, org_id=subtree.village,
                                          year=2019, rating="unqualified")
        s.add(entry)
        s.flush()
        assert entry.id is not None
        case = DisposalCase(entry_id=entry.id, person_id=person.id, org_id=subtree.village, year=2019,
                            status="decided", measure="removal", decided_on=dt.date(2020, 1, 5))
        s.add(case)
        s.flush()
        case_id, person_id = case.id, person.id
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    answer: list[Any] = []
    try:
        with admin.connect() as editor, admin.connect() as watcher:
            editor.execute(text("BEGIN"))
            editor.execute(text("UPDATE person SET name = '竞态改名', version = version + 1 WHERE id = :id"),
                           {"id": person_id})
            approver = threading.Thread(target=lambda: answer.append(http.post(
                f"/api/v1/disposal-cases/{case_id}/approve", json={"approved_on": "2020-01-10"},
                headers=auth(subtree, "town"))))
            approver.start()
            assert lock_waiters(watcher), "the approval never waited for the person's row"
            editor.execute(text("COMMIT"))
            approver.join(timeout=30)
    finally:
        admin.dispose()
    assert answer, "the approval did not answer"
    assert answer[0].status_code == 200, answer[0].text
    assert answer[0].json()["status"] == "approved"
    with session_scope(write=False) as s:
        removed = s.get(Person, person_id)
        assert removed is not None
        # The edit is kept, and the removal is applied on top of it.
        assert (removed.name, removed.status, removed.left_on) == ("竞态改名", "removed", dt.date(2020, 1, 10))
