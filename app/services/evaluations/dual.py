"""The rules of the dual debriefing, dual evaluation (双述双评) of village cadres.

- An evaluation is of one cadre (someone holding a position in the village during the year) per
  village and year; its duties are the duty list in force that year.
- The village (or anyone covering it) records the debriefing report and the villagers' votes; only
  the level above the village (the township) records the committee's duty scores and finalises.
- villagers' score = Σ(votes × points) ÷ votes cast; committee score = mean of the duty scores;
  final = villagers × w + committee × (1 − w); each half up to 2 places, the grade read from the
  rounded final score with the thresholds in force (all three are data for the year).
- A finalised evaluation is frozen (409 `evaluation_finalized`); an incompetent grade opens exactly
  one problem (source debriefing_appraisal, origin key `dual_evaluation:{id}`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, require_level_above, require_org_in_scope, subtree_org_ids
from app.models.evaluations.common import (
    CadreDuty,
    Grade,
    GradeScheme,
    SettingKey,
    from_centi,
    from_e4,
    grade_for,
    round_half_up,
    to_centi,
    to_e4,
)
from app.models.evaluations.dual import (
    CommitteeScores,
    DebriefingReport,
    DualEvaluation,
    DualEvaluationCreate,
    DualEvaluationDetail,
    DualEvaluationDuty,
    DualEvaluationDutyPublic,
    DualEvaluationPublic,
    DualEvaluationStatus,
    DualEvaluationSummary,
    DutyAverage,
    GradeDistribution,
    VillagerVotes,
)
from app.models.organizations import Organization, OrgLevel
from app.models.people import Person
from app.services.evaluations.common import (
    duties_for_year,
    holds_position,
    names_of,
    org_filter,
    org_in_scope,
    require_setting,
    thresholds,
)

SORTABLE = {
    "id": DualEvaluation.id, "year": DualEvaluation.year, "status": DualEvaluation.status,
    "final_score": DualEvaluation.final_score_centi, "grade": DualEvaluation.grade,
    "created_at": DualEvaluation.created_at,
}
PROBLEM_LINK = "dual_evaluation"


# ---------------------------------------------------------------------------
# The formulas (pure, so each threshold can be tested at its boundary)


def villagers_score(satisfied: int, basically: int, dissatisfied: int,
                    points: tuple[Decimal, Decimal, Decimal]) -> Decimal:
    """Σ(votes × points) ÷ votes cast, half up to 2 places."""
    cast = satisfied + basically + dissatisfied
    if cast <= 0:
        raise ValueError("no votes cast")
    total = satisfied * points[0] + basically * points[1] + dissatisfied * points[2]
    return round_half_up(total / cast)


def committee_score(scores: list[Decimal]) -> Decimal:
    """The mean of the duty scores, half up to 2 places."""
    return round_half_up(sum(scores, Decimal(0)) / len(scores))


def final_score(villagers: Decimal, committee: Decimal, weight: Decimal) -> Decimal:
    """villagers × w + committee × (1 − w), half up to 2 places."""
    return round_half_up(villagers * weight + committee * (1 - weight))


# ---------------------------------------------------------------------------
# Reading


def get(session: Session, actor: Actor, evaluation_id: int) -> DualEvaluation:
    return get_in_scope(session, actor, DualEvaluation, evaluation_id, "Dual evaluation")[0]


def to_public(ev: DualEvaluation, name: str | None) -> DualEvaluationPublic:
    return DualEvaluationPublic.model_validate(ev, update=_derived(ev, name))


def _derived(ev: DualEvaluation, name: str | None) -> dict[str, Any]:
    return {
        "person_name": name, "reported": ev.reported_at is not None,
        "villagers_score": from_centi(ev.villagers_score_centi),
        "committee_score": from_centi(ev.committee_score_centi),
        "villager_weight": from_e4(ev.villager_weight_e4), "final_score": from_centi(ev.final_score_centi),
    }


def publics(session: Session, items: list[DualEvaluation]) -> list[DualEvaluationPublic]:
    names = names_of(session, {e.person_id for e in items})
    return [to_public(e, names.get(e.person_id)) for e in items]


def detail(session: Session, ev: DualEvaluation) -> DualEvaluationDetail:
    """The evaluation with its duties and the problem it opened: three statements."""
    from app.models.responsibilities import Problem

    rows = session.execute(
        select(DualEvaluationDuty, CadreDuty.code, CadreDuty.name)
        .join(CadreDuty, CadreDuty.id == DualEvaluationDuty.duty_id)
        .where(DualEvaluationDuty.evaluation_id == ev.id)
        .order_by(DualEvaluationDuty.sort_order, DualEvaluationDuty.duty_id)
    ).all()
    duties = [DualEvaluationDutyPublic(duty_id=d.duty_id, code=code, name=name, report=d.report,
                                       committee_score=from_centi(d.committee_score_centi))
              for d, code, name in rows]
    problem_id = session.scalar(select(Problem.id).where(Problem.origin_key == f"{PROBLEM_LINK}:{ev.id}"))
    name = session.scalar(select(Person.name).where(Person.id == ev.person_id))
    return DualEvaluationDetail.model_validate(ev, update={
        **_derived(ev, name), "duties": duties, "problem_id": problem_id,
    })


@dataclass
class Filters:
    year: int | None = None
    status: str | None = None
    grade: str | None = None
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_page(session: Session, actor: Actor, f: Filters, params: PageParams) -> tuple[list[DualEvaluation], int]:
    stmt = org_filter(session, actor, select(DualEvaluation), DualEvaluation.org_id, f.org_id, f.subtree)
    for column, value in ((DualEvaluation.year, f.year), (DualEvaluation.status, f.status),
                          (DualEvaluation.grade, f.grade), (DualEvaluation.person_id, f.person_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=SORTABLE,
                      default=[col(DualEvaluation.year).desc(), DualEvaluation.org_id], tiebreak=DualEvaluation.id)


# ---------------------------------------------------------------------------
# Writing


def create(session: Session, actor: Actor, data: DualEvaluationCreate) -> DualEvaluation:
    """Open the year's evaluation of a village cadre, with the duty list in force that year."""
    org = org_in_scope(session, actor, data.org_id)
    if org.level != OrgLevel.village:
        raise invalid(["body", "org_id"], f"dual evaluations are of village cadres, not of a {org.level}")
    person = session.get(Person, data.person_id)
    if person is None or not holds_position(session, person_id=data.person_id, org_id=org.id,
                                            start=dt.date(data.year, 1, 1), end=dt.date(data.year, 12, 31)):
        raise invalid(["body", "person_id"],
                      f"person {data.person_id} held no position in organisation {org.id} during {data.year}: "
                      "only village cadres are evaluated")
    if session.scalar(select(DualEvaluation.id).where(
            DualEvaluation.org_id == org.id, DualEvaluation.person_id == person.id, DualEvaluation.year == data.year)):
        raise conflict("duplicate_evaluation",
                       f"{person.name} already has a {data.year} dual evaluation in organisation {org.id}.")
    duties = duties_for_year(session, data.year)
    if not duties:
        raise conflict("no_duties", f"No cadre duties are on the list for {data.year}.")
    ev = DualEvaluation(org_id=org.id, person_id=person.id, year=data.year)
    session.add(ev)
    session.flush()
    session.add_all([DualEvaluationDuty(evaluation_id=ev.id, duty_id=d.id, sort_order=d.sort_order)
                     for d in duties])
    session.flush()
    audit.record(session, actor=actor, action="dual_evaluation.create", entity="dual_evaluation", entity_id=ev.id,
                 org_id=ev.org_id, after={**audit.snapshot(ev), "duty_ids": [d.id for d in duties]})
    return ev


