"""HTTP for evaluations: dual evaluations, democratic evaluation of members, secretaries' appraisals."""

from fastapi import APIRouter

from app.routers.evaluations import config, dual, members, secretaries

ROUTERS: list[APIRouter] = [
    dual.router,
    members.sessions,
    members.entries,
    members.cases,
    members.candidates,
    members.reserve,
    secretaries.assessments,
    secretaries.appraisals,
    config.settings,
    config.thresholds,
    config.duties,
]
