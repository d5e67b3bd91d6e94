"""Matrix cases of funds: the budget ledger, subsidy policies and runs, party dues."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from app.models.funds.budgets import BudgetAllocation, BudgetLine, Disbursement
from app.models.funds.dues import DuesArrearsDecision, DuesPayment, DuesProfile, DuesReduction
from app.models.funds.subsidies import SubsidyLine, SubsidyPolicy, SubsidyRate, SubsidyRun, SubsidyRunKind
from app.models.organizations import Organization
from app.models.people import Person
from tests.authz.people import person_at
from tests.authz.registry import Ctx, Req, case, level_above_only

YEAR = 2025
AMOUNT = 10_000  # fen
RATES = "national or city-wide rates, owned by no organisation"


def budget_line(ctx: Ctx, owner: Organization, *, category: str = "party_work", approved: int = 0,
                paid: int = 0) -> BudgetLine:
    line = BudgetLine(fiscal_year=YEAR, org_id=owner.id, category=category, name="经费", source="市财政",
                      allocated_fen=1_000_000, approved_fen=approved, paid_fen=paid, committed_fen=approved + paid)
    ctx.db.add(line)
    ctx.db.flush()
    return line


def disbursement_at(ctx: Ctx, owner: Organization, status: str, *, created_by: int | None = None) -> Disbursement:
    line = budget_line(ctx, owner, approved=AMOUNT if status == "approved" else 0,
                       paid=AMOUNT if status == "paid" else 0)
    d = Disbursement(line_id=line.id, org_id=owner.id, payee_kind="other", payee_name="供应商", purpose="购置",
                     disbursed_on=dt.date(YEAR, 5, 1), amount_fen=AMOUNT, status=status, created_by=created_by)
    ctx.db.add(d)
    ctx.db.flush()
    return d


# --- budget lines, allocations, disbursements, the execution report ------------------------


@case("funds_budget_lines_list")
def funds_budget_lines_list(ctx: Ctx, owner: Organization) -> Req:
    budget_line(ctx, owner)
    return Req("GET", "/api/v1/budget-lines", params={"org_id": owner.id, "subtree": "true"})


@case("funds_budget_lines_get")
def funds_budget_lines_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/budget-lines/{budget_line(ctx, owner).id}")


@case("funds_budget_lines_create")
def funds_budget_lines_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/budget-lines", json={
        "fiscal_year": YEAR, "org_id": owner.id, "category": "training", "name": "培训费", "source": "市财政",
        "allocated": "2000.00",
    })


@case("funds_allocations_create")
def funds_allocations_create(ctx: Ctx, owner: Organization) -> Req:
    # From a line of the village's township down to the village.
    line = budget_line(ctx, ctx.parent_of(owner))
    return Req("POST", "/api/v1/allocations", json={"from_line_id": line.id, "to_org_id": owner.id, "amount": "50.00"})


@case("funds_allocations_list", item_orgs=lambda db, item: [item["from_org_id"], item["to_org_id"]])
def funds_allocations_list(ctx: Ctx, owner: Organization) -> Req:
    parent = ctx.parent_of(owner)
    src, dst = budget_line(ctx, parent), budget_line(ctx, owner)
    ctx.db.add(BudgetAllocation(fiscal_year=YEAR, category=src.category, from_line_id=src.id, to_line_id=dst.id,
                                from_org_id=parent.id, to_org_id=owner.id, amount_fen=AMOUNT))
    ctx.db.flush()
    return Req("GET", "/api/v1/allocations", params={"org_id": owner.id, "subtree": "true"})


@case("funds_disbursements_list")
def funds_disbursements_list(ctx: Ctx, owner: Organization) -> Req:
    disbursement_at(ctx, owner, "pending")
    return Req("GET", "/api/v1/disbursements", params={"org_id": owner.id, "subtree": "true"})


@case("funds_disbursements_get")
def funds_disbursements_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/disbursements/{disbursement_at(ctx, owner, 'pending').id}")


@case("funds_disbursements_create")
def funds_disbursements_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/disbursements", json={
        "line_id": budget_line(ctx, owner).id, "payee_kind": "other", "payee_name": "印刷厂", "purpose": "资料印刷",
        "disbursed_on": f"{YEAR}-06-01", "amount": "30.00",
    })


@case("funds_disbursements_approve")
def funds_disbursements_approve(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/disbursements/{disbursement_at(ctx, owner, 'pending').id}/approve")


@case("funds_disbursements_pay")
def funds_disbursements_pay(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/disbursements/{disbursement_at(ctx, owner, 'approved').id}/pay")


@case("funds_disbursements_cancel")
def funds_disbursements_cancel(ctx: Ctx, owner: Organization) -> Req:
    # The caller's own request: its maker may always cancel it.
    d = disbursement_at(ctx, owner, "pending", created_by=ctx.user.id)
    return Req("POST", f"/api/v1/disbursements/{d.id}/cancel", json={"reason": "不再需要"})


@case("funds_disbursements_reverse")
def funds_disbursements_reverse(ctx: Ctx, owner: Organization) -> Req:
    d = disbursement_at(ctx, owner, "paid")
    return Req("POST", f"/api/v1/disbursements/{d.id}/reverse", json={"reason": "重复支付"})


@case("funds_budget_execution")
def funds_budget_execution(ctx: Ctx, owner: Organization) -> Req:
    budget_line(ctx, owner)
    return Req("GET", "/api/v1/budgets/execution", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


# --- subsidy policies (city-wide) -------------------------------------------------------------


def policy(ctx: Ctx) -> SubsidyPolicy:
    p = SubsidyPolicy(kind="accident_insurance", name="意外险", valid_from=dt.date(2000, 1, 1))
    ctx.db.add(p)
    ctx.db.flush()
    ctx.db.add(SubsidyRate(policy_id=p.id, amount_fen=10_000))
    ctx.db.flush()
    return p


@case("funds_subsidy_policies_list", targetless=RATES)
def funds_subsidy_policies_list(ctx: Ctx, owner: Organization) -> Req:
    policy(ctx)
    return Req("GET", "/api/v1/subsidy-policies")


@case("funds_subsidy_policies_get", targetless=RATES)
def funds_subsidy_policies_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/subsidy-policies/{policy(ctx).id}")


@case("funds_subsidy_policies_create", targetless=RATES)
def funds_subsidy_policies_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/subsidy-policies", json={
        "kind": "pension_subsidy", "name": "养老补贴", "valid_from": "2020-01-01", "rates": [{"amount": "300.00"}],
    })


@case("funds_subsidy_policies_close", targetless=RATES)
def funds_subsidy_policies_close(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/subsidy-policies/{policy(ctx).id}/close", json={"valid_to": "2030-12-31"})


# --- subsidy runs ---------------------------------------------------------------------------


def run_at(ctx: Ctx, owner: Organization, status: str, *, with_line: bool = True) -> tuple[SubsidyRun, SubsidyLine]:
    """A run of `owner` drawing accident insurance from `owner`'s line, with one line for a member of `owner`.
    Lines and amounts are consistent with `status` (a committed run's amount is approved on the budget line)."""
    committed = status in ("committed", "paid")
    bl = budget_line(ctx, owner, category="accident_insurance", approved=AMOUNT if status == "committed" else 0,
                     paid=AMOUNT if status == "paid" else 0)
    run = SubsidyRun(year=YEAR, org_id=owner.id, reference_date=dt.date(YEAR, 1, 1), status=status,
                     total_fen=AMOUNT, line_count=1)
    ctx.db.add(run)
    ctx.db.flush()
    ctx.db.add(SubsidyRunKind(run_id=run.id, kind="accident_insurance", budget_line_id=bl.id, total_fen=AMOUNT,
                              beneficiaries=1))
    person = person_at(ctx, owner)
    line_status = {"draft": "draft", "committed": "committed", "paid": "paid"}.get(status, "draft")
    line = SubsidyLine(run_id=run.id, kind="accident_insurance", beneficiary_type="person", beneficiary_id=person.id,
                       person_id=person.id, org_id=owner.id, period=str(YEAR), amount_fen=AMOUNT, basis="测试",
                       status=line_status, claimed=committed)
    ctx.db.add(line)
    ctx.db.flush()
    return run, line


@case("funds_subsidy_runs_create")
def funds_subsidy_runs_create(ctx: Ctx, owner: Organization) -> Req:
    policy(ctx)
    line = budget_line(ctx, owner, category="accident_insurance")
    return Req("POST", "/api/v1/subsidy-runs", json={
        "year": YEAR, "org_id": owner.id, "kinds": [{"kind": "accident_insurance", "budget_line_id": line.id}],
    })


@case("funds_subsidy_runs_list")
def funds_subsidy_runs_list(ctx: Ctx, owner: Organization) -> Req:
    run_at(ctx, owner, "draft")
    return Req("GET", "/api/v1/subsidy-runs", params={"org_id": owner.id, "subtree": "true"})


@case("funds_subsidy_runs_get")
def funds_subsidy_runs_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'draft')[0].id}")


