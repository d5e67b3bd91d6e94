"""What every evaluation shares: scores as Decimal, weights and thresholds as data, the grades.

Scores are Decimal in the API ("87.50", never floats) and integer hundredths of a point in the
database (`*_centi`); weights are integer ten-thousandths (`*_e4`). Every computed score is
rounded half up (四舍五入) to 2 places, and grades are read from the rounded score.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema, field_validator, model_validator
from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.enums import LabeledEnum
from app.models.common import CreateModel, created_at_field, enum_field

YEAR_MIN, YEAR_MAX = 2000, 2100
TEXT_MAX = 4000
REPORT_MAX = 20000
MAX_VOTES = 1_000_000
CENTI = Decimal("0.01")


def round_half_up(value: Decimal) -> Decimal:
    """Half up to 2 places: 89.995 → 90.00 (never banker's rounding)."""
    return value.quantize(CENTI, rounding=ROUND_HALF_UP)


def to_centi(score: Decimal) -> int:
    return int(round_half_up(score) * 100)


def from_centi(centi: int | None) -> Decimal | None:
    return None if centi is None else (Decimal(centi) / 100).quantize(CENTI)


def to_e4(value: Decimal) -> int:
    return int((value * 10000).to_integral_value(rounding=ROUND_HALF_UP))


def from_e4(value: int | None) -> Decimal | None:
    return None if value is None else (Decimal(value) / 10000).normalize()


def _decimal(value: Any, places: int, what: str, example: str) -> Decimal:
    if isinstance(value, float | bool):
        raise ValueError(f'send {what} as an integer or a decimal string such as "{example}", not as a float')
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f'not a {what}: use a decimal string such as "{example}"') from None
    if not number.is_finite():
        raise ValueError(f"not a finite {what}")
    if number.as_tuple().exponent < -places:  # type: ignore[operator]
        raise ValueError(f"a {what} has at most {places} decimal places")
    return number


def _parse_score(value: Any) -> Decimal:
    score = _decimal(value, 2, "score", "87.50")
    if not (Decimal(0) <= score <= Decimal(100)):
        raise ValueError("a score is between 0 and 100")
    return score.quantize(CENTI)


def _fmt2(value: Decimal) -> str:
    return f"{value:.2f}"


Score = Annotated[
    Decimal,
    BeforeValidator(_parse_score),
    PlainSerializer(_fmt2, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,3}(\.\d{1,2})?$", "examples": ["87.50"]}),
]
"""A score 0–100 with at most 2 decimals: in as an integer or a decimal string, out as "87.50"."""

ScoreOut = Annotated[
    Decimal,
    PlainSerializer(_fmt2, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,3}\.\d{2}$", "examples": ["87.50"]}),
]


def _parse_setting(value: Any) -> Decimal:
    number = _decimal(value, 4, "value", "0.4")
    if not (Decimal(0) <= number <= Decimal(100)):
        raise ValueError("a setting's value is between 0 and 100")
    return number


SettingValue = Annotated[
    Decimal,
    BeforeValidator(_parse_setting),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,3}(\.\d{1,4})?$", "examples": ["0.4"]}),
]


# ---------------------------------------------------------------------------
# Settings: weights as data


class SettingKey(LabeledEnum):
    villager_weight = "villager_weight", "群众测评权重", \
        "Dual evaluation: weight w of the villagers' score (final = villagers × w + committee × (1 − w))"
    vote_weight_satisfied = "vote_weight_satisfied", "满意票分值", "Dual evaluation: points of a satisfied vote"
    vote_weight_basically_satisfied = "vote_weight_basically_satisfied", "基本满意票分值", \
        "Dual evaluation: points of a basically satisfied vote"
    vote_weight_dissatisfied = "vote_weight_dissatisfied", "不满意票分值", \
        "Dual evaluation: points of a dissatisfied vote"
    quarterly_weight = "quarterly_weight", "季度考核权重", \
        "Secretaries: weight w of the quarterly average (year = quarterly × w + year-end × (1 − w))"
    excellent_share_cap = "excellent_share_cap", "优秀比例上限", \
        "Democratic evaluation: largest share of excellent ratings (none when absent or null)"


# key → (lowest, highest) value it may take
SETTING_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    SettingKey.villager_weight: (Decimal(0), Decimal(1)),
    SettingKey.vote_weight_satisfied: (Decimal(0), Decimal(100)),
    SettingKey.vote_weight_basically_satisfied: (Decimal(0), Decimal(100)),
    SettingKey.vote_weight_dissatisfied: (Decimal(0), Decimal(100)),
    SettingKey.quarterly_weight: (Decimal(0), Decimal(1)),
    SettingKey.excellent_share_cap: (Decimal(0), Decimal(1)),
}
NULLABLE_SETTINGS = frozenset({SettingKey.excellent_share_cap})


