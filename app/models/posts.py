"""Duty posts (设岗定责): posts for members without office, who holds them, what they did, how they did.

Numbers that are decimals in the API are integers in the database: hours in tenths
(`hours_tenths`), so no engine ever sees a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema, field_validator
from sqlalchemy import CheckConstraint, Index, Text, text
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

YEAR_MIN, YEAR_MAX = 2000, 2100
TEXT_MAX = 4000

# ---------------------------------------------------------------------------
# Decimal helpers: half up, never floats


def round_half_up(value: Decimal, places: int = 2) -> Decimal:
    """Round half up (四舍五入) to `places` decimals: 89.995 → 90.00."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def percentage(part: int, whole: int) -> Decimal | None:
    """part / whole × 100, half up to 2 places; None when there is nothing to divide by."""
    if whole <= 0:
        return None
    return round_half_up(Decimal(part) * 100 / Decimal(whole))


def _parse_hours(value: Any) -> Decimal:
    if isinstance(value, float | bool):
        raise ValueError('send hours as an integer or a decimal string such as "2.5", not as a float')
    try:
        hours = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError('not a number of hours: use a decimal string such as "2.5"') from None
    if not hours.is_finite():
        raise ValueError("not a finite number of hours")
    if hours.as_tuple().exponent < -1:  # type: ignore[operator]
        raise ValueError("hours have at most one decimal place")
    if not (Decimal(0) <= hours <= Decimal(24)):
        raise ValueError("hours must be between 0 and 24 per entry")
    return hours.quantize(Decimal("0.1"))


Hours = Annotated[
    Decimal,
    BeforeValidator(_parse_hours),
    PlainSerializer(lambda d: f"{d:.1f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}(\.\d)?$", "examples": ["2.5"]}),
]

DecimalOut = Annotated[
    Decimal,
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["87.50"]}),
]


def to_tenths(hours: Decimal) -> int:
    return int(hours * 10)


def from_tenths(tenths: int) -> Decimal:
    return (Decimal(tenths) / 10).quantize(Decimal("0.1"))


# ---------------------------------------------------------------------------
# Enums


class PostField(LabeledEnum):
    relocation = "relocation", "移民搬迁", "Relocation"
    economic_development = "economic_development", "经济发展", "Economic development"
    stability = "stability", "维护稳定", "Stability"
    poverty_alleviation = "poverty_alleviation", "脱贫攻坚", "Poverty alleviation"
    rural_revitalization = "rural_revitalization", "乡村振兴", "Rural revitalisation"
    policy_publicity = "policy_publicity", "政策宣传", "Policy publicity"
    environment = "environment", "环境保护", "Environment"
    mediation = "mediation", "矛盾调解", "Mediation"
    other = "other", "其他", "Other"


class PostStatus(LabeledEnum):
    open = "open", "开放", "Open"
    closed = "closed", "已关闭", "Closed"


class AssignmentRoute(LabeledEnum):
    self_selected = "self_selected", "党员自选", "Self-selected by the member"
    org_assisted = "org_assisted", "组织助选", "Assisted by the organisation"


class AssignmentStatus(LabeledEnum):
    applied = "applied", "已申请", "Applied (awaiting the organisation)"
    proposed = "proposed", "组织提名", "Proposed (awaiting the member)"
    active = "active", "在岗", "Holding the post"
    rejected = "rejected", "未批准", "Rejected by the organisation"
    declined = "declined", "本人谢绝", "Declined by the member"
    ended = "ended", "已离岗", "Ended"
    cancelled = "cancelled", "已撤销", "Cancelled"


# A pending application or proposal holds a place on the post, like a held post.
PLACE_HOLDING = (AssignmentStatus.applied, AssignmentStatus.proposed, AssignmentStatus.active)
HELD = (AssignmentStatus.active, AssignmentStatus.ended)


class PostReviewGrade(LabeledEnum):
    excellent = "excellent", "优秀", "Excellent"
    good = "good", "良好", "Good"
    fair = "fair", "一般", "Fair"
    poor = "poor", "较差", "Poor"


_PLACE_HOLDING_SQL = "status IN ('applied', 'proposed', 'active')"

# ---------------------------------------------------------------------------
# Tables


