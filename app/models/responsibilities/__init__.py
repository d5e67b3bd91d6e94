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
    AssignmentEvent,
    AssignmentStatus,
    MonthlyList,
    MonthlyListStatus,
    MonthlyTask,
    MonthlyTaskTarget,
    TargetMode,
    TaskAssignment,
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
    "AssignmentEvent", "AssignmentStatus", "ItemOutcome", "LetterItem", "LetterKind", "LetterStatus",
    "MonthlyList", "MonthlyListStatus", "MonthlyTask", "MonthlyTaskTarget", "Problem", "ProblemRejection",
    "ProblemSource", "ProblemStatus", "QuarterlyInspection", "ResponsibilityLetter", "TargetMode",
    "TaskAssignment", "TaskCategory", "TaskStatus",
]
