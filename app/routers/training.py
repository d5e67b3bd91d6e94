"""HTTP for training: classes, enrolment and attendance, coverage, the policy, schools, sessions and compliance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, OptionalIdQuery, SessionDep, TrainingManage, TrainingRead, TrainingWrite
from app.models.people import PositionTitle
from app.models.training import (
    AttendanceRecord,
    ClassStatus,
    ComplianceReport,
    EnrolmentCreate,
    EnrolmentPublic,
    SchoolClose,
    SchoolCreate,
    SchoolKind,
    SchoolPublic,
    SchoolSessionCreate,
    SchoolSessionPublic,
    SchoolStatus,
    TrainingClassCreate,
    TrainingClassPublic,
    TrainingClassUpdate,
    TrainingCoverage,
    TrainingPolicyCreate,
    TrainingPolicyPublic,
)
from app.services import training as service

TAG = "training"
READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)

YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]
RequiredYear = Annotated[int, Query(ge=2000, le=2100)]
Subtree = Annotated[bool, Query(description="With org_id: also every organisation below it")]

classes = APIRouter(prefix="/api/v1/training-classes", tags=[TAG])
enrolments = APIRouter(prefix="/api/v1/training-enrolments", tags=[TAG])
training = APIRouter(prefix="/api/v1/training", tags=[TAG])
schools = APIRouter(prefix="/api/v1/schools", tags=[TAG])


# ---------------------------------------------------------------- policy and coverage


@training.get("/policies", response_model=list[TrainingPolicyPublic], operation_id="training_policies_list",
              summary="The yearly main-class targets and the schools' monthly minimums, by effective year",
              responses=READ_ERRORS)
def list_policies(session: SessionDep, actor: TrainingRead) -> Any:
    """Every training policy by effective year: the yearly target of main classes and the schools' monthly minimum
    sessions and hours. A year uses the newest policy effective on or before it."""
    return service.list_policies(session)


@training.post("/policies", response_model=TrainingPolicyPublic, status_code=201,
               operation_id="training_policies_create",
               summary="Set the target and monthly minimum from a year on (city)", responses=WRITE_ERRORS)
def create_policy(body: TrainingPolicyCreate, session: SessionDep, actor: TrainingManage) -> Any:
    """The city sets the main-class target and the schools' monthly minimums from an effective year on; earlier
    years keep theirs. One policy per year (409 duplicate_policy)."""
    return service.create_policy(session, actor, body)


@training.get("/coverage", response_model=TrainingCoverage, operation_id="training_coverage",
              summary="Per target role: who held it in the year, who was trained, who was not; main classes "
                      "against the target", responses=problem_responses(401, 403, 404, 409, 422))
def coverage(
    session: SessionDep, actor: TrainingRead, year: RequiredYear, org_id: OptionalIdQuery = None,
    subtree: Subtree = False,
    role: Annotated[list[PositionTitle] | None, Query(max_length=len(PositionTitle),
                                                      description="Roles to report (default: resident first "
                                                                  "secretary, secretary, village committee "
                                                                  "director, committee member)")] = None,
) -> Any:
    """Without org_id: the caller's organisation and everything below it. A person who held a role at any time
    in the year counts once for it, however many positions; trained means attended hours > 0 in a class of the
    year that was not cancelled."""
    return service.coverage(session, actor, year=year, org_id=org_id, subtree=subtree, roles=role)


# ---------------------------------------------------------------- classes


def _class_out(session: SessionDep, actor: Any, class_id: int | None, response: Response) -> TrainingClassPublic:
    assert class_id is not None
    cls, org = service.get_class(session, actor, class_id)
    out = service.classes_public(session, [(cls, org.name)])[0]
    set_etag(response, out.version)
    return out


@classes.get("", response_model=Page[TrainingClassPublic], operation_id="training_classes_list",
             summary="List training classes offered in or above the caller's organisation",
             responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_classes(
    request: Request, session: SessionDep, actor: TrainingRead, page: PageDep, year: YearQuery = None,
    is_main: bool | None = None, status: ClassStatus | None = None, role: PositionTitle | None = None,
    org_id: OptionalIdQuery = None, subtree: Subtree = False,
) -> Any:
    """Sortable by id, year, starts_on, title, org_id."""
    items, total = service.list_classes(session, actor, page, year=year, is_main=is_main, status=status, role=role,
                                        org_id=org_id, subtree=subtree)
    return respond(request, TrainingClassPublic, items, total, page, filename="training-classes")


@classes.post("", response_model=TrainingClassPublic, status_code=201, operation_id="training_classes_create",
              summary="Plan a training class (city)", responses=WRITE_ERRORS)
def create_class(body: TrainingClassCreate, session: SessionDep, actor: TrainingManage, response: Response) -> Any:
    """The city plans a training class organised by an active organisation in scope, for given roles, dates and
    hours, optionally paid from a training budget line. Answers 201 with Location."""
    cls = service.create_class(session, actor, body)
    response.headers["Location"] = f"{classes.prefix}/{cls.id}"
    return _class_out(session, actor, cls.id, response)


@classes.get("/{class_id}", response_model=TrainingClassPublic, operation_id="training_classes_get",
             summary="Get a training class", responses=READ_ERRORS)
@recorded("training_class")
def get_class(class_id: ItemId, session: SessionDep, actor: TrainingRead, response: Response) -> Any:
    """One training class with its dates, hours, target roles, status and enrolment counts. The ETag header is the
    version for If-Match."""
    return _class_out(session, actor, class_id, response)


@classes.patch("/{class_id}", response_model=TrainingClassPublic, operation_id="training_classes_update",
               summary="Edit a planned class (If-Match required)", responses=PATCH_ERRORS)
def update_class(class_id: ItemId, body: TrainingClassUpdate, session: SessionDep, actor: TrainingManage,
                 response: Response,
                 if_match: Annotated[str | None, Header(description="The ETag being changed")] = None) -> Any:
    """Edits a planned class with If-Match; its dates stay in the class's year and in order, and its hours cannot
    drop below hours already recorded as attended (409 hours_below_attendance). A cancelled class is a 409
    class_cancelled."""
    cls, org = service.get_class(session, actor, class_id)
    service.update_class(session, actor, cls, org, body, parse_if_match(if_match))
    return _class_out(session, actor, class_id, response)


@classes.post("/{class_id}/cancel", response_model=TrainingClassPublic, operation_id="training_classes_cancel",
              summary="Cancel a class", responses=WRITE_ERRORS)
def cancel_class(class_id: ItemId, session: SessionDep, actor: TrainingManage, response: Response) -> Any:
    """Cancels a planned class (planned → cancelled): it then counts for nobody's coverage and not against the
    target. One already cancelled is a 409."""
    cls, org = service.get_class(session, actor, class_id)
    service.cancel_class(session, actor, cls, org)
    return _class_out(session, actor, class_id, response)


@classes.post("/{class_id}/enrolments", response_model=list[EnrolmentPublic], status_code=201,
              operation_id="training_enrolments_create",
              summary="Enrol people of the caller's scope in a class", responses=WRITE_ERRORS)
def enrol(class_id: ItemId, body: EnrolmentCreate, session: SessionDep, actor: TrainingWrite) -> Any:
    """Enrols people of the caller's scope in a planned class, several at once; anyone already enrolled makes the
    whole request a 409 already_enrolled naming them. A cancelled class is a 409."""
    cls, _org = service.get_class(session, actor, class_id)
    return service.enrolments_public(session, service.enrol(session, actor, cls, body.person_ids))


@classes.get("/{class_id}/enrolments", response_model=Page[EnrolmentPublic],
             operation_id="training_enrolments_list",
             summary="The class's enrolments of people in the caller's scope",
             responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_enrolments(request: Request, class_id: ItemId, session: SessionDep, actor: TrainingRead, page: PageDep,
                    attended: bool | None = None) -> Any:
    """Sortable by id, person_id, org_id."""
    cls, _org = service.get_class(session, actor, class_id)
    items, total = service.list_enrolments(session, actor, cls, page, attended=attended)
    return respond(request, EnrolmentPublic, items, total, page, filename="training-enrolments")


@enrolments.post("/{enrolment_id}/attendance", response_model=EnrolmentPublic,
                 operation_id="training_enrolments_attendance",
                 summary="Record the hours a person attended (0: absent; at most the class hours)",
                 responses=WRITE_ERRORS)
def record_attendance(enrolment_id: ItemId, body: AttendanceRecord, session: SessionDep,
                      actor: TrainingWrite) -> Any:
    """Records the hours a person attended, 0 for absent and at most the class's hours, once the class has begun
    (409 class_not_started before). A cancelled class is a 409."""
    row = service.record_attendance(session, actor, enrolment_id, body.attended_hours)
    return service.enrolments_public(session, [row])[0]


# ---------------------------------------------------------------- schools


@schools.get("", response_model=Page[SchoolPublic], operation_id="schools_list",
             summary="List central and night schools in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_schools(request: Request, session: SessionDep, actor: TrainingRead, page: PageDep,
                 kind: SchoolKind | None = None, status: SchoolStatus | None = None,
                 org_id: OptionalIdQuery = None, subtree: Subtree = False) -> Any:
    """Sortable by id, name, org_id, kind, opened_on."""
    items, total = service.list_schools(session, actor, page, kind=kind, status=status, org_id=org_id,
                                        subtree=subtree)
    return respond(request, SchoolPublic, items, total, page, filename="schools")


@schools.get("/compliance", response_model=ComplianceReport, operation_id="schools_compliance",
             summary="Per school the month's sessions and hours against the minimum; per township the share "
                     "of compliant schools", responses=problem_responses(401, 403, 404, 409, 422))
def school_compliance(session: SessionDep, actor: TrainingRead, year: RequiredYear,
                      month: Annotated[int, Query(ge=1, le=12)], org_id: OptionalIdQuery = None,
                      subtree: Subtree = False) -> Any:
    """Without org_id: every school of the caller's subtree. Schools open at some time during the month count."""
    return service.compliance(session, actor, year=year, month=month, org_id=org_id, subtree=subtree)


