"""Matrix cases of evaluations: dual evaluations, democratic evaluation of members, disposal cases,
commendation candidates, the reserve cadre pool, secretaries' assessments and appraisals, and settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from app.models.evaluations.common import CadreDuty
from app.models.evaluations.dual import DualEvaluation, DualEvaluationDuty
from app.models.evaluations.members import (
    DemocraticEvaluation,
    DemocraticEvaluationEntry,
    DisposalCase,
    ReserveCadre,
)
from app.models.evaluations.secretaries import DebriefingAppraisal, SecretaryAssessment
from app.models.organizations import Organization
from app.models.people import Person
from app.models.posts import DutyPost, PostAssignment
from app.services.evaluations.common import duties_for_year
from tests.authz.people import person_at
from tests.authz.registry import Ctx, Expect, Req, case, if_match, level_above_only, unique
from tests.factories import make_position

YEAR = 2019
SETTINGS = "weights, thresholds and the duty list are city-wide data, owned by no organisation"


def cadre_at(ctx: Ctx, owner: Organization, title: str = "committee_member") -> Person:
    person = person_at(ctx, owner)
    make_position(ctx.db, person, owner, title, dt.date(2017, 1, 1))
    return person


def add(ctx: Ctx, row: Any) -> Any:
    ctx.db.add(row)
    ctx.db.flush()
    return row


# --- settings (city-wide data) ----------------------------------------------------


@case("evaluation_settings_list", targetless=SETTINGS)
def evaluation_settings_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/evaluation-settings")


@case("evaluation_settings_create", targetless=SETTINGS)
def evaluation_settings_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/evaluation-settings",
               json={"key": "villager_weight", "effective_year": 2099, "value": "0.5"})


@case("grade_thresholds_list", targetless=SETTINGS)
def grade_thresholds_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/grade-thresholds")


@case("grade_thresholds_create", targetless=SETTINGS)
def grade_thresholds_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/grade-thresholds", json={
        "scheme": "dual_evaluation", "effective_year": 2099, "excellent": "92", "competent": "75",
        "basically_competent": "60"})


@case("cadre_duties_list", targetless=SETTINGS)
def cadre_duties_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/cadre-duties", params={"year": YEAR})


@case("cadre_duties_create", targetless=SETTINGS)
def cadre_duties_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/cadre-duties", json={
        "code": unique("duty_"), "name": "抓党建", "name_en": "Party building", "from_year": 2099})


@case("cadre_duties_retire", targetless=SETTINGS)
def cadre_duties_retire(ctx: Ctx, owner: Organization) -> Req:
    duty = add(ctx, CadreDuty(code=unique("duty_"), name="临时", name_en="Temporary", from_year=2090))
    return Req("POST", f"/api/v1/cadre-duties/{duty.id}/retire", json={"to_year": 2095})


# --- dual evaluations -------------------------------------------------------------


def dual_at(ctx: Ctx, owner: Organization, *, ready: bool = False) -> DualEvaluation:
    """A draft evaluation of a cadre of `owner`; `ready`: reported, voted and scored, so it can be finalised."""
    ev = add(ctx, DualEvaluation(org_id=owner.id, person_id=cadre_at(ctx, owner).id, year=YEAR))
    for d in duties_for_year(ctx.db, YEAR):
        ctx.db.add(DualEvaluationDuty(evaluation_id=ev.id, duty_id=d.id, sort_order=d.sort_order,
                                      report="述职" if ready else None, committee_score_centi=8000 if ready else None))
    if ready:
        ev.reported_at = dt.datetime(2019, 12, 20, tzinfo=dt.UTC)
        ev.votes_satisfied, ev.votes_basically_satisfied, ev.votes_dissatisfied = 8, 2, 0
        ev.villagers_score_centi, ev.committee_score_centi = 9200, 8000
    ctx.db.flush()
    return ev


def _duty_ids(ctx: Ctx, ev: DualEvaluation) -> list[int]:
    return list(ctx.db.scalars(select(DualEvaluationDuty.duty_id).where(DualEvaluationDuty.evaluation_id == ev.id)))


@case("dual_evaluations_list")
def dual_evaluations_list(ctx: Ctx, owner: Organization) -> Req:
    dual_at(ctx, owner)
    return Req("GET", "/api/v1/dual-evaluations", params={"org_id": owner.id, "subtree": "true"})


@case("dual_evaluations_summary")
def dual_evaluations_summary(ctx: Ctx, owner: Organization) -> Req:
    dual_at(ctx, owner)
    return Req("GET", "/api/v1/dual-evaluations/summary", params={"year": YEAR, "org_id": owner.id})


@case("dual_evaluations_get")
def dual_evaluations_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/dual-evaluations/{dual_at(ctx, owner).id}")


@case("dual_evaluations_create")
def dual_evaluations_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/dual-evaluations",
               json={"org_id": owner.id, "person_id": cadre_at(ctx, owner).id, "year": YEAR})


@case("dual_evaluations_report")
def dual_evaluations_report(ctx: Ctx, owner: Organization) -> Req:
    ev = dual_at(ctx, owner)
    return Req("POST", f"/api/v1/dual-evaluations/{ev.id}/report",
               json={"duties": [{"duty_id": d, "report": "履职情况"} for d in _duty_ids(ctx, ev)]})


@case("dual_evaluations_votes")
def dual_evaluations_votes(ctx: Ctx, owner: Organization) -> Req:
    ev = dual_at(ctx, owner)
    return Req("POST", f"/api/v1/dual-evaluations/{ev.id}/votes",
               json={"satisfied": 30, "basically_satisfied": 5, "dissatisfied": 1})


@case("dual_evaluations_committee_scores", expect=level_above_only("scores a village cadre's duties"))
def dual_evaluations_committee_scores(ctx: Ctx, owner: Organization) -> Req:
    ev = dual_at(ctx, owner)
    return Req("POST", f"/api/v1/dual-evaluations/{ev.id}/committee-scores",
               json={"scores": [{"duty_id": d, "score": "85"} for d in _duty_ids(ctx, ev)]})


@case("dual_evaluations_finalize", expect=level_above_only("finalises a village cadre's dual evaluation"))
def dual_evaluations_finalize(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/dual-evaluations/{dual_at(ctx, owner, ready=True).id}/finalize")


# --- democratic evaluation of members ----------------------------------------------


def session_at(ctx: Ctx, owner: Organization, *, status: str = "draft",
               rating: str | None = None) -> tuple[DemocraticEvaluation, DemocraticEvaluationEntry]:
    """A session of `owner` with one member's entry (rated `rating`)."""
    ev = add(ctx, DemocraticEvaluation(org_id=owner.id, year=YEAR, status=status,
                                       finalized_at=dt.datetime(2019, 12, 30, tzinfo=dt.UTC)
                                       if status == "finalized" else None))
    entry = add(ctx, DemocraticEvaluationEntry(evaluation_id=ev.id, person_id=person_at(ctx, owner).id,
                                               org_id=owner.id, year=YEAR, rating=rating))
    return ev, entry


