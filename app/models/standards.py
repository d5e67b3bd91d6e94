"""Standardisation (标准化建设): the catalogue, audits against it, venues and organisational life."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator, model_validator
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.core.money import Yuan
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
from app.models.organizations import OrgDomain

# ---------------------------------------------------------------------------
# Enums


class Aspect(LabeledEnum):
    organization_operation = "organization_operation", "组织运行", "Organisation operation"
    venue = "venue", "阵地建设", "Venues"
    organizational_life = "organizational_life", "组织生活", "Organisational life"
    excellence = "excellence", "创先争优", "Striving for excellence"
    records = "records", "内业管理", "Internal records"
    assessment = "assessment", "考核问效", "Assessment"


class StandardSetStatus(LabeledEnum):
    draft = "draft", "草稿", "Draft"
    published = "published", "已发布", "Published"
    retired = "retired", "已停用", "Retired"


class AuditKind(LabeledEnum):
    self_assessment = "self_assessment", "自评", "Self-assessment"
    review = "review", "上级考评", "Review by the level above"


class AuditStatus(LabeledEnum):
    draft = "draft", "草稿", "Draft"
    submitted = "submitted", "已提交", "Submitted"
    finalized = "finalized", "已定档", "Finalised"


class Rating(LabeledEnum):
    demonstration = "demonstration", "示范", "Demonstration"
    compliant = "compliant", "达标", "Compliant"
    backward = "backward", "后进", "Backward"


class FacilityCategory(LabeledEnum):
    room = "room", "四室", "Room"
    school = "school", "一校", "School"
    centre = "centre", "五中心", "Service centre"
    other = "other", "其他", "Other"


class FacilityCondition(LabeledEnum):
    good = "good", "良好", "Good"
    fair = "fair", "一般", "Fair"
    poor = "poor", "较差", "Poor"
    unusable = "unusable", "不能使用", "Unusable"


class FundingSource(LabeledEnum):
    city_finance = "city_finance", "市级财政", "City finance"
    higher_level = "higher_level", "上级补助", "Provincial or prefecture grant"
    township = "township", "乡镇自筹", "Township funds"
    village_collective = "village_collective", "村集体经济", "Village collective"
    pairing_support = "pairing_support", "帮扶单位", "Paired support unit"
    social = "social", "社会捐助", "Donations"
    other = "other", "其他", "Other"


class InvestmentStatus(LabeledEnum):
    recorded = "recorded", "已登记", "Recorded"
    cancelled = "cancelled", "已撤销", "Cancelled"


class MeetingType(LabeledEnum):
    branch_general_meeting = "branch_general_meeting", "支部党员大会", "Branch general meeting"
    branch_committee_meeting = "branch_committee_meeting", "支部委员会", "Branch committee meeting"
    party_group_meeting = "party_group_meeting", "党小组会", "Party group meeting"
    party_lecture = "party_lecture", "党课", "Party lecture"
    activity_day = "activity_day", "党员活动日", "Party member activity day"
    organizational_life_meeting = "organizational_life_meeting", "组织生活会", "Organisational life meeting"


class Cadence(LabeledEnum):
    monthly = "monthly", "每月", "Monthly"
    quarterly = "quarterly", "每季度", "Quarterly"
    yearly = "yearly", "每年", "Yearly"


MIN_YEAR = 2000
MAX_YEAR = 2100

# ---------------------------------------------------------------------------
# The catalogue: standard sets and their items


class StandardSet(SQLModel, table=True):
    """One domain's catalogue for a year; `edition` counts its versions (the row `version` is the ETag)."""

    __tablename__ = "standard_set"
    __table_args__ = (
        UniqueConstraint("year", "domain", "edition", name="uq_standard_set_year_domain_edition"),
        CheckConstraint("compliant_min_pct > 0 AND compliant_min_pct < demonstration_min_pct "
                        "AND demonstration_min_pct <= 100", name="thresholds"),
        # At most one published edition per year and domain.
        Index("uq_standard_set_published", "year", "domain", unique=True,
              sqlite_where=text("status = 'published'"), postgresql_where=text("status = 'published'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    domain: OrgDomain = enum_field(index=True)
    edition: int = Field(default=1)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: StandardSetStatus = enum_field(StandardSetStatus.draft, index=True)
    demonstration_min_pct: int = Field(default=90)
    compliant_min_pct: int = Field(default=60)
    previous_id: int | None = Field(default=None, foreign_key="standard_set.id")
    published_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class StandardItem(SQLModel, table=True):
    __tablename__ = "standard_item"
    __table_args__ = (
        UniqueConstraint("set_id", "code", name="uq_standard_item_set_code"),
        CheckConstraint("max_score > 0", name="max_score_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    set_id: int = Field(foreign_key="standard_set.id", index=True)
    aspect: Aspect = enum_field()
    code: str = Field(max_length=20)
    requirement: str = Field(max_length=2000)
    max_score: int
    evidence: str | None = Field(default=None, max_length=1000)
    # Organisational-life items may name the meeting type whose compliance suggests their score.
    meeting_type: MeetingType | None = enum_field(default=None)
    position: int = Field(default=0)
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


def _check_thresholds(demonstration: int | None, compliant: int | None) -> None:
    if demonstration is not None and compliant is not None and not compliant < demonstration:
        raise ValueError("compliant_min_pct must be below demonstration_min_pct")


class StandardSetCreate(CreateModel):
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR)
    domain: OrgDomain
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    demonstration_min_pct: int = Field(default=90, ge=2, le=100)
    compliant_min_pct: int = Field(default=60, ge=1, le=99)

    @model_validator(mode="after")
    def _thresholds(self) -> StandardSetCreate:
        _check_thresholds(self.demonstration_min_pct, self.compliant_min_pct)
        return self


class StandardSetUpdate(UpdateModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    demonstration_min_pct: int | None = Field(default=None, ge=2, le=100)
    compliant_min_pct: int | None = Field(default=None, ge=1, le=99)


class StandardItemCreate(CreateModel):
    aspect: Aspect
    code: str = Field(min_length=1, max_length=20, schema_extra={"pattern": r"^[A-Za-z0-9._-]+$"})
    requirement: str = Field(min_length=1, max_length=2000)
    max_score: int = Field(ge=1, le=1000)
    evidence: str | None = Field(default=None, max_length=1000)
    meeting_type: MeetingType | None = None
    position: int = Field(default=0, ge=0, le=10_000)


class StandardItemUpdate(UpdateModel):
    aspect: Aspect | None = None
    code: str | None = Field(default=None, min_length=1, max_length=20, schema_extra={"pattern": r"^[A-Za-z0-9._-]+$"})
    requirement: str | None = Field(default=None, min_length=1, max_length=2000)
    max_score: int | None = Field(default=None, ge=1, le=1000)
    evidence: str | None = Field(default=None, max_length=1000)
    meeting_type: MeetingType | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class StandardItemPublic(SQLModel):
    id: int
    set_id: int
    aspect: Aspect
    code: str
    requirement: str
    max_score: int
    evidence: str | None
    meeting_type: MeetingType | None
    position: int


class StandardSetPublic(SQLModel):
    id: int
    year: int
    domain: OrgDomain
    edition: int
    name: str
    description: str | None
    status: StandardSetStatus
    demonstration_min_pct: int
    compliant_min_pct: int
    previous_id: int | None
    published_at: dt.datetime | None
    retired_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class AspectMax(SQLModel):
    aspect: Aspect
    items: int
    max_score: int


class StandardSetDetail(StandardSetPublic):
    items: list[StandardItemPublic]
    aspects: list[AspectMax]
    max_score: int
    in_use: bool


# ---------------------------------------------------------------------------
# Audits: a self-assessment or a review of one organisation against one set


class StandardAudit(SQLModel, table=True):
    __tablename__ = "standard_audit"
    __table_args__ = (
        CheckConstraint("quarter IS NULL OR (quarter >= 1 AND quarter <= 4)", name="quarter_range"),
        CheckConstraint("score_total >= 0 AND score_total <= score_max", name="score_range"),
        # One finalised review per organisation, set and period.
        Index("uq_standard_audit_finalized_review", "org_id", "set_id", "period", unique=True,
              sqlite_where=text("kind = 'review' AND status = 'finalized'"),
              postgresql_where=text("kind = 'review' AND status = 'finalized'")),
        Index("ix_standard_audit_year_status", "year", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    set_id: int = Field(foreign_key="standard_set.id", index=True)
    year: int
    quarter: int | None = None
    period: str = Field(max_length=8)  # "2019" or "2019-Q2": the key of the uniqueness rule
    kind: AuditKind = enum_field()
    status: AuditStatus = enum_field(AuditStatus.draft, index=True)
    score_total: int = Field(default=0)
    score_max: int = Field(default=0)
    rating: Rating | None = enum_field(default=None)
    summary: str | None = Field(default=None, max_length=2000)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    submitted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    finalized_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    finalized_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class AuditScore(SQLModel, table=True):
    __tablename__ = "standard_audit_score"
    __table_args__ = (
        UniqueConstraint("audit_id", "item_id", name="uq_standard_audit_score_audit_item"),
        CheckConstraint("score >= 0", name="score_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    audit_id: int = Field(foreign_key="standard_audit.id", index=True)
    item_id: int = Field(foreign_key="standard_item.id", index=True)
    score: int
    note: str | None = Field(default=None, max_length=1000)
    updated_at: dt.datetime = updated_at_field()


class AuditCreate(CreateModel):
    org_id: int = id_field()
    set_id: int = id_field()
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR)
    quarter: int | None = Field(default=None, ge=1, le=4)
    kind: AuditKind
    summary: str | None = Field(default=None, max_length=2000)


class ScoreEntry(CreateModel):
    item_id: int = id_field()
    score: int = Field(ge=0, le=1000)
    note: str | None = Field(default=None, max_length=1000)


class ScoresIn(CreateModel):
    scores: list[ScoreEntry] = Field(min_length=1, max_length=500)
    summary: str | None = Field(default=None, max_length=2000)

    @field_validator("scores")
    @classmethod
    def _unique_items(cls, value: list[ScoreEntry]) -> list[ScoreEntry]:
        ids = [s.item_id for s in value]
        if len(ids) != len(set(ids)):
            raise ValueError("each item may be scored once per request")
        return value


class AspectScore(SQLModel):
    aspect: Aspect
    score: int
    max_score: int
    percentage: float
    below_backward_threshold: bool


class AuditPublic(SQLModel):
    id: int
    org_id: int
    set_id: int
    year: int
    quarter: int | None
    period: str
    kind: AuditKind
    status: AuditStatus
    score_total: int
    score_max: int
    percentage: float
    rating: Rating | None
    summary: str | None
    created_by: int | None
    submitted_at: dt.datetime | None
    finalized_at: dt.datetime | None
    finalized_by: int | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class AuditItemScore(SQLModel):
    item_id: int
    aspect: Aspect
    code: str
    requirement: str
    max_score: int
    score: int | None
    note: str | None
    suggested_score: int | None = Field(
        default=None, description="Organisational-life items: the score the meeting records suggest")
    suggestion_basis: str | None = None


class AuditDetail(AuditPublic):
    aspects: list[AspectScore]
    items: list[AuditItemScore]
    problem_ids: list[int] = []


class CompareItem(SQLModel):
    item_id: int
    aspect: Aspect
    code: str
    max_score: int
    score: int | None
    other_score: int | None
    change: int | None
    note: str | None
    other_note: str | None


class CompareAspect(SQLModel):
    aspect: Aspect
    score: int
    other_score: int
    change: int


class AuditComparison(SQLModel):
    audit: AuditPublic
    other: AuditPublic
    score_change: int
    percentage_change: float
    aspects: list[CompareAspect]
    items: list[CompareItem]


class SummaryOrg(SQLModel):
    org_id: int
    org_name: str
    township_id: int | None
    audit_id: int
    kind: AuditKind
    period: str
    percentage: float
    rating: Rating


class SummaryAspect(SQLModel):
    aspect: Aspect
    average_percentage: float
    audits: int


class SummaryTownship(SQLModel):
    township_id: int
    township_name: str
    demonstration: int
    compliant: int
    backward: int
    audited: int


class AuditSummary(SQLModel):
    year: int
    organizations: list[SummaryOrg]
    aspects: list[SummaryAspect]
    townships: list[SummaryTownship]
    totals: dict[str, int]


# ---------------------------------------------------------------------------
# Venues (阵地建设)


class FacilityType(SQLModel, table=True):
    __tablename__ = "facility_type"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    category: FacilityCategory = enum_field()
    description: str | None = Field(default=None, max_length=1000)
    # The seeded 四室一校五中心 list is our reading of the source, for the city to correct.
    is_assumption: bool = Field(default=False)
    active: bool = Field(default=True)
    position: int = Field(default=0)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class FacilityTypeCreate(CreateModel):
    code: str = Field(min_length=1, max_length=40, schema_extra={"pattern": r"^[a-z0-9_]+$"})
    name: str = Field(min_length=1, max_length=100)
    category: FacilityCategory
    description: str | None = Field(default=None, max_length=1000)
    position: int = Field(default=0, ge=0, le=10_000)


class FacilityTypeUpdate(UpdateModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    category: FacilityCategory | None = None
    description: str | None = Field(default=None, max_length=1000)
    active: bool | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class FacilityTypePublic(SQLModel):
    id: int
    code: str
    name: str
    category: FacilityCategory
    description: str | None
    is_assumption: bool
    active: bool
    position: int
    version: int


class Facility(SQLModel, table=True):
    __tablename__ = "facility"
    __table_args__ = (
        UniqueConstraint("org_id", "facility_type_id", name="uq_facility_org_type"),
        CheckConstraint("area_m2 IS NULL OR area_m2 > 0", name="area_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    facility_type_id: int = Field(foreign_key="facility_type.id", index=True)
    area_m2: int | None = None
    year_built: int | None = None
    condition: FacilityCondition = enum_field(FacilityCondition.good)
    in_use: bool = Field(default=True)
    note: str | None = Field(default=None, max_length=1000)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class FacilityCreate(CreateModel):
    org_id: int = id_field()
    facility_type_id: int = id_field()
    area_m2: int | None = Field(default=None, ge=1, le=1_000_000)
    year_built: int | None = Field(default=None, ge=1900, le=MAX_YEAR)
    condition: FacilityCondition = FacilityCondition.good
    in_use: bool = True
    note: str | None = Field(default=None, max_length=1000)


class FacilityUpdate(UpdateModel):
    area_m2: int | None = Field(default=None, ge=1, le=1_000_000)
    year_built: int | None = Field(default=None, ge=1900, le=MAX_YEAR)
    condition: FacilityCondition | None = None
    in_use: bool | None = None
    note: str | None = Field(default=None, max_length=1000)


class FacilityPublic(SQLModel):
    id: int
    org_id: int
    facility_type_id: int
    area_m2: int | None
    year_built: int | None
    condition: FacilityCondition
    in_use: bool
    note: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class VenueInvestment(SQLModel, table=True):
    __tablename__ = "venue_investment"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    year: int = Field(index=True)
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    funding_source: FundingSource = enum_field()
    facility_type_id: int | None = Field(default=None, foreign_key="facility_type.id")
    description: str = Field(max_length=500)
    status: InvestmentStatus = enum_field(InvestmentStatus.recorded)
    cancel_reason: str | None = Field(default=None, max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class VenueInvestmentCreate(CreateModel):
    org_id: int = id_field()
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR)
    amount: Yuan
    funding_source: FundingSource
    facility_type_id: int | None = id_field(default=None)
    description: str = Field(min_length=1, max_length=500)

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: object) -> object:
        from decimal import Decimal

        if isinstance(value, Decimal) and value <= 0:
            raise ValueError("an investment is a positive amount")
        return value


class InvestmentCancel(CreateModel):
    reason: str = Field(min_length=1, max_length=500)


class VenueInvestmentPublic(SQLModel):
    id: int
    org_id: int
    year: int
    amount: Yuan
    funding_source: FundingSource
    facility_type_id: int | None
    description: str
    status: InvestmentStatus
    cancel_reason: str | None
    created_by: int | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CoverageType(SQLModel):
    facility_type_id: int
    code: str
    name: str
    organizations_with: int
    coverage: float


class CoverageTownship(SQLModel):
    township_id: int
    township_name: str
    organizations: int
    fully_equipped: int
    types: list[CoverageType]


class InvestmentYear(SQLModel):
    year: int
    amount: Yuan
    entries: int


class VenueSummary(SQLModel):
    year: int | None
    townships: list[CoverageTownship]
    investments: list[InvestmentYear]
    investment_total: Yuan
    floor_area_m2: int


# ---------------------------------------------------------------------------
# Organisational life (组织生活)


class MeetingFrequency(SQLModel, table=True):
    """How often a meeting type must be held, from a year on (data, not code)."""

    __tablename__ = "meeting_frequency"
    __table_args__ = (
        UniqueConstraint("meeting_type", "effective_from_year", name="uq_meeting_frequency_type_year"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_type: MeetingType = enum_field()
    cadence: Cadence = enum_field()
    effective_from_year: int
    note: str | None = Field(default=None, max_length=500)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class MeetingFrequencyCreate(CreateModel):
    meeting_type: MeetingType
    cadence: Cadence
    effective_from_year: int = Field(ge=MIN_YEAR, le=MAX_YEAR)
    note: str | None = Field(default=None, max_length=500)


class MeetingFrequencyUpdate(UpdateModel):
    cadence: Cadence | None = None
    note: str | None = Field(default=None, max_length=500)


class MeetingFrequencyPublic(SQLModel):
    id: int
    meeting_type: MeetingType
    cadence: Cadence
    effective_from_year: int
    note: str | None
    version: int


class MeetingRecord(SQLModel, table=True):
    __tablename__ = "meeting_record"
    __table_args__ = (
        CheckConstraint("present_count >= 0 AND present_count <= expected_count", name="attendance"),
        Index("ix_meeting_record_org_type_held_on", "org_id", "meeting_type", "held_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    meeting_type: MeetingType = enum_field()
    held_on: dt.date = Field(index=True)
    topic: str = Field(max_length=200)
    expected_count: int
    present_count: int
    minutes: str | None = Field(default=None, max_length=20_000)
    lecturer: str | None = Field(default=None, max_length=100)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


def _check_attendance(expected: int | None, present: int | None) -> None:
    if expected is not None and present is not None and present > expected:
        raise ValueError("present_count cannot exceed expected_count")


class MeetingRecordCreate(CreateModel):
    org_id: int = id_field()
    meeting_type: MeetingType
    held_on: dt.date
    topic: str = Field(min_length=1, max_length=200)
    expected_count: int = Field(ge=1, le=100_000)
    present_count: int = Field(ge=0, le=100_000)
    minutes: str | None = Field(default=None, max_length=20_000)
    lecturer: str | None = Field(default=None, min_length=1, max_length=100)

    _date = field_validator("held_on")(date_in_range)

    @model_validator(mode="after")
    def _rules(self) -> MeetingRecordCreate:
        _check_attendance(self.expected_count, self.present_count)
        if self.lecturer is not None and self.meeting_type != MeetingType.party_lecture:
            raise ValueError("only a party lecture has a lecturer")
        return self


class MeetingRecordUpdate(UpdateModel):
    held_on: dt.date | None = None
    topic: str | None = Field(default=None, min_length=1, max_length=200)
    expected_count: int | None = Field(default=None, ge=1, le=100_000)
    present_count: int | None = Field(default=None, ge=0, le=100_000)
    minutes: str | None = Field(default=None, max_length=20_000)
    lecturer: str | None = Field(default=None, min_length=1, max_length=100)

    _date = field_validator("held_on")(date_in_range)


class MeetingRecordPublic(SQLModel):
    id: int
    org_id: int
    meeting_type: MeetingType
    held_on: dt.date
    topic: str
    expected_count: int
    present_count: int
    minutes: str | None
    lecturer: str | None
    created_by: int | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ComplianceRow(SQLModel):
    org_id: int
    org_name: str
    meeting_type: MeetingType
    cadence: Cadence | None
    required: int
    held: int
    periods_met: int
    missed_periods: list[str]
    compliant: bool


class ComplianceReport(SQLModel):
    year: int
    quarter: int | None
    rows: list[ComplianceRow]
    organizations: int
    compliant_rows: int
