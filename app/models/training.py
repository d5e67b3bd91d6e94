"""Training (保: 培训保障): main training classes with enrolment and attendance, township central schools and
farmer-herder night schools with their sessions, and the yearly targets and monthly minimum as data."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator, model_validator
from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

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
from app.models.people import PositionTitle

YEAR_MIN, YEAR_MAX = 2000, 2100
TITLE = 200
TEXT = 2000
# The roles the source says the main classes must cover in full (全覆盖培训).
DEFAULT_TARGET_ROLES = (
    PositionTitle.resident_first_secretary, PositionTitle.secretary, PositionTitle.village_committee_director,
    PositionTitle.committee_member,
)


class ClassStatus(LabeledEnum):
    planned = "planned", "已计划", "Planned"
    cancelled = "cancelled", "已取消", "Cancelled"


class SchoolKind(LabeledEnum):
    central_school = "central_school", "乡镇(街道)中心校", "Township central school"
    night_school = "night_school", "农牧民夜校", "Farmer-herder night school"


class SchoolStatus(LabeledEnum):
    active = "active", "开办中", "Active"
    closed = "closed", "已停办", "Closed"


class SessionTopic(LabeledEnum):
    hard_work_entrepreneurship = "hard_work_entrepreneurship", "艰苦创业", "Hard work and entrepreneurship"
    poverty_exit = "poverty_exit", "脱贫争先", "Striving to exit poverty"
    gratitude = "gratitude", "感恩奋进", "Gratitude and progress"
    civility = "civility", "文明村风", "Village civility"
    core_values = "core_values", "社会主义核心价值观", "Socialist core values"
    skills = "skills", "技能培训", "Skills"
    policy = "policy", "政策宣讲", "Policy"
    other = "other", "其他", "Other"


# ---------------------------------------------------------------- tables


class TrainingPolicy(SQLModel, table=True):
    """The yearly target of main classes and the schools' monthly minimum, from `effective_year` on."""

    __tablename__ = "training_policy"
    __table_args__ = (
        CheckConstraint("main_classes_target BETWEEN 0 AND 1000", name="target_range"),
        CheckConstraint("school_min_sessions BETWEEN 0 AND 100", name="min_sessions_range"),
        CheckConstraint("school_min_hours BETWEEN 0 AND 1000", name="min_hours_range"),
        CheckConstraint(f"effective_year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    effective_year: int = Field(unique=True)
    main_classes_target: int
    school_min_sessions: int
    school_min_hours: int
    note: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = created_at_field()


class TrainingClass(SQLModel, table=True):
    """A training class (培训班) run by an organisation; `is_main` marks the city's main classes (主体培训班)."""

    __tablename__ = "training_class"
    __table_args__ = (
        CheckConstraint("hours BETWEEN 1 AND 1000", name="hours_range"),
        CheckConstraint("ends_on >= starts_on", name="ends_after_starts"),
        CheckConstraint(f"year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
        Index("ix_training_class_year_org", "year", "org_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    year: int
    title: str = Field(max_length=TITLE)
    org_id: int = Field(foreign_key="organization.id", index=True, description="The organiser")
    starts_on: dt.date
    ends_on: dt.date
    hours: int
    is_main: bool = True
    status: ClassStatus = enum_field(ClassStatus.planned, index=True)
    budget_line_id: int | None = Field(default=None, foreign_key="budget_line.id", index=True)
    disbursement_id: int | None = Field(default=None, foreign_key="disbursement.id")
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class TrainingClassRole(SQLModel, table=True):
    """A role a class is meant for (驻村第一书记, 村(社区)党组织书记, 村(居)委会主任, 两委成员...)."""

    __tablename__ = "training_class_role"
    __table_args__ = (UniqueConstraint("class_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    class_id: int = Field(foreign_key="training_class.id", index=True)
    role: PositionTitle = enum_field()


class TrainingEnrolment(SQLModel, table=True):
    """A person enrolled in a class; `attended_hours` is recorded after the class (None until then)."""

    __tablename__ = "training_enrolment"
    __table_args__ = (
        UniqueConstraint("class_id", "person_id"),
        CheckConstraint("attended_hours IS NULL OR attended_hours BETWEEN 0 AND 1000", name="attended_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    class_id: int = Field(foreign_key="training_class.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True, description="The person's organisation")
    attended_hours: int | None = None
    enrolled_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class School(SQLModel, table=True):
    """A township central school (中心校) or a farmer-herder night school (农牧民夜校) of an organisation."""

    __tablename__ = "school"
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "name"),
        CheckConstraint("closed_on IS NULL OR closed_on >= opened_on", name="closed_after_opened"),
        # One central school per township.
        Index("uq_school_central_per_org", "org_id", unique=True,
              sqlite_where=text("kind = 'central_school'"), postgresql_where=text("kind = 'central_school'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    kind: SchoolKind = enum_field(index=True)
    name: str = Field(max_length=100)
    opened_on: dt.date
    closed_on: dt.date | None = None
    status: SchoolStatus = enum_field(SchoolStatus.active)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class SchoolSession(SQLModel, table=True):
    """One session (一期) a school held."""

    __tablename__ = "school_session"
    __table_args__ = (
        CheckConstraint("hours BETWEEN 1 AND 24", name="hours_range"),
        CheckConstraint("attendance_count BETWEEN 0 AND 100000", name="attendance_range"),
        Index("ix_school_session_school_held", "school_id", "held_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    org_id: int = Field(foreign_key="organization.id", index=True, description="The school's organisation")
    held_on: dt.date = Field(index=True)
    hours: int
    topic: SessionTopic = enum_field()
    title: str | None = Field(default=None, max_length=TITLE)
    attendance_count: int
    teacher: str = Field(max_length=100)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


# ---------------------------------------------------------------- API schemas: policy


class TrainingPolicyCreate(CreateModel):
    effective_year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    main_classes_target: int = Field(ge=0, le=1000, description="Main classes a year (default 12)")
    school_min_sessions: int = Field(ge=0, le=100, description="Sessions a school holds a month at least (3)")
    school_min_hours: int = Field(ge=0, le=1000, description="Class hours a school holds a month at least (6)")
    note: str | None = Field(default=None, max_length=200)


class TrainingPolicyPublic(SQLModel):
    id: int
    effective_year: int
    main_classes_target: int
    school_min_sessions: int
    school_min_hours: int
    note: str | None
    created_at: dt.datetime


# ---------------------------------------------------------------- API schemas: classes


class TrainingClassCreate(CreateModel):
    year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    title: str = Field(min_length=1, max_length=TITLE)
    org_id: int = id_field(description="The organiser")
    starts_on: dt.date
    ends_on: dt.date
    hours: int = Field(ge=1, le=1000, description="Class hours (学时)")
    is_main: bool = True
    target_roles: list[PositionTitle] = Field(min_length=1, max_length=len(PositionTitle))
    budget_line_id: int | None = id_field(default=None, description="The training budget line paying for it")
    disbursement_id: int | None = id_field(default=None, description="The disbursement from that line")

    _dates = field_validator("starts_on", "ends_on")(date_in_range)

    @model_validator(mode="after")
    def _order(self) -> TrainingClassCreate:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        if self.starts_on.year != self.year:
            raise ValueError("the class must start in its year")
        if len(set(self.target_roles)) != len(self.target_roles):
            raise ValueError("target_roles lists a role twice")
        return self


class TrainingClassUpdate(UpdateModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    hours: int | None = Field(default=None, ge=1, le=1000)
    is_main: bool | None = None
    target_roles: list[PositionTitle] | None = Field(default=None, min_length=1, max_length=len(PositionTitle))
    budget_line_id: int | None = id_field(default=None)
    disbursement_id: int | None = id_field(default=None)

    _dates = field_validator("starts_on", "ends_on")(date_in_range)


class TrainingClassPublic(SQLModel):
    id: int
    year: int
    title: str
    org_id: int
    org_name: str
    starts_on: dt.date
    ends_on: dt.date
    hours: int
    is_main: bool
    status: ClassStatus
    target_roles: list[PositionTitle]
    budget_line_id: int | None
    disbursement_id: int | None
    enrolled: int
    attended: int
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class EnrolmentCreate(CreateModel):
    person_ids: list[int] = Field(min_length=1, max_length=500)

    @field_validator("person_ids")
    @classmethod
    def _ids(cls, v: list[int]) -> list[int]:
        if any(not 1 <= i <= 2_147_483_647 for i in v):
            raise ValueError("person ids are between 1 and 2147483647")
        if len(set(v)) != len(v):
            raise ValueError("a person is listed twice")
        return v


class AttendanceRecord(CreateModel):
    attended_hours: int = Field(ge=0, le=1000, description="0 records an absence; at most the class hours")


class EnrolmentPublic(SQLModel):
    id: int
    class_id: int
    person_id: int
    person_name: str
    org_id: int
    attended_hours: int | None
    attended: bool
    version: int
    created_at: dt.datetime


# ---------------------------------------------------------------- API schemas: coverage


class UntrainedPerson(SQLModel):
    person_id: int
    name: str
    org_id: int
    org_name: str


class RoleCoverage(SQLModel):
    role: PositionTitle
    held: int = Field(description="People who held the role at any time in the year, each counted once")
    trained: int = Field(description="Of them, those who attended at least one class of the year")
    coverage_pct: float | None
    untrained: list[UntrainedPerson]


class TrainingCoverage(SQLModel):
    year: int
    org_id: int
    subtree: bool
    roles: list[RoleCoverage]
    people_held: int = Field(description="People holding any of the roles, each counted once")
    people_trained: int
    coverage_pct: float | None
    main_classes_held: int = Field(description="Main classes of the year not cancelled and ended by today")
    main_classes_planned: int = Field(description="Main classes of the year not cancelled")
    main_classes_target: int
    main_classes_target_met: bool


# ---------------------------------------------------------------- API schemas: schools


class SchoolCreate(CreateModel):
    org_id: int = id_field()
    kind: SchoolKind
    name: str = Field(min_length=1, max_length=100)
    opened_on: dt.date

    _date = field_validator("opened_on")(date_in_range)


class SchoolClose(CreateModel):
    closed_on: dt.date

    _date = field_validator("closed_on")(date_in_range)


class SchoolPublic(SQLModel):
    id: int
    org_id: int
    org_name: str
    kind: SchoolKind
    name: str
    opened_on: dt.date
    closed_on: dt.date | None
    status: SchoolStatus
    version: int
    created_at: dt.datetime


class SchoolSessionCreate(CreateModel):
    held_on: dt.date
    hours: int = Field(ge=1, le=24, description="Class hours (学时)")
    topic: SessionTopic
    title: str | None = Field(default=None, max_length=TITLE)
    attendance_count: int = Field(ge=0, le=100000)
    teacher: str = Field(min_length=1, max_length=100)

    _date = field_validator("held_on")(date_in_range)


class SchoolSessionPublic(SQLModel):
    id: int
    school_id: int
    org_id: int
    held_on: dt.date
    hours: int
    topic: SessionTopic
    title: str | None
    attendance_count: int
    teacher: str
    created_at: dt.datetime


class SchoolCompliance(SQLModel):
    school_id: int
    school_name: str
    kind: SchoolKind
    org_id: int
    org_name: str
    township_id: int | None
    sessions: int
    hours: int
    compliant: bool
    sessions_short: int
    hours_short: int


class TownshipCompliance(SQLModel):
    township_id: int
    township_name: str
    schools: int
    compliant: int
    compliant_pct: float | None


class ComplianceReport(SQLModel):
    year: int
    month: int
    min_sessions: int
    min_hours: int
    schools: list[SchoolCompliance]
    townships: list[TownshipCompliance]
    compliant: int
    total: int
    compliant_pct: float | None
