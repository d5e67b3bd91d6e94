"""The budget ledger: lines, allocations down the tree, disbursements and their reversals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import field_validator, model_validator
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, text
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
from app.models.funds.common import YEAR_MAX, YEAR_MIN, FiscalYear


class BudgetCategory(LabeledEnum):
    party_work = "party_work", "党建工作经费", "Party-work fund"
    training = "training", "培训经费", "Training fund"
    community_work = "community_work", "社区工作经费", "Community work fund"
    venue_construction = "venue_construction", "阵地建设", "Venue construction"
    cadre_pay = "cadre_pay", "村干部基本报酬", "Village cadres' basic pay"
    altitude_allowance = "altitude_allowance", "高海拔临岗补贴", "High-altitude post allowance"
    accident_insurance = "accident_insurance", "人身意外伤害保险", "Accident insurance"
    pension_subsidy = "pension_subsidy", "养老保险补贴", "Pension insurance subsidy"
    retired_allowance = "retired_allowance", "离任村干部生活补助", "Retired village cadres' living allowance"
    party_dues = "party_dues", "党费", "Party dues"
    other = "other", "其他", "Other"


class DisbursementStatus(LabeledEnum):
    pending = "pending", "待审批", "Pending approval"
    approved = "approved", "已审批", "Approved"
    paid = "paid", "已支付", "Paid"
    cancelled = "cancelled", "已取消", "Cancelled"
    reversed = "reversed", "已冲销", "Reversed"


class PayeeKind(LabeledEnum):
    organization = "organization", "组织", "Organisation"
    person = "person", "个人", "Person"
    other = "other", "其他收款方", "Other payee (free text)"


def _fen_column(*, default: int = 0) -> Column[int]:
    return Column(BigInteger, nullable=False, default=default, server_default=str(default))


class BudgetLine(SQLModel, table=True):
    """Money an organisation holds for a year and a purpose.

    committed = allocated_down + approved + paid, and committed ≤ allocated: both are CHECK constraints,
    so no interleaving of requests can overspend a line. Available = allocated − committed.
    """

    __tablename__ = "budget_line"
    __table_args__ = (
        CheckConstraint("allocated_fen >= 0", name="allocated_non_negative"),
        CheckConstraint("allocated_down_fen >= 0", name="allocated_down_non_negative"),
        CheckConstraint("approved_fen >= 0", name="approved_non_negative"),
        CheckConstraint("paid_fen >= 0", name="paid_non_negative"),
        CheckConstraint("committed_fen = allocated_down_fen + approved_fen + paid_fen", name="committed_is_sum"),
        CheckConstraint("committed_fen <= allocated_fen", name="within_allocation"),
        CheckConstraint(f"fiscal_year BETWEEN {YEAR_MIN} AND {YEAR_MAX}", name="year_range"),
        Index("ix_budget_line_year_org_category", "fiscal_year", "org_id", "category"),
        # Party dues accrue to THE party_dues line of an organisation and year.
        Index("uq_budget_line_party_dues", "fiscal_year", "org_id", unique=True,
              sqlite_where=text("category = 'party_dues'"), postgresql_where=text("category = 'party_dues'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    fiscal_year: int
    org_id: int = Field(foreign_key="organization.id", index=True)
    category: BudgetCategory = enum_field()
    name: str = Field(max_length=100)
    source: str | None = Field(default=None, max_length=200)
    parent_line_id: int | None = Field(default=None, foreign_key="budget_line.id", index=True)
    allocated_fen: int = Field(default=0, sa_column=_fen_column())
    allocated_down_fen: int = Field(default=0, sa_column=_fen_column())
    approved_fen: int = Field(default=0, sa_column=_fen_column())
    paid_fen: int = Field(default=0, sa_column=_fen_column())
    committed_fen: int = Field(default=0, sa_column=_fen_column())
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()

    @property
    def available_fen(self) -> int:
        return self.allocated_fen - self.committed_fen


class BudgetLineCreate(CreateModel):
    fiscal_year: FiscalYear
    org_id: int = id_field()
    category: BudgetCategory
    name: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1, max_length=200, description="Where the money comes from, e.g. 市财政")
    allocated: Yuan = Field(description="The amount the line starts with (yuan, ≥ 0)")

    @field_validator("allocated")
    @classmethod
    def _non_negative(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("the allocated amount cannot be negative")
        return v


class BudgetLinePublic(SQLModel):
    id: int
    fiscal_year: int
    org_id: int
    org_name: str | None = None
    category: BudgetCategory
    name: str
    source: str | None
    parent_line_id: int | None
    allocated: Yuan
    allocated_down: Yuan
    approved: Yuan
    paid: Yuan
    committed: Yuan
    available: Yuan
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class BudgetAllocation(SQLModel, table=True):
    """Money passed down the tree: from a line to a line of the same year and category below it."""

    __tablename__ = "budget_allocation"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    fiscal_year: int
    category: BudgetCategory = enum_field()
    from_line_id: int = Field(foreign_key="budget_line.id", index=True)
    to_line_id: int = Field(foreign_key="budget_line.id", index=True)
    from_org_id: int = Field(foreign_key="organization.id", index=True)
    to_org_id: int = Field(foreign_key="organization.id", index=True)
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    note: str | None = Field(default=None, max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class AllocationCreate(CreateModel):
    from_line_id: int = id_field()
    to_org_id: int = id_field(description="An organisation below the line's owner")
    to_line_id: int | None = id_field(
        default=None, description="An existing line of the target; omitted: the target's line of that year and "
        "category (created when it has none; with several, name one)",
    )
    amount: Yuan
    name: str | None = Field(default=None, min_length=1, max_length=100, description="Name of a new target line")
    note: str | None = Field(default=None, max_length=500)

    @field_validator("amount")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("the amount must be positive")
        return v


class AllocationPublic(SQLModel):
    id: int
    fiscal_year: int
    category: BudgetCategory
    from_line_id: int
    to_line_id: int
    from_org_id: int
    to_org_id: int
    amount: Yuan
    note: str | None
    created_by: int | None
    created_at: dt.datetime


class Disbursement(SQLModel, table=True):
    """Money paid out of a line: pending → approved → paid, or cancelled before payment; paid ones are
    reversed, never deleted."""

    __tablename__ = "disbursement"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_disbursement_line_status", "line_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="budget_line.id")
    org_id: int = Field(foreign_key="organization.id", index=True)  # the line's owner, for scope
    payee_kind: PayeeKind = enum_field()
    payee_org_id: int | None = Field(default=None, foreign_key="organization.id")
    payee_person_id: int | None = Field(default=None, foreign_key="person.id")
    payee_name: str = Field(max_length=200)
    purpose: str = Field(max_length=500)
    disbursed_on: dt.date
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: DisbursementStatus = enum_field(DisbursementStatus.pending, index=True)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    approved_by: int | None = Field(default=None, foreign_key="user_account.id")
    approved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    paid_by: int | None = Field(default=None, foreign_key="user_account.id")
    paid_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: int | None = Field(default=None, foreign_key="user_account.id")
    cancelled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_reason: str | None = Field(default=None, max_length=500)
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DisbursementCreate(CreateModel):
    line_id: int = id_field()
    payee_kind: PayeeKind
    payee_org_id: int | None = id_field(default=None)
    payee_person_id: int | None = id_field(default=None)
    payee_name: str | None = Field(default=None, min_length=1, max_length=200,
                                   description="Required for payee_kind=other")
    purpose: str = Field(min_length=1, max_length=500)
    disbursed_on: dt.date
    amount: Yuan

    _date = field_validator("disbursed_on")(date_in_range)

    @field_validator("amount")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("the amount must be positive")
        return v

    @model_validator(mode="after")
    def _payee(self) -> DisbursementCreate:
        given = {"organization": self.payee_org_id, "person": self.payee_person_id, "other": self.payee_name}
        if given[self.payee_kind] is None:
            field = {"organization": "payee_org_id", "person": "payee_person_id", "other": "payee_name"}
            raise ValueError(f"payee_kind={self.payee_kind} needs {field[self.payee_kind]}")
        if self.payee_kind != "organization" and self.payee_org_id is not None:
            raise ValueError("payee_org_id is only for payee_kind=organization")
        if self.payee_kind != "person" and self.payee_person_id is not None:
            raise ValueError("payee_person_id is only for payee_kind=person")
        return self


class ReasonBody(CreateModel):
    reason: str = Field(min_length=1, max_length=500)


class DisbursementReversalPublic(SQLModel):
    id: int
    amount: Yuan
    reason: str
    created_by: int | None
    created_at: dt.datetime


class DisbursementPublic(SQLModel):
    id: int
    line_id: int
    org_id: int
    payee_kind: PayeeKind
    payee_org_id: int | None
    payee_person_id: int | None
    payee_name: str
    purpose: str
    disbursed_on: dt.date
    amount: Yuan
    status: DisbursementStatus
    created_by: int | None
    approved_by: int | None
    approved_at: dt.datetime | None
    paid_by: int | None
    paid_at: dt.datetime | None
    cancelled_by: int | None
    cancelled_at: dt.datetime | None
    cancel_reason: str | None
    reversal: DisbursementReversalPublic | None = None
    version: int
    created_at: dt.datetime


class DisbursementReversal(SQLModel, table=True):
    """The entry that undoes a paid disbursement and gives the money back to its line."""

    __tablename__ = "disbursement_reversal"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    disbursement_id: int = Field(foreign_key="disbursement.id", unique=True)
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class ExecutionRow(SQLModel):
    """One row of the budget execution report. net = allocated − allocated_down: the money kept at this
    level, counted once however far it was passed down; execution_rate = paid / net."""

    row_type: str = Field(description="line, organization, category or total")
    line_id: int | None = None
    org_id: int | None = None
    org_name: str | None = None
    category: BudgetCategory | None = None
    name: str | None = None
    lines: int = 1
    allocated: Yuan
    allocated_down: Yuan
    net: Yuan
    approved: Yuan
    paid: Yuan
    committed: Yuan
    available: Yuan
    execution_rate: str | None = Field(description="paid / net as a decimal with 4 places, null when net is 0")


class ExecutionReport(SQLModel):
    fiscal_year: int
    lines: list[ExecutionRow]
    by_organization: list[ExecutionRow]
    by_category: list[ExecutionRow]
    total: ExecutionRow
