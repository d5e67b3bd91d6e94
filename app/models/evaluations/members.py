"""Democratic evaluation of members (民主评议党员), disposal of unqualified members (不合格党员处置),
commendation candidates (评先选优) and the village reserve cadre pool (村级后备干部)."""

from __future__ import annotations

import datetime as dt

from pydantic import model_validator
from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.models.common import (
    CreateModel,
    UpdateModel,
    created_at_field,
    enum_field,
    id_field,
    updated_at_field,
    version_column,
)
from app.models.evaluations.common import MAX_VOTES, TEXT_MAX, SettingValue, dates_in_range, year_field
from app.models.posts import PostReviewGrade


class CommendationReason(LabeledEnum):
    """Why a member is a commendation candidate in a year."""

    rated_excellent = "rated_excellent", "民主评议优秀", "Rated excellent in the democratic evaluation"
    post_review_excellent = "post_review_excellent", "设岗定责考评优秀", "Excellent duty-post review"


class MemberRating(LabeledEnum):
    excellent = "excellent", "优秀", "Excellent"
    qualified = "qualified", "合格", "Qualified"
    basically_qualified = "basically_qualified", "基本合格", "Basically qualified"
    unqualified = "unqualified", "不合格", "Unqualified"


class DemocraticEvaluationStatus(LabeledEnum):
    draft = "draft", "评议中", "Draft"
    finalized = "finalized", "已定格", "Finalised"


