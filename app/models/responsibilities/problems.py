"""The three lists (实): responsibility letters, monthly lists and problem lists."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.models.common import created_at_field, enum_field, updated_at_field, version_column

TEXT = 2000  # long free text (descriptions, analyses, notes)


# ---------------------------------------------------------------- problems (问题清单)


class ProblemSource(LabeledEnum):
    debriefing_appraisal = "debriefing_appraisal", "述职评议", "Debriefing appraisal"
    quarterly_inspection = "quarterly_inspection", "季度调研督导", "Quarterly inspection"
    standards_audit = "standards_audit", "标准化建设检查", "Standards audit"
    frontline_visit = "frontline_visit", "力量下沉一线", "Frontline visit"
    other = "other", "其他", "Other"


class ProblemStatus(LabeledEnum):
    open = "open", "待整改", "Open"
    rectifying = "rectifying", "整改中", "Rectifying"
    submitted = "submitted", "已提交销号", "Submitted for verification"
    verified = "verified", "已验收销号", "Verified"


class Problem(SQLModel, table=True):
    """A problem an organisation must rectify; only the level above verifies the rectification."""

    __tablename__ = "problem"
    __table_args__ = (
        CheckConstraint("rejection_count >= 0", name="rejection_count_non_negative"),
        CheckConstraint("year BETWEEN 2000 AND 2100", name="year_range"),
        CheckConstraint(
            "(status = 'verified') = (verified_at IS NOT NULL)", name="verified_has_timestamp"
        ),
        Index("ix_problem_link", "link_entity", "link_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    year: int = Field(index=True)
    source: ProblemSource = enum_field(index=True)
    description: str = Field(max_length=TEXT)
    cause_analysis: str | None = Field(default=None, max_length=TEXT)
    rectification_measures: str | None = Field(default=None, max_length=TEXT)
    responsible_person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    deadline: dt.date | None = Field(default=None, index=True)
    status: ProblemStatus = enum_field(ProblemStatus.open, index=True)
    rejection_count: int = 0
    submitted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    submission_note: str | None = Field(default=None, max_length=TEXT)
    verified_by: int | None = Field(default=None, foreign_key="user_account.id")
    verified_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What opened it (an inspection, a standards audit, an evaluation...) and, for callers that
    # must open a problem at most once, their key for it.
    link_entity: str | None = Field(default=None, max_length=64)
    link_id: int | None = None
    origin_key: str | None = Field(default=None, max_length=128, unique=True)
    # On-site guidance (力量下沉一线) for a problem overdue too long.
    escalated_at: dt.date | None = Field(default=None, index=True)
    escalation_level: str | None = Field(default=None, max_length=32)
    escalated_to_org_id: int | None = Field(default=None, foreign_key="organization.id")
    opened_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class ProblemRejection(SQLModel, table=True):
    """One rejected submission: the reason stays on record after the problem is verified."""

    __tablename__ = "problem_rejection"

    id: int | None = Field(default=None, primary_key=True)
    problem_id: int = Field(foreign_key="problem.id", index=True)
    reason: str = Field(max_length=TEXT)
    rejected_by: int | None = Field(default=None, foreign_key="user_account.id")
    rejected_at: dt.datetime = created_at_field()
