"""Problem lists (问题清单): problems, their rectification and verification, quarterly inspections."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator
from sqlalchemy import CheckConstraint, Index
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
from app.models.organizations import OrgLevel
from app.models.responsibilities.common import TEXT, SummaryOrg

YEAR_MIN, YEAR_MAX = 2000, 2100


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
        # Covers the summary (issue 8): a year's problems grouped by organisation and status without the table.
        Index("ix_problem_summary", "year", "org_id", "status", "deadline", "escalated_at", "created_at",
              "verified_at"),
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
    escalation_level: OrgLevel | None = enum_field(None)
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


class QuarterlyInspection(SQLModel, table=True):
    """A quarterly inspection visit (季度调研督导) by the level above; it may open problems."""

    __tablename__ = "quarterly_inspection"
    __table_args__ = (CheckConstraint("quarter BETWEEN 1 AND 4", name="quarter_range"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True, description="The inspected organisation")
    visited_on: dt.date = Field(index=True)
    year: int
    quarter: int
    inspectors: str = Field(max_length=500)
    findings: str = Field(max_length=4000)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


# ---------------------------------------------------------------- API schemas


class ProblemCreate(CreateModel):
    org_id: int = id_field()
    year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    source: ProblemSource
    description: str = Field(min_length=1, max_length=TEXT)
    cause_analysis: str | None = Field(default=None, max_length=TEXT)
    rectification_measures: str | None = Field(default=None, max_length=TEXT)
    responsible_person_id: int | None = id_field(default=None)
    deadline: dt.date | None = None

    _date = field_validator("deadline")(date_in_range)


class ProblemUpdate(UpdateModel):
    description: str | None = Field(default=None, min_length=1, max_length=TEXT)
    cause_analysis: str | None = Field(default=None, max_length=TEXT)
    rectification_measures: str | None = Field(default=None, max_length=TEXT)
    responsible_person_id: int | None = id_field(default=None)
    deadline: dt.date | None = Field(default=None, description="Only the level above changes a set deadline")

    _date = field_validator("deadline")(date_in_range)


class ProblemSubmit(CreateModel):
    note: str | None = Field(default=None, max_length=TEXT, description="What was done")


class ProblemReject(CreateModel):
    reason: str = Field(min_length=1, max_length=TEXT)


class ProblemPublic(SQLModel):
    id: int
    org_id: int
    org_name: str
    year: int
    source: ProblemSource
    description: str
    cause_analysis: str | None
    rectification_measures: str | None
    responsible_person_id: int | None
    deadline: dt.date | None
    status: ProblemStatus
    rejection_count: int
    submitted_at: dt.datetime | None
    submission_note: str | None
    verified_by: int | None
    verified_at: dt.datetime | None
    link_entity: str | None
    link_id: int | None
    overdue: bool = Field(description="The deadline has passed and it is not verified (computed at request time)")
    days_overdue: int
    escalated: bool
    escalated_at: dt.date | None
    escalation_level: OrgLevel | None
    escalated_to_org_id: int | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ProblemRejectionPublic(SQLModel):
    id: int
    reason: str
    rejected_by: int | None
    rejected_at: dt.datetime


class ProblemDetail(ProblemPublic):
    rejections: list[ProblemRejectionPublic]


class EscalationResult(SQLModel):
    as_of: dt.date
    threshold_days: int
    escalated: int
    problem_ids: list[int]


class InspectionProblemIn(CreateModel):
    org_id: int | None = id_field(default=None, description="The inspected organisation or one below it; "
                                                            "defaults to the inspected organisation")
    description: str = Field(min_length=1, max_length=TEXT)
    cause_analysis: str | None = Field(default=None, max_length=TEXT)
    rectification_measures: str | None = Field(default=None, max_length=TEXT)
    responsible_person_id: int | None = id_field(default=None)
    deadline: dt.date | None = None

    _date = field_validator("deadline")(date_in_range)


class InspectionCreate(CreateModel):
    org_id: int = id_field()
    visited_on: dt.date
    inspectors: str = Field(min_length=1, max_length=500)
    findings: str = Field(min_length=1, max_length=4000)
    problems: list[InspectionProblemIn] = Field(default_factory=list, max_length=50)

    _date = field_validator("visited_on")(date_in_range)


class InspectionPublic(SQLModel):
    id: int
    org_id: int
    org_name: str
    visited_on: dt.date
    year: int
    quarter: int
    inspectors: str
    findings: str
    problem_count: int
    version: int
    created_at: dt.datetime


class InspectionDetail(InspectionPublic):
    problems: list[ProblemPublic]


class ProblemSummaryRow(SummaryOrg):
    total: int
    open: int
    rectifying: int
    submitted: int
    verified: int
    overdue: int
    escalated: int
    avg_days_to_verify: float | None
