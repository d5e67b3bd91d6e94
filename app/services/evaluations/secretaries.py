"""The rules of the secretaries' assessment (考核问效) and year-end debriefing appraisal (述职评议).

- Only the level above an organisation assesses its secretary (a quarterly score 0–100, one per
  quarter) and appraises them at year end (report, reviewers' score 0–100, problems found).
- The appraisal needs the four quarterly scores; it fixes the year score
  (quarterly average × w + reviewers' score × (1 − w), w the `quarterly_weight` of the year, each step
  half up to 2 places) and the grade (the `secretary_appraisal` thresholds). After it, that year's
  quarterly scores are frozen.
- Every problem found opens a problem on the problem list (source debriefing_appraisal) linked to
  the appraisal, in the same request; sending the same problem twice opens it once.
- Ranking within a township (or of the townships within the city) breaks ties deterministically:
  higher year score, then higher reviewers' (year-end) score, then lower person id, then lower
  organisation id. Ranks are 1..n with no shared places.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, get_in_scope, in_subtree, require_level_above, require_org_in_scope
from app.core.versioning import versioned_update
from app.models.evaluations.common import (
    GradeScheme,
    SettingKey,
    from_centi,
    from_e4,
    grade_for,
    quarter_bounds,
    round_half_up,
    to_centi,
    to_e4,
)
from app.models.evaluations.secretaries import (
    AppraisalCreate,
    AppraisalProblem,
    AppraisalPublic,
    AssessmentCreate,
    AssessmentPublic,
    AssessmentUpdate,
    DebriefingAppraisal,
    Ranking,
    RankingRow,
    SecretaryAssessment,
)
from app.models.organizations import Organization, OrgLevel
from app.models.people import Person, PositionTitle
from app.services.evaluations.common import (
    holds_position,
    names_of,
    not_future,
    org_filter,
    org_in_scope,
    require_setting,
    thresholds,
)

TIE_BREAK = ("year score (higher first), then the reviewers' year-end score (higher first), "
             "then person id (lower first), then organisation id (lower first)")
PROBLEM_LINK = "debriefing_appraisal"
ASSESSMENT_SORTABLE = {"id": SecretaryAssessment.id, "year": SecretaryAssessment.year,
                       "quarter": SecretaryAssessment.quarter, "score": SecretaryAssessment.score_centi}
APPRAISAL_SORTABLE = {"id": DebriefingAppraisal.id, "year": DebriefingAppraisal.year,
                      "year_score": DebriefingAppraisal.year_score_centi, "grade": DebriefingAppraisal.grade,
                      "appraised_on": DebriefingAppraisal.appraised_on}


def quarterly_average(scores: list[Decimal]) -> Decimal:
    return round_half_up(sum(scores, Decimal(0)) / len(scores))


def year_score(quarterly: Decimal, reviewers: Decimal, weight: Decimal) -> Decimal:
    """quarterly average × w + reviewers' year-end score × (1 − w), half up to 2 places."""
    return round_half_up(quarterly * weight + reviewers * (1 - weight))


def _assessed_org(session: Session, actor: Actor, org_id: int, what: str) -> Organization:
    org = org_in_scope(session, actor, org_id)
    if org.level == OrgLevel.city:
        raise invalid(["body", "org_id"], "the city has no level above to assess it")
    require_level_above(actor, org.path, what)
    return org


def _require_secretary(session: Session, person_id: int, org: Organization, start: dt.date, end: dt.date,
                       when: str) -> None:
    if session.get(Person, person_id) is None or not holds_position(
            session, person_id=person_id, org_id=org.id, start=start, end=end,
            title=PositionTitle.secretary):
        raise invalid(["body", "person_id"], f"person {person_id} was not the secretary of organisation {org.id} "
                      f"in {when}")


