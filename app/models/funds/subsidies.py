"""Subsidy policies (rates as effective-dated data) and entitlement runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import pairwise

from pydantic import field_validator, model_validator
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.core.money import Yuan
from app.models.common import (
    CreateModel,
    created_at_field,
    date_in_range,
    enum_field,
    id_field,
    updated_at_field,
    version_column,
)
from app.models.funds.budgets import BudgetCategory
from app.models.funds.common import YEAR_MAX, YEAR_MIN, FiscalYear
from app.models.people import PositionTitle


class SubsidyKind(LabeledEnum):
    accident_insurance = "accident_insurance", "人身意外伤害保险", "Accident insurance (per cadre per year)"
    pension_subsidy = "pension_subsidy", "养老保险补贴", "Pension insurance subsidy (per cadre per year)"
    basic_pay = "basic_pay", "基本报酬", "Basic pay (per month in office, by title)"
    altitude_allowance = "altitude_allowance", "高海拔临岗补贴", "High-altitude allowance (per month, by band)"
    retired_allowance = "retired_allowance", "离任村干部生活补助", "Retired cadres' allowance (per month, by service)"
    community_work_fund = "community_work_fund", "社区工作经费", "Community work fund (per community per year)"


# The budget category each kind draws on.
KIND_CATEGORY: dict[str, BudgetCategory] = {
    SubsidyKind.accident_insurance: BudgetCategory.accident_insurance,
    SubsidyKind.pension_subsidy: BudgetCategory.pension_subsidy,
    SubsidyKind.basic_pay: BudgetCategory.cadre_pay,
    SubsidyKind.altitude_allowance: BudgetCategory.altitude_allowance,
    SubsidyKind.retired_allowance: BudgetCategory.retired_allowance,
    SubsidyKind.community_work_fund: BudgetCategory.community_work,
}
MONTHLY_KINDS = frozenset({SubsidyKind.basic_pay, SubsidyKind.altitude_allowance, SubsidyKind.retired_allowance})
# How a kind's rates are keyed: by title, by a band of altitude (metres) or service (years), or flat.
RATE_KEY: dict[str, str] = {
    SubsidyKind.accident_insurance: "flat",
    SubsidyKind.pension_subsidy: "flat",
    SubsidyKind.community_work_fund: "flat",
    SubsidyKind.basic_pay: "title",
    SubsidyKind.altitude_allowance: "band",
    SubsidyKind.retired_allowance: "band",
}


class RunStatus(LabeledEnum):
    draft = "draft", "草稿", "Draft (preview)"
    committed = "committed", "已确认", "Committed"
    paid = "paid", "已发放", "Paid"
    cancelled = "cancelled", "已作废", "Cancelled draft"


class LineStatus(LabeledEnum):
    draft = "draft", "草稿", "Draft"
    committed = "committed", "已确认", "Committed, unpaid"
    paid = "paid", "已发放", "Paid"
    reversed = "reversed", "已冲销", "Reversed"


class BeneficiaryType(LabeledEnum):
    person = "person", "个人", "Person"
    organization = "organization", "组织", "Organisation"


class SubsidyPolicy(SQLModel, table=True):
    """One kind's rates for a period of validity; periods of one kind never overlap (checked on create)."""

    __tablename__ = "subsidy_policy"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_order"),
        Index("ix_subsidy_policy_kind_from", "kind", "valid_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: SubsidyKind = enum_field()
    name: str = Field(max_length=100)
    valid_from: dt.date
    valid_to: dt.date | None = None
    note: str | None = Field(default=None, max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class SubsidyRate(SQLModel, table=True):
    """An amount of a policy: flat, for a position title, or for a band [band_min, band_max) of altitude in
    metres (altitude_allowance) or of completed years of service (retired_allowance); null bounds are open."""

    __tablename__ = "subsidy_rate"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("band_min IS NULL OR band_max IS NULL OR band_max > band_min", name="band_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="subsidy_policy.id", index=True)
    title: PositionTitle | None = enum_field(None)
    band_min: int | None = None
    band_max: int | None = None
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))


class RateIn(CreateModel):
    title: PositionTitle | None = None
    band_min: int | None = Field(default=None, ge=-1000, le=100_000)
    band_max: int | None = Field(default=None, ge=-1000, le=100_000)
    amount: Yuan

    @field_validator("amount")
    @classmethod
    def _non_negative(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("a rate cannot be negative")
        return v

    @model_validator(mode="after")
    def _band(self) -> RateIn:
        if self.band_min is not None and self.band_max is not None and self.band_max <= self.band_min:
            raise ValueError("band_max must be above band_min")
        return self


class RatePublic(SQLModel):
    title: PositionTitle | None
    band_min: int | None
    band_max: int | None
    amount: Yuan


class SubsidyPolicyCreate(CreateModel):
    kind: SubsidyKind
    name: str = Field(min_length=1, max_length=100)
    valid_from: dt.date
    valid_to: dt.date | None = None
    note: str | None = Field(default=None, max_length=500)
    rates: list[RateIn] = Field(min_length=1, max_length=50)

    _dates = field_validator("valid_from", "valid_to")(date_in_range)

    @model_validator(mode="after")
    def _shape(self) -> SubsidyPolicyCreate:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")
        key = RATE_KEY[self.kind]
        if key == "flat":
            if len(self.rates) != 1 or any(r.title or r.band_min is not None or r.band_max is not None
                                           for r in self.rates):
                raise ValueError(f"a {self.kind} policy has exactly one flat rate (no title, no band)")
        elif key == "title":
            titles = [r.title for r in self.rates]
            if None in titles or len(set(titles)) != len(titles):
                raise ValueError("basic_pay rates name each position title once")
        else:
            if any(r.title for r in self.rates):
                raise ValueError(f"{self.kind} rates are by band, not by title")
            bands = sorted(((r.band_min if r.band_min is not None else -10**9),
                            (r.band_max if r.band_max is not None else 10**9)) for r in self.rates)
            for (_, hi), (lo, _) in pairwise(bands):
                if lo < hi:
                    raise ValueError("bands must not overlap")
        return self


class PolicyClose(CreateModel):
    valid_to: dt.date

    _date = field_validator("valid_to")(date_in_range)


class SubsidyPolicyPublic(SQLModel):
    id: int
    kind: SubsidyKind
    name: str
    valid_from: dt.date
    valid_to: dt.date | None
    note: str | None
    rates: list[RatePublic]
    version: int
    created_at: dt.datetime


class SubsidyRun(SQLModel, table=True):
    """An entitlement run: computed as a draft, committed by a second user, paid, reversed line by line."""

    __tablename__ = "subsidy_run"
    __table_args__ = (
        CheckConstraint(f"year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
        CheckConstraint("month IS NULL OR month BETWEEN 1 AND 12", name="month_range"),
        CheckConstraint("total_fen >= 0", name="total_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    month: int | None = None
    org_id: int = Field(foreign_key="organization.id", index=True)
    reference_date: dt.date
    status: RunStatus = enum_field(RunStatus.draft, index=True)
    total_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    line_count: int = 0
    note: str | None = Field(default=None, max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    computed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    committed_by: int | None = Field(default=None, foreign_key="user_account.id")
    committed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class SubsidyRunKind(SQLModel, table=True):
    """A kind a run computes and the budget line it draws on."""

    __tablename__ = "subsidy_run_kind"
    __table_args__ = (
        UniqueConstraint("run_id", "kind"),
        CheckConstraint("total_fen >= 0", name="total_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="subsidy_run.id", index=True)
    kind: SubsidyKind = enum_field()
    budget_line_id: int = Field(foreign_key="budget_line.id", index=True)
    total_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    beneficiaries: int = 0


# A claimed line (committed or paid, not reversed) is unique per beneficiary, kind and period.
_CLAIMED = "claimed = true"


class SubsidyLine(SQLModel, table=True):
    """One beneficiary's entitlement of one kind for one period, with the basis a person can read."""

    __tablename__ = "subsidy_line"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("months IS NULL OR months BETWEEN 0 AND 12", name="months_range"),
        CheckConstraint("claimed = (status IN ('committed', 'paid'))", name="claimed_iff_committed"),
        Index("ix_subsidy_line_run_status", "run_id", "status"),
        # Finds other runs' claims of the same beneficiary, kind and period (the commit's overlap check).
        Index("ix_subsidy_line_claim_lookup", "kind", "period", "beneficiary_type", "beneficiary_id"),
        Index("uq_subsidy_line_claim", "kind", "beneficiary_type", "beneficiary_id", "period", unique=True,
              sqlite_where=text(_CLAIMED), postgresql_where=text(_CLAIMED)),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="subsidy_run.id")
    kind: SubsidyKind = enum_field()
    beneficiary_type: BeneficiaryType = enum_field(length=16)
    beneficiary_id: int
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    township_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    period: str = Field(max_length=7, description="YYYY for yearly amounts and yearly runs, YYYY-MM for one month")
    months: int | None = None
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    basis: str = Field(max_length=500)
    status: LineStatus = enum_field(LineStatus.draft)
    claimed: bool = False
    paid_by: int | None = Field(default=None, foreign_key="user_account.id")
    paid_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    reversed_by: int | None = Field(default=None, foreign_key="user_account.id")
    reversed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    reversal_reason: str | None = Field(default=None, max_length=500)


class SubsidyGranularity(SQLModel, table=True):
    """Whether a monthly kind's year is paid by monthly runs or by whole-year runs: fixed by the first committed
    run, so a year run and a month run can never both cover the same cadre's month."""

    __tablename__ = "subsidy_granularity"
    __table_args__ = (UniqueConstraint("kind", "year"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: SubsidyKind = enum_field()
    year: int
    monthly: bool
    created_at: dt.datetime = created_at_field()


class RunKindIn(CreateModel):
    kind: SubsidyKind
    budget_line_id: int = id_field(description="The line of the run's year and the kind's category it draws on")


class SubsidyRunCreate(CreateModel):
    year: FiscalYear
    month: int | None = Field(default=None, ge=1, le=12,
                              description="Only for runs of monthly kinds: one month instead of the whole year")
    org_id: int = id_field(description="Whose cadres and communities: this organisation's subtree")
    reference_date: dt.date | None = Field(
        default=None, description="Who is in office for the yearly kinds; default 1 January of the year")
    kinds: list[RunKindIn] = Field(min_length=1, max_length=6)
    note: str | None = Field(default=None, max_length=500)

    _date = field_validator("reference_date")(date_in_range)

    @model_validator(mode="after")
    def _shape(self) -> SubsidyRunCreate:
        names = [k.kind for k in self.kinds]
        if len(set(names)) != len(names):
            raise ValueError("each kind appears once")
        if self.month is not None and any(k not in MONTHLY_KINDS for k in names):
            raise ValueError("a one-month run computes monthly kinds only (basic_pay, altitude_allowance, "
                             "retired_allowance)")
        if self.reference_date is not None and self.reference_date.year != self.year:
            raise ValueError("the reference date lies in the run's year")
        return self


class RunKindPublic(SQLModel):
    kind: SubsidyKind
    budget_line_id: int
    total: Yuan = Field(description="The sum of the kind's lines in the run, reversed lines left out")
    beneficiaries: int = Field(description="The kind's lines in the run, reversed lines left out")


class SubsidyRunPublic(SQLModel):
    id: int
    year: int
    month: int | None
    period: str
    org_id: int
    reference_date: dt.date
    status: RunStatus
    total: Yuan = Field(description="The sum of the run's lines, reversed lines left out")
    line_count: int = Field(description="The run's lines, reversed lines left out")
    kinds: list[RunKindPublic]
    note: str | None
    created_by: int | None
    computed_at: dt.datetime | None
    committed_by: int | None
    committed_at: dt.datetime | None
    version: int
    created_at: dt.datetime


class SubsidyLinePublic(SQLModel):
    id: int
    run_id: int
    kind: SubsidyKind
    beneficiary_type: BeneficiaryType
    beneficiary_id: int
    person_id: int | None
    beneficiary_name: str | None = None
    org_id: int
    township_id: int | None
    period: str
    months: int | None
    amount: Yuan
    basis: str
    status: LineStatus
    paid_by: int | None
    paid_at: dt.datetime | None
    reversed_by: int | None
    reversed_at: dt.datetime | None
    reversal_reason: str | None


class SummaryRow(SQLModel):
    kind: SubsidyKind
    township_id: int | None
    township_name: str | None
    beneficiaries: int
    total: Yuan = Field(description="Committed and paid, reversals excluded")
    paid: Yuan


class SubsidySummary(SQLModel):
    year: int
    rows: list[SummaryRow]
    by_kind: list[SummaryRow]
    total: Yuan
    paid: Yuan