@case("funds_subsidy_runs_recompute")
def funds_subsidy_runs_recompute(ctx: Ctx, owner: Organization) -> Req:
    policy(ctx)
    return Req("POST", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'draft')[0].id}/recompute")


@case("funds_subsidy_runs_cancel")
def funds_subsidy_runs_cancel(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'draft')[0].id}/cancel")


@case("funds_subsidy_runs_commit")
def funds_subsidy_runs_commit(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'draft')[0].id}/commit")


@case("funds_subsidy_runs_pay")
def funds_subsidy_runs_pay(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'committed')[0].id}/pay")


@case("funds_subsidy_runs_lines")
def funds_subsidy_runs_lines(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/subsidy-runs/{run_at(ctx, owner, 'draft')[0].id}/lines")


@case("funds_subsidy_lines_pay")
def funds_subsidy_lines_pay(ctx: Ctx, owner: Organization) -> Req:
    run, line = run_at(ctx, owner, "committed")
    return Req("POST", f"/api/v1/subsidy-runs/{run.id}/lines/{line.id}/pay")


@case("funds_subsidy_lines_reverse")
def funds_subsidy_lines_reverse(ctx: Ctx, owner: Organization) -> Req:
    run, line = run_at(ctx, owner, "committed")
    return Req("POST", f"/api/v1/subsidy-runs/{run.id}/lines/{line.id}/reverse", json={"reason": "不符合条件"})


@case("funds_subsidies_summary")
def funds_subsidies_summary(ctx: Ctx, owner: Organization) -> Req:
    run_at(ctx, owner, "committed")
    return Req("GET", "/api/v1/subsidies/summary", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


# --- party dues -------------------------------------------------------------------------------


def member_at(ctx: Ctx, owner: Organization, *, profile: bool = True) -> int:
    """A member of `owner` paying the student rate (0.20 a month) from January."""
    person = person_at(ctx, owner)
    if profile:
        ctx.db.add(DuesProfile(person_id=person.id, effective_from=dt.date(YEAR, 1, 1), category="student",
                               monthly_due_fen=20, basis="学生 0.20"))
        ctx.db.flush()
    assert person.id is not None
    return person.id


@case("funds_dues_rates", targetless=RATES)
def funds_dues_rates(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/party-dues/rates")


@case("funds_dues_profiles_create")
def funds_dues_profiles_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/party-dues/profiles", json={
        "member_id": member_at(ctx, owner, profile=False), "effective_from": f"{YEAR}-01", "category": "student",
    })


def _member_org(db: Session, item: dict[str, Any]) -> list[int]:
    person = db.get(Person, item["member_id"])
    assert person is not None
    return [person.org_id]


@case("funds_dues_profiles_list", item_orgs=_member_org)
def funds_dues_profiles_list(ctx: Ctx, owner: Organization) -> Req:
    member_at(ctx, owner)
    return Req("GET", "/api/v1/party-dues/profiles", params={"org_id": owner.id, "subtree": "true"})


@case("funds_dues_reductions_create")
def funds_dues_reductions_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/party-dues/reductions", json={
        "member_id": member_at(ctx, owner), "from_month": f"{YEAR}-03", "monthly_due": "0.00", "reason": "困难",
    })


