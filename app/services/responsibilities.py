"""The rules of the three lists: responsibility letters, monthly lists, problem lists."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import audit
from app.core.errors import invalid
from app.core.scope import Actor, require_org_in_scope
from app.models.responsibilities import Problem, ProblemSource, ProblemStatus

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def today() -> dt.date:
    """The local business date; tests monkeypatch this to fix "today"."""
    return dt.datetime.now(LOCAL_TZ).date()


def open_problem(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    year: int,
    source: str,
    description: str,
    cause_analysis: str | None = None,
    rectification_measures: str | None = None,
    deadline: dt.date | None = None,
    link_entity: str | None = None,
    link_id: int | None = None,
    origin_key: str | None = None,
    responsible_person_id: int | None = None,
) -> Problem:
    """Open a problem; with origin_key, a second call returns the existing problem instead of opening another."""
    if origin_key is not None:
        existing = session.scalar(select(Problem).where(Problem.origin_key == origin_key))
        if existing is not None:
            return existing
    require_org_in_scope(session, actor, org_id)
    if source not in ProblemSource.__members__:
        raise invalid(["body", "source"], f"unknown problem source '{source}'")
    problem = Problem(
        org_id=org_id, year=year, source=ProblemSource(source), description=description,
        cause_analysis=cause_analysis, rectification_measures=rectification_measures, deadline=deadline,
        link_entity=link_entity, link_id=link_id, origin_key=origin_key,
        responsible_person_id=responsible_person_id, status=ProblemStatus.open, opened_by=actor.user_id,
    )
    if origin_key is None:
        session.add(problem)
        session.flush()
    else:
        # A concurrent caller may open the same origin first: keep theirs.
        try:
            with session.begin_nested():
                session.add(problem)
                session.flush()
        except IntegrityError:
            existing = session.scalar(select(Problem).where(Problem.origin_key == origin_key))
            if existing is None:
                raise
            return existing
    audit.record(session, actor=actor, action="problem.open", entity="problem", entity_id=problem.id,
                 org_id=org_id, after=audit.snapshot(problem))
    return problem
