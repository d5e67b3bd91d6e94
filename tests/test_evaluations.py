from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models.audit import AuditLog
from app.models.evaluations.common import GradeScheme, GradeThreshold, grade_for
from app.models.evaluations.dual import DualEvaluation
from app.models.evaluations.members import DisposalCase, ReserveCadre
from app.models.organizations import Organization
from app.models.people import Person, Position
from app.models.posts import DutyPost, PostAssignment
from app.models.responsibilities import Problem
from app.services.evaluations import dual as dual_service
from app.services.evaluations import secretaries as secretary_service
from tests.factories import World, make_org, make_person, make_position

D = dt.date
DUAL = "/api/v1/dual-evaluations"
DEM = "/api/v1/democratic-evaluations"
ENTRIES = "/api/v1/democratic-evaluation-entries"
CASES = "/api/v1/disposal-cases"
RESERVE = "/api/v1/reserve-cadres"
CANDIDATES = "/api/v1/commendation-candidates"
QUARTERLY = "/api/v1/secretary-assessments"
APPRAISALS = "/api/v1/debriefing-appraisals"
SETTINGS = "/api/v1/evaluation-settings"
THRESHOLDS = "/api/v1/grade-thresholds"
DUTIES = "/api/v1/cadre-duties"


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


def cadre(db: Session, org: Organization, name: str = "村干部", title: str = "committee_member",
          start: dt.date = D(2017, 1, 1), end: dt.date | None = None) -> Person:
    person = make_person(db, org, name=name)
    make_position(db, person, org, title, start, end)
    return person


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def duty_ids(client: TestClient, world: World, year: int = 2019) -> list[int]:
    return [d["id"] for d in ok(client.get(f"{DUTIES}?year={year}", headers=world.auth("v1")))]


def open_dual(client: TestClient, world: World, person: Person, org: Organization | None = None,
              who: str = "v1") -> dict[str, Any]:
    return ok(client.post(DUAL, headers=world.auth(who), json={
        "org_id": (org or world.v1).id, "person_id": person.id, "year": 2019}), 201)


def report_all(client: TestClient, world: World, ev: dict[str, Any], who: str = "v1") -> dict[str, Any]:
    duties = [{"duty_id": d["duty_id"], "report": f"履职情况{d['code']}"} for d in ev["duties"]]
    return ok(client.post(f"{DUAL}/{ev['id']}/report", headers=world.auth(who),
                          json={"summary": "年度述职", "duties": duties}))


def votes(client: TestClient, world: World, ev: dict[str, Any], s: int, b: int, d: int,
          who: str = "v1") -> dict[str, Any]:
    return ok(client.post(f"{DUAL}/{ev['id']}/votes", headers=world.auth(who),
                          json={"satisfied": s, "basically_satisfied": b, "dissatisfied": d}))


def committee(client: TestClient, world: World, ev: dict[str, Any], score: str | list[str],
              who: str = "t1") -> Any:
    scores = score if isinstance(score, list) else [score] * len(ev["duties"])
    return client.post(f"{DUAL}/{ev['id']}/committee-scores", headers=world.auth(who), json={
        "scores": [{"duty_id": d["duty_id"], "score": s} for d, s in zip(ev["duties"], scores, strict=True)]})


def finalised(client: TestClient, world: World, db: Session, *, committee_score: str, satisfied: int = 10,
              basically: int = 0, dissatisfied: int = 0, org: Organization | None = None,
              name: str = "村干部") -> dict[str, Any]:
    org = org or world.v1
    village_user = "v1" if org.id == world.v1.id else "city"
    township_user = "t2" if org.id == world.v2.id else "t1"
    ev = open_dual(client, world, cadre(db, org, name=name), org, who=village_user)
    report_all(client, world, ev, who=village_user)
    votes(client, world, ev, satisfied, basically, dissatisfied, who=village_user)
    ok(committee(client, world, ev, committee_score, who=township_user))
    return ok(client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth(township_user)))


# ---------------------------------------------------------------------------
# The formulas, at every threshold


def test_villagers_score_is_weighted_votes_over_votes_cast_half_up() -> None:
    pts = (Decimal(100), Decimal(60), Decimal(0))
    assert dual_service.villagers_score(10, 0, 0, pts) == Decimal("100.00")
    assert dual_service.villagers_score(0, 0, 7, pts) == Decimal("0.00")
    assert dual_service.villagers_score(1, 1, 1, pts) == Decimal("53.33")  # 160 / 3
    assert dual_service.villagers_score(2, 1, 0, pts) == Decimal("86.67")  # 260 / 3 = 86.666…
    assert dual_service.villagers_score(1, 0, 7, pts) == Decimal("12.50")
    assert dual_service.villagers_score(1, 0, 15, pts) == Decimal("6.25")
    # 0.005 rounds up, never to even: 1 satisfied in 200 votes with 1 point each = 0.005
    assert dual_service.villagers_score(1, 0, 199, (Decimal(1), Decimal(0), Decimal(0))) == Decimal("0.01")
    with pytest.raises(ValueError):
        dual_service.villagers_score(0, 0, 0, pts)


def test_final_score_weights_villagers_by_w_and_committee_by_one_minus_w() -> None:
    w = Decimal("0.4")
    assert dual_service.final_score(Decimal(100), Decimal("83.33"), w) == Decimal("90.00")  # 89.998
    assert dual_service.final_score(Decimal(100), Decimal("83.32"), w) == Decimal("89.99")  # 89.992
    assert dual_service.final_score(Decimal(50), Decimal(100), w) == Decimal("80.00")
    assert dual_service.final_score(Decimal("53.33"), Decimal("71.25"), w) == Decimal("64.08")  # 64.082
    assert dual_service.committee_score([Decimal("90"), Decimal("85.5"), Decimal("80.25")]) == Decimal("85.25")
    assert dual_service.committee_score([Decimal("0.01"), Decimal(0)]) == Decimal("0.01")  # 0.005 → 0.01


@pytest.mark.parametrize(("score", "grade"), [
    ("100", "excellent"), ("90.00", "excellent"), ("89.99", "competent"), ("70.00", "competent"),
    ("69.99", "basically_competent"), ("60.00", "basically_competent"), ("59.99", "incompetent"),
    ("0", "incompetent"),
])
def test_grade_at_each_threshold(score: str, grade: str) -> None:
    t = GradeThreshold(scheme="dual_evaluation", effective_year=2000, excellent_min_centi=9000,
                       competent_min_centi=7000, basically_competent_min_centi=6000)
    assert grade_for(Decimal(score), t) == grade