@schools.post("", response_model=SchoolPublic, status_code=201, operation_id="schools_create",
              summary="Register a township central school or a village night school (city)", responses=WRITE_ERRORS)
def create_school(body: SchoolCreate, session: SessionDep, actor: TrainingManage, response: Response) -> Any:
    """The city registers a township central school (党校) or a village night school; a central school belongs to a
    township, a night school to a village, and names are unique per organisation (409 duplicate_school). Answers
    201 with Location."""
    school = service.create_school(session, actor, body)
    response.headers["Location"] = f"{schools.prefix}/{school.id}"
    assert school.id is not None
    return service.get_school(session, actor, school.id)


@schools.get("/{school_id}", response_model=SchoolPublic, operation_id="schools_get", summary="Get a school",
             responses=READ_ERRORS)
@recorded("school")
def get_school(school_id: ItemId, session: SessionDep, actor: TrainingRead) -> Any:
    """One school with its kind, organisation, status and the dates it opened and closed."""
    return service.get_school(session, actor, school_id)


@schools.post("/{school_id}/close", response_model=SchoolPublic, operation_id="schools_close",
              summary="Close a school (its sessions stay on record)", responses=WRITE_ERRORS)
def close_school(school_id: ItemId, body: SchoolClose, session: SessionDep, actor: TrainingManage) -> Any:
    """Closes a school on `closed_on` (after it opened and not before its last session); its sessions stay on
    record. One already closed is a 409 school_closed."""
    service.close_school(session, actor, school_id, body.closed_on)
    return service.get_school(session, actor, school_id)


@schools.post("/{school_id}/sessions", response_model=SchoolSessionPublic, status_code=201,
              operation_id="school_sessions_create", summary="Record a session the school held",
              responses=WRITE_ERRORS)
def add_session(school_id: ItemId, body: SchoolSessionCreate, session: SessionDep, actor: TrainingWrite) -> Any:
    """Records a session a school held, on a day it was open and not in the future, with its topic, teacher, hours
    and attendance; these count toward the monthly minimums. Answers 201."""
    return service.add_session(session, actor, school_id, body)


@schools.get("/{school_id}/sessions", response_model=Page[SchoolSessionPublic], operation_id="school_sessions_list",
             summary="A school's sessions", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_sessions(request: Request, school_id: ItemId, session: SessionDep, actor: TrainingRead, page: PageDep,
                  year: YearQuery = None, month: Annotated[int | None, Query(ge=1, le=12)] = None) -> Any:
    """Sortable by id, held_on, hours. `month` (1-12) goes with `year`."""
    items, total = service.list_sessions(session, actor, school_id, page, year=year, month=month)
    return respond(request, SchoolSessionPublic, items, total, page, filename="school-sessions")


ROUTERS: list[APIRouter] = [training, classes, enrolments, schools]
