"""HTTP for the funds area: the budget ledger, subsidy policies and runs, party dues."""

from fastapi import APIRouter

from app.routers.funds import budgets, dues, subsidies

ROUTERS: list[APIRouter] = [
    budgets.lines,
    budgets.allocations,
    budgets.disbursements,
    budgets.reports,
    subsidies.policies,
    subsidies.runs,
    subsidies.summary,
    dues.router,
]
