"""HTTP for the three lists: responsibility letters, monthly lists and assignments, problems and inspections."""

from fastapi import APIRouter

from app.routers.responsibilities import letters, monthly, problems

ROUTERS: list[APIRouter] = [letters.router, monthly.lists, monthly.assignments, problems.problems,
                            problems.inspections]
