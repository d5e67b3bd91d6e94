"""Secretaries' assessment (考核问效): quarterly routine assessments and the year-end debriefing appraisal.

quarterly average = mean of the four quarterly scores, half up to 2 places
year score        = quarterly average × w + reviewers' year-end score × (1 − w), half up to 2 places
(w = the `quarterly_weight` setting of the year, default 0.5); the grade comes from the
`secretary_appraisal` thresholds. Ranking ties: see services/evaluations/secretaries.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import (
    CreateModel,
    UpdateModel,
    created_at_field,
    enum_field,
    id_field,
    updated_at_field,
    version_column,
)
from app.models.evaluations.common import (
    REPORT_MAX,
    TEXT_MAX,
    Grade,
    Score,
    ScoreOut,
    SettingValue,
    dates_in_range,
    year_field,
)


class SecretaryAssessment(SQLModel, table=True):
    """The level above's routine assessment of an organisation's secretary in one quarter."""

    __tablename__ = "secretary_assessment"
    __table_args__ = (
        UniqueConstraint("org_id", "year", "quarter", name="uq_secretary_assessment_org_year_quarter"),
        CheckConstraint("quarter BETWEEN 1 AND 4", name="quarter_range"),
        CheckConstraint("score_centi BETWEEN 0 AND 10000", name="score_range"),
        Index("ix_secretary_assessment_year_org_id", "year", "org_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    person_id: int = Field(foreign_key="person.id", index=True)
    year: int
    quarter: int
    score_centi: int
    assessed_on: dt.date
    comment: str | None = Field(default=None, max_length=2000)
    assessed_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DebriefingAppraisal(SQLModel, table=True):
    """The year-end debriefing appraisal (述职评议) of an organisation's secretary, with the year score."""

    __tablename__ = "debriefing_appraisal"
    __table_args__ = (
        UniqueConstraint("org_id", "year", name="uq_debriefing_appraisal_org_year"),
        CheckConstraint(
            "reviewers_score_centi BETWEEN 0 AND 10000 AND quarterly_average_centi BETWEEN 0 AND 10000 "
            "AND year_score_centi BETWEEN 0 AND 10000",
            name="scores_range",
        ),
        CheckConstraint("quarterly_weight_e4 BETWEEN 0 AND 10000", name="weight_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    year: int = Field(index=True)
    report: str = Field(sa_type=Text)
    reviewers_score_centi: int
    quarterly_average_centi: int
    quarterly_weight_e4: int
    year_score_centi: int
    grade: Grade = enum_field(index=True)
    appraised_on: dt.date
    appraised_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()


# ---------------------------------------------------------------------------
# API schemas


class AssessmentCreate(CreateModel):
    org_id: int = id_field()
    person_id: int = id_field(description="The organisation's secretary during the quarter")
    year: int = year_field()
    quarter: int = Field(ge=1, le=4)
    score: Score
    assessed_on: dt.date
    comment: str | None = Field(default=None, max_length=2000)

    _dates = dates_in_range("assessed_on")


class AssessmentUpdate(UpdateModel):
    score: Score | None = None
    comment: str | None = Field(default=None, max_length=2000)


class AssessmentPublic(SQLModel):
    id: int
    org_id: int
    person_id: int
    year: int
    quarter: int
    score: ScoreOut
    assessed_on: dt.date
    comment: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class AppraisalProblem(CreateModel):
    description: str = Field(min_length=1, max_length=TEXT_MAX)
    cause_analysis: str | None = Field(default=None, max_length=TEXT_MAX)
    rectification_measures: str | None = Field(default=None, max_length=TEXT_MAX)
    deadline: dt.date | None = None

    _dates = dates_in_range("deadline")


class AppraisalCreate(CreateModel):
    org_id: int = id_field()
    person_id: int = id_field(description="The organisation's secretary during the year")
    year: int = year_field()
    report: str = Field(min_length=1, max_length=REPORT_MAX)
    reviewers_score: Score
    appraised_on: dt.date
    problems: list[AppraisalProblem] = Field(
        default=[], max_length=50,
        description="Problems found: each opens a problem on the problem list (source debriefing_appraisal)")

    _dates = dates_in_range("appraised_on")


class AppraisalProblems(CreateModel):
    problems: list[AppraisalProblem] = Field(min_length=1, max_length=50)


class AppraisalPublic(SQLModel):
    id: int
    org_id: int
    person_id: int
    person_name: str | None = None
    year: int
    report: str
    reviewers_score: ScoreOut
    quarterly_average: ScoreOut
    quarterly_weight: SettingValue
    year_score: ScoreOut
    grade: Grade
    appraised_on: dt.date
    problem_ids: list[int] = []
    version: int
    created_at: dt.datetime


class RankingRow(SQLModel):
    rank: int
    appraisal_id: int
    org_id: int
    org_name: str
    person_id: int
    person_name: str
    year_score: ScoreOut
    reviewers_score: ScoreOut
    quarterly_average: ScoreOut
    grade: Grade


class Ranking(SQLModel):
    year: int
    org_id: int = Field(description="The township ranked within (or the city, ranking its townships)")
    tie_break: str
    items: list[RankingRow]