def _appraisal_exists(session: Session, org_id: int, year: int) -> bool:
    return session.scalar(select(DebriefingAppraisal.id).where(
        DebriefingAppraisal.org_id == org_id, DebriefingAppraisal.year == year)) is not None


# ---------------------------------------------------------------------------
# Quarterly assessments


def get_assessment(session: Session, actor: Actor, assessment_id: int) -> SecretaryAssessment:
    return get_in_scope(session, actor, SecretaryAssessment, assessment_id, "Secretary assessment")[0]


def assessment_public(a: SecretaryAssessment) -> AssessmentPublic:
    return AssessmentPublic.model_validate(a, update={"score": from_centi(a.score_centi)})


@dataclass
class AssessmentFilters:
    year: int | None = None
    quarter: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_assessments(session: Session, actor: Actor, f: AssessmentFilters,
                     params: PageParams) -> tuple[list[SecretaryAssessment], int]:
    A = SecretaryAssessment  # noqa: N806
    stmt = org_filter(session, actor, select(A), A.org_id, f.org_id, f.subtree)
    for column, value in ((A.year, f.year), (A.quarter, f.quarter), (A.person_id, f.person_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=ASSESSMENT_SORTABLE,
                      default=[col(A.year).desc(), A.org_id, A.quarter], tiebreak=A.id)


def create_assessment(session: Session, actor: Actor, data: AssessmentCreate) -> SecretaryAssessment:
    """The level above scores the secretary's quarter (once per organisation and quarter)."""
    org = _assessed_org(session, actor, data.org_id, "assess its secretary")
    start, end = quarter_bounds(data.year, data.quarter)
    _require_secretary(session, data.person_id, org, start, end, f"{data.year} Q{data.quarter}")
    if data.assessed_on < start:
        raise invalid(["body", "assessed_on"], f"a Q{data.quarter} assessment is made from {start.isoformat()} on")
    not_future(data.assessed_on, ["body", "assessed_on"])
    if _appraisal_exists(session, org.id, data.year):
        raise conflict("appraisal_recorded", f"Organisation {org.id}'s {data.year} appraisal is recorded; "
                       "its quarterly scores are frozen.")
    if session.scalar(select(SecretaryAssessment.id).where(
            SecretaryAssessment.org_id == org.id, SecretaryAssessment.year == data.year,
            SecretaryAssessment.quarter == data.quarter)):
        raise conflict("duplicate_assessment",
                       f"Organisation {org.id} already has a {data.year} Q{data.quarter} assessment; correct it.")
    row = SecretaryAssessment(org_id=org.id, person_id=data.person_id, year=data.year, quarter=data.quarter,
                              score_centi=to_centi(data.score), assessed_on=data.assessed_on, comment=data.comment,
                              assessed_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="secretary_assessment.create", entity="secretary_assessment",
                 entity_id=row.id, org_id=row.org_id, after=audit.snapshot(row))
    return row


def update_assessment(session: Session, actor: Actor, row: SecretaryAssessment, data: AssessmentUpdate,
                      expected_version: int) -> SecretaryAssessment:
    """Correct a quarterly score or comment, until the year's appraisal is recorded."""
    org = session.get(Organization, row.org_id)
    assert org is not None
    require_level_above(actor, org.path, "correct its secretary's assessment")
    session.refresh(row, with_for_update=True)  # the appraisal locks these rows too: one of the two waits
    if _appraisal_exists(session, row.org_id, row.year):
        raise conflict("appraisal_recorded", f"Organisation {row.org_id}'s {row.year} appraisal is recorded; "
                       "its quarterly scores are frozen.")
    changes = data.model_dump(exclude_unset=True)
    if "score" in changes:
        if changes["score"] is None:
            raise invalid(["body", "score"], "score cannot be empty")
        changes["score_centi"] = to_centi(changes.pop("score"))
    before = audit.snapshot(row)
    versioned_update(session, row, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(row))
    audit.record(session, actor=actor, action="secretary_assessment.update", entity="secretary_assessment",
                 entity_id=row.id, org_id=row.org_id, before=b, after=a)
    return row


# ---------------------------------------------------------------------------
# Year-end appraisal


def get_appraisal(session: Session, actor: Actor, appraisal_id: int) -> DebriefingAppraisal:
    return get_in_scope(session, actor, DebriefingAppraisal, appraisal_id, "Debriefing appraisal")[0]


def appraisal_publics(session: Session, items: list[DebriefingAppraisal]) -> list[AppraisalPublic]:
    """With names and the problems each appraisal opened: two statements for the whole page."""
    from app.models.responsibilities import Problem

    names = names_of(session, {a.person_id for a in items})
    problems: dict[int, list[int]] = {}
    ids = [a.id for a in items]
    if ids:
        for link_id, pid in session.execute(
                select(Problem.link_id, Problem.id)
                .where(Problem.link_entity == PROBLEM_LINK, col(Problem.link_id).in_(ids)).order_by(Problem.id)):
            problems.setdefault(link_id, []).append(pid)
    return [AppraisalPublic.model_validate(a, update={
        "person_name": names.get(a.person_id), "reviewers_score": from_centi(a.reviewers_score_centi),
        "quarterly_average": from_centi(a.quarterly_average_centi), "quarterly_weight": from_e4(a.quarterly_weight_e4),
        "year_score": from_centi(a.year_score_centi), "problem_ids": problems.get(a.id, []),
    }) for a in items]


@dataclass
class AppraisalFilters:
    year: int | None = None
    grade: str | None = None
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_appraisals(session: Session, actor: Actor, f: AppraisalFilters,
                    params: PageParams) -> tuple[list[DebriefingAppraisal], int]:
    A = DebriefingAppraisal  # noqa: N806
    stmt = org_filter(session, actor, select(A), A.org_id, f.org_id, f.subtree)
    for column, value in ((A.year, f.year), (A.grade, f.grade), (A.person_id, f.person_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=APPRAISAL_SORTABLE, default=[col(A.year).desc(), A.org_id],
                      tiebreak=A.id)


def _open_problems(session: Session, actor: Actor, appraisal: DebriefingAppraisal,
                   problems: list[AppraisalProblem]) -> None:
    from app.services.responsibilities import open_problem

    for i, p in enumerate(problems):
        if p.deadline is not None and p.deadline <= appraisal.appraised_on:
            raise invalid(["body", "problems", i, "deadline"], "the rectification deadline follows the appraisal")
    for p in problems:
        digest = hashlib.sha256(p.description.strip().encode()).hexdigest()[:24]
        open_problem(
            session, actor, org_id=appraisal.org_id, year=appraisal.year, source="debriefing_appraisal",
            description=p.description, cause_analysis=p.cause_analysis,
            rectification_measures=p.rectification_measures, deadline=p.deadline,
            link_entity=PROBLEM_LINK, link_id=appraisal.id, origin_key=f"{PROBLEM_LINK}:{appraisal.id}:{digest}",
            responsible_person_id=appraisal.person_id,
        )


def create_appraisal(session: Session, actor: Actor, data: AppraisalCreate) -> DebriefingAppraisal:
    """The level above's year-end appraisal: the year score, the grade and the problems found."""
    org = _assessed_org(session, actor, data.org_id, "appraise its secretary")
    _require_secretary(session, data.person_id, org, dt.date(data.year, 1, 1), dt.date(data.year, 12, 31),
                       str(data.year))
    if data.appraised_on.year not in (data.year, data.year + 1):
        raise invalid(["body", "appraised_on"],
                      f"a {data.year} appraisal is made in {data.year} or early the next year")
    not_future(data.appraised_on, ["body", "appraised_on"])
    if _appraisal_exists(session, org.id, data.year):
        raise conflict("duplicate_appraisal", f"Organisation {org.id} already has a {data.year} appraisal.")
    quarters = list(session.scalars(
        select(SecretaryAssessment).where(SecretaryAssessment.org_id == org.id, SecretaryAssessment.year == data.year)
        .order_by(SecretaryAssessment.quarter).with_for_update()
    ))
    missing = sorted({1, 2, 3, 4} - {q.quarter for q in quarters})
    if missing:
        raise conflict("quarterly_assessments_missing",
                       f"Organisation {org.id} lacks its {data.year} quarterly assessments for quarters {missing}.")
    weight = require_setting(session, SettingKey.quarterly_weight, data.year)
    q_avg = quarterly_average([from_centi(q.score_centi) for q in quarters])  # type: ignore[misc]
    score = year_score(q_avg, data.reviewers_score, weight)
    grade = grade_for(score, thresholds(session, GradeScheme.secretary_appraisal, data.year))
    row = DebriefingAppraisal(
        org_id=org.id, person_id=data.person_id, year=data.year, report=data.report,
        reviewers_score_centi=to_centi(data.reviewers_score), quarterly_average_centi=to_centi(q_avg),
        quarterly_weight_e4=to_e4(weight), year_score_centi=to_centi(score), grade=grade,
        appraised_on=data.appraised_on, appraised_by=actor.user_id,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="debriefing_appraisal.create", entity="debriefing_appraisal",
                 entity_id=row.id, org_id=row.org_id, after=audit.snapshot(row, exclude={"report"}))
    _open_problems(session, actor, row, data.problems)
    return row


def add_problems(session: Session, actor: Actor, row: DebriefingAppraisal,
                 problems: list[AppraisalProblem]) -> DebriefingAppraisal:
    """Problems found after the appraisal was recorded, opened the same way."""
    org = session.get(Organization, row.org_id)
    assert org is not None
    require_level_above(actor, org.path, "record the problems its appraisal found")
    _open_problems(session, actor, row, problems)
    return row


# ---------------------------------------------------------------------------
# Ranking


def ranking(session: Session, actor: Actor, *, year: int, org_id: int | None) -> Ranking:
    """The year's appraisals ranked within a township (every organisation below it), or, for the city,
    the townships' own appraisals; three statements whatever the size."""
    root_id = org_id if org_id is not None else actor.org_id
    assert root_id is not None
    path = require_org_in_scope(session, actor, root_id)  # 1
    root = session.get(Organization, root_id)  # 2
    assert root is not None
    if root.level == OrgLevel.township:
        where = [in_subtree(Organization.path, path), Organization.id != root.id]
    elif root.level == OrgLevel.city:
        where = [Organization.parent_id == root.id, Organization.level == OrgLevel.township]
    else:
        raise invalid(["query", "org_id"], "rankings are within a township, or of the townships within the city")
    rows = session.execute(  # 3
        select(DebriefingAppraisal, Organization.name, Person.name)
        .join(Organization, Organization.id == DebriefingAppraisal.org_id)
        .join(Person, Person.id == DebriefingAppraisal.person_id)
        .where(DebriefingAppraisal.year == year, *where)
        .order_by(col(DebriefingAppraisal.year_score_centi).desc(),
                  col(DebriefingAppraisal.reviewers_score_centi).desc(),
                  DebriefingAppraisal.person_id, DebriefingAppraisal.org_id)
    ).all()
    items = [
        RankingRow(rank=i, appraisal_id=a.id, org_id=a.org_id, org_name=org_name, person_id=a.person_id,
                   person_name=person_name, year_score=from_centi(a.year_score_centi),
                   reviewers_score=from_centi(a.reviewers_score_centi),
                   quarterly_average=from_centi(a.quarterly_average_centi), grade=a.grade)
        for i, (a, org_name, person_name) in enumerate(rows, start=1)
    ]
    return Ranking(year=year, org_id=root_id, tie_break=TIE_BREAK, items=items)
