"""Organisations: the tree every record hangs from."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator
from sqlalchemy import Index
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


class OrgLevel(LabeledEnum):
    city = "city", "市委", "City"
    township = "township", "乡镇党委、街道党工委", "Township or street"
    village = "village", "村、社区党组织", "Village or community"
    branch = "branch", "党支部", "Branch"


class OrgDomain(LabeledEnum):
    township = "township", "乡镇", "Township"
    street = "street", "街道", "Street"
    rural = "rural", "农村", "Rural"
    community = "community", "社区", "Community"
    organ = "organ", "机关", "Government organ"
    institution = "institution", "事业单位", "Public institution"
    two_new = "two_new", "两新组织", "New economic and social organisations"


class OrgStatus(LabeledEnum):
    active = "active", "正常", "Active"
    dissolved = "dissolved", "已撤销", "Dissolved"


# Division code length by level; branches carry no statistical code of their own.
CODE_LENGTH: dict[str, int] = {"city": 6, "township": 9, "village": 12}
PARENT_LEVELS: dict[str, tuple[str, ...]] = {
    "city": (),
    "township": ("city",),
    "village": ("township",),
    "branch": ("village", "township"),
}
LEVEL_DOMAINS: dict[str, tuple[str, ...]] = {
    "township": ("township", "street"),
    "village": ("rural", "community"),
}


def _check_credit_code(value: str | None) -> str | None:
    if value is None:
        return None
    from stdnum.cn import uscc
    from stdnum.exceptions import ValidationError

    try:
        return str(uscc.validate(value))
    except ValidationError as exc:
        raise ValueError("not a valid unified social credit code (check digit or format)") from exc


class OrganizationBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    domain: OrgDomain = enum_field()
    credit_code: str | None = Field(default=None, max_length=18, unique=True)
    altitude_m: int | None = Field(default=None, ge=-500, le=9000)
    established_on: dt.date | None = None


class Organization(OrganizationBase, table=True):
    __tablename__ = "organization"
    __table_args__ = (
        Index("ix_organization_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),
    )

    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    level: OrgLevel = enum_field(index=True)
    code: str | None = Field(default=None, max_length=20, unique=True)
    status: OrgStatus = enum_field(OrgStatus.active, index=True)
    path: str = Field(max_length=255)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class OrganizationCreate(CreateModel):
    parent_id: int | None = id_field(default=None)
    level: OrgLevel
    domain: OrgDomain
    name: str = Field(min_length=1, max_length=100)
    code: str | None = Field(default=None, schema_extra={"pattern": r"^\d{6,20}$"})
    credit_code: str | None = Field(default=None, max_length=18)
    altitude_m: int | None = Field(default=None, ge=-500, le=9000)
    established_on: dt.date | None = None

    _credit = field_validator("credit_code")(_check_credit_code)
    _date = field_validator("established_on")(date_in_range)


class OrganizationUpdate(UpdateModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    domain: OrgDomain | None = None
    code: str | None = Field(default=None, schema_extra={"pattern": r"^\d{6,20}$"})
    credit_code: str | None = Field(default=None, max_length=18)
    altitude_m: int | None = Field(default=None, ge=-500, le=9000)
    established_on: dt.date | None = None

    _credit = field_validator("credit_code")(_check_credit_code)
    _date = field_validator("established_on")(date_in_range)


class OrganizationMove(CreateModel):
    parent_id: int = id_field()
    code: str | None = Field(
        default=None, schema_extra={"pattern": r"^\d{6,20}$"},
        description="New division code, required when the old one does not extend the new parent's.",
    )


class OrganizationPublic(SQLModel):
    id: int
    parent_id: int | None
    level: OrgLevel
    domain: OrgDomain
    name: str
    code: str | None
    credit_code: str | None
    altitude_m: int | None
    established_on: dt.date | None
    status: OrgStatus
    path: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class OrganizationNode(SQLModel):
    id: int
    level: OrgLevel
    domain: OrgDomain
    name: str
    code: str | None
    status: OrgStatus
    children: list[OrganizationNode] = []
    children_truncated: bool = False
