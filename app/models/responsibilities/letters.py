"""Responsibility letters (责任清单, 三张责任书), their items, and the year-end settlement (对单交账)."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator
from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.models.common import (
    CreateModel,
    UpdateModel,
    created_at_field,
    date_in_range,
    enum_field,
    id_field,
    updated_at_field,
    version_column,
)
from app.models.responsibilities.common import TEXT, TITLE, SummaryOrg, TaskCategory

YEAR_MIN, YEAR_MAX = 2000, 2100
MAX_WEIGHT = 1000


class LetterKind(LabeledEnum):
    organization = "organization", "组织责任书", "Organisation's letter"
    secretary = "secretary", "书记责任书", "Secretary's letter"
    committee_member = "committee_member", "班子成员责任书", "Committee member's letter"


class LetterStatus(LabeledEnum):
    draft = "draft", "草拟", "Draft"
    issued = "issued", "已下达", "Issued"
    signed = "signed", "已签订", "Signed"
    settling = "settling", "对单交账中", "Settling"
    settled = "settled", "已交账", "Settled"


class ItemOutcome(LabeledEnum):
    completed = "completed", "已完成", "Completed"
    partly_completed = "partly_completed", "部分完成", "Partly completed"
    not_completed = "not_completed", "未完成", "Not completed"


class ResponsibilityLetter(SQLModel, table=True):
    __tablename__ = "responsibility_letter"
    __table_args__ = (
        CheckConstraint("(kind = 'organization') = (holder_person_id IS NULL)", name="holder_matches_kind"),
        CheckConstraint(f"year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
        CheckConstraint("score IS NULL OR score >= 0", name="score_non_negative"),
        # One organisation letter and one secretary letter per organisation and year ...
        Index(
            "uq_responsibility_letter_org_year_kind", "org_id", "year", "kind", unique=True,
            sqlite_where=text("kind IN ('organization', 'secretary')"),
            postgresql_where=text("kind IN ('organization', 'secretary')"),
        ),
        # ... and one committee-member letter per member and year.
        Index(
            "uq_responsibility_letter_member_year", "org_id", "year", "holder_person_id", unique=True,
            sqlite_where=text("kind = 'committee_member'"),
            postgresql_where=text("kind = 'committee_member'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    kind: LetterKind = enum_field()
    holder_person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    title: str | None = Field(default=None, max_length=TITLE)
    status: LetterStatus = enum_field(LetterStatus.draft, index=True)
    issued_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    issued_by: int | None = Field(default=None, foreign_key="user_account.id")
    signed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    signed_by: int | None = Field(default=None, foreign_key="user_account.id")
    settled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    settled_by: int | None = Field(default=None, foreign_key="user_account.id")
    score: int | None = Field(default=None, description="Sum of the item scores, fixed when settled")
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class LetterItem(SQLModel, table=True):
    __tablename__ = "responsibility_letter_item"
    __table_args__ = (
        CheckConstraint(f"weight > 0 AND weight <= {MAX_WEIGHT}", name="weight_range"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= weight)", name="score_within_weight"),
        CheckConstraint("score IS NULL OR outcome IS NOT NULL", name="scored_after_report"),
        UniqueConstraint("letter_id", "position", name="uq_responsibility_letter_item_position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    letter_id: int = Field(foreign_key="responsibility_letter.id", index=True)
    position: int
    title: str = Field(max_length=TITLE)
    category: TaskCategory = enum_field()
    target: str = Field(max_length=TEXT)
    weight: int
    due_date: dt.date
    outcome: ItemOutcome | None = enum_field(None)
    evidence_note: str | None = Field(default=None, max_length=TEXT)
    reported_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    reported_by: int | None = Field(default=None, foreign_key="user_account.id")
    score: int | None = None
    scored_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    scored_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


# ---------------------------------------------------------------- API schemas


class LetterItemCreate(CreateModel):
    title: str = Field(min_length=1, max_length=TITLE)
    category: TaskCategory
    target: str = Field(min_length=1, max_length=TEXT, description="The target or indicator")
    weight: int = Field(ge=1, le=MAX_WEIGHT, description="Points")
    due_date: dt.date = Field(description="Within the letter's year")

    _date = field_validator("due_date")(date_in_range)


class LetterItemUpdate(UpdateModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)
    category: TaskCategory | None = None
    target: str | None = Field(default=None, min_length=1, max_length=TEXT)
    weight: int | None = Field(default=None, ge=1, le=MAX_WEIGHT)
    due_date: dt.date | None = None

    _date = field_validator("due_date")(date_in_range)


class LetterCreate(CreateModel):
    year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    org_id: int = id_field()
    kind: LetterKind
    holder_person_id: int | None = id_field(default=None, description="Required for the two personal kinds")
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)
    items: list[LetterItemCreate] = Field(default_factory=list, max_length=100)


class LetterUpdate(UpdateModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)


class LetterGenerate(CreateModel):
    year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    org_id: int = id_field()
    subtree: bool = Field(default=False, description="Also every organisation below it")
    template_letter_id: int | None = id_field(default=None, description="Copy this letter's items into each draft")


class LetterGenerateResult(SQLModel):
    created: int
    letter_ids: list[int]


class ItemReport(CreateModel):
    item_id: int = id_field()
    outcome: ItemOutcome
    evidence_note: str = Field(min_length=1, max_length=TEXT)


class LetterReport(CreateModel):
    items: list[ItemReport] = Field(min_length=1, max_length=100)


class ItemScore(CreateModel):
    item_id: int = id_field()
    score: int = Field(ge=0, le=MAX_WEIGHT, description="From 0 to the item's weight")


class LetterScore(CreateModel):
    items: list[ItemScore] = Field(min_length=1, max_length=100)


class LetterItemPublic(SQLModel):
    id: int
    letter_id: int
    position: int
    title: str
    category: TaskCategory
    target: str
    weight: int
    due_date: dt.date
    outcome: ItemOutcome | None
    evidence_note: str | None
    reported_at: dt.datetime | None
    score: int | None
    scored_at: dt.datetime | None
    version: int


class LetterPublic(SQLModel):
    id: int
    year: int
    org_id: int
    org_name: str
    kind: LetterKind
    holder_person_id: int | None
    holder_name: str | None
    title: str | None
    status: LetterStatus
    issued_at: dt.datetime | None
    signed_at: dt.datetime | None
    settled_at: dt.datetime | None
    item_count: int
    total_weight: int
    score: int | None
    score_percent: float | None = Field(description="Score as a percentage of the total weight, once settled")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class LetterDetail(LetterPublic):
    items: list[LetterItemPublic]


class LetterSummaryRow(SummaryOrg):
    total: int
    letters: dict[str, dict[str, int]] = Field(description="Count of letters by kind, then by status")
    settled: int
    settled_score: int
    settled_weight: int
    score_percent: float | None
