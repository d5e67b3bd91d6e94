"""Dual debriefing, dual evaluation (双述双评) of village cadres.

villagers' score = Σ(votes × vote weight) ÷ votes cast, half up to 2 places
committee score  = mean of the township committee's duty scores, half up to 2 places
final score      = villagers' score × w + committee score × (1 − w), half up to 2 places
(w = the `villager_weight` setting of the year, default 0.4; vote weights default 100 / 60 / 0).
"""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator
from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.models.common import CreateModel, created_at_field, enum_field, id_field, updated_at_field, version_column
from app.models.evaluations.common import (
    MAX_VOTES,
    REPORT_MAX,
    TEXT_MAX,
    Grade,
    Score,
    ScoreOut,
    SettingValue,
    year_field,
)


class DualEvaluationStatus(LabeledEnum):
    draft = "draft", "测评中", "Draft"
    finalized = "finalized", "已定等次", "Finalised"


class DualEvaluation(SQLModel, table=True):
    __tablename__ = "dual_evaluation"
    __table_args__ = (
        UniqueConstraint("org_id", "person_id", "year", name="uq_dual_evaluation_org_person_year"),
        Index("ix_dual_evaluation_org_id_year", "org_id", "year"),
        CheckConstraint(
            "votes_satisfied >= 0 AND votes_basically_satisfied >= 0 AND votes_dissatisfied >= 0",
            name="votes_non_negative",
        ),
        CheckConstraint(
            "(villagers_score_centi IS NULL OR villagers_score_centi BETWEEN 0 AND 10000) "
            "AND (committee_score_centi IS NULL OR committee_score_centi BETWEEN 0 AND 10000) "
            "AND (final_score_centi IS NULL OR final_score_centi BETWEEN 0 AND 10000)",
            name="scores_range",
        ),
        CheckConstraint(
            "status <> 'finalized' OR (final_score_centi IS NOT NULL AND grade IS NOT NULL "
            "AND finalized_at IS NOT NULL)",
            name="finalized_has_grade",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")  # the village
    person_id: int = Field(foreign_key="person.id", index=True)  # the cadre
    year: int = Field(index=True)
    status: DualEvaluationStatus = enum_field(DualEvaluationStatus.draft, index=True)
    report_summary: str | None = Field(default=None, sa_type=Text)
    reported_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    votes_satisfied: int | None = None
    votes_basically_satisfied: int | None = None
    votes_dissatisfied: int | None = None
    villagers_score_centi: int | None = None
    committee_score_centi: int | None = None
    villager_weight_e4: int | None = None  # the w used, fixed when finalised
    final_score_centi: int | None = None
    grade: Grade | None = enum_field(None, index=True)
    finalized_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    finalized_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DualEvaluationDuty(SQLModel, table=True):
    """The cadre's report on one duty, and the township committee's score of it."""

    __tablename__ = "dual_evaluation_duty"
    __table_args__ = (
        UniqueConstraint("evaluation_id", "duty_id", name="uq_dual_evaluation_duty_evaluation_duty"),
        CheckConstraint("committee_score_centi IS NULL OR committee_score_centi BETWEEN 0 AND 10000",
                        name="score_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="dual_evaluation.id", index=True)
    duty_id: int = Field(foreign_key="cadre_duty.id", index=True)
    sort_order: int = 0
    report: str | None = Field(default=None, sa_type=Text)
    committee_score_centi: int | None = None


# ---------------------------------------------------------------------------
# API schemas


class DualEvaluationCreate(CreateModel):
    org_id: int = id_field(description="The village organisation")
    person_id: int = id_field(description="A cadre holding a position in the village during the year")
    year: int = year_field()


class DutyReport(CreateModel):
    duty_id: int = id_field()
    report: str = Field(min_length=1, max_length=TEXT_MAX)


class DebriefingReport(CreateModel):
    summary: str | None = Field(default=None, max_length=REPORT_MAX)
    duties: list[DutyReport] = Field(min_length=1, max_length=50)

    @field_validator("duties")
    @classmethod
    def _once(cls, value: list[DutyReport]) -> list[DutyReport]:
        if len({d.duty_id for d in value}) != len(value):
            raise ValueError("each duty may appear once")
        return value


class VillagerVotes(CreateModel):
    satisfied: int = Field(ge=0, le=MAX_VOTES)
    basically_satisfied: int = Field(ge=0, le=MAX_VOTES)
    dissatisfied: int = Field(ge=0, le=MAX_VOTES)


class DutyScore(CreateModel):
    duty_id: int = id_field()
    score: Score


class CommitteeScores(CreateModel):
    scores: list[DutyScore] = Field(min_length=1, max_length=50)

    @field_validator("scores")
    @classmethod
    def _once(cls, value: list[DutyScore]) -> list[DutyScore]:
        if len({d.duty_id for d in value}) != len(value):
            raise ValueError("each duty may be scored once")
        return value


class DualEvaluationPublic(SQLModel):
    id: int
    org_id: int
    person_id: int
    person_name: str | None = None
    year: int
    status: DualEvaluationStatus
    reported: bool = Field(description="The cadre's debriefing report covers every duty")
    votes_satisfied: int | None
    votes_basically_satisfied: int | None
    votes_dissatisfied: int | None
    villagers_score: ScoreOut | None
    committee_score: ScoreOut | None
    villager_weight: SettingValue | None = Field(description="The w used, fixed when finalised")
    final_score: ScoreOut | None
    grade: Grade | None
    finalized_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class DualEvaluationDutyPublic(SQLModel):
    duty_id: int
    code: str
    name: str
    report: str | None
    committee_score: ScoreOut | None


class DualEvaluationDetail(DualEvaluationPublic):
    report_summary: str | None
    duties: list[DualEvaluationDutyPublic]
    problem_id: int | None = Field(description="The problem an incompetent grade opened")


class GradeDistribution(SQLModel):
    township_id: int
    township_name: str
    draft: int
    excellent: int
    competent: int
    basically_competent: int
    incompetent: int
    finalized: int


class DutyAverage(SQLModel):
    duty_id: int
    code: str
    name: str
    evaluations: int
    average_committee_score: ScoreOut | None


class DualEvaluationSummary(SQLModel):
    year: int
    org_id: int
    subtree: bool
    finalized: int
    average_villagers_score: ScoreOut | None
    average_committee_score: ScoreOut | None
    average_final_score: ScoreOut | None
    by_township: list[GradeDistribution]
    duty_averages: list[DutyAverage] = Field(description="Finalised evaluations only; half up to 2 places")