@case("funds_dues_reductions_decide", expect=level_above_only("decides a member's dues reduction"))
def funds_dues_reductions_decide(ctx: Ctx, owner: Organization) -> Req:
    r = DuesReduction(person_id=member_at(ctx, owner), org_id=owner.id, from_month=dt.date(YEAR, 3, 1),
                      monthly_due_fen=0, reason="困难")
    ctx.db.add(r)
    ctx.db.flush()
    return Req("POST", f"/api/v1/party-dues/reductions/{r.id}/decide", json={"approve": True, "approval_ref": "1号"})


@case("funds_dues_reductions_list")
def funds_dues_reductions_list(ctx: Ctx, owner: Organization) -> Req:
    ctx.db.add(DuesReduction(person_id=member_at(ctx, owner), org_id=owner.id, from_month=dt.date(YEAR, 3, 1),
                             monthly_due_fen=0, reason="困难"))
    ctx.db.flush()
    return Req("GET", "/api/v1/party-dues/reductions", params={"org_id": owner.id, "subtree": "true"})


@case("funds_dues_payments_create")
def funds_dues_payments_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/party-dues/payments", json={
        "member_id": member_at(ctx, owner), "month_from": f"{YEAR}-02", "amount": "0.20",
        "paid_on": f"{YEAR}-02-10", "method": "cash",
    })


