"""Every router, in the order they appear in the OpenAPI document. One line per area."""

from fastapi import APIRouter

from app.routers import (
    accounts,
    audit,
    evaluations,
    frontline,
    funds,
    meta,
    organizations,
    people,
    posts,
    responsibilities,
    standards,
    training,
)

ROUTERS: list[APIRouter] = [
    meta.router,
    accounts.auth,
    accounts.users,
    organizations.router,
    people.people,
    people.positions,
    people.org_offices,
    audit.router,
    *posts.ROUTERS,
    *standards.ROUTERS,
    *responsibilities.ROUTERS,
    *funds.ROUTERS,
    *evaluations.ROUTERS,
    *training.ROUTERS,
    *frontline.ROUTERS,
]
