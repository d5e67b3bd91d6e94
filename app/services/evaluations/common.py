"""Shared by the evaluation services: scope, the settings and thresholds in force, the duty list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.scope import Actor, get_in_scope, require_org_in_scope, subtree_org_ids
from app.models.evaluations.common import (
    CadreDuty,
    CadreDutyCreate,
    EvaluationSetting,
    GradeScheme,
    GradeThreshold,
    SettingCreate,
    SettingKey,
    ThresholdCreate,
    from_e4,
    to_centi,
    to_e4,
)
from app.models.organizations import Organization
from app.models.people import MemberStatus, Person, PersonStatus, Position

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
MEMBER_STATUSES = (MemberStatus.full, MemberStatus.probationary)


def today() -> dt.date:
    """The local business date; tests monkeypatch this to fix "today"."""
    return dt.datetime.now(LOCAL_TZ).date()


def not_future(value: dt.date, loc: list[str | int]) -> None:
    if value > today():
        raise invalid(loc, f"{loc[-1]} cannot be in the future")


# ---------------------------------------------------------------------------
# Scope


def org_filter(session: Session, actor: Actor, stmt: Any, org_col: Any, org_id: int | None, subtree: bool) -> Any:
    """The API's org_id (+ subtree) filter, always inside the actor's scope."""
    if org_id is None:
        return stmt if actor.sees_everything else stmt.where(org_col.in_(subtree_org_ids(actor.org_path)))
    path = require_org_in_scope(session, actor, org_id)
    return stmt.where(org_col.in_(subtree_org_ids(path))) if subtree else stmt.where(org_col == org_id)


def org_in_scope(session: Session, actor: Actor, org_id: int) -> Organization:
    require_org_in_scope(session, actor, org_id)
    org = session.get(Organization, org_id)
    assert org is not None
    return org


def person_in_scope(session: Session, actor: Actor, person_id: int) -> Person:
    return get_in_scope(session, actor, Person, person_id, "Person")[0]


def names_of(session: Session, person_ids: set[int]) -> dict[int, str]:
    """People's names in one query."""
    if not person_ids:
        return {}
    rows = session.execute(select(Person.id, Person.name).where(col(Person.id).in_(person_ids))).all()
    return {pid: name for pid, name in rows}


def member_problems(person: Person, org_id: int) -> list[str]:
    """Why `person` is not a full or probationary member on the roll of organisation `org_id`."""
    reasons = []
    if person.org_id != org_id:
        reasons.append(f"{person.name} is not a member of organisation {org_id}")
    if person.status != PersonStatus.active:
        reasons.append(f"{person.name} is not on the roll (status {person.status})")
    if person.member_status not in MEMBER_STATUSES:
        reasons.append(f"{person.name} is not a full or probationary party member")
    return reasons


def require_member(person: Person, org_id: int, loc: list[str | int]) -> None:
    reasons = member_problems(person, org_id)
    if reasons:
        raise ProblemError(422, "not_a_member", "; ".join(reasons), errors=[{"loc": loc, "msg": r} for r in reasons])


def holds_position(session: Session, *, person_id: int, org_id: int, start: dt.date, end: dt.date,
                   title: str | None = None) -> bool:
    """The person held a position (of `title`, if given) in the organisation on some day of [start, end]."""
    stmt = select(Position.id).where(
        Position.person_id == person_id, Position.org_id == org_id, Position.started_on <= end,
        or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= start),
    )
    if title is not None:
        stmt = stmt.where(Position.title == title)
    return session.scalar(stmt.limit(1)) is not None


# ---------------------------------------------------------------------------
# Settings and thresholds: the row with the latest effective_year not after the year applies


def setting(session: Session, key: SettingKey, year: int) -> Decimal | None:
    row = session.execute(
        select(EvaluationSetting.value_e4).where(EvaluationSetting.key == key, EvaluationSetting.effective_year <= year)
        .order_by(col(EvaluationSetting.effective_year).desc()).limit(1)
    ).first()
    return None if row is None else from_e4(row[0])


def require_setting(session: Session, key: SettingKey, year: int) -> Decimal:
    value = setting(session, key, year)
    if value is None:
        raise conflict("no_setting", f"No value of {key} is in force for {year}; add one first.")
    return value


