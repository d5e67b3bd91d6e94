"""Frontline work (新: 一线攻坚): city departments' cadres paired with villages (结对认亲) form work groups that
rotate by thirds each month (每月三个三分之一), visit households, explain policy, settle disputes and find problems."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator
from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.models.common import (
    CreateModel,
    created_at_field,
    date_in_range,
    id_field,
    updated_at_field,
    version_column,
)

TEXT = 2000
MONTH_PATTERN = r"^(20\d\d|2100)-(0[1-9]|1[0-2])$"


def _unique_ids(v: list[int]) -> list[int]:
    if any(not 1 <= i <= 2_147_483_647 for i in v):
        raise ValueError("ids are between 1 and 2147483647")
    if len(set(v)) != len(v):
        raise ValueError("an id is listed twice")
    return v


# ---------------------------------------------------------------- tables


class FrontlineGroup(SQLModel, table=True):
    """A work group of a city department, coordinated by an organisation (usually the township party committee,
    在各乡镇党委统筹下); the rotation counts months from the month of `started_on`."""

    __tablename__ = "frontline_group"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True, description="The coordinating organisation")
    name: str = Field(max_length=100)
    department: str = Field(max_length=100, description="The city department, e.g. 市发展和改革局")
    started_on: dt.date
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class FrontlineGroupVillage(SQLModel, table=True):
    """A village the group is paired with (结对)."""

    __tablename__ = "frontline_group_village"
    __table_args__ = (UniqueConstraint("group_id", "village_id"),)

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="frontline_group.id", index=True)
    village_id: int = Field(foreign_key="organization.id", index=True)
    created_at: dt.datetime = created_at_field()


class FrontlineMember(SQLModel, table=True):
    """A cadre's membership of a group, from `joined_on` to `left_on` (both inclusive)."""

    __tablename__ = "frontline_member"
    __table_args__ = (
        CheckConstraint("left_on IS NULL OR left_on >= joined_on", name="left_after_joined"),
        # At most one open membership of a person in a group.
        Index("uq_frontline_member_open", "group_id", "person_id", unique=True,
              sqlite_where=text("left_on IS NULL"), postgresql_where=text("left_on IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="frontline_group.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    joined_on: dt.date
    left_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class FrontlineVisit(SQLModel, table=True):
    """A visit of a group to one of its villages (走访群众、宣传政策、摸排问题、化解矛盾)."""

    __tablename__ = "frontline_visit"
    __table_args__ = (
        CheckConstraint("households_visited BETWEEN 0 AND 100000", name="households_range"),
        CheckConstraint("disputes_settled BETWEEN 0 AND 10000", name="disputes_range"),
        Index("ix_frontline_visit_group_date", "group_id", "visited_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="frontline_group.id")
    org_id: int = Field(foreign_key="organization.id", index=True, description="The village visited")
    visited_on: dt.date = Field(index=True)
    households_visited: int
    policies_explained: str | None = Field(default=None, max_length=TEXT)
    disputes_settled: int = 0
    problems_found: str | None = Field(default=None, max_length=TEXT)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class FrontlineVisitMember(SQLModel, table=True):
    """A member present on a visit."""

    __tablename__ = "frontline_visit_member"
    __table_args__ = (UniqueConstraint("visit_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(foreign_key="frontline_visit.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)


# ---------------------------------------------------------------- API schemas


class GroupCreate(CreateModel):
    org_id: int = id_field(description="The coordinating organisation; paired villages are below it")
    name: str = Field(min_length=1, max_length=100)
    department: str = Field(min_length=1, max_length=100)
    started_on: dt.date
    village_ids: list[int] = Field(default_factory=list, max_length=100)
    member_person_ids: list[int] = Field(default_factory=list, max_length=200,
                                         description="Members joining on started_on")

    _date = field_validator("started_on")(date_in_range)
    _ids = field_validator("village_ids", "member_person_ids")(_unique_ids)


class VillagesAdd(CreateModel):
    village_ids: list[int] = Field(min_length=1, max_length=100)

    _ids = field_validator("village_ids")(_unique_ids)


class MemberJoin(CreateModel):
    person_id: int = id_field()
    joined_on: dt.date

    _date = field_validator("joined_on")(date_in_range)


class MemberLeave(CreateModel):
    left_on: dt.date

    _date = field_validator("left_on")(date_in_range)


class GroupVillagePublic(SQLModel):
    village_id: int
    name: str


class MemberPublic(SQLModel):
    id: int
    person_id: int
    name: str
    joined_on: dt.date
    left_on: dt.date | None


class GroupPublic(SQLModel):
    id: int
    org_id: int
    org_name: str
    name: str
    department: str
    started_on: dt.date
    villages: list[GroupVillagePublic]
    active_members: int
    version: int
    created_at: dt.datetime


class GroupDetail(GroupPublic):
    members: list[MemberPublic]


class DutyMember(SQLModel):
    person_id: int
    name: str
    cohort: int = Field(description="0, 1 or 2: the third the member belongs to that month")


class ScheduleMonth(SQLModel):
    month: str
    cohort_on_duty: int | None = Field(description="None before the group started or when it has no members")
    on_duty: list[DutyMember]
    off_duty: list[DutyMember]


class GroupSchedule(SQLModel):
    group_id: int
    started_month: str
    months: list[ScheduleMonth]


class VisitProblemIn(CreateModel):
    description: str = Field(min_length=1, max_length=TEXT)
    deadline: dt.date | None = None
    rectification_measures: str | None = Field(default=None, max_length=TEXT)

    _date = field_validator("deadline")(date_in_range)


class VisitCreate(CreateModel):
    group_id: int = id_field()
    village_id: int = id_field()
    visited_on: dt.date
    member_person_ids: list[int] = Field(min_length=1, max_length=200, description="Members present")
    households_visited: int = Field(ge=0, le=100000)
    policies_explained: str | None = Field(default=None, max_length=TEXT)
    disputes_settled: int = Field(default=0, ge=0, le=10000)
    problems_found: str | None = Field(default=None, max_length=TEXT)
    open_problems: list[VisitProblemIn] = Field(
        default_factory=list, max_length=20,
        description="Problems to open on the village's problem list (source frontline_visit), in this request")

    _date = field_validator("visited_on")(date_in_range)
    _ids = field_validator("member_person_ids")(_unique_ids)


class VisitPublic(SQLModel):
    id: int
    group_id: int
    group_name: str
    org_id: int
    village_name: str
    visited_on: dt.date
    member_person_ids: list[int]
    households_visited: int
    policies_explained: str | None
    disputes_settled: int
    problems_found: str | None
    problem_ids: list[int]
    created_at: dt.datetime


class VisitSummaryRow(SQLModel):
    group_id: int
    group_name: str
    department: str
    village_id: int
    village_name: str
    visits: int
    households_visited: int
    disputes_settled: int
    problems_opened: int


class VisitSummary(SQLModel):
    year: int
    month: int | None
    rows: list[VisitSummaryRow]
    visits: int
    households_visited: int
    disputes_settled: int
    problems_opened: int