class EvaluationSetting(SQLModel, table=True):
    """A weight in force from `effective_year` on (until a later row for the same key)."""

    __tablename__ = "evaluation_setting"
    __table_args__ = (
        UniqueConstraint("key", "effective_year", name="uq_evaluation_setting_key_year"),
        CheckConstraint("value_e4 IS NULL OR (value_e4 >= 0 AND value_e4 <= 1000000)", name="value_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: SettingKey = enum_field(length=40)
    effective_year: int
    value_e4: int | None = None  # the value × 10,000; null only for "no cap"
    note: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = created_at_field()


class SettingCreate(CreateModel):
    key: SettingKey
    effective_year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    value: SettingValue | None = Field(description="Null only for excellent_share_cap: no cap from this year")
    note: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _range(self) -> SettingCreate:
        if self.value is None:
            if self.key not in NULLABLE_SETTINGS:
                raise ValueError(f"{self.key} needs a value")
            return self
        low, high = SETTING_RANGES[self.key]
        if not (low <= self.value <= high):
            raise ValueError(f"{self.key} is between {low} and {high}")
        return self


class SettingPublic(SQLModel):
    id: int
    key: SettingKey
    effective_year: int
    value: SettingValue | None
    note: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: EvaluationSetting) -> SettingPublic:
        return cls.model_validate(row, update={"value": from_e4(row.value_e4)})


# ---------------------------------------------------------------------------
# Grades and their thresholds


class Grade(LabeledEnum):
    excellent = "excellent", "优秀", "Excellent"
    competent = "competent", "称职", "Competent"
    basically_competent = "basically_competent", "基本称职", "Basically competent"
    incompetent = "incompetent", "不称职", "Incompetent"


class GradeScheme(LabeledEnum):
    dual_evaluation = "dual_evaluation", "双述双评", "Dual debriefing and dual evaluation of village cadres"
    secretary_appraisal = "secretary_appraisal", "书记述职评议考核", "Secretaries' year score"


class GradeThreshold(SQLModel, table=True):
    """The lowest score (inclusive) of each grade but the last, from `effective_year` on."""

    __tablename__ = "grade_threshold"
    __table_args__ = (
        UniqueConstraint("scheme", "effective_year", name="uq_grade_threshold_scheme_year"),
        CheckConstraint(
            "excellent_min_centi <= 10000 AND excellent_min_centi > competent_min_centi "
            "AND competent_min_centi > basically_competent_min_centi AND basically_competent_min_centi > 0",
            name="ordered",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    scheme: GradeScheme = enum_field()
    effective_year: int
    excellent_min_centi: int
    competent_min_centi: int
    basically_competent_min_centi: int
    created_at: dt.datetime = created_at_field()


class ThresholdCreate(CreateModel):
    scheme: GradeScheme
    effective_year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)
    excellent: Score
    competent: Score
    basically_competent: Score

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdCreate:
        if not (self.excellent > self.competent > self.basically_competent > 0):
            raise ValueError("thresholds must fall: excellent > competent > basically_competent > 0")
        return self


class ThresholdPublic(SQLModel):
    id: int
    scheme: GradeScheme
    effective_year: int
    excellent: ScoreOut = Field(description="Lowest score (inclusive) graded excellent")
    competent: ScoreOut
    basically_competent: ScoreOut = Field(description="Below this: incompetent")
    created_at: dt.datetime

    @classmethod
    def of(cls, row: GradeThreshold) -> ThresholdPublic:
        return cls.model_validate(row, update={
            "excellent": from_centi(row.excellent_min_centi), "competent": from_centi(row.competent_min_centi),
            "basically_competent": from_centi(row.basically_competent_min_centi),
        })


def grade_for(score: Decimal, t: GradeThreshold) -> Grade:
    """The grade of a (rounded) score: each threshold is the lowest score of its grade."""
    centi = to_centi(score)
    if centi >= t.excellent_min_centi:
        return Grade.excellent
    if centi >= t.competent_min_centi:
        return Grade.competent
    if centi >= t.basically_competent_min_centi:
        return Grade.basically_competent
    return Grade.incompetent


# ---------------------------------------------------------------------------
# The eight duties (八大员)


class CadreDuty(SQLModel, table=True):
    """One duty of the village cadres' duty list, in force from `from_year` through `to_year`."""

    __tablename__ = "cadre_duty"
    __table_args__ = (
        CheckConstraint("to_year IS NULL OR to_year >= from_year", name="years_ordered"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=50)
    name_en: str = Field(max_length=100)
    sort_order: int = 0
    from_year: int
    to_year: int | None = None
    created_at: dt.datetime = created_at_field()


class CadreDutyCreate(CreateModel):
    code: str = Field(schema_extra={"pattern": r"^[a-z][a-z0-9_]{1,39}$"})
    name: str = Field(min_length=1, max_length=50)
    name_en: str = Field(min_length=1, max_length=100)
    sort_order: int = Field(default=0, ge=0, le=1000)
    from_year: int = Field(ge=YEAR_MIN, le=YEAR_MAX)


class CadreDutyRetire(CreateModel):
    to_year: int = Field(ge=YEAR_MIN, le=YEAR_MAX, description="The last year the duty is on the list")


class CadreDutyPublic(SQLModel):
    id: int
    code: str
    name: str
    name_en: str
    sort_order: int
    from_year: int
    to_year: int | None


def year_field(**kw: Any) -> Any:
    return Field(ge=YEAR_MIN, le=YEAR_MAX, **kw)


def dates_in_range(*names: str) -> Any:
    from app.models.common import date_in_range

    return field_validator(*names)(date_in_range)


def quarter_bounds(year: int, quarter: int) -> tuple[dt.date, dt.date]:
    start = dt.date(year, 3 * quarter - 2, 1)
    end = dt.date(year, 12, 31) if quarter == 4 else dt.date(year, 3 * quarter + 1, 1) - dt.timedelta(days=1)
    return start, end