def _lock_draft(session: Session, ev: DualEvaluation) -> None:
    """Lock the row (PostgreSQL; SQLite serialises writers) and refuse a finalised evaluation."""
    session.refresh(ev, with_for_update=True)
    if ev.status != DualEvaluationStatus.draft:
        raise conflict("evaluation_finalized",
                       f"Dual evaluation {ev.id} was finalised ({ev.grade}); it can no longer change.")


def _save(session: Session, actor: Actor, ev: DualEvaluation, verb: str, changes: dict[str, Any],
          before: dict[str, Any], after_extra: dict[str, Any] | None = None) -> None:
    session.execute(
        update(DualEvaluation).where(DualEvaluation.id == ev.id)
        .values(**changes, version=DualEvaluation.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(ev)
    b, a = audit.changed(before, audit.snapshot(ev))
    audit.record(session, actor=actor, action=f"dual_evaluation.{verb}", entity="dual_evaluation", entity_id=ev.id,
                 org_id=ev.org_id, before=b, after={**a, **(after_extra or {})})


def _duty_rows(session: Session, ev: DualEvaluation) -> dict[int, DualEvaluationDuty]:
    rows = session.scalars(select(DualEvaluationDuty).where(DualEvaluationDuty.evaluation_id == ev.id))
    return {r.duty_id: r for r in rows}


def _unknown_duties(rows: dict[int, DualEvaluationDuty], ids: list[int], field: str) -> None:
    errors = [{"loc": ["body", field, i, "duty_id"], "msg": f"duty {d} is not on this evaluation's duty list"}
              for i, d in enumerate(ids) if d not in rows]
    if errors:
        raise ProblemError(422, "validation_error", errors[0]["msg"], errors=errors)


def record_report(session: Session, actor: Actor, ev: DualEvaluation, data: DebriefingReport) -> DualEvaluation:
    """The cadre's debriefing: text per duty (the ones sent are replaced) and an optional summary."""
    _lock_draft(session, ev)
    rows = _duty_rows(session, ev)
    _unknown_duties(rows, [d.duty_id for d in data.duties], "duties")
    for d in data.duties:
        rows[d.duty_id].report = d.report
    session.flush()
    complete = all(r.report for r in rows.values())
    before = audit.snapshot(ev)
    changes: dict[str, Any] = {"reported_at": utcnow() if complete else None}
    if data.summary is not None:
        changes["report_summary"] = data.summary
    _save(session, actor, ev, "report", changes, before,
          {"duty_reports": {d.duty_id: len(d.report) for d in data.duties}})
    return ev


def record_votes(session: Session, actor: Actor, ev: DualEvaluation, data: VillagerVotes) -> DualEvaluation:
    """The villagers' evaluation as vote counts; the score uses the vote points in force that year."""
    _lock_draft(session, ev)
    if data.satisfied + data.basically_satisfied + data.dissatisfied == 0:
        raise invalid(["body"], "no votes cast: at least one vote is needed")
    points = (require_setting(session, SettingKey.vote_weight_satisfied, ev.year),
              require_setting(session, SettingKey.vote_weight_basically_satisfied, ev.year),
              require_setting(session, SettingKey.vote_weight_dissatisfied, ev.year))
    score = villagers_score(data.satisfied, data.basically_satisfied, data.dissatisfied, points)
    before = audit.snapshot(ev)
    _save(session, actor, ev, "votes", {
        "votes_satisfied": data.satisfied, "votes_basically_satisfied": data.basically_satisfied,
        "votes_dissatisfied": data.dissatisfied, "villagers_score_centi": to_centi(score),
    }, before)
    return ev


def _org_path(session: Session, ev: DualEvaluation) -> str:
    path = session.scalar(select(Organization.path).where(Organization.id == ev.org_id))
    assert path is not None
    return path


def record_committee_scores(session: Session, actor: Actor, ev: DualEvaluation,
                            data: CommitteeScores) -> DualEvaluation:
    """The township Party committee's score of every duty (the level above only); the mean is kept."""
    require_level_above(actor, _org_path(session, ev), "score a village cadre's duties")
    _lock_draft(session, ev)
    rows = _duty_rows(session, ev)
    _unknown_duties(rows, [s.duty_id for s in data.scores], "scores")
    missing = sorted(set(rows) - {s.duty_id for s in data.scores})
    if missing:
        raise invalid(["body", "scores"], f"every duty on the list is scored at once; missing duties {missing}")
    before_scores = {d: from_centi(r.committee_score_centi) for d, r in rows.items()}
    for s in data.scores:
        rows[s.duty_id].committee_score_centi = to_centi(s.score)
    session.flush()
    mean = committee_score([s.score for s in data.scores])
    before = audit.snapshot(ev)
    _save(session, actor, ev, "committee_scores", {"committee_score_centi": to_centi(mean)}, before,
          {"duty_scores": {s.duty_id: s.score for s in data.scores},
           "previous_duty_scores": {k: v for k, v in before_scores.items() if v is not None}})
    return ev


def finalize(session: Session, actor: Actor, ev: DualEvaluation) -> DualEvaluation:
    """Fix the final score and grade (the level above only); an incompetent grade opens one problem."""
    from app.services.responsibilities import open_problem

    require_level_above(actor, _org_path(session, ev), "finalise a village cadre's dual evaluation")
    _lock_draft(session, ev)
    if ev.reported_at is None:
        raise conflict("report_incomplete", f"Dual evaluation {ev.id} lacks the cadre's report on some duties.")
    if ev.villagers_score_centi is None:
        raise conflict("votes_missing", f"Dual evaluation {ev.id} has no villagers' votes yet.")
    if ev.committee_score_centi is None:
        raise conflict("committee_scores_missing", f"Dual evaluation {ev.id} has no committee scores yet.")
    weight = require_setting(session, SettingKey.villager_weight, ev.year)
    villagers, committee = from_centi(ev.villagers_score_centi), from_centi(ev.committee_score_centi)
    assert villagers is not None and committee is not None
    final = final_score(villagers, committee, weight)
    grade = grade_for(final, thresholds(session, GradeScheme.dual_evaluation, ev.year))
    before = audit.snapshot(ev)
    result = session.execute(
        update(DualEvaluation)
        .where(DualEvaluation.id == ev.id, DualEvaluation.status == DualEvaluationStatus.draft)
        .values(status=DualEvaluationStatus.finalized, villager_weight_e4=to_e4(weight),
                final_score_centi=to_centi(final), grade=grade, finalized_at=utcnow(), finalized_by=actor.user_id,
                version=DualEvaluation.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("evaluation_finalized", f"Dual evaluation {ev.id} was finalised meanwhile.")
    session.refresh(ev)
    b, a = audit.changed(before, audit.snapshot(ev))
    audit.record(session, actor=actor, action="dual_evaluation.finalize", entity="dual_evaluation",
                 entity_id=ev.id, org_id=ev.org_id, before=b, after=a)
    if grade == Grade.incompetent:
        name = session.scalar(select(Person.name).where(Person.id == ev.person_id))
        open_problem(
            session, actor, org_id=ev.org_id, year=ev.year, source="debriefing_appraisal",
            description=f"{name}在{ev.year}年度双述双评中被评为不称职(最终得分{final},"
                        f"群众测评{villagers},乡镇党委测评{committee})。",
            link_entity=PROBLEM_LINK, link_id=ev.id, origin_key=f"{PROBLEM_LINK}:{ev.id}",
            responsible_person_id=ev.person_id,
        )
    return ev


# ---------------------------------------------------------------------------
# Summary


def _avg(total: int | None, n: int) -> Decimal | None:
    if not n or total is None:
        return None
    return round_half_up(Decimal(int(total)) / Decimal(n) / 100)


@cached_report()
def summary(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool) -> DualEvaluationSummary:
    """Grade distribution per township and average scores per duty: four statements whatever the size."""
    root_id = org_id if org_id is not None else actor.org_id
    assert root_id is not None
    path = require_org_in_scope(session, actor, root_id)  # 1
    if org_id is None:
        subtree = True
    orgs = subtree_org_ids(path) if subtree else select(Organization.id).where(Organization.id == root_id)
    finalized = DualEvaluation.status == DualEvaluationStatus.finalized

    rows = session.execute(  # 2: per township (the village's parent), status and grade
        select(Organization.parent_id, DualEvaluation.status, DualEvaluation.grade, func.count(),
               func.sum(DualEvaluation.villagers_score_centi), func.sum(DualEvaluation.committee_score_centi),
               func.sum(DualEvaluation.final_score_centi))
        .join(Organization, Organization.id == DualEvaluation.org_id)
        .where(col(DualEvaluation.org_id).in_(orgs), DualEvaluation.year == year)
        .group_by(Organization.parent_id, DualEvaluation.status, DualEvaluation.grade)
    ).all()
    township_ids = {r[0] for r in rows if r[0] is not None}
    township_names: dict[int, str] = dict(session.execute(  # 3
        select(Organization.id, Organization.name).where(col(Organization.id).in_(township_ids))
    ).all()) if township_ids else {}
    per_town: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    n_final, sums = 0, [0, 0, 0]
    for parent_id, status, grade, n, v, c, fsum in rows:
        bucket = per_town[parent_id]
        if status == DualEvaluationStatus.finalized:
            bucket[str(grade)] += n
            bucket["finalized"] += n
            n_final += n
            sums = [sums[0] + int(v or 0), sums[1] + int(c or 0), sums[2] + int(fsum or 0)]
        else:
            bucket["draft"] += n

    duty_rows = session.execute(  # 4: finalised evaluations' committee scores per duty
        select(CadreDuty.id, CadreDuty.code, CadreDuty.name, func.count(DualEvaluationDuty.committee_score_centi),
               func.sum(DualEvaluationDuty.committee_score_centi))
        .join(DualEvaluationDuty, DualEvaluationDuty.duty_id == CadreDuty.id)
        .join(DualEvaluation, DualEvaluation.id == DualEvaluationDuty.evaluation_id)
        .where(col(DualEvaluation.org_id).in_(orgs), DualEvaluation.year == year, finalized)
        .group_by(CadreDuty.id, CadreDuty.code, CadreDuty.name, CadreDuty.sort_order)
        .order_by(CadreDuty.sort_order, CadreDuty.id)
    ).all()
    return DualEvaluationSummary(
        year=year, org_id=root_id, subtree=subtree, finalized=n_final,
        average_villagers_score=_avg(sums[0], n_final), average_committee_score=_avg(sums[1], n_final),
        average_final_score=_avg(sums[2], n_final),
        by_township=[
            GradeDistribution(township_id=tid, township_name=township_names.get(tid, ""),
                              **{k: per_town[tid].get(k, 0) for k in (
                                  "draft", "excellent", "competent", "basically_competent", "incompetent",
                                  "finalized")})
            for tid in sorted(per_town, key=lambda t: (township_names.get(t, ""), t))
        ],
        duty_averages=[DutyAverage(duty_id=i, code=code, name=name, evaluations=int(n),
                                   average_committee_score=_avg(s, n)) for i, code, name, n, s in duty_rows],
    )

