"""HTTP for standardisation: the catalogue, audits, venues and organisational life."""

from fastapi import APIRouter

from app.routers.standards import audits, catalogue, meetings, venues

ROUTERS: list[APIRouter] = [
    catalogue.router,
    audits.router,
    venues.facility_types,
    venues.facilities,
    venues.investments,
    venues.summary,
    meetings.frequencies,
    meetings.records,
    meetings.compliance,
]
