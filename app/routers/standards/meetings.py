"""HTTP for organisational life (组织生活): frequencies, meeting records, compliance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, MeetingsWrite, OptionalIdQuery, SessionDep, StandardsManage, StandardsRead
from app.models.common import IsoDate
from app.models.standards import (
    MAX_YEAR,
    MIN_YEAR,
    ComplianceReport,
    MeetingFrequencyCreate,
    MeetingFrequencyPublic,
    MeetingFrequencyUpdate,
    MeetingRecordCreate,
    MeetingRecordPublic,
    MeetingRecordUpdate,
    MeetingType,
)
from app.services.standards import meetings as service

frequencies = APIRouter(prefix="/api/v1/meeting-frequencies", tags=["standards"])
records = APIRouter(prefix="/api/v1/meeting-records", tags=["standards"])
compliance = APIRouter(prefix="/api/v1/meetings", tags=["standards"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)
IfMatch = Annotated[str | None, Header(description="The ETag of the version being changed")]
YearQuery = Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)]
DateQuery = Annotated[IsoDate | None, Query()]

# ---------------------------------------------------------------- required frequencies


@frequencies.get(
    "", response_model=Page[MeetingFrequencyPublic], operation_id="meeting_frequencies_list",
    summary="List required meeting frequencies (data with effective years)",
    responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_frequencies(request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
                     meeting_type: MeetingType | None = None, year: YearQuery = None) -> Any:
    """With `year`: the rows effective by then. Sortable by id, meeting_type, effective_from_year."""
    items, total = service.list_frequencies(session, page, meeting_type=meeting_type, year=year)
    return respond(request, MeetingFrequencyPublic, items, total, page, filename="meeting-frequencies")


@frequencies.get(
    "/{frequency_id}", response_model=MeetingFrequencyPublic, operation_id="meeting_frequencies_get",
    summary="Get a required frequency", responses=READ_ERRORS,
)
@recorded("meeting_frequency")
def get_frequency(frequency_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One required meeting frequency: the meeting type, its cadence (monthly, quarterly or yearly), from an
    effective year on. The ETag header is the version for If-Match."""
    row = service.get_frequency(session, frequency_id)
    set_etag(response, row.version)
    return row


@frequencies.post(
    "", response_model=MeetingFrequencyPublic, status_code=201, operation_id="meeting_frequencies_create",
    summary="Set a meeting type's frequency from a year on (city only)", responses=WRITE_ERRORS,
)
def create_frequency(body: MeetingFrequencyCreate, session: SessionDep, actor: StandardsManage,
                     response: Response) -> Any:
    """The city sets how often a meeting type must be held from a year on; earlier years keep their requirement. One
    requirement per meeting type and year (409 duplicate_frequency: edit it instead). Answers 201 with Location."""
    row = service.create_frequency(session, actor, body)
    response.headers["Location"] = f"{frequencies.prefix}/{row.id}"
    set_etag(response, row.version)
    return row


@frequencies.patch(
    "/{frequency_id}", response_model=MeetingFrequencyPublic, operation_id="meeting_frequencies_update",
    summary="Edit a required frequency (city only, If-Match)", responses=PATCH_ERRORS,
)
def update_frequency(frequency_id: ItemId, body: MeetingFrequencyUpdate, session: SessionDep,
                     actor: StandardsManage, response: Response, if_match: IfMatch = None) -> Any:
    """The city edits a required frequency with If-Match (428 without it, 412 when stale)."""
    row = service.update_frequency(session, actor, service.get_frequency(session, frequency_id), body,
                                   parse_if_match(if_match))
    set_etag(response, row.version)
    return row


# ---------------------------------------------------------------- meeting records


@records.get(
    "", response_model=Page[MeetingRecordPublic], operation_id="meeting_records_list",
    summary="List meeting records in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_records(
    request: Request, session: SessionDep, actor: StandardsRead, page: PageDep,
    org_id: OptionalIdQuery = None, subtree: bool = False, meeting_type: MeetingType | None = None,
    year: YearQuery = None, held_from: DateQuery = None, held_to: DateQuery = None,
) -> Any:
    """Sortable by id, held_on, org_id, meeting_type, created_at."""
    filters = service.RecordFilters(org_id=org_id, subtree=subtree, meeting_type=meeting_type, year=year,
                                    held_from=held_from, held_to=held_to)
    items, total = service.list_records(session, actor, filters, page)
    return respond(request, MeetingRecordPublic, items, total, page, filename="meeting-records")


@records.get(
    "/{record_id}", response_model=MeetingRecordPublic, operation_id="meeting_records_get",
    summary="Get a meeting record", responses=READ_ERRORS,
)
@recorded("meeting_record")
def get_record(record_id: ItemId, session: SessionDep, actor: StandardsRead, response: Response) -> Any:
    """One meeting record of an organisation in scope: type, date, topic, attendance and lecturer. The ETag header
    is the version for If-Match."""
    row = service.get_record(session, actor, record_id)
    set_etag(response, row.version)
    return row


@records.post(
    "", response_model=MeetingRecordPublic, status_code=201, operation_id="meeting_records_create",
    summary="Record a meeting of a village organisation or branch (present ≤ expected)", responses=WRITE_ERRORS,
)
def create_record(body: MeetingRecordCreate, session: SessionDep, actor: MeetingsWrite, response: Response) -> Any:
    """Records a meeting (三会一课 and others) held by a village organisation or branch in scope: type, date, topic,
    expected and present counts (present ≤ expected) and, for a party lecture, the lecturer. A dissolved
    organisation is a 409. Answers 201 with Location."""
    row = service.create_record(session, actor, body)
    response.headers["Location"] = f"{records.prefix}/{row.id}"
    set_etag(response, row.version)
    return row


@records.patch(
    "/{record_id}", response_model=MeetingRecordPublic, operation_id="meeting_records_update",
    summary="Edit a meeting record (If-Match)", responses=PATCH_ERRORS,
)
def update_record(record_id: ItemId, body: MeetingRecordUpdate, session: SessionDep, actor: MeetingsWrite,
                  response: Response, if_match: IfMatch = None) -> Any:
    """Edits a meeting record with If-Match; present_count still cannot exceed expected_count and only a party
    lecture has a lecturer (422 otherwise)."""
    row = service.update_record(session, actor, service.get_record(session, actor, record_id), body,
                                parse_if_match(if_match))
    set_etag(response, row.version)
    return row


# ---------------------------------------------------------------- compliance


@compliance.get(
    "/compliance", response_model=ComplianceReport, operation_id="meetings_compliance",
    summary="Held vs required meetings per organisation and type, with the periods missed",
    responses=READ_ERRORS,
)
def meetings_compliance(
    session: SessionDep, actor: StandardsRead,
    year: Annotated[int, Query(ge=MIN_YEAR, le=MAX_YEAR)],
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Village organisations and branches in scope (or under `org_id` with `subtree`). A period counts once it is
    over or has its meeting; a yearly meeting is judged over a whole year only."""
    return service.compliance(session, actor, year=year, quarter=quarter, org_id=org_id, subtree=subtree)
