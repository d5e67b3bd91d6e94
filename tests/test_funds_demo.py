"""The funds demo data: the source's 2018/2019 figures, a committed and paid run, dues with arrears; idempotent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.demo import funds as demo_funds
from app.demo import platform
from app.models.funds.budgets import BudgetLine
from app.models.funds.subsidies import SubsidyLine, SubsidyRun, SubsidyRunKind
from app.models.organizations import Organization
from app.services.funds import dues as dues_service
from tests.factories import World
from tests.funds_support import city_actor


def test_funds_demo_follows_the_source_and_a_second_run_adds_nothing(db: Session, world: World) -> None:
    platform.seed(db)
    created = demo_funds.seed(db)
    assert created["subsidy_runs"] == 1 and created["dues_payments"] > 100
    city = platform.city_id(db)
    lines = {(ln.fiscal_year, ln.category): ln for ln in db.scalars(select(BudgetLine).where(
        BudgetLine.org_id == city))}
    for year in (2018, 2019):
        assert lines[(year, "party_work")].allocated_fen == 500_000_00
        assert lines[(year, "training")].allocated_fen == 700_000_00
        assert lines[(year, "retired_allowance")].allocated_fen > 4_000_000_00
    per_community = {year: set(db.scalars(select(BudgetLine.allocated_fen).join(
        Organization, Organization.id == BudgetLine.org_id).where(
        BudgetLine.fiscal_year == year, BudgetLine.category == "community_work", Organization.domain == "community")))
        for year in (2018, 2019)}
    assert per_community == {2018: {60_000_00}, 2019: {110_000_00}}
    run = db.scalar(select(SubsidyRun).where(SubsidyRun.note == demo_funds.RUN_NOTE))
    assert run is not None and run.status == "paid" and run.committed_by is not None
    kinds = {k.kind: k for k in db.scalars(select(SubsidyRunKind).where(SubsidyRunKind.run_id == run.id))}
    assert kinds["accident_insurance"].total_fen == 100_00 * kinds["accident_insurance"].beneficiaries
    assert kinds["pension_subsidy"].total_fen == 800_00 * kinds["pension_subsidy"].beneficiaries
    assert db.scalar(select(func.count()).select_from(SubsidyLine).where(
        SubsidyLine.run_id == run.id, SubsidyLine.status != "paid")) == 0
    # Every line still holds its invariants (the CHECK constraints passed), and some members are in arrears.
    rows = dues_service.arrears(db, city_actor(world), org_id=None, subtree=False, as_of=dt.date(2019, 12, 1))
    assert any(r.flagged for r in rows) and any(not r.flagged for r in rows)
    assert demo_funds.seed(db) == {}