@pytest.mark.parametrize(("committee_score", "final", "grade"), [
    ("83.33", "90.00", "excellent"),  # 40 + 49.998 rounds up onto the threshold
    ("83.32", "89.99", "competent"),
    ("50.00", "70.00", "competent"),
    ("49.99", "69.99", "basically_competent"),  # 69.994
    ("33.33", "60.00", "basically_competent"),  # 59.998
    ("33.32", "59.99", "incompetent"),  # 59.992
])
def test_final_score_and_grade_at_each_boundary_through_the_api(
    client: TestClient, world: World, db: Session, committee_score: str, final: str, grade: str
) -> None:
    ev = finalised(client, world, db, committee_score=committee_score)
    assert ev["villagers_score"] == "100.00" and ev["committee_score"] == committee_score
    assert ev["villager_weight"] == "0.4"
    assert (ev["final_score"], ev["grade"], ev["status"]) == (final, grade, "finalized")


# ---------------------------------------------------------------------------
# The flow and who may do what


def test_village_reports_and_records_votes_township_scores_and_finalises(
    client: TestClient, world: World, db: Session
) -> None:
    person = cadre(db, world.v1, name="扎西")
    ev = open_dual(client, world, person)
    assert ev["status"] == "draft" and len(ev["duties"]) == 8 and ev["person_name"] == "扎西"
    assert [d["code"] for d in ev["duties"]][:2] == ["village_appearance", "policy_and_law"]
    assert ev["reported"] is False
    ev = report_all(client, world, ev)
    assert ev["reported"] is True and ev["report_summary"] == "年度述职"
    ev = votes(client, world, ev, 2, 1, 0)
    assert ev["villagers_score"] == "86.67"
    r = committee(client, world, ev, ["90", "85.5", "80.25", "70", "95", "88", "92", "79"])
    ev = ok(r)
    assert ev["committee_score"] == "84.97"  # 679.75 / 8 = 84.96875
    assert [d["committee_score"] for d in ev["duties"]][:3] == ["90.00", "85.50", "80.25"]
    ev = ok(client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("t1")))
    # 86.67 × 0.4 + 84.97 × 0.6 = 34.668 + 50.982 = 85.65
    assert (ev["final_score"], ev["grade"], ev["problem_id"]) == ("85.65", "competent", None)
    actions = list(db.scalars(select(AuditLog.action).where(
        AuditLog.entity == "dual_evaluation", AuditLog.entity_id == str(ev["id"])).order_by(AuditLog.id)))
    assert actions == ["dual_evaluation.create", "dual_evaluation.report", "dual_evaluation.votes",
                       "dual_evaluation.committee_scores", "dual_evaluation.finalize"]


def test_the_township_finalises_the_village_cannot(client: TestClient, world: World, db: Session) -> None:
    ev = open_dual(client, world, cadre(db, world.v1))
    report_all(client, world, ev)
    votes(client, world, ev, 5, 5, 0)
    r = committee(client, world, ev, "80", who="v1")
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    ok(committee(client, world, ev, "80", who="t1"))
    r = client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("v1"))
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    assert client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("t2")).status_code == 404
    assert client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("auditor")).status_code == 403
    assert db.scalar(select(DualEvaluation.status).where(DualEvaluation.id == ev["id"])) == "draft"
    assert ok(client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("city")))["status"] == "finalized"


def test_a_finalised_evaluation_is_frozen(client: TestClient, world: World, db: Session) -> None:
    ev = finalised(client, world, db, committee_score="80")
    for r in (
        client.post(f"{DUAL}/{ev['id']}/report", headers=world.auth("v1"),
                    json={"duties": [{"duty_id": ev["duties"][0]["duty_id"], "report": "改"}]}),
        client.post(f"{DUAL}/{ev['id']}/votes", headers=world.auth("v1"),
                    json={"satisfied": 0, "basically_satisfied": 0, "dissatisfied": 9}),
        committee(client, world, ev, "10"),
        client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("t1")),
    ):
        assert r.status_code == 409 and r.json()["code"] == "evaluation_finalized", r.text
    assert ok(client.get(f"{DUAL}/{ev['id']}", headers=world.auth("v1")))["final_score"] == ev["final_score"]


def test_an_incompetent_grade_opens_exactly_one_problem(client: TestClient, world: World, db: Session) -> None:
    ev = finalised(client, world, db, committee_score="40", satisfied=1, dissatisfied=3, name="次仁")
    assert ev["grade"] == "incompetent" and ev["problem_id"] is not None
    problems = list(db.scalars(select(Problem).where(Problem.link_entity == "dual_evaluation",
                                                     Problem.link_id == ev["id"])))
    assert len(problems) == 1
    p = problems[0]
    assert (p.source, p.org_id, p.year, p.id) == ("debriefing_appraisal", world.v1.id, 2019, ev["problem_id"])
    assert "次仁" in p.description and "不称职" in p.description
    # another finalisation attempt changes nothing and opens nothing
    assert client.post(f"{DUAL}/{ev['id']}/finalize", headers=world.auth("t1")).status_code == 409
    from app.services.responsibilities import open_problem

    again = open_problem(db, dual_service_actor(world), org_id=world.v1.id, year=2019, source="debriefing_appraisal",
                         description="x", origin_key=f"dual_evaluation:{ev['id']}")
    assert again.id == p.id
    assert db.scalar(select(func.count()).select_from(Problem).where(Problem.link_id == ev["id"],
                                                                     Problem.link_entity == "dual_evaluation")) == 1


def dual_service_actor(world: World) -> Any:
    from app.core.permissions import Role, permissions_for
    from app.core.scope import Actor

    return Actor(user_id=world.users["t1"].id, username="t1_admin", role=Role.township_admin, org_id=world.t1.id,
                 org_path=world.t1.path, permissions=permissions_for(Role.township_admin))


def test_competent_grade_opens_no_problem(client: TestClient, world: World, db: Session) -> None:
    ev = finalised(client, world, db, committee_score="75")
    assert ev["grade"] == "competent"
    assert db.scalar(select(func.count()).select_from(Problem).where(Problem.link_entity == "dual_evaluation")) == 0