class PostPolicy(SQLModel, table=True):
    """How many posts a member may hold (or have pending) in a year, from `effective_year` on."""

    __tablename__ = "post_policy"
    __table_args__ = (
        CheckConstraint("max_posts_per_member BETWEEN 1 AND 20", name="max_posts_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    effective_year: int = Field(unique=True)
    max_posts_per_member: int
    note: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = created_at_field()


class DutyPost(SQLModel, table=True):
    __tablename__ = "duty_post"
    __table_args__ = (
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("filled >= 0 AND filled <= capacity", name="filled_within_capacity"),
        CheckConstraint(f"year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
        Index("ix_duty_post_org_id_year", "org_id", "year"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    year: int = Field(index=True)
    title: str = Field(max_length=100)
    field: PostField = enum_field(index=True)
    duties: str = Field(sa_type=Text)
    capacity: int
    # Places taken by pending or held assignments; only ever changed by a conditional
    # UPDATE (WHERE filled < capacity), so concurrent applications cannot overfill a post.
    filled: int = 0
    status: PostStatus = enum_field(PostStatus.open, index=True)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class PostAssignment(SQLModel, table=True):
    __tablename__ = "post_assignment"
    __table_args__ = (
        Index(
            "uq_post_assignment_live", "post_id", "person_id", unique=True,
            sqlite_where=text(_PLACE_HOLDING_SQL), postgresql_where=text(_PLACE_HOLDING_SQL),
        ),
        Index("ix_post_assignment_person_id_year", "person_id", "year"),
        Index("ix_post_assignment_org_id_year", "org_id", "year"),
        CheckConstraint("assigned_on IS NULL OR assigned_on >= requested_on", name="assigned_after_request"),
        CheckConstraint("ended_on IS NULL OR assigned_on IS NULL OR ended_on >= assigned_on",
                        name="ended_after_assigned"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="duty_post.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    org_id: int = Field(foreign_key="organization.id")  # the post's, for scope
    year: int  # the post's
    route: AssignmentRoute = enum_field()
    status: AssignmentStatus = enum_field(index=True)
    requested_on: dt.date  # the day the member applied, or the organisation proposed
    assigned_on: dt.date | None = None  # the day the member took the post
    decided_by: int | None = Field(default=None, foreign_key="user_account.id")
    decision_reason: str | None = Field(default=None, max_length=500)
    ended_on: dt.date | None = None
    end_reason: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=500)
    review_grade: PostReviewGrade | None = enum_field(None, index=True)
    review_comment: str | None = Field(default=None, max_length=2000)
    reviewed_on: dt.date | None = None
    reviewed_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class PostLog(SQLModel, table=True):
    """One dated entry of what a member did on their post."""

    __tablename__ = "post_log"
    __table_args__ = (
        CheckConstraint("hours_tenths >= 0 AND hours_tenths <= 240", name="hours_range"),
        Index("ix_post_log_assignment_id_entry_date", "assignment_id", "entry_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="post_assignment.id")
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    entry_date: dt.date
    description: str = Field(sa_type=Text)
    hours_tenths: int = 0
    recorded_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


# ---------------------------------------------------------------------------
# API schemas


def _year(**kw: Any) -> Any:
    return Field(ge=YEAR_MIN, le=YEAR_MAX, **kw)


class PostPolicyCreate(CreateModel):
    effective_year: int = _year()
    max_posts_per_member: int = Field(ge=1, le=20)
    note: str | None = Field(default=None, max_length=200)


class PostPolicyPublic(SQLModel):
    id: int
    effective_year: int
    max_posts_per_member: int
    note: str | None
    created_at: dt.datetime


class DutyPostCreate(CreateModel):
    org_id: int = id_field()
    year: int = _year()
    title: str = Field(min_length=1, max_length=100)
    field: PostField
    duties: str = Field(min_length=1, max_length=TEXT_MAX)
    capacity: int = Field(default=1, ge=1, le=1000)


class DutyPostUpdate(UpdateModel):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    field: PostField | None = None
    duties: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX)
    capacity: int | None = Field(default=None, ge=1, le=1000)


class DutyPostPublic(SQLModel):
    id: int
    org_id: int
    year: int
    title: str
    field: PostField
    duties: str
    capacity: int
    filled: int = Field(description="Places taken by pending applications or proposals and by holders")
    status: PostStatus
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class AssignmentCreate(CreateModel):
    """Self-selection records the member's application; org-assisted records the organisation's proposal."""

    post_id: int = id_field()
    person_id: int = id_field()
    route: AssignmentRoute
    requested_on: dt.date
    note: str | None = Field(default=None, max_length=500)

    _dates = field_validator("requested_on")(date_in_range)


class AssignmentTake(CreateModel):
    """Approval of an application, or the member's acceptance of a proposal."""

    assigned_on: dt.date
    note: str | None = Field(default=None, max_length=500)

    _dates = field_validator("assigned_on")(date_in_range)


class AssignmentRefuse(CreateModel):
    reason: str = Field(min_length=1, max_length=500)


class AssignmentEnd(CreateModel):
    ended_on: dt.date
    reason: str = Field(min_length=1, max_length=500)

    _dates = field_validator("ended_on")(date_in_range)


class AssignmentReview(CreateModel):
    grade: PostReviewGrade
    comment: str | None = Field(default=None, max_length=2000)
    reviewed_on: dt.date

    _dates = field_validator("reviewed_on")(date_in_range)


class AssignmentPublic(SQLModel):
    id: int
    post_id: int
    person_id: int
    person_name: str | None = None
    org_id: int
    year: int
    route: AssignmentRoute
    status: AssignmentStatus
    requested_on: dt.date
    assigned_on: dt.date | None
    decision_reason: str | None
    ended_on: dt.date | None
    end_reason: str | None
    note: str | None
    review_grade: PostReviewGrade | None
    review_comment: str | None
    reviewed_on: dt.date | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PostLogCreate(CreateModel):
    assignment_id: int = id_field()
    entry_date: dt.date
    description: str = Field(min_length=1, max_length=TEXT_MAX)
    hours: Hours = Decimal(0)

    _dates = field_validator("entry_date")(date_in_range)


class PostLogPublic(SQLModel):
    id: int
    assignment_id: int
    person_id: int
    org_id: int
    entry_date: dt.date
    description: str
    hours: Hours
    created_at: dt.datetime

    @classmethod
    def of(cls, log: PostLog) -> PostLogPublic:
        return cls.model_validate(log, update={"hours": from_tenths(log.hours_tenths)})


class FieldCount(SQLModel):
    field: PostField
    posts: int
    capacity: int
    holders: int = Field(description="Assignments held (active or ended) in the year")


class GradeCount(SQLModel):
    grade: PostReviewGrade
    count: int


class PostSummary(SQLModel):
    year: int
    org_id: int
    subtree: bool
    as_of: dt.date = Field(description="The day 'without office' is judged on: 31 December of the year")
    members: int = Field(description="Active full and probationary members")
    members_without_office: int
    holders_without_office: int = Field(description="Members without office holding (or having held) a post")
    coverage_percent: DecimalOut | None = Field(
        description="holders_without_office / members_without_office × 100, half up to 2 places"
    )
    posts: int
    capacity: int
    by_field: list[FieldCount]
    review_grades: list[GradeCount]
    unreviewed_holdings: int

