"""The three lists (实): responsibility letters, monthly lists and problem lists."""

from app.models.responsibilities.common import TaskCategory
from app.models.responsibilities.letters import (
    ItemOutcome,
    LetterItem,
    LetterKind,
    LetterStatus,
    ResponsibilityLetter,
)
from app.models.responsibilities.monthly import (
    MonthlyList,
    MonthlyListStatus,
    MonthlyTask,
    MonthlyTaskTarget,
    TargetMode,
    TaskAssignment,
    TaskAssignmentEvent,
    TaskAssignmentStatus,
    TaskStatus,
)
from app.models.responsibilities.problems import (
    Problem,
    ProblemRejection,
    ProblemSource,
    ProblemStatus,
    QuarterlyInspection,
)

__all__ = [
    "ItemOutcome",
    "LetterItem",
    "LetterKind",
    "LetterStatus",
    "MonthlyList",
    "MonthlyListStatus",
    "MonthlyTask",
    "MonthlyTaskTarget",
    "Problem",
    "ProblemRejection",
    "ProblemSource",
    "ProblemStatus",
    "QuarterlyInspection",
    "ResponsibilityLetter",
    "TargetMode",
    "TaskAssignment",
    "TaskAssignmentEvent",
    "TaskAssignmentStatus",
    "TaskCategory",
    "TaskStatus",
]
