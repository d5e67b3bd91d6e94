"""Every router, in the order they appear in the OpenAPI document. One line per area."""

from fastapi import APIRouter

from app.routers import accounts, audit, meta, organizations, standards

ROUTERS: list[APIRouter] = [
    meta.router,
    accounts.auth,
    accounts.users,
    organizations.router,
    audit.router,
    *standards.ROUTERS,
]