def test_only_village_cadres_are_evaluated(client: TestClient, world: World, db: Session) -> None:
    member = make_person(db, world.v1, name="普通党员")
    r = client.post(DUAL, headers=world.auth("v1"), json={"org_id": world.v1.id, "person_id": member.id, "year": 2019})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "person_id"]
    former = cadre(db, world.v1, name="离任", start=D(2012, 1, 1), end=D(2018, 12, 31))
    r = client.post(DUAL, headers=world.auth("v1"), json={"org_id": world.v1.id, "person_id": former.id, "year": 2019})
    assert r.status_code == 422
    elsewhere = cadre(db, world.v1b)
    r = client.post(DUAL, headers=world.auth("t1"), json={"org_id": world.v1.id, "person_id": elsewhere.id,
                                                          "year": 2019})
    assert r.status_code == 422
    r = client.post(DUAL, headers=world.auth("t1"), json={"org_id": world.t1.id, "person_id": former.id, "year": 2019})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "org_id"]
    late = cadre(db, world.v1, name="年底上任", start=D(2019, 12, 31))
    ev = open_dual(client, world, late)
    assert ev["person_id"] == late.id
    r = client.post(DUAL, headers=world.auth("v1"), json={"org_id": world.v1.id, "person_id": late.id, "year": 2019})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_evaluation"
    assert client.post(DUAL, headers=world.auth("v1"), json={"org_id": world.v2.id, "person_id": late.id,
                                                             "year": 2019}).status_code == 404


def test_votes_scores_and_reports_are_validated(client: TestClient, world: World, db: Session) -> None:
    ev = open_dual(client, world, cadre(db, world.v1))
    url = f"{DUAL}/{ev['id']}"
    h = world.auth("v1")
    assert client.post(f"{url}/votes", headers=h, json={"satisfied": 0, "basically_satisfied": 0,
                                                          "dissatisfied": 0}).status_code == 422
    assert client.post(f"{url}/votes", headers=h, json={"satisfied": -1, "basically_satisfied": 0,
                                                          "dissatisfied": 3}).status_code == 422
    assert client.post(f"{url}/votes", headers=h, json={"satisfied": 1, "basically_satisfied": 0}).status_code == 422
    for bad in ("100.01", "-1", "80.125", 80.5, "abc", "NaN"):
        r = committee(client, world, ev, [bad] + ["80"] * 7)
        assert r.status_code == 422, bad
    r = committee(client, world, ev, ["80"] * 8)
    assert r.status_code == 200
    partial = {"scores": [{"duty_id": ev["duties"][0]["duty_id"], "score": "80"}]}
    r = client.post(f"{url}/committee-scores", headers=world.auth("t1"), json=partial)
    assert r.status_code == 422 and "missing duties" in r.json()["detail"]
    twice = {"scores": [{"duty_id": ev["duties"][0]["duty_id"], "score": "80"}] * 2}
    assert client.post(f"{url}/committee-scores", headers=world.auth("t1"), json=twice).status_code == 422
    unknown = {"duties": [{"duty_id": 2**31 - 1, "report": "x"}]}
    r = client.post(f"{url}/report", headers=h, json=unknown)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "duties", 0, "duty_id"]


def test_finalising_needs_report_votes_and_committee_scores(client: TestClient, world: World, db: Session) -> None:
    ev = open_dual(client, world, cadre(db, world.v1))
    url = f"{DUAL}/{ev['id']}/finalize"
    h = world.auth("t1")
    first = ev["duties"][0]["duty_id"]
    ok(client.post(f"{DUAL}/{ev['id']}/report", headers=world.auth("v1"),
                   json={"duties": [{"duty_id": first, "report": "只写了一项"}]}))
    assert client.post(url, headers=h).json()["code"] == "report_incomplete"
    report_all(client, world, ev)
    assert client.post(url, headers=h).json()["code"] == "votes_missing"
    votes(client, world, ev, 3, 0, 0)
    assert client.post(url, headers=h).json()["code"] == "committee_scores_missing"
    ok(committee(client, world, ev, "91"))
    assert ok(client.post(url, headers=h))["grade"] == "excellent"


def test_weights_and_thresholds_are_data_set_by_the_city(client: TestClient, world: World, db: Session) -> None:
    body = {"key": "villager_weight", "effective_year": 2019, "value": "0.5"}
    assert client.post(SETTINGS, headers=world.auth("t1"), json=body).status_code == 403
    ok(client.post(SETTINGS, headers=world.auth("city"), json=body), 201)
    assert client.post(SETTINGS, headers=world.auth("city"), json=body).status_code == 409
    for bad in ({"value": "1.5"}, {"value": 0.5}, {"value": None}, {"key": "nope"}, {"value": "0.12345"}):
        assert client.post(SETTINGS, headers=world.auth("city"), json={**body, **bad}).status_code == 422, bad
    ok(client.post(THRESHOLDS, headers=world.auth("city"), json={
        "scheme": "dual_evaluation", "effective_year": 2019, "excellent": "95", "competent": "75",
        "basically_competent": "60"}), 201)
    assert client.post(THRESHOLDS, headers=world.auth("city"), json={
        "scheme": "dual_evaluation", "effective_year": 2020, "excellent": "70", "competent": "75",
        "basically_competent": "60"}).status_code == 422
    ev = finalised(client, world, db, committee_score="90", satisfied=5, basically=5)
    # villagers 80; 80 × 0.5 + 90 × 0.5 = 85 → competent under the 2019 thresholds (≥ 95 excellent)
    assert (ev["villager_weight"], ev["villagers_score"], ev["final_score"], ev["grade"]) == \
        ("0.5", "80.00", "85.00", "competent")
    listed = ok(client.get(f"{SETTINGS}?key=villager_weight", headers=world.auth("auditor")))
    assert [(s["effective_year"], s["value"]) for s in listed] == [(2000, "0.4"), (2019, "0.5")]
    th = ok(client.get(f"{THRESHOLDS}?scheme=dual_evaluation", headers=world.auth("v1")))
    assert [(t["effective_year"], t["excellent"]) for t in th] == [(2000, "90.00"), (2019, "95.00")]


def test_the_duty_list_is_data(client: TestClient, world: World, db: Session) -> None:
    assert len(duty_ids(client, world)) == 8
    new = ok(client.post(DUTIES, headers=world.auth("city"), json={
        "code": "party_building", "name": "抓党建", "name_en": "Party building", "sort_order": 90,
        "from_year": 2020}), 201)
    assert client.post(DUTIES, headers=world.auth("t1"), json={
        "code": "x_duty", "name": "x", "name_en": "x", "from_year": 2020}).status_code == 403
    assert len(duty_ids(client, world, 2019)) == 8 and len(duty_ids(client, world, 2020)) == 9
    errands = next(d for d in ok(client.get(DUTIES, headers=world.auth("v1"))) if d["code"] == "errands")
    ok(client.post(f"{DUTIES}/{errands['id']}/retire", headers=world.auth("city"), json={"to_year": 2019}))
    assert errands["id"] not in duty_ids(client, world, 2020) and new["id"] in duty_ids(client, world, 2020)
    assert client.post(f"{DUTIES}/{errands['id']}/retire", headers=world.auth("city"),
                       json={"to_year": 2019}).status_code == 409