class DemocraticEvaluation(SQLModel, table=True):
    """One year's democratic evaluation session of a branch or village organisation."""

    __tablename__ = "democratic_evaluation"
    __table_args__ = (UniqueConstraint("org_id", "year", name="uq_democratic_evaluation_org_year"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    year: int = Field(index=True)
    held_on: dt.date | None = None
    status: DemocraticEvaluationStatus = enum_field(DemocraticEvaluationStatus.draft, index=True)
    excellent_cap_e4: int | None = None  # the cap applied when finalised (null: none)
    finalized_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    finalized_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DemocraticEvaluationEntry(SQLModel, table=True):
    """One member in a session: self-evaluation, mutual-evaluation tallies, the organisation's rating."""

    __tablename__ = "democratic_evaluation_entry"
    __table_args__ = (
        UniqueConstraint("evaluation_id", "person_id", name="uq_democratic_evaluation_entry_evaluation_person"),
        Index("ix_democratic_evaluation_entry_person_id_year", "person_id", "year"),
        CheckConstraint(
            "votes_excellent >= 0 AND votes_qualified >= 0 AND votes_basically_qualified >= 0 "
            "AND votes_unqualified >= 0",
            name="votes_non_negative",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="democratic_evaluation.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    org_id: int = Field(foreign_key="organization.id", index=True)
    year: int
    self_evaluation: str | None = Field(default=None, sa_type=Text)
    votes_excellent: int = 0
    votes_qualified: int = 0
    votes_basically_qualified: int = 0
    votes_unqualified: int = 0
    rating: MemberRating | None = enum_field(None, index=True)
    rating_note: str | None = Field(default=None, max_length=500)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DisposalMeasure(LabeledEnum):
    corrective_deadline = "corrective_deadline", "限期改正", "Correct within a deadline"
    persuade_to_withdraw = "persuade_to_withdraw", "劝其退党", "Persuade to withdraw"
    removal = "removal", "除名", "Removal"


class DisposalStatus(LabeledEnum):
    open = "open", "待处置", "Awaiting the branch's decision"
    decided = "decided", "待审批", "Decided, awaiting the level above"
    approved = "approved", "已批准", "Approved by the level above"


class DisposalCase(SQLModel, table=True):
    """What follows an unqualified rating: the branch's measure, approved by the level above."""

    __tablename__ = "disposal_case"
    __table_args__ = (
        CheckConstraint(
            "status = 'open' OR (measure IS NOT NULL AND decided_on IS NOT NULL)", name="decided_has_measure"
        ),
        CheckConstraint(
            "status <> 'approved' OR (approved_on IS NOT NULL AND approving_org_id IS NOT NULL)",
            name="approved_has_approver",
        ),
        CheckConstraint("measure <> 'corrective_deadline' OR correct_by IS NOT NULL", name="deadline_has_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="democratic_evaluation_entry.id", unique=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    year: int
    status: DisposalStatus = enum_field(DisposalStatus.open, index=True)
    measure: DisposalMeasure | None = enum_field(None)
    decided_on: dt.date | None = None
    correct_by: dt.date | None = None
    decision_note: str | None = Field(default=None, max_length=2000)
    approved_on: dt.date | None = None
    approving_org_id: int | None = Field(default=None, foreign_key="organization.id")
    approved_by: int | None = Field(default=None, foreign_key="user_account.id")
    rejection_reason: str | None = Field(default=None, max_length=2000)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class ReserveStatus(LabeledEnum):
    active = "active", "在库", "In the pool"
    released = "released", "已出库", "Released"


class ReserveCadre(SQLModel, table=True):
    __tablename__ = "reserve_cadre"
    __table_args__ = (
        Index("uq_reserve_cadre_active", "org_id", "person_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        CheckConstraint("released_on IS NULL OR released_on >= added_on", name="released_after_added"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    reason: str = Field(max_length=2000)
    added_on: dt.date
    status: ReserveStatus = enum_field(ReserveStatus.active, index=True)
    released_on: dt.date | None = None
    release_reason: str | None = Field(default=None, max_length=2000)
    added_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


# ---------------------------------------------------------------------------
# API schemas


class DemocraticEvaluationCreate(CreateModel):
    org_id: int = id_field(description="A branch or village organisation; its members are enrolled")
    year: int = year_field()
    held_on: dt.date | None = None

    _dates = dates_in_range("held_on")


class EntryAdd(CreateModel):
    person_id: int = id_field()


class EntryUpdate(UpdateModel):
    self_evaluation: str | None = Field(default=None, max_length=TEXT_MAX)
    votes_excellent: int | None = Field(default=None, ge=0, le=MAX_VOTES)
    votes_qualified: int | None = Field(default=None, ge=0, le=MAX_VOTES)
    votes_basically_qualified: int | None = Field(default=None, ge=0, le=MAX_VOTES)
    votes_unqualified: int | None = Field(default=None, ge=0, le=MAX_VOTES)
    rating: MemberRating | None = None
    rating_note: str | None = Field(default=None, max_length=500)


class DemocraticEvaluationPublic(SQLModel):
    id: int
    org_id: int
    year: int
    held_on: dt.date | None
    status: DemocraticEvaluationStatus
    excellent_cap: SettingValue | None = Field(description="The share cap applied when finalised")
    finalized_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    members: int = 0
    rated: int = 0


class EntryPublic(SQLModel):
    id: int
    evaluation_id: int
    person_id: int
    person_name: str | None = None
    org_id: int
    year: int
    self_evaluation: str | None
    votes_excellent: int
    votes_qualified: int
    votes_basically_qualified: int
    votes_unqualified: int
    post_review_grades: list[PostReviewGrade] = Field(
        default=[], description="Evidence: the member's duty-post review grades of the year")
    rating: MemberRating | None
    rating_note: str | None
    version: int
    updated_at: dt.datetime


class DisposalDecision(CreateModel):
    measure: DisposalMeasure
    decided_on: dt.date
    correct_by: dt.date | None = Field(default=None, description="Required for corrective_deadline")
    note: str | None = Field(default=None, max_length=2000)

    _dates = dates_in_range("decided_on", "correct_by")

    @model_validator(mode="after")
    def _deadline(self) -> DisposalDecision:
        if self.measure == DisposalMeasure.corrective_deadline:
            if self.correct_by is None:
                raise ValueError("correct_by is required for corrective_deadline")
            if self.correct_by <= self.decided_on:
                raise ValueError("correct_by must be after decided_on")
        elif self.correct_by is not None:
            raise ValueError("correct_by is only for corrective_deadline")
        return self


class DisposalApproval(CreateModel):
    approved_on: dt.date

    _dates = dates_in_range("approved_on")


class DisposalRejection(CreateModel):
    reason: str = Field(min_length=1, max_length=2000)


class DisposalCasePublic(SQLModel):
    id: int
    entry_id: int
    person_id: int
    person_name: str | None = None
    org_id: int
    year: int
    status: DisposalStatus
    measure: DisposalMeasure | None
    decided_on: dt.date | None
    correct_by: dt.date | None
    decision_note: str | None
    approved_on: dt.date | None
    approving_org_id: int | None
    rejection_reason: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CommendationCandidate(SQLModel):
    person_id: int
    person_name: str
    org_id: int
    year: int
    rated_excellent: bool = Field(description="Rated excellent in the year's (finalised) democratic evaluation")
    post_review_excellent: bool = Field(description="An excellent duty-post review in the year")


class ReserveCadreCreate(CreateModel):
    org_id: int = id_field()
    person_id: int = id_field()
    reason: str = Field(min_length=1, max_length=2000)
    added_on: dt.date

    _dates = dates_in_range("added_on")


class ReserveCadreRelease(CreateModel):
    released_on: dt.date
    reason: str = Field(min_length=1, max_length=2000)

    _dates = dates_in_range("released_on")


class ReserveCadrePublic(SQLModel):
    id: int
    org_id: int
    person_id: int
    person_name: str | None = None
    reason: str
    added_on: dt.date
    status: ReserveStatus
    released_on: dt.date | None
    release_reason: str | None
    version: int
    created_at: dt.datetime
