"""Monthly lists (月度清单): tasks with deadlines sent down, one assignment per target organisation."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator, model_validator
from sqlalchemy import CheckConstraint, Index, UniqueConstraint
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
from app.models.responsibilities.common import MONTH_PATTERN, TEXT, TITLE, SummaryOrg, TaskCategory

NOTE = 1000


class MonthlyListStatus(LabeledEnum):
    draft = "draft", "草拟", "Draft"
    issued = "issued", "已下发", "Issued"


class TargetMode(LabeledEnum):
    all_townships = "all_townships", "全部乡镇(街道)", "All townships"
    all_villages = "all_villages", "全部村(社区)", "All villages"
    chosen = "chosen", "指定组织", "Chosen organisations"


class TaskStatus(LabeledEnum):
    active = "active", "有效", "Active"
    cancelled = "cancelled", "已取消", "Cancelled"


class TaskAssignmentStatus(LabeledEnum):
    pending = "pending", "未开始", "Pending"
    in_progress = "in_progress", "推进中", "In progress"
    done = "done", "已完成", "Done"
    cancelled = "cancelled", "已取消", "Cancelled"


class MonthlyList(SQLModel, table=True):
    __tablename__ = "monthly_list"
    __table_args__ = (CheckConstraint("length(month) = 7", name="month_format"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True, description="The issuing organisation")
    month: str = Field(max_length=7, index=True)
    title: str = Field(max_length=TITLE)
    status: MonthlyListStatus = enum_field(MonthlyListStatus.draft, index=True)
    issued_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    issued_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class MonthlyTask(SQLModel, table=True):
    __tablename__ = "monthly_task"
    __table_args__ = (
        CheckConstraint("(status = 'cancelled') = (cancel_reason IS NOT NULL)", name="cancel_has_reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="monthly_list.id", index=True)
    position: int
    title: str = Field(max_length=TITLE)
    description: str | None = Field(default=None, max_length=TEXT)
    category: TaskCategory = enum_field()
    deadline: dt.date
    target_mode: TargetMode = enum_field()
    status: TaskStatus = enum_field(TaskStatus.active)
    amendment: bool = Field(default=False, description="Added after the list was issued")
    cancel_reason: str | None = Field(default=None, max_length=NOTE)
    cancelled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: int | None = Field(default=None, foreign_key="user_account.id")
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class MonthlyTaskTarget(SQLModel, table=True):
    __tablename__ = "monthly_task_target"
    __table_args__ = (UniqueConstraint("task_id", "org_id", name="uq_monthly_task_target_task_org"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="monthly_task.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    subtree: bool = False


class TaskAssignment(SQLModel, table=True):
    """One task sent to one organisation. Month, category and deadline are copied from the issued
    (and thereafter frozen) task so that lists of assignments filter without joins."""

    __tablename__ = "task_assignment"
    __table_args__ = (
        UniqueConstraint("task_id", "org_id", name="uq_task_assignment_task_org"),
        CheckConstraint("(status = 'done') = (done_on IS NOT NULL)", name="done_has_date"),
        CheckConstraint("reopen_count >= 0", name="reopen_count_non_negative"),
        Index("ix_task_assignment_org_month", "org_id", "month"),
        # The list's default order (deadline, org_id, id): a page walks the index instead of sorting every row.
        Index("ix_task_assignment_deadline_org_id", "deadline", "org_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="monthly_task.id", index=True)
    list_id: int = Field(foreign_key="monthly_list.id", index=True)
    org_id: int = Field(foreign_key="organization.id")
    month: str = Field(max_length=7, index=True)
    category: TaskCategory = enum_field(index=True)
    deadline: dt.date
    status: TaskAssignmentStatus = enum_field(TaskAssignmentStatus.pending, index=True)
    progress_note: str | None = Field(default=None, max_length=NOTE)
    done_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_on: dt.date | None = Field(default=None, description="The local date it was reported done")
    reopen_count: int = 0
    version: int = version_column()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class TaskAssignmentEvent(SQLModel, table=True):
    """The history of an assignment: every report, reopening and cancellation."""

    __tablename__ = "task_assignment_event"

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="task_assignment.id", index=True)
    at: dt.datetime = created_at_field()
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    from_status: TaskAssignmentStatus = enum_field()
    to_status: TaskAssignmentStatus = enum_field()
    note: str | None = Field(default=None, max_length=NOTE)


# ---------------------------------------------------------------- API schemas


class TaskTargetIn(CreateModel):
    org_id: int = id_field()
    subtree: bool = Field(default=False, description="Also every active organisation below it")


def _month_start(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)


class _TaskFields(SQLModel):
    @model_validator(mode="after")
    def _targets_match_mode(self) -> _TaskFields:
        mode = getattr(self, "target_mode", None)
        targets = getattr(self, "targets", None)
        if mode == TargetMode.chosen and not targets:
            raise ValueError("a task sent to chosen organisations needs targets")
        if mode in (TargetMode.all_townships, TargetMode.all_villages) and targets:
            raise ValueError(f"targets are only for target_mode 'chosen', not '{mode}'")
        if targets is not None and len({t.org_id for t in targets}) != len(targets):
            raise ValueError("each organisation may be targeted once")
        return self


class TaskCreate(_TaskFields, CreateModel):
    title: str = Field(min_length=1, max_length=TITLE)
    description: str | None = Field(default=None, max_length=TEXT)
    category: TaskCategory
    deadline: dt.date = Field(description="Inside or after the list's month")
    target_mode: TargetMode
    targets: list[TaskTargetIn] = Field(default_factory=list, max_length=500)

    _date = field_validator("deadline")(date_in_range)


class TaskUpdate(_TaskFields, UpdateModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)
    description: str | None = Field(default=None, max_length=TEXT)
    category: TaskCategory | None = None
    deadline: dt.date | None = None
    target_mode: TargetMode | None = None
    targets: list[TaskTargetIn] | None = Field(default=None, max_length=500)

    _date = field_validator("deadline")(date_in_range)


class MonthlyListCreate(CreateModel):
    month: str = Field(schema_extra={"pattern": MONTH_PATTERN}, description="YYYY-MM")
    title: str = Field(min_length=1, max_length=TITLE)
    tasks: list[TaskCreate] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _deadlines(self) -> MonthlyListCreate:
        start = _month_start(self.month)
        for task in self.tasks:
            if task.deadline < start:
                raise ValueError(f"task '{task.title}': the deadline is before {self.month}")
        return self


class MonthlyListUpdate(UpdateModel):
    month: str | None = Field(default=None, schema_extra={"pattern": MONTH_PATTERN})
    title: str | None = Field(default=None, min_length=1, max_length=TITLE)


class TaskCancel(CreateModel):
    reason: str = Field(min_length=1, max_length=NOTE)


class TaskTargetPublic(SQLModel):
    org_id: int
    subtree: bool


class MonthlyTaskPublic(SQLModel):
    id: int
    list_id: int
    position: int
    title: str
    description: str | None
    category: TaskCategory
    deadline: dt.date
    target_mode: TargetMode
    targets: list[TaskTargetPublic]
    status: TaskStatus
    amendment: bool
    cancel_reason: str | None
    cancelled_at: dt.datetime | None
    assignment_count: int
    version: int


class MonthlyListPublic(SQLModel):
    id: int
    org_id: int
    month: str
    title: str
    status: MonthlyListStatus
    issued_at: dt.datetime | None
    task_count: int
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class MonthlyListDetail(MonthlyListPublic):
    tasks: list[MonthlyTaskPublic]


class ProgressReport(CreateModel):
    status: TaskAssignmentStatus = Field(description="in_progress or done")
    note: str | None = Field(default=None, max_length=NOTE)

    @field_validator("status")
    @classmethod
    def _reportable(cls, v: TaskAssignmentStatus) -> TaskAssignmentStatus:
        if v not in (TaskAssignmentStatus.in_progress, TaskAssignmentStatus.done):
            raise ValueError("an assignee reports in_progress or done")
        return v


class TaskAssignmentReopen(CreateModel):
    reason: str = Field(min_length=1, max_length=NOTE)


class TaskAssignmentPublic(SQLModel):
    id: int
    task_id: int
    list_id: int
    task_title: str
    org_id: int
    org_name: str
    month: str
    category: TaskCategory
    deadline: dt.date
    status: TaskAssignmentStatus
    progress_note: str | None
    done_at: dt.datetime | None
    done_on: dt.date | None
    reopen_count: int
    overdue: bool = Field(description="The deadline has passed and it is not done (computed at request time)")
    days_overdue: int
    done_late: bool | None = Field(description="Done after its deadline; null while not done")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class TaskAssignmentEventPublic(SQLModel):
    id: int
    at: dt.datetime
    user_id: int | None
    from_status: TaskAssignmentStatus
    to_status: TaskAssignmentStatus
    note: str | None


class TaskAssignmentDetail(TaskAssignmentPublic):
    events: list[TaskAssignmentEventPublic]


class QuarterlyReviewRow(SummaryOrg):
    assigned: int
    done_on_time: int
    done_late: int
    still_open: int
    overdue: int
    on_time_rate: float | None = Field(description="Done on time as a percentage of assigned")


class QuarterlyReview(SQLModel):
    year: int
    quarter: int
    months: list[str]
    as_of: dt.date
    rows: list[QuarterlyReviewRow]