def test_dual_list_scope_and_csv(client: TestClient, world: World, db: Session) -> None:
    finalised(client, world, db, committee_score="80")
    open_dual(client, world, cadre(db, world.v2), world.v2, who="t2")
    assert ok(client.get(DUAL, headers=world.auth("v1")))["total"] == 1
    assert ok(client.get(DUAL, headers=world.auth("city")))["total"] == 2
    assert ok(client.get(f"{DUAL}?grade=competent&year=2019", headers=world.auth("auditor")))["total"] == 1
    top = ok(client.get(f"{DUAL}?sort=-final_score&status=finalized", headers=world.auth("city")))["items"][0]
    assert top["final_score"] == "88.00"
    r = client.get(DUAL, headers={**world.auth("city"), "Accept": "text/csv"})
    assert r.status_code == 200 and "villagers_score" in r.text.splitlines()[0]


def test_summary_grade_distribution_per_township_and_duty_averages(
    client: TestClient, world: World, db: Session, engine: Engine
) -> None:
    finalised(client, world, db, committee_score="95", name="甲")  # 40 + 57 = 97 excellent
    finalised(client, world, db, committee_score="80", name="乙")  # 88 competent
    with count_statements(engine) as few:
        s = ok(client.get(f"{DUAL}/summary?year=2019", headers=world.auth("city")))
    finalised(client, world, db, committee_score="10", org=world.v2, name="丙")  # 46 incompetent
    open_dual(client, world, cadre(db, world.v1b), world.v1b, who="t1")  # a draft
    with count_statements(engine) as many:
        s = ok(client.get(f"{DUAL}/summary?year=2019", headers=world.auth("city")))
    assert len(few) == len(many)
    towns = {t["township_id"]: t for t in s["by_township"]}
    assert towns[world.t1.id]["excellent"] == 1 and towns[world.t1.id]["competent"] == 1
    assert towns[world.t1.id]["draft"] == 1 and towns[world.t1.id]["finalized"] == 2
    assert towns[world.t2.id]["incompetent"] == 1 and towns[world.t2.id]["township_name"] == "姑咱镇"
    assert s["finalized"] == 3
    assert s["average_final_score"] == "77.00"  # (97 + 88 + 46) / 3
    assert s["average_committee_score"] == "61.67"  # (95 + 80 + 10) / 3 = 61.666…
    assert len(s["duty_averages"]) == 8 and s["duty_averages"][0]["average_committee_score"] == "61.67"
    only_t1 = ok(client.get(f"{DUAL}/summary?year=2019", headers=world.auth("t1")))
    assert [t["township_id"] for t in only_t1["by_township"]] == [world.t1.id]
    assert client.get(f"{DUAL}/summary?year=2019&org_id={world.t2.id}", headers=world.auth("t1")).status_code == 404
    assert ok(client.get(f"{DUAL}/summary?year=2018", headers=world.auth("t1")))["average_final_score"] is None


# ---------------------------------------------------------------------------
# Democratic evaluation of members


def branch_with_members(client: TestClient, world: World, db: Session, n: int = 4,
                        who: str = "v1") -> tuple[dict[str, Any], list[Person]]:
    people = [make_person(db, world.v1, name=f"党员{i}") for i in range(n)]
    make_person(db, world.v1, name="群众", member_status="none")
    gone = make_person(db, world.v1, name="已转出")
    db.execute(update(Person).where(Person.id == gone.id).values(status="transferred_out"))
    ev = ok(client.post(DEM, headers=world.auth(who), json={"org_id": world.v1.id, "year": 2019,
                                                             "held_on": "2019-12-28"}), 201)
    return ev, people


def entries_of(client: TestClient, world: World, ev: dict[str, Any]) -> dict[int, dict[str, Any]]:
    items = ok(client.get(f"{ENTRIES}?evaluation_id={ev['id']}&limit=200", headers=world.auth("v1")))["items"]
    return {e["person_id"]: e for e in items}


def rate(client: TestClient, world: World, entry: dict[str, Any], rating: str, **extra: Any) -> Any:
    return client.patch(f"{ENTRIES}/{entry['id']}", headers={**world.auth("v1"), "If-Match": f'"{entry["version"]}"'},
                        json={"rating": rating, **extra})


def test_session_enrols_full_and_probationary_members_on_the_roll(
    client: TestClient, world: World, db: Session
) -> None:
    ev, people = branch_with_members(client, world, db)
    assert ev["members"] == 4 and ev["rated"] == 0 and ev["status"] == "draft"
    assert set(entries_of(client, world, ev)) == {p.id for p in people}
    r = client.post(DEM, headers=world.auth("v1"), json={"org_id": world.v1.id, "year": 2019})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_evaluation"
    assert client.post(DEM, headers=world.auth("t1"), json={"org_id": world.t1.id, "year": 2019}).status_code == 422
    late = make_person(db, world.v1, name="新转入", member_status="probationary")
    e = ok(client.post(f"{DEM}/{ev['id']}/entries", headers=world.auth("v1"), json={"person_id": late.id}), 201)
    assert e["person_name"] == "新转入"
    assert client.post(f"{DEM}/{ev['id']}/entries", headers=world.auth("v1"),
                       json={"person_id": late.id}).status_code == 409
    outsider = make_person(db, world.v1b, name="外支部")
    r = client.post(f"{DEM}/{ev['id']}/entries", headers=world.auth("t1"), json={"person_id": outsider.id})
    assert r.status_code == 422 and r.json()["code"] == "not_a_member"
    assert client.get(f"{DEM}/{ev['id']}", headers=world.auth("t2")).status_code == 404


def test_entries_show_post_review_grades_as_evidence(client: TestClient, world: World, db: Session) -> None:
    ev, people = branch_with_members(client, world, db, n=2)
    post = DutyPost(org_id=world.v1.id, year=2019, title="岗", field="stability", duties="x", capacity=2, filled=1)
    db.add(post)
    db.flush()
    db.add(PostAssignment(post_id=post.id, person_id=people[0].id, org_id=world.v1.id, year=2019,
                          route="self_selected", status="active", requested_on=D(2019, 3, 1),
                          assigned_on=D(2019, 3, 2), review_grade="excellent", reviewed_on=D(2019, 12, 20)))
    db.flush()
    entries = entries_of(client, world, ev)
    assert entries[people[0].id]["post_review_grades"] == ["excellent"]
    assert entries[people[1].id]["post_review_grades"] == []