@case("democratic_evaluations_list")
def democratic_evaluations_list(ctx: Ctx, owner: Organization) -> Req:
    session_at(ctx, owner)
    return Req("GET", "/api/v1/democratic-evaluations", params={"org_id": owner.id, "subtree": "true"})


@case("democratic_evaluations_get")
def democratic_evaluations_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/democratic-evaluations/{session_at(ctx, owner)[0].id}")


@case("democratic_evaluations_create")
def democratic_evaluations_create(ctx: Ctx, owner: Organization) -> Req:
    person_at(ctx, owner)
    return Req("POST", "/api/v1/democratic-evaluations", json={"org_id": owner.id, "year": YEAR})


@case("democratic_evaluations_add_entry")
def democratic_evaluations_add_entry(ctx: Ctx, owner: Organization) -> Req:
    ev, _ = session_at(ctx, owner)
    return Req("POST", f"/api/v1/democratic-evaluations/{ev.id}/entries",
               json={"person_id": person_at(ctx, owner).id})


@case("democratic_evaluations_finalize")
def democratic_evaluations_finalize(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/democratic-evaluations/{session_at(ctx, owner, rating='qualified')[0].id}/finalize")


@case("democratic_evaluation_entries_list")
def democratic_evaluation_entries_list(ctx: Ctx, owner: Organization) -> Req:
    session_at(ctx, owner)
    return Req("GET", "/api/v1/democratic-evaluation-entries", params={"org_id": owner.id, "subtree": "true"})


@case("democratic_evaluation_entries_get")
def democratic_evaluation_entries_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/democratic-evaluation-entries/{session_at(ctx, owner)[1].id}")


@case("democratic_evaluation_entries_update")
def democratic_evaluation_entries_update(ctx: Ctx, owner: Organization) -> Req:
    entry = session_at(ctx, owner)[1]
    return Req("PATCH", f"/api/v1/democratic-evaluation-entries/{entry.id}",
               json={"votes_qualified": 12, "rating": "qualified"}, headers=if_match(entry.version))


# --- disposal cases -----------------------------------------------------------------


def case_at(ctx: Ctx, owner: Organization, status: str = "open") -> DisposalCase:
    _, entry = session_at(ctx, owner, status="finalized", rating="unqualified")
    decided = status != "open"
    return add(ctx, DisposalCase(
        entry_id=entry.id, person_id=entry.person_id, org_id=owner.id, year=YEAR, status=status,
        measure="corrective_deadline" if decided else None, decided_on=dt.date(2020, 1, 10) if decided else None,
        correct_by=dt.date(2020, 7, 10) if decided else None))


@case("disposal_cases_list")
def disposal_cases_list(ctx: Ctx, owner: Organization) -> Req:
    case_at(ctx, owner)
    return Req("GET", "/api/v1/disposal-cases", params={"org_id": owner.id, "subtree": "true"})


@case("disposal_cases_get")
def disposal_cases_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/disposal-cases/{case_at(ctx, owner).id}")


@case("disposal_cases_decide")
def disposal_cases_decide(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/disposal-cases/{case_at(ctx, owner).id}/decide",
               json={"measure": "persuade_to_withdraw", "decided_on": "2020-01-10"})


@case("disposal_cases_approve", expect=level_above_only("approves the disposal of an unqualified member"))
def disposal_cases_approve(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/disposal-cases/{case_at(ctx, owner, 'decided').id}/approve",
               json={"approved_on": "2020-01-20"})


@case("disposal_cases_reject", expect=level_above_only("sends a disposal decision back"))
def disposal_cases_reject(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/disposal-cases/{case_at(ctx, owner, 'decided').id}/reject",
               json={"reason": "措施偏轻"})


# --- commendation candidates and the reserve cadre pool ------------------------------


@case("commendation_candidates_list")
def commendation_candidates_list(ctx: Ctx, owner: Organization) -> Req:
    post = add(ctx, DutyPost(org_id=owner.id, year=YEAR, title=unique("岗位"), field="mediation", duties="调解",
                             capacity=1, filled=1))
    add(ctx, PostAssignment(post_id=post.id, person_id=person_at(ctx, owner).id, org_id=owner.id, year=YEAR,
                            route="self_selected", status="active", requested_on=dt.date(YEAR, 1, 10),
                            assigned_on=dt.date(YEAR, 2, 1), review_grade="excellent",
                            reviewed_on=dt.date(YEAR, 12, 20)))
    return Req("GET", "/api/v1/commendation-candidates", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


def reserve_at(ctx: Ctx, owner: Organization) -> ReserveCadre:
    return add(ctx, ReserveCadre(org_id=owner.id, person_id=person_at(ctx, owner).id, reason="双培双带",
                                 added_on=dt.date(YEAR, 5, 1)))


@case("reserve_cadres_list")
def reserve_cadres_list(ctx: Ctx, owner: Organization) -> Req:
    reserve_at(ctx, owner)
    return Req("GET", "/api/v1/reserve-cadres", params={"org_id": owner.id, "subtree": "true"})


@case("reserve_cadres_get")
def reserve_cadres_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/reserve-cadres/{reserve_at(ctx, owner).id}")


@case("reserve_cadres_add")
def reserve_cadres_add(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/reserve-cadres", json={
        "org_id": owner.id, "person_id": person_at(ctx, owner).id, "reason": "年轻有为", "added_on": "2019-06-01"})


@case("reserve_cadres_release")
def reserve_cadres_release(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/reserve-cadres/{reserve_at(ctx, owner).id}/release",
               json={"released_on": "2019-09-01", "reason": "外出务工"})


# --- secretaries ------------------------------------------------------------------


def assessment_at(ctx: Ctx, owner: Organization, quarter: int = 1,
                  person: Person | None = None) -> SecretaryAssessment:
    person = person or cadre_at(ctx, owner, "secretary")
    return add(ctx, SecretaryAssessment(org_id=owner.id, person_id=person.id, year=YEAR, quarter=quarter,
                                        score_centi=8500, assessed_on=dt.date(YEAR, 3 * quarter, 28)))


def appraisal_at(ctx: Ctx, owner: Organization) -> DebriefingAppraisal:
    return add(ctx, DebriefingAppraisal(
        org_id=owner.id, person_id=cadre_at(ctx, owner, "secretary").id, year=YEAR, report="述职报告",
        reviewers_score_centi=8800, quarterly_average_centi=8500, quarterly_weight_e4=5000, year_score_centi=8650,
        grade="competent", appraised_on=dt.date(2020, 1, 15)))


@case("secretary_assessments_list")
def secretary_assessments_list(ctx: Ctx, owner: Organization) -> Req:
    assessment_at(ctx, owner)
    return Req("GET", "/api/v1/secretary-assessments", params={"org_id": owner.id, "subtree": "true"})


@case("secretary_assessments_get")
def secretary_assessments_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/secretary-assessments/{assessment_at(ctx, owner).id}")


@case("secretary_assessments_create", expect=level_above_only("assesses an organisation's secretary"))
def secretary_assessments_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/secretary-assessments", json={
        "org_id": owner.id, "person_id": cadre_at(ctx, owner, "secretary").id, "year": YEAR, "quarter": 2,
        "score": "86.5", "assessed_on": "2019-06-28"})


