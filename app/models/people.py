"""People (party members and cadres) and the positions they hold."""

from __future__ import annotations

import datetime as dt
import unicodedata

from pydantic import field_validator, model_validator
from sqlalchemy import CheckConstraint, Index
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

# Kangding's ID numbers: 513301 since the city was created (2015), 513321 for the
# former county; both are accepted whatever the birth year.
KANGDING_ID_PREFIXES = ("513301", "513321")


class Gender(LabeledEnum):
    male = "male", "男", "Male"
    female = "female", "女", "Female"


class MemberStatus(LabeledEnum):
    probationary = "probationary", "预备党员", "Probationary member"
    full = "full", "正式党员", "Full member"
    none = "none", "非党员", "Not a member"


class PersonStatus(LabeledEnum):
    active = "active", "在册", "Active"
    transferred_out = "transferred_out", "已转出", "Transferred out"
    deceased = "deceased", "已去世", "Deceased"
    removed = "removed", "已除名", "Removed"


class PositionTitle(LabeledEnum):
    secretary = "secretary", "书记", "Secretary"
    deputy_secretary = "deputy_secretary", "副书记", "Deputy secretary"
    committee_member = "committee_member", "委员", "Committee member"
    village_committee_director = "village_committee_director", "村委会主任", "Village committee director"
    resident_first_secretary = "resident_first_secretary", "驻村第一书记", "Resident first secretary"
    other = "other", "其他", "Other"


def _known_region(number: str) -> bool:
    """The first six digits name a county-level division stdnum knows, in any period."""
    from stdnum import numdb

    parts = numdb.get("cn/loc").info(number[:6])
    return any("county" in props for _part, props in parts)


def validate_id_number(value: str) -> str:
    """GB 11643: length, check digit, birth date, and a known region code.

    stdnum also wants the region code to have existed in the birth year, but the code is the one of
    the place where the number was issued, which may be newer than the holder (a 513301 number for
    someone born in 1980, a 510105 one for someone born in 1975): any period of a known code is
    accepted, and Kangding's two prefixes always are.
    """
    from stdnum.cn import ric
    from stdnum.exceptions import InvalidComponent, ValidationError

    number = ric.compact(value)
    try:
        ric.validate(number)
    except (InvalidComponent, KeyError):  # stdnum raises KeyError for a province without that county
        try:
            ric.get_birth_date(number)
        except ValidationError:
            raise ValueError("the birth date in the ID number is not a date") from None
        if not (number.startswith(KANGDING_ID_PREFIXES) or _known_region(number)):
            raise ValueError("the ID number's region code is unknown") from None
    except ValidationError as exc:
        raise ValueError("not a valid ID number (length, format or check digit)") from exc
    if not dt.date(1900, 1, 1) <= ric.get_birth_date(number) <= dt.date.today():
        raise ValueError("the birth date in the ID number is not between 1900 and today")
    return number


def validate_phone(value: str) -> str:
    # NFKC: full-width digits (１３８…) become ASCII, so one number has one keyed hash however it was typed; any
    # other Unicode digit is refused.
    digits = unicodedata.normalize("NFKC", value).strip().replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("not a valid phone number (11-digit mobile or landline with area code)")
    if len(digits) == 11 and digits.startswith("1"):
        return digits
    if 7 <= len(digits) <= 12 and digits.startswith("0"):
        return digits  # landline with area code, e.g. 0836xxxxxxx
    raise ValueError("not a valid phone number (11-digit mobile or landline with area code)")


