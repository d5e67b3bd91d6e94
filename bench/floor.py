"""The stack's floor: the same three requests written the FastAPI + SQLModel tutorial way, served like the service.

Issue 8 measures the service against a Starlette hello-world (the ceiling) and says the tutorial way of writing
endpoints reaches about 5 % of it for a get by id and 2.5 % for a page of 50. This app is that tutorial way, on the
benchmark's own database and served by the same uvicorn with the same flags, so one run shows both how far the
framework and the ORM themselves stand from the ceiling on the machine at hand, and how far the service is ahead of
(or behind) the plain way of using them. It does the least each request needs and nothing the service adds: no
token, no caller lookup, no scope, no masking, no audit row, no problem details, no ETag.

- `GET /organizations/{id}`: `session.get`, the row returned through a response model.
- `GET /people?org_id=&member_status=`: the organisation by id, then the count and a page of 50 of the people in
  its subtree, ordered by name. The subtree is the service's own condition (`app.core.scope.in_subtree`), so
  both use the path index on both databases. The tutorial's `.like(path + "%")` sends it as a parameter, and on
  PostgreSQL, once a statement is prepared, that reads the whole organisation table. The floor should measure the
  framework, not that. Its people carry the table's columns (masked numbers as stored), not the service's
  `birth_year`.
- `POST /organizations`: the body validated by the service's own input model, the parent by id, the new
  organisation inserted and its path set once its id is known (the service's statements without its audit row),
  committed, and read back with `session.refresh` as the tutorial does.

Not the service's code and not imported by it: `bench.run` serves it as `bench.floor:app` beside the ceiling.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy import event, func
from sqlmodel import Session, SQLModel, create_engine, select

from app.core.scope import in_subtree
from app.models.organizations import Organization, OrganizationCreate, OrganizationPublic
from app.models.people import Gender, MemberStatus, Person, PersonStatus

_URL = os.environ["DATABASE_URL"]
_SQLITE = _URL.startswith("sqlite")
engine = create_engine(_URL, connect_args={"check_same_thread": False} if _SQLITE else {})

if _SQLITE:
    @event.listens_for(engine, "connect")
    def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
        # What any SQLite service needs under concurrent requests (the file is in WAL mode already), and the
        # setting that lets LIKE 'prefix%' use the path index, as the service has it.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


class PersonOut(SQLModel):
    id: int
    org_id: int
    name: str
    gender: Gender
    ethnicity: str | None
    id_number_masked: str | None
    phone_masked: str | None
    member_status: MemberStatus
    joined_party_on: dt.date | None
    status: PersonStatus
    left_on: dt.date | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PeoplePage(SQLModel):
    items: list[PersonOut]
    total: int
    limit: int
    offset: int


def _organization(session: Session, org_id: int) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise HTTPException(status_code=404, detail="Organization not found")
    return org


@app.get("/organizations/{org_id}", response_model=OrganizationPublic)
def read_organization(org_id: int, session: SessionDep) -> Any:
    return _organization(session, org_id)


@app.get("/people", response_model=PeoplePage)
def read_people(
    session: SessionDep, org_id: int, member_status: MemberStatus | None = None,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    org = _organization(session, org_id)
    # The service's own prefix condition (its text, not a parameter): the tutorial's `.like(path + "%")` would leave
    # PostgreSQL's generic plan reading the whole organisation table, and the floor would measure that instead.
    subtree = select(Organization.id).where(in_subtree(Organization.path, org.path))
    conditions = [Person.org_id.in_(subtree)]  # type: ignore[attr-defined]
    if member_status is not None:
        conditions.append(Person.member_status == member_status)
    total = session.exec(select(func.count()).select_from(Person).where(*conditions)).one()
    items = session.exec(
        select(Person).where(*conditions).order_by(Person.name, Person.id).offset(offset).limit(limit)
    ).all()
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@app.post("/organizations", response_model=OrganizationPublic, status_code=201)
def create_organization(data: OrganizationCreate, session: SessionDep) -> Any:
    if data.parent_id is None:
        raise HTTPException(status_code=422, detail="parent_id is required")
    parent = _organization(session, data.parent_id)
    org = Organization(**data.model_dump(), path="")
    session.add(org)
    session.flush()
    org.path = f"{parent.path}{org.id}/"
    session.commit()
    session.refresh(org)
    return org