@case("secretary_assessments_update", expect=level_above_only("corrects a secretary's quarterly score"))
def secretary_assessments_update(ctx: Ctx, owner: Organization) -> Req:
    row = assessment_at(ctx, owner)
    return Req("PATCH", f"/api/v1/secretary-assessments/{row.id}", json={"score": "90"},
               headers=if_match(row.version))


@case("debriefing_appraisals_list")
def debriefing_appraisals_list(ctx: Ctx, owner: Organization) -> Req:
    appraisal_at(ctx, owner)
    return Req("GET", "/api/v1/debriefing-appraisals", params={"org_id": owner.id, "subtree": "true"})


@case("debriefing_appraisals_get")
def debriefing_appraisals_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/debriefing-appraisals/{appraisal_at(ctx, owner).id}")


def _township_of(ctx: Ctx, owner: Organization) -> Organization:
    return owner if owner.level == "township" else ctx.parent_of(owner)


@case("debriefing_appraisals_ranking", township_owner="t1",
      expect={("v1", "in_scope"): Expect(404, "not_found", why="a village's ranking is within its township, "
                                                                "which is above the village user's scope")})
def debriefing_appraisals_ranking(ctx: Ctx, owner: Organization) -> Req:
    township = _township_of(ctx, owner)
    if owner.level != "township":
        appraisal_at(ctx, owner)
    return Req("GET", "/api/v1/debriefing-appraisals/ranking", params={"year": YEAR, "org_id": township.id})


@case("debriefing_appraisals_create", expect=level_above_only("appraises an organisation's secretary"))
def debriefing_appraisals_create(ctx: Ctx, owner: Organization) -> Req:
    person = cadre_at(ctx, owner, "secretary")
    for q in (1, 2, 3, 4):
        assessment_at(ctx, owner, q, person)
    return Req("POST", "/api/v1/debriefing-appraisals", json={
        "org_id": owner.id, "person_id": person.id, "year": YEAR, "report": "抓基层党建述职", "reviewers_score": "88",
        "appraised_on": "2020-01-15", "problems": [{"description": "三会一课记录不全"}]})


@case("debriefing_appraisals_add_problems", expect=level_above_only("records the problems an appraisal found"))
def debriefing_appraisals_add_problems(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/debriefing-appraisals/{appraisal_at(ctx, owner).id}/problems",
               json={"problems": [{"description": "党员活动室利用率低"}]})