class Person(SQLModel, table=True):
    __tablename__ = "person"
    # Covers counting the members on the roll of a subtree (posts summary) without reading the rows.
    __table_args__ = (Index("ix_person_roll", "status", "member_status", "org_id"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=50)
    gender: Gender = enum_field()
    ethnicity: str | None = Field(default=None, max_length=20)
    # Hidden without pii_read: marked personal, so no page cursor carries it (app.core.pagination).
    birth_date: dt.date | None = Field(default=None, sa_column_kwargs={"info": {"personal": True}})
    id_number_cipher: str | None = Field(default=None, max_length=255)
    id_number_hash: str | None = Field(default=None, max_length=64, unique=True)
    id_number_masked: str | None = Field(default=None, max_length=18)
    phone_cipher: str | None = Field(default=None, max_length=255)
    phone_hash: str | None = Field(default=None, max_length=64, unique=True)
    phone_masked: str | None = Field(default=None, max_length=12)
    member_status: MemberStatus = enum_field(index=True)
    joined_party_on: dt.date | None = None
    status: PersonStatus = enum_field(PersonStatus.active, index=True)
    # The day the person left the roll (transferred out, died, removed); None while active.
    left_on: dt.date | None = None
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class _PersonFields(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    gender: Gender | None = None
    ethnicity: str | None = Field(default=None, min_length=1, max_length=20)
    birth_date: dt.date | None = None
    # Room for the spaces and hyphens the check strips (python-stdnum compacts the number before checking it).
    id_number: str | None = Field(default=None, max_length=30, description="18-digit ID number (GB 11643)")
    phone: str | None = Field(default=None, max_length=20)
    member_status: MemberStatus | None = None
    joined_party_on: dt.date | None = None

    @field_validator("id_number")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        return None if v is None else validate_id_number(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else validate_phone(v)

    _dates = field_validator("birth_date", "joined_party_on")(date_in_range)


class PersonCreate(_PersonFields, CreateModel):
    org_id: int = id_field()
    name: str = Field(min_length=1, max_length=50)
    gender: Gender
    member_status: MemberStatus

    @model_validator(mode="after")
    def _membership(self) -> PersonCreate:
        if self.member_status != MemberStatus.none and self.joined_party_on is None:
            raise ValueError("joined_party_on is required for a party member")
        if self.member_status == MemberStatus.none and self.joined_party_on is not None:
            raise ValueError("joined_party_on is only for party members")
        return self


class PersonUpdate(_PersonFields, UpdateModel):
    org_id: int | None = id_field(default=None, description="Transfer to another organisation in your scope")
    status: PersonStatus | None = None
    left_on: dt.date | None = Field(
        default=None,
        description="With a status other than active: the day the person left (default today); "
        "their positions held after that day end on it",
    )

    _left = field_validator("left_on")(date_in_range)


class PersonLookup(CreateModel):
    """Exact lookup by ID number or phone, sent in the body so it never appears in a URL."""

    id_number: str | None = Field(default=None, max_length=30)
    phone: str | None = Field(default=None, max_length=20)

    @field_validator("id_number")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        return None if v is None else validate_id_number(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else validate_phone(v)

    @model_validator(mode="after")
    def _exactly_one(self) -> PersonLookup:
        if (self.id_number is None) == (self.phone is None):
            raise ValueError("send exactly one of id_number and phone")
        return self


class PersonPublic(SQLModel):
    id: int
    org_id: int
    name: str
    gender: Gender
    ethnicity: str | None
    birth_year: int | None
    birth_date: dt.date | None = Field(
        description="Null unless the caller holds pii_read: with the masked ID number it would give the whole number"
    )
    id_number: str | None = Field(description="Masked (513301********1234) unless the caller holds pii_read")
    phone: str | None = Field(description="Masked (138****5678) unless the caller holds pii_read")
    member_status: MemberStatus
    joined_party_on: dt.date | None
    status: PersonStatus
    left_on: dt.date | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class Position(SQLModel, table=True):
    __tablename__ = "position"
    __table_args__ = (
        CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="ended_after_started"),
        # Covers "who holds some position on a date" as one set (posts summary).
        Index("ix_position_span", "started_on", "ended_on", "person_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    title: PositionTitle = enum_field(index=True)
    started_on: dt.date
    ended_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class PositionCreate(CreateModel):
    person_id: int = id_field()
    org_id: int = id_field()
    title: PositionTitle
    started_on: dt.date
    ended_on: dt.date | None = None

    _dates = field_validator("started_on", "ended_on")(date_in_range)

    @model_validator(mode="after")
    def _order(self) -> PositionCreate:
        if self.ended_on is not None and self.ended_on < self.started_on:
            raise ValueError("ended_on must not be before started_on")
        return self


class PositionEnd(CreateModel):
    ended_on: dt.date

    _dates = field_validator("ended_on")(date_in_range)


class PositionPublic(SQLModel):
    id: int
    person_id: int
    person_name: str | None = None
    org_id: int
    title: PositionTitle
    started_on: dt.date
    ended_on: dt.date | None


class ServiceYears(SQLModel):
    person_id: int
    as_of: dt.date
    days: int = Field(description="Days in any position up to as_of (both ends inclusive), overlaps counted once")
    years: int = Field(description="Completed years of service in any position, overlaps counted once")