def test_entry_patch_needs_if_match_and_records_tallies(client: TestClient, world: World, db: Session) -> None:
    ev, people = branch_with_members(client, world, db, n=1)
    entry = entries_of(client, world, ev)[people[0].id]
    url = f"{ENTRIES}/{entry['id']}"
    assert client.patch(url, headers=world.auth("v1"), json={"rating": "qualified"}).status_code == 428
    body = {"self_evaluation": "认真学习", "votes_excellent": 12, "votes_qualified": 3, "rating": "excellent"}
    r = client.patch(url, headers={**world.auth("v1"), "If-Match": '"1"'}, json=body)
    assert r.status_code == 200 and r.json()["votes_excellent"] == 12 and r.headers["ETag"] == '"2"'
    assert client.patch(url, headers={**world.auth("v1"), "If-Match": '"1"'}, json=body).status_code == 412
    for bad in ({"votes_unqualified": -1}, {"rating": "great"}, {"votes_excellent": None}, {"person_id": 1}):
        assert client.patch(url, headers={**world.auth("v1"), "If-Match": '"2"'}, json=bad).status_code == 422, bad


def test_finalising_needs_every_member_rated_then_freezes(client: TestClient, world: World, db: Session) -> None:
    ev, people = branch_with_members(client, world, db, n=2)
    entries = entries_of(client, world, ev)
    ok(rate(client, world, entries[people[0].id], "qualified"))
    r = client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1"))
    assert r.status_code == 409 and r.json()["code"] == "unrated_entries"
    ok(rate(client, world, entries[people[1].id], "basically_qualified"))
    done = ok(client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1")))
    assert done["status"] == "finalized" and done["rated"] == 2
    assert db.scalar(select(func.count()).select_from(DisposalCase)) == 0
    again = rate(client, world, ok(client.get(f"{ENTRIES}/{entries[people[0].id]['id']}",
                                              headers=world.auth("v1"))), "excellent")
    assert again.status_code == 409 and again.json()["code"] == "evaluation_finalized"
    late = make_person(db, world.v1, name="迟到")
    assert client.post(f"{DEM}/{ev['id']}/entries", headers=world.auth("v1"),
                       json={"person_id": late.id}).status_code == 409


def test_excellent_share_cap_is_enforced_at_its_boundary(client: TestClient, world: World, db: Session) -> None:
    ok(client.post(SETTINGS, headers=world.auth("city"),
                   json={"key": "excellent_share_cap", "effective_year": 2019, "value": "0.2"}), 201)
    ev, people = branch_with_members(client, world, db, n=10)
    entries = entries_of(client, world, ev)
    for i, p in enumerate(people):
        ok(rate(client, world, entries[p.id], "excellent" if i < 3 else "qualified"))
    r = client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1"))
    assert r.status_code == 409 and r.json()["code"] == "excellent_share_exceeded"
    assert "allows at most 2" in r.json()["detail"]
    third = ok(client.get(f"{ENTRIES}/{entries[people[2].id]['id']}", headers=world.auth("v1")))
    ok(rate(client, world, third, "qualified"))
    done = ok(client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1")))  # 2 of 10 = exactly 0.2
    assert done["excellent_cap"] == "0.2"
    # a later year with the cap lifted (null from 2020)
    ok(client.post(SETTINGS, headers=world.auth("city"),
                   json={"key": "excellent_share_cap", "effective_year": 2020, "value": None}), 201)
    listed = ok(client.get(f"{SETTINGS}?key=excellent_share_cap", headers=world.auth("city")))
    assert [s["value"] for s in listed] == ["0.2", None]


def unqualified_case(client: TestClient, world: World, db: Session) -> tuple[dict[str, Any], Person]:
    ev, people = branch_with_members(client, world, db, n=2)
    entries = entries_of(client, world, ev)
    ok(rate(client, world, entries[people[0].id], "unqualified", votes_unqualified=9, rating_note="长期不参加组织生活"))
    ok(rate(client, world, entries[people[1].id], "qualified"))
    ok(client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1")))
    cases = ok(client.get(CASES, headers=world.auth("v1")))["items"]
    assert len(cases) == 1 and cases[0]["person_id"] == people[0].id and cases[0]["status"] == "open"
    return cases[0], people[0]


def test_removal_approved_by_the_level_above_ends_posts_and_changes_status(
    client: TestClient, world: World, db: Session
) -> None:
    case, person = unqualified_case(client, world, db)
    position = make_position(db, person, world.v1, "other", D(2018, 1, 1))
    post = DutyPost(org_id=world.v1.id, year=2019, title="岗", field="stability", duties="x", capacity=2, filled=1)
    db.add(post)
    db.flush()
    held = PostAssignment(post_id=post.id, person_id=person.id, org_id=world.v1.id, year=2019, route="org_assisted",
                          status="active", requested_on=D(2019, 3, 1), assigned_on=D(2019, 3, 2))
    db.add(held)
    db.add(ReserveCadre(org_id=world.v1.id, person_id=person.id, reason="年轻", added_on=D(2019, 1, 5)))
    db.flush()
    url = f"{CASES}/{case['id']}"
    decision = {"measure": "removal", "decided_on": "2020-01-10", "note": "支部大会表决"}
    r = client.post(f"{url}/approve", headers=world.auth("t1"), json={"approved_on": "2020-01-20"})
    assert r.status_code == 409 and r.json()["code"] == "wrong_status"
    decided = ok(client.post(f"{url}/decide", headers=world.auth("v1"), json=decision))
    assert decided["status"] == "decided" and decided["measure"] == "removal"
    r = client.post(f"{url}/approve", headers=world.auth("v1"), json={"approved_on": "2020-01-20"})
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    assert db.scalar(select(Person.status).where(Person.id == person.id)) == "active"
    assert client.post(f"{url}/approve", headers=world.auth("t1"),
                       json={"approved_on": "2020-01-09"}).status_code == 422
    approved = ok(client.post(f"{url}/approve", headers=world.auth("t1"), json={"approved_on": "2020-01-20"}))
    assert approved["status"] == "approved" and approved["approving_org_id"] == world.t1.id
    db.expire_all()
    p = db.get(Person, person.id)
    assert p is not None and p.status == "removed" and p.left_on == D(2020, 1, 20)
    a = db.get(PostAssignment, held.id)
    assert a is not None and a.status == "ended" and a.ended_on == D(2020, 1, 20)
    assert db.scalar(select(DutyPost.filled).where(DutyPost.id == post.id)) == 0
    assert db.scalar(select(Position.ended_on).where(Position.id == position.id)) == D(2020, 1, 20)
    assert db.scalar(select(ReserveCadre.status).where(ReserveCadre.person_id == person.id)) == "released"
    actions = set(db.scalars(select(AuditLog.action).where(AuditLog.action.in_(  # type: ignore[attr-defined]
        ["disposal_case.approve", "person.update", "post_assignment.end", "reserve_cadre.release"]))))
    assert len(actions) == 4
    assert client.post(f"{url}/approve", headers=world.auth("t1"),
                       json={"approved_on": "2020-01-20"}).status_code == 409


def test_a_removal_is_not_approved_once_the_person_has_moved_out_of_the_case_organisation(
    client: TestClient, world: World, db: Session
) -> None:
    """The branch's removal applies to its member: once the city has moved them to another township, the
    township above the old branch would otherwise take off the roll someone it cannot even see."""
    case, person = unqualified_case(client, world, db)
    url = f"{CASES}/{case['id']}"
    ok(client.post(f"{url}/decide", headers=world.auth("v1"),
                   json={"measure": "removal", "decided_on": "2020-01-10"}))
    person.org_id = world.v2.id  # moved by the city since
    db.flush()
    assert client.get(f"/api/v1/people/{person.id}", headers=world.auth("t1")).status_code == 404
    r = client.post(f"{url}/approve", headers=world.auth("t1"), json={"approved_on": "2020-01-20"})
    assert r.status_code == 409 and r.json()["code"] == "person_moved", r.text
    db.expire_all()
    assert db.scalar(select(Person.status).where(Person.id == person.id)) == "active"
    assert ok(client.get(url, headers=world.auth("t1")))["status"] == "decided"
    back = ok(client.post(f"{url}/reject", headers=world.auth("t1"), json={"reason": "已调出"}))
    assert back["status"] == "open"


def test_the_level_above_may_send_a_decision_back(client: TestClient, world: World, db: Session) -> None:
    case, person = unqualified_case(client, world, db)
    url = f"{CASES}/{case['id']}"
    r = client.post(f"{url}/decide", headers=world.auth("v1"), json={"measure": "corrective_deadline",
                                                                      "decided_on": "2020-01-10"})
    assert r.status_code == 422  # a deadline needs its date
    ok(client.post(f"{url}/decide", headers=world.auth("v1"), json={
        "measure": "corrective_deadline", "decided_on": "2020-01-10", "correct_by": "2020-07-10"}))
    assert client.post(f"{url}/reject", headers=world.auth("v1"), json={"reason": "x"}).status_code == 403
    back = ok(client.post(f"{url}/reject", headers=world.auth("t1"), json={"reason": "应予除名"}))
    assert back["status"] == "open" and back["measure"] is None and back["rejection_reason"] == "应予除名"
    ok(client.post(f"{url}/decide", headers=world.auth("v1"), json={"measure": "persuade_to_withdraw",
                                                                     "decided_on": "2020-02-01"}))
    done = ok(client.post(f"{url}/approve", headers=world.auth("t1"), json={"approved_on": "2020-02-10"}))
    assert done["measure"] == "persuade_to_withdraw"
    assert db.scalar(select(Person.status).where(Person.id == person.id)) == "active"  # only removal changes it
    assert client.get(url, headers=world.auth("t2")).status_code == 404


def test_commendation_candidates_from_ratings_and_post_reviews(
    client: TestClient, world: World, db: Session
) -> None:
    ev, people = branch_with_members(client, world, db, n=3)
    entries = entries_of(client, world, ev)
    ok(rate(client, world, entries[people[0].id], "excellent"))
    ok(rate(client, world, entries[people[1].id], "qualified"))
    ok(rate(client, world, entries[people[2].id], "qualified"))
    post = DutyPost(org_id=world.v1.id, year=2019, title="岗", field="stability", duties="x", capacity=3, filled=2)
    db.add(post)
    db.flush()
    for p in people[:2]:
        db.add(PostAssignment(post_id=post.id, person_id=p.id, org_id=world.v1.id, year=2019, route="self_selected",
                              status="active", requested_on=D(2019, 3, 1), assigned_on=D(2019, 3, 2),
                              review_grade="excellent", reviewed_on=D(2019, 12, 20)))
    db.flush()
    # ratings count once the session is finalised; post reviews count at once
    draft = ok(client.get(f"{CANDIDATES}?year=2019", headers=world.auth("v1")))
    assert {c["person_id"]: c["rated_excellent"] for c in draft["items"]} == {people[0].id: False, people[1].id: False}
    ok(client.post(f"{DEM}/{ev['id']}/finalize", headers=world.auth("v1")))
    r = ok(client.get(f"{CANDIDATES}?year=2019&sort=person_id", headers=world.auth("t1")))
    assert r["total"] == 2
    assert [(c["person_id"], c["rated_excellent"], c["post_review_excellent"]) for c in r["items"]] == [
        (people[0].id, True, True), (people[1].id, False, True)]
    only_rated = ok(client.get(f"{CANDIDATES}?year=2019&reason=rated_excellent", headers=world.auth("city")))
    assert [c["person_id"] for c in only_rated["items"]] == [people[0].id]
    assert ok(client.get(f"{CANDIDATES}?year=2019", headers=world.auth("t2")))["total"] == 0
    assert client.get(CANDIDATES, headers=world.auth("t1")).status_code == 422
    assert client.get(f"{CANDIDATES}?year=2019&reason=luck", headers=world.auth("t1")).status_code == 422


def test_reserve_cadre_pool(client: TestClient, world: World, db: Session) -> None:
    member = make_person(db, world.v1, name="后备")
    body = {"org_id": world.v1.id, "person_id": member.id, "reason": "双培双带对象", "added_on": "2019-06-01"}
    row = ok(client.post(RESERVE, headers=world.auth("v1"), json=body), 201)
    assert row["status"] == "active" and row["person_name"] == "后备"
    r = client.post(RESERVE, headers=world.auth("v1"), json=body)
    assert r.status_code == 409 and r.json()["code"] == "already_in_pool"
    villager = make_person(db, world.v1, name="群众", member_status="none")
    assert client.post(RESERVE, headers=world.auth("v1"), json={**body, "person_id": villager.id}).status_code == 422
    assert client.post(RESERVE, headers=world.auth("auditor"), json=body).status_code == 403
    listed = ok(client.get(f"{RESERVE}?org_id={world.t1.id}&subtree=true&status=active", headers=world.auth("t1")))
    assert [x["id"] for x in listed["items"]] == [row["id"]]
    url = f"{RESERVE}/{row['id']}/release"
    assert client.post(url, headers=world.auth("v1"), json={"released_on": "2019-05-01", "reason": "x"}).status_code \
        == 422
    ok(client.post(url, headers=world.auth("v1"), json={"released_on": "2019-09-01", "reason": "外出务工"}))
    assert client.post(url, headers=world.auth("v1"), json={"released_on": "2019-09-01", "reason": "x"}).status_code \
        == 409
    assert ok(client.post(RESERVE, headers=world.auth("v1"), json=body), 201)["id"] != row["id"]


# ---------------------------------------------------------------------------
# Secretaries: quarterly assessments, year-end appraisal, ranking


def secretary(db: Session, org: Organization, name: str = "书记") -> Person:
    return cadre(db, org, name=name, title="secretary")


def quarters(client: TestClient, world: World, org: Organization, person: Person, scores: list[str],
             who: str = "t1") -> None:
    for q, score in enumerate(scores, start=1):
        ok(client.post(QUARTERLY, headers=world.auth(who), json={
            "org_id": org.id, "person_id": person.id, "year": 2019, "quarter": q, "score": score,
            "assessed_on": dt.date(2019, 3 * q, 28).isoformat()}), 201)


def appraise(client: TestClient, world: World, org: Organization, person: Person, score: str,
             who: str = "t1", **extra: Any) -> Any:
    return client.post(APPRAISALS, headers=world.auth(who), json={
        "org_id": org.id, "person_id": person.id, "year": 2019, "report": "抓党建述职报告",
        "reviewers_score": score, "appraised_on": "2020-01-15", **extra})


def test_year_score_is_quarterly_average_and_year_end_weighted_half_up() -> None:
    avg = secretary_service.quarterly_average([Decimal(80), Decimal("85.5"), Decimal(90), Decimal("77.25")])
    assert avg == Decimal("83.19")  # 332.75 / 4 = 83.1875
    assert secretary_service.year_score(avg, Decimal(90), Decimal("0.5")) == Decimal("86.60")  # 86.595
    assert secretary_service.year_score(Decimal(90), Decimal("89.99"), Decimal("0.5")) == Decimal("90.00")  # 89.995


def test_only_the_level_above_assesses_a_secretary(client: TestClient, world: World, db: Session) -> None:
    sec = secretary(db, world.v1)
    body = {"org_id": world.v1.id, "person_id": sec.id, "year": 2019, "quarter": 1, "score": "88",
            "assessed_on": "2019-03-30"}
    r = client.post(QUARTERLY, headers=world.auth("v1"), json=body)
    assert r.status_code == 403 and r.json()["code"] == "level_above_required"
    assert client.post(QUARTERLY, headers=world.auth("t2"), json=body).status_code == 404
    row = ok(client.post(QUARTERLY, headers=world.auth("t1"), json=body), 201)
    assert row["score"] == "88.00"
    r = client.post(QUARTERLY, headers=world.auth("t1"), json=body)
    assert r.status_code == 409 and r.json()["code"] == "duplicate_assessment"
    member = make_person(db, world.v1, name="委员")
    assert client.post(QUARTERLY, headers=world.auth("t1"), json={**body, "quarter": 2, "person_id": member.id,
                                                                   "assessed_on": "2019-06-30"}).status_code == 422
    for bad in ({"quarter": 5}, {"score": "101"}, {"assessed_on": "2019-02-01", "quarter": 2}):
        assert client.post(QUARTERLY, headers=world.auth("t1"), json={**body, **bad}).status_code == 422, bad
    # the city assesses a township's secretary; nobody assesses the city
    town_sec = secretary(db, world.t1, name="镇书记")
    ok(client.post(QUARTERLY, headers=world.auth("city"), json={**body, "org_id": world.t1.id,
                                                                  "person_id": town_sec.id}), 201)
    assert client.post(QUARTERLY, headers=world.auth("t1"), json={**body, "org_id": world.t1.id,
                                                                   "person_id": town_sec.id}).status_code == 403


def test_appraisal_needs_four_quarters_and_fixes_year_score_grade_and_problems(
    client: TestClient, world: World, db: Session
) -> None:
    sec = secretary(db, world.v1, name="格桑")
    quarters(client, world, world.v1, sec, ["80", "85.5", "90"])
    r = appraise(client, world, world.v1, sec, "90")
    assert r.status_code == 409 and r.json()["code"] == "quarterly_assessments_missing" and "[4]" in r.json()["detail"]
    ok(client.post(QUARTERLY, headers=world.auth("t1"), json={
        "org_id": world.v1.id, "person_id": sec.id, "year": 2019, "quarter": 4, "score": "77.25",
        "assessed_on": "2019-12-28"}), 201)
    problems = [
        {"description": "三会一课记录不规范", "cause_analysis": "支部书记重视不够",
         "rectification_measures": "逐月检查", "deadline": "2020-06-30"},
        {"description": "党员活动阵地利用率低"},
        {"description": "三会一课记录不规范"},  # the same problem twice opens it once
    ]
    assert appraise(client, world, world.v1, sec, "90", who="v1", problems=problems).status_code == 403
    a = ok(appraise(client, world, world.v1, sec, "90", problems=problems), 201)
    assert (a["quarterly_average"], a["quarterly_weight"], a["year_score"], a["grade"]) == \
        ("83.19", "0.5", "86.60", "competent")
    assert len(a["problem_ids"]) == 2
    opened = list(db.scalars(select(Problem).where(Problem.id.in_(a["problem_ids"])).order_by(Problem.id)))  # type: ignore[attr-defined]
    assert {(p.source, p.link_entity, p.link_id, p.org_id) for p in opened} == {
        ("debriefing_appraisal", "debriefing_appraisal", a["id"], world.v1.id)}
    assert opened[0].cause_analysis == "支部书记重视不够" and opened[0].deadline == D(2020, 6, 30)
    more = ok(client.post(f"{APPRAISALS}/{a['id']}/problems", headers=world.auth("t1"),
                          json={"problems": [{"description": "发展党员程序不严"}]}))
    assert len(more["problem_ids"]) == 3
    r = appraise(client, world, world.v1, sec, "90")
    assert r.status_code == 409 and r.json()["code"] == "duplicate_appraisal"
    bad_deadline = appraise(client, world, world.v1b, secretary(db, world.v1b), "90",
                            problems=[{"description": "x", "deadline": "2020-01-01"}])
    assert bad_deadline.status_code in (409, 422)


def test_quarterly_scores_freeze_once_the_year_is_appraised(client: TestClient, world: World, db: Session) -> None:
    sec = secretary(db, world.v1)
    quarters(client, world, world.v1, sec, ["80", "80", "80", "80"])
    q1 = ok(client.get(f"{QUARTERLY}?org_id={world.v1.id}&quarter=1", headers=world.auth("t1")))["items"][0]
    url = f"{QUARTERLY}/{q1['id']}"
    assert client.patch(url, headers={**world.auth("t1"), "If-Match": '"1"'}, json={"score": "82"}).status_code == 200
    assert client.patch(url, headers={**world.auth("v1"), "If-Match": '"2"'}, json={"score": "99"}).status_code == 403
    a = ok(appraise(client, world, world.v1, sec, "80"), 201)
    assert a["quarterly_average"] == "80.50"
    r = client.patch(url, headers={**world.auth("t1"), "If-Match": '"2"'}, json={"score": "60"})
    assert r.status_code == 409 and r.json()["code"] == "appraisal_recorded"


def test_ranking_within_the_township_breaks_ties_deterministically(
    client: TestClient, world: World, db: Session, engine: Engine
) -> None:
    extra = make_org(db, world.t1, level="village", domain="community", name="第三社区", code="513301001003")
    branch = make_org(db, world.v1, level="branch", domain="community", name="第一支部", code=None)
    secs = {}
    # Year scores: v1 85 (year-end 90), v1b 85 (year-end 90), extra 85 (year-end 80), branch 90.
    plan = [(world.v1, "80", "90"), (world.v1b, "80", "90"), (extra, "90", "80"), (branch, "90", "90")]
    for org, q, ye in plan:
        secs[org.id] = secretary(db, org, name=f"书记{org.id}")
        quarters(client, world, org, secs[org.id], [q] * 4)
        ok(appraise(client, world, org, secs[org.id], ye), 201)
    v2_sec = secretary(db, world.v2)
    quarters(client, world, world.v2, v2_sec, ["99"] * 4, who="t2")
    ok(appraise(client, world, world.v2, v2_sec, "99", who="t2"), 201)
    with count_statements(engine) as seen:
        r = ok(client.get(f"{APPRAISALS}/ranking?year=2019&org_id={world.t1.id}", headers=world.auth("t1")))
    first_tied, second_tied = sorted([world.v1.id, world.v1b.id], key=lambda o: secs[o].id)
    assert [row["org_id"] for row in r["items"]] == [branch.id, first_tied, second_tied, extra.id]
    assert [row["rank"] for row in r["items"]] == [1, 2, 3, 4]
    assert [row["year_score"] for row in r["items"]] == ["90.00", "85.00", "85.00", "85.00"]
    assert "person id" in r["tie_break"]
    n = len(seen)
    more_sec = secretary(db, world.v1b, name="又一")  # more data, same statements
    del more_sec
    with count_statements(engine) as again:
        ok(client.get(f"{APPRAISALS}/ranking?year=2019&org_id={world.t1.id}", headers=world.auth("t1")))
    assert len(again) == n
    # the city ranks townships; a village cannot be ranked within
    town = secretary(db, world.t2, name="镇书记")
    quarters(client, world, world.t2, town, ["70"] * 4, who="city")
    ok(appraise(client, world, world.t2, town, "70", who="city"), 201)
    city = ok(client.get(f"{APPRAISALS}/ranking?year=2019", headers=world.auth("city")))
    assert [row["org_id"] for row in city["items"]] == [world.t2.id]
    assert client.get(f"{APPRAISALS}/ranking?year=2019&org_id={world.v1.id}",
                      headers=world.auth("t1")).status_code == 422
    assert client.get(f"{APPRAISALS}/ranking?year=2019&org_id={world.t2.id}",
                      headers=world.auth("t1")).status_code == 404


def test_appraisal_list_scope_and_grades_by_threshold(client: TestClient, world: World, db: Session) -> None:
    sec = secretary(db, world.v1)
    quarters(client, world, world.v1, sec, ["60"] * 4)
    a = ok(appraise(client, world, world.v1, sec, "59.98"), 201)
    assert (a["year_score"], a["grade"]) == ("59.99", "incompetent")
    assert ok(client.get(APPRAISALS, headers=world.auth("v1")))["total"] == 1
    assert ok(client.get(APPRAISALS, headers=world.auth("t2")))["total"] == 0
    assert client.get(f"{APPRAISALS}/{a['id']}", headers=world.auth("t2")).status_code == 404
    assert ok(client.get(f"{APPRAISALS}?grade=incompetent", headers=world.auth("auditor")))["total"] == 1


def test_thresholds_for_secretaries_are_their_own_scheme(db: Session) -> None:
    rows = db.scalars(select(GradeThreshold.scheme).where(GradeThreshold.effective_year == 2000))
    assert set(rows) == {GradeScheme.dual_evaluation, GradeScheme.secretary_appraisal}


def test_list_endpoints_use_a_fixed_number_of_statements(
    client: TestClient, world: World, db: Session, engine: Engine
) -> None:
    ev, _ = branch_with_members(client, world, db, n=2)
    with count_statements(engine) as few:
        ok(client.get(ENTRIES, headers=world.auth("v1")))
    more = [make_person(db, world.v1, name=f"加{i}") for i in range(6)]
    for p in more:
        ok(client.post(f"{DEM}/{ev['id']}/entries", headers=world.auth("v1"), json={"person_id": p.id}), 201)
    with count_statements(engine) as many:
        assert ok(client.get(ENTRIES, headers=world.auth("v1")))["total"] == 8
    assert len(few) == len(many)


# ---------------------------------------------------------------------------
# Demo data


def test_demo_seeds_are_idempotent_and_hold_the_rules(db: Session, world: World) -> None:
    from app.demo import evaluations as demo_evaluations
    from app.demo import posts as demo_posts

    for org in (world.v1, world.v1b, world.v2):
        for i in range(6):
            make_person(db, org, name=f"示范{i}", member_status="probationary" if i == 0 else "full")
        cadre(db, org, name="书记", title="secretary")
        cadre(db, org, name="委员")
    posts_first, evaluations_first = demo_posts.seed(db), demo_evaluations.seed(db)
    assert posts_first["duty posts"] == 9 and posts_first["post assignments"] > 0
    assert evaluations_first["dual evaluations"] == 2  # every cadre of 姑咱镇's village
    assert evaluations_first["democratic evaluations"] == 2 and evaluations_first["disposal cases"] == 1
    assert evaluations_first["debriefing appraisals"] == 3 and evaluations_first["secretary assessments"] == 12
    assert not any(demo_posts.seed(db).values()) and not any(demo_evaluations.seed(db).values())
    assert db.scalar(select(func.count()).select_from(DutyPost).where(DutyPost.filled > DutyPost.capacity)) == 0
    over = db.execute(select(PostAssignment.person_id).where(
        PostAssignment.status.in_(["applied", "proposed", "active"]))  # type: ignore[attr-defined]
        .group_by(PostAssignment.person_id).having(func.count() > 2)).all()
    assert over == []
    holders = set(db.scalars(select(PostAssignment.person_id)))
    assert not holders & set(db.scalars(select(Position.person_id)))  # posts only for members without office
    grades = set(db.scalars(select(DualEvaluation.grade)))
    assert grades <= {"excellent", "competent", "basically_competent", "incompetent"} and len(grades) == 2
