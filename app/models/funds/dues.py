"""Party dues (党费): national rates as data, members' profiles, payments, reductions, arrears decisions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import field_validator, model_validator
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.core.money import Yuan
from app.models.common import CreateModel, created_at_field, date_in_range, enum_field, id_field
from app.models.funds.common import Month


class DuesCategory(LabeledEnum):
    employed = "employed", "在职", "Employed (after-tax regular wage)"
    retired = "retired", "离退休", "Retired (pension)"
    farmer = "farmer", "农民", "Farmer"
    student = "student", "学生", "Student"
    unemployed = "unemployed", "下岗失业", "Unemployed"
    relief = "relief", "依靠救济或低保", "Living on relief or subsistence allowance"
    other = "other", "其他", "Other"


class PaymentMethod(LabeledEnum):
    cash = "cash", "现金", "Cash"
    bank_transfer = "bank_transfer", "银行转账", "Bank transfer"
    wechat = "wechat", "微信", "WeChat Pay"
    alipay = "alipay", "支付宝", "Alipay"
    payroll = "payroll", "工资代扣", "Payroll deduction"
    other = "other", "其他", "Other"


class ReductionStatus(LabeledEnum):
    pending = "pending", "待批准", "Pending approval"
    approved = "approved", "已批准", "Approved"
    rejected = "rejected", "未批准", "Rejected"


class ArrearsDecisionKind(LabeledEnum):
    reminded = "reminded", "已提醒催缴", "Reminded to pay"
    talked = "talked", "谈话教育", "Talked with the member"
    justified = "justified", "有正当理由", "Justified: no action"
    deemed_withdrawn = "deemed_withdrawn", "按自行脱党处理", "Treated as having left the Party"
    other = "other", "其他", "Other"


class DuesThresholdCode(LabeledEnum):
    remit_to_centre = "remit_to_centre", "一次性自愿多交上缴中央标准", "Voluntary extra remitted to the centre from"
    arrears_flag_months = "arrears_flag_months", "连续未交党费月数", "Consecutive unpaid months flagged"


class DuesRate(SQLModel, table=True):
    """A national rate: for a category and a base up to `upper_fen` (inclusive; null = no upper bound), either
    `rate_bp` hundredths of a percent of the WHOLE base (not progressive), or a fixed monthly amount the branch
    chooses between fixed_min_fen and fixed_max_fen (equal for a set amount)."""

    __tablename__ = "dues_rate"
    __table_args__ = (
        CheckConstraint("rate_bp IS NOT NULL OR fixed_min_fen IS NOT NULL", name="rate_or_fixed"),
        CheckConstraint("rate_bp IS NULL OR rate_bp BETWEEN 0 AND 10000", name="rate_range"),
        CheckConstraint("fixed_max_fen IS NULL OR fixed_max_fen >= fixed_min_fen", name="fixed_order"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_order"),
        Index("ix_dues_rate_category_from", "category", "valid_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    category: DuesCategory = enum_field()
    valid_from: dt.date
    valid_to: dt.date | None = None
    upper_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    rate_bp: int | None = None
    fixed_min_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    fixed_max_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: dt.datetime = created_at_field()


class DuesRatePublic(SQLModel):
    id: int
    category: DuesCategory
    valid_from: dt.date
    valid_to: dt.date | None
    upper: Yuan | None
    rate_percent: str | None
    fixed_min: Yuan | None
    fixed_max: Yuan | None


class DuesThreshold(SQLModel, table=True):
    """A rule figure of the dues, effective-dated: the remit-to-centre amount (fen), the arrears months."""

    __tablename__ = "dues_threshold"
    __table_args__ = (CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_order"),)

    id: int | None = Field(default=None, primary_key=True)
    code: DuesThresholdCode = enum_field()
    valid_from: dt.date
    valid_to: dt.date | None = None
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class DuesProfile(SQLModel, table=True):
    """What a member pays from a month on: category and monthly base, or the branch's fixed amount."""

    __tablename__ = "dues_profile"
    __table_args__ = (
        UniqueConstraint("person_id", "effective_from"),
        CheckConstraint("base_fen IS NULL OR base_fen >= 0", name="base_non_negative"),
        CheckConstraint("fixed_fen IS NULL OR fixed_fen >= 0", name="fixed_non_negative"),
        CheckConstraint("monthly_due_fen >= 0", name="due_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    effective_from: dt.date  # first day of the month
    category: DuesCategory = enum_field()
    base_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    fixed_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    monthly_due_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    basis: str = Field(max_length=200)
    note: str | None = Field(default=None, max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class DuesProfileCreate(CreateModel):
    member_id: int = id_field()
    effective_from: Month
    category: DuesCategory
    base: Yuan | None = Field(default=None, description="Monthly base: after-tax regular wage, or pension")
    fixed: Yuan | None = Field(default=None, description="The branch's fixed monthly amount (farmers, other)")
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _shape(self) -> DuesProfileCreate:
        for name in ("base", "fixed"):
            value = getattr(self, name)
            if value is not None and value < Decimal(0):
                raise ValueError(f"{name} cannot be negative")
        if self.category in ("employed", "retired"):
            if self.base is None:
                raise ValueError(f"a {self.category} member's profile needs the monthly base")
            if self.fixed is not None:
                raise ValueError(f"a {self.category} member pays a rate of the base, not a fixed amount")
        elif self.base is not None:
            raise ValueError(f"a {self.category} member pays a fixed amount, not a rate of a base")
        return self


class DuesProfilePublic(SQLModel):
    id: int
    member_id: int
    effective_from: Month
    category: DuesCategory
    base: Yuan | None
    fixed: Yuan | None
    monthly_due: Yuan
    basis: str
    note: str | None
    created_by: int | None
    created_at: dt.datetime


class DuesReduction(SQLModel, table=True):
    """A hardship reduction or exemption: applies only once approved by the level above."""

    __tablename__ = "dues_reduction"
    __table_args__ = (
        CheckConstraint("monthly_due_fen >= 0", name="due_non_negative"),
        CheckConstraint("to_month IS NULL OR to_month >= from_month", name="month_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    from_month: dt.date
    to_month: dt.date | None = None
    monthly_due_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(max_length=500)
    status: ReductionStatus = enum_field(ReductionStatus.pending, index=True)
    requested_by: int | None = Field(default=None, foreign_key="user_account.id")
    decided_by: int | None = Field(default=None, foreign_key="user_account.id")
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    approval_ref: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = created_at_field()


class DuesReductionCreate(CreateModel):
    member_id: int = id_field()
    from_month: Month
    to_month: Month | None = None
    monthly_due: Yuan = Field(description="The reduced monthly due, below what the member owes in from_month; 0.00 for "
                                          "an exemption")
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _shape(self) -> DuesReductionCreate:
        if self.monthly_due < 0:
            raise ValueError("monthly_due cannot be negative")
        if self.to_month is not None and self.to_month < self.from_month:
            raise ValueError("to_month must not be before from_month")
        return self


class ReductionDecision(CreateModel):
    approve: bool
    approval_ref: str = Field(min_length=1, max_length=100, description="The approving document's number")


class DuesReductionPublic(SQLModel):
    id: int
    member_id: int
    org_id: int
    from_month: Month
    to_month: Month | None
    monthly_due: Yuan
    reason: str
    status: ReductionStatus
    requested_by: int | None
    decided_by: int | None
    decided_at: dt.datetime | None
    approval_ref: str | None
    created_at: dt.datetime


class DuesPayment(SQLModel, table=True):
    """A payment covering consecutive months; amount = due + voluntary extra."""

    __tablename__ = "dues_payment"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("due_fen >= 0 AND extra_fen >= 0", name="parts_non_negative"),
        CheckConstraint("amount_fen = due_fen + extra_fen", name="amount_is_sum"),
        CheckConstraint("month_to >= month_from", name="month_order"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    month_from: dt.date
    month_to: dt.date
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    due_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    extra_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    remit_to_centre: bool = False
    paid_on: dt.date
    method: PaymentMethod = enum_field()
    receipt_no: str | None = Field(default=None, max_length=50)
    budget_line_id: int = Field(foreign_key="budget_line.id", index=True)
    recorded_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class DuesPaymentMonth(SQLModel, table=True):
    """A month a payment covers: a member's month is paid once (unique)."""

    __tablename__ = "dues_payment_month"
    __table_args__ = (
        UniqueConstraint("person_id", "month"),
        CheckConstraint("due_fen >= 0", name="due_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="dues_payment.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    month: dt.date
    due_fen: int = Field(sa_column=Column(BigInteger, nullable=False))


class DuesPaymentCreate(CreateModel):
    member_id: int = id_field()
    month_from: Month
    month_to: Month | None = Field(default=None, description="Last month covered; default month_from")
    amount: Yuan = Field(description="What the member paid: the dues of the months plus any voluntary extra")
    paid_on: dt.date
    method: PaymentMethod
    receipt_no: str | None = Field(default=None, max_length=50)

    _date = field_validator("paid_on")(date_in_range)

    @model_validator(mode="after")
    def _shape(self) -> DuesPaymentCreate:
        if self.amount <= 0:
            raise ValueError("the amount must be positive")
        if self.month_to is not None and self.month_to < self.month_from:
            raise ValueError("month_to must not be before month_from")
        return self


class DuesPaymentPublic(SQLModel):
    id: int
    member_id: int
    org_id: int
    month_from: Month
    month_to: Month
    amount: Yuan
    due: Yuan
    extra: Yuan
    remit_to_centre: bool
    paid_on: dt.date
    method: PaymentMethod
    receipt_no: str | None
    budget_line_id: int
    recorded_by: int | None
    created_at: dt.datetime


class StatementMonth(SQLModel):
    month: Month
    due: Yuan
    paid: Yuan
    balance: Yuan = Field(description="due − paid for the month")
    status: str = Field(description="paid, unpaid, not_due (before the first profile or admission), exempt")
    basis: str | None = None


class DuesStatement(SQLModel):
    member_id: int
    member_name: str
    year: int
    months: list[StatementMonth]
    due: Yuan
    paid: Yuan
    balance: Yuan
    voluntary_extra: Yuan


class ArrearsDecisionCreate(CreateModel):
    member_id: int = id_field()
    decision: ArrearsDecisionKind
    note: str = Field(min_length=1, max_length=500)
    decided_on: dt.date

    _date = field_validator("decided_on")(date_in_range)


class DuesArrearsDecision(SQLModel, table=True):
    """What the branch decided about a member flagged for consecutive unpaid months."""

    __tablename__ = "dues_arrears_decision"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    consecutive_months: int
    decision: ArrearsDecisionKind = enum_field()
    note: str = Field(max_length=500)
    decided_on: dt.date
    decided_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()


class ArrearsDecisionPublic(SQLModel):
    id: int
    member_id: int
    org_id: int
    consecutive_months: int
    decision: ArrearsDecisionKind
    note: str
    decided_on: dt.date
    decided_by: int | None
    created_at: dt.datetime


class ArrearsRow(SQLModel):
    member_id: int
    member_name: str
    org_id: int
    unpaid_months: int
    owed: Yuan
    first_unpaid: Month
    last_unpaid: Month
    consecutive_unpaid: int = Field(description="The longest run of consecutive unpaid months")
    flagged: bool = Field(description="consecutive_unpaid reaches the threshold (six months): the branch decides")
    last_decision: ArrearsDecisionKind | None = None
    last_decision_on: dt.date | None = None
