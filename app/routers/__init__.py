"""Every router, in the order they appear in the OpenAPI document. One line per area."""

from fastapi import APIRouter

from app.routers import (
    accounts,
    audit,
    changes,
    clients,
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
    clients.router,
    organizations.router,
    people.people,
    people.positions,
    people.org_offices,
    audit.router,
    changes.router,
    *posts.ROUTERS,
    *standards.ROUTERS,
    *responsibilities.ROUTERS,
    *funds.ROUTERS,
    *evaluations.ROUTERS,
    *training.ROUTERS,
    *frontline.ROUTERS,
]

# GET <item>/history for every item GET marked @recorded (app.core.history), after the items themselves.
ROUTERS.append(changes.history_router(route for r in ROUTERS for route in r.routes))
