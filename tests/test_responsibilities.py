from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.scope import Actor
from app.models.audit import AuditLog
from app.models.responsibilities import Problem
from app.services import responsibilities as svc
from tests.factories import World


def test_open_problem_with_origin_key_opens_once(db: Session, world: World) -> None:
    actor = Actor.system()
    first = svc.open_problem(db, actor, org_id=world.v1.id, year=2019, source="standards_audit",
                             description="阵地缺少党员活动室", origin_key="standards_audit:1:venue")
    second = svc.open_problem(db, actor, org_id=world.v1.id, year=2019, source="standards_audit",
                              description="again", origin_key="standards_audit:1:venue")
    assert first.id == second.id and first.status == "open"
    assert db.scalar(select(func.count()).select_from(Problem)) == 1
    assert db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "problem.open")) == 1