@case("funds_dues_payments_list")
def funds_dues_payments_list(ctx: Ctx, owner: Organization) -> Req:
    ctx.db.add(DuesPayment(person_id=member_at(ctx, owner), org_id=owner.id, month_from=dt.date(YEAR, 1, 1),
                           month_to=dt.date(YEAR, 1, 1), amount_fen=20, due_fen=20, extra_fen=0,
                           paid_on=dt.date(YEAR, 1, 5), method="cash",
                           budget_line_id=budget_line(ctx, owner, category="party_dues").id))
    ctx.db.flush()
    return Req("GET", "/api/v1/party-dues/payments", params={"org_id": owner.id, "subtree": "true"})


@case("funds_dues_statement")
def funds_dues_statement(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/party-dues/statement", params={"member_id": member_at(ctx, owner), "year": YEAR})


@case("funds_dues_arrears")
def funds_dues_arrears(ctx: Ctx, owner: Organization) -> Req:
    member_at(ctx, owner)
    return Req("GET", "/api/v1/party-dues/arrears",
               params={"org_id": owner.id, "subtree": "true", "as_of": f"{YEAR}-06"})


@case("funds_dues_decisions_create")
def funds_dues_decisions_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/party-dues/arrears-decisions", json={
        "member_id": member_at(ctx, owner), "decision": "reminded", "note": "已电话提醒", "decided_on": f"{YEAR}-06-15",
    })


@case("funds_dues_decisions_list")
def funds_dues_decisions_list(ctx: Ctx, owner: Organization) -> Req:
    ctx.db.add(DuesArrearsDecision(person_id=member_at(ctx, owner), org_id=owner.id, consecutive_months=6,
                                   decision="reminded", note="提醒", decided_on=dt.date(YEAR, 7, 1)))
    ctx.db.flush()
    return Req("GET", "/api/v1/party-dues/arrears-decisions", params={"org_id": owner.id, "subtree": "true"})