def thresholds(session: Session, scheme: GradeScheme, year: int) -> GradeThreshold:
    row = session.scalar(
        select(GradeThreshold).where(GradeThreshold.scheme == scheme, GradeThreshold.effective_year <= year)
        .order_by(col(GradeThreshold.effective_year).desc()).limit(1)
    )
    if row is None:
        raise conflict("no_thresholds", f"No {scheme} grade thresholds are in force for {year}; add them first.")
    return row


def list_settings(session: Session, key: str | None) -> list[EvaluationSetting]:
    stmt = select(EvaluationSetting)
    if key:
        stmt = stmt.where(EvaluationSetting.key == key)
    return list(session.scalars(stmt.order_by(EvaluationSetting.key, EvaluationSetting.effective_year)))


def create_setting(session: Session, actor: Actor, data: SettingCreate) -> EvaluationSetting:
    exists = session.scalar(select(EvaluationSetting.id).where(
        EvaluationSetting.key == data.key, EvaluationSetting.effective_year == data.effective_year))
    if exists:
        raise conflict("duplicate_setting", f"{data.key} already has a value from {data.effective_year}.")
    row = EvaluationSetting(key=data.key, effective_year=data.effective_year,
                            value_e4=None if data.value is None else to_e4(data.value), note=data.note)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="evaluation_setting.create", entity="evaluation_setting",
                 entity_id=row.id, after=audit.snapshot(row))
    return row


def list_thresholds(session: Session, scheme: str | None) -> list[GradeThreshold]:
    stmt = select(GradeThreshold)
    if scheme:
        stmt = stmt.where(GradeThreshold.scheme == scheme)
    return list(session.scalars(stmt.order_by(GradeThreshold.scheme, GradeThreshold.effective_year)))


def create_threshold(session: Session, actor: Actor, data: ThresholdCreate) -> GradeThreshold:
    exists = session.scalar(select(GradeThreshold.id).where(
        GradeThreshold.scheme == data.scheme, GradeThreshold.effective_year == data.effective_year))
    if exists:
        raise conflict("duplicate_thresholds", f"{data.scheme} already has thresholds from {data.effective_year}.")
    row = GradeThreshold(scheme=data.scheme, effective_year=data.effective_year,
                         excellent_min_centi=to_centi(data.excellent), competent_min_centi=to_centi(data.competent),
                         basically_competent_min_centi=to_centi(data.basically_competent))
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="grade_threshold.create", entity="grade_threshold",
                 entity_id=row.id, after=audit.snapshot(row))
    return row


# ---------------------------------------------------------------------------
# The duty list


def duties_for_year(session: Session, year: int) -> list[CadreDuty]:
    return list(session.scalars(
        select(CadreDuty).where(CadreDuty.from_year <= year,
                                or_(col(CadreDuty.to_year).is_(None), col(CadreDuty.to_year) >= year))
        .order_by(CadreDuty.sort_order, CadreDuty.id)
    ))


def list_duties(session: Session, year: int | None) -> list[CadreDuty]:
    if year is not None:
        return duties_for_year(session, year)
    return list(session.scalars(select(CadreDuty).order_by(CadreDuty.sort_order, CadreDuty.id)))


def create_duty(session: Session, actor: Actor, data: CadreDutyCreate) -> CadreDuty:
    if session.scalar(select(CadreDuty.id).where(CadreDuty.code == data.code)):
        raise conflict("duplicate_duty", f"A duty with code {data.code} exists.")
    row = CadreDuty(**data.model_dump())
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="cadre_duty.create", entity="cadre_duty", entity_id=row.id,
                 after=audit.snapshot(row))
    return row


def retire_duty(session: Session, actor: Actor, duty_id: int, to_year: int) -> CadreDuty:
    row = session.get(CadreDuty, duty_id)
    if row is None:
        raise not_found("Cadre duty", duty_id)
    if row.to_year is not None:
        raise conflict("already_retired", f"Duty {row.code} is off the list after {row.to_year}.")
    if to_year < row.from_year:
        raise invalid(["body", "to_year"], f"to_year cannot be before the duty's first year {row.from_year}")
    row.to_year = to_year
    session.flush()
    audit.record(session, actor=actor, action="cadre_duty.retire", entity="cadre_duty", entity_id=row.id,
                 before={"to_year": None}, after={"to_year": to_year})
    return row
