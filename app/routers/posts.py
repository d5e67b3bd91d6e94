"""HTTP for duty posts (设岗定责): posts, assignments, performance logs, the policy and the summary."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.orm import Session

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, OptionalIdQuery, PostsConfigure, PostsRead, PostsWrite, SessionDep
from app.models.common import IsoDate
from app.models.posts import (
    YEAR_MAX,
    YEAR_MIN,
    AssignmentCreate,
    AssignmentEnd,
    AssignmentPublic,
    AssignmentRefuse,
    AssignmentReview,
    AssignmentRoute,
    AssignmentStatus,
    AssignmentTake,
    DutyPostCreate,
    DutyPostPublic,
    DutyPostUpdate,
    PostField,
    PostLogCreate,
    PostLogPublic,
    PostPolicyCreate,
    PostPolicyPublic,
    PostReviewGrade,
    PostStatus,
    PostSummary,
)
from app.services import posts as service

posts = APIRouter(prefix="/api/v1/duty-posts", tags=["posts"])
assignments = APIRouter(prefix="/api/v1/post-assignments", tags=["posts"])
logs = APIRouter(prefix="/api/v1/post-logs", tags=["posts"])
policies = APIRouter(prefix="/api/v1/duty-post-policies", tags=["posts"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
YearQuery = Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX)]
OptionalYear = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]


# ---------------------------------------------------------------------------
# Posts


@posts.get(
    "", response_model=Page[DutyPostPublic], operation_id="posts_list", summary="List duty posts in scope",
    responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_posts(
    request: Request, session: SessionDep, actor: PostsRead, page: PageDep,
    year: OptionalYear = None, field: PostField | None = None, status: PostStatus | None = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, title, field, capacity, filled, created_at (default: newest year first)."""
    items, total = service.list_posts(
        session, actor, service.PostFilters(year=year, field=field, status=status, org_id=org_id, subtree=subtree),
        page,
    )
    return respond(request, DutyPostPublic, items, total, page, filename="duty-posts")


@posts.get(
    "/summary", response_model=PostSummary, operation_id="posts_summary",
    summary="Coverage of members without office, posts by field, review grades", responses=READ_ERRORS,
)
@serves_json
def posts_summary(
    session: SessionDep, actor: PostsRead, year: YearQuery, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Without `org_id`: the caller's whole subtree. "Without office" is judged on 31 December of the year;
    coverage is holders without office ÷ members without office × 100, half up to 2 places."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree)


@posts.get("/{post_id}", response_model=DutyPostPublic, operation_id="posts_get", summary="Get a duty post",
           responses=READ_ERRORS)
@recorded("duty_post")
def get_post(post_id: ItemId, session: SessionDep, actor: PostsRead, response: Response) -> Any:
    """One duty post of a village or branch organisation in scope, with its capacity, the places filled and whether it
    is open. The ETag header is the version for If-Match."""
    post = service.get_post(session, actor, post_id)
    set_etag(response, post.version)
    return post


@posts.post("", response_model=DutyPostPublic, status_code=201, operation_id="posts_create",
            summary="Set a duty post in a village or branch organisation", responses=WRITE_ERRORS)
def create_post(body: DutyPostCreate, session: SessionDep, actor: PostsWrite, response: Response) -> Any:
    """Sets a duty post (设岗定责) in a village or branch organisation in scope for a year, with its field, duties and
    capacity; townships and the city do not set posts. A dissolved organisation is a 409 org_dissolved. Answers 201
    with Location and ETag."""
    post = service.create_post(session, actor, body)
    response.headers["Location"] = f"{posts.prefix}/{post.id}"
    set_etag(response, post.version)
    return post


@posts.patch(
    "/{post_id}", response_model=DutyPostPublic, operation_id="posts_update",
    summary="Edit a duty post (If-Match required)", responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def update_post(
    post_id: ItemId, body: DutyPostUpdate, session: SessionDep, actor: PostsWrite, response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the version being changed")] = None,
) -> Any:
    """Edits the fields sent with If-Match (428 without it, 412 when stale). The capacity cannot drop below the places
    already filled (409 capacity_below_filled)."""
    post = service.get_post(session, actor, post_id)
    post = service.update_post(session, actor, post, body, parse_if_match(if_match))
    set_etag(response, post.version)
    return post


@posts.post("/{post_id}/close", response_model=DutyPostPublic, operation_id="posts_close",
            summary="Close a post to new applications and proposals", responses=WRITE_ERRORS)
def close_post(post_id: ItemId, session: SessionDep, actor: PostsWrite, response: Response) -> Any:
    """Closes a post to new applications and proposals; members already on it keep it. A post already closed is a 409.
    """
    post = service.set_post_status(session, actor, service.get_post(session, actor, post_id), PostStatus.closed)
    set_etag(response, post.version)
    return post


@posts.post("/{post_id}/reopen", response_model=DutyPostPublic, operation_id="posts_reopen",
            summary="Reopen a closed post", responses=WRITE_ERRORS)
def reopen_post(post_id: ItemId, session: SessionDep, actor: PostsWrite, response: Response) -> Any:
    """Reopens a closed post to applications and proposals. A post already open is a 409."""
    post = service.set_post_status(session, actor, service.get_post(session, actor, post_id), PostStatus.open)
    set_etag(response, post.version)
    return post


# ---------------------------------------------------------------------------
# Assignments


@assignments.get(
    "", response_model=Page[AssignmentPublic], operation_id="post_assignments_list",
    summary="List post assignments in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_assignments(
    request: Request, session: SessionDep, actor: PostsRead, page: PageDep,
    year: OptionalYear = None, post_id: OptionalIdQuery = None, person_id: OptionalIdQuery = None,
    status: AssignmentStatus | None = None, route: AssignmentRoute | None = None,
    review_grade: PostReviewGrade | None = None, org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, year, status, requested_on, assigned_on, review_grade, created_at."""
    f = service.AssignmentFilters(year=year, post_id=post_id, person_id=person_id, status=status, route=route,
                                  review_grade=review_grade, org_id=org_id, subtree=subtree)
    items, total = service.list_assignments(session, actor, f, page)
    return respond(request, AssignmentPublic, items, total, page, session=session, present=service.assignment_public,
                   filename="post-assignments")


def _one(session: Session, item: Any, response: Response) -> AssignmentPublic:
    set_etag(response, item.version)
    return service.assignment_public(session, [item])[0]


@assignments.get("/{assignment_id}", response_model=AssignmentPublic, operation_id="post_assignments_get",
                 summary="Get a post assignment", responses=READ_ERRORS)
@recorded("post_assignment")
def get_assignment(assignment_id: ItemId, session: SessionDep, actor: PostsRead, response: Response) -> Any:
    """One member's assignment to a duty post: how it came about (application or proposal), its status, dates, decision
    reason and year-end review. The ETag header is the version for If-Match."""
    return _one(session, service.get_assignment(session, actor, assignment_id), response)


@assignments.post(
    "", response_model=AssignmentPublic, status_code=201, operation_id="post_assignments_create",
    summary="Record a member's application (self_selected) or the organisation's proposal (org_assisted)",
    responses=WRITE_ERRORS,
)
def create_assignment(body: AssignmentCreate, session: SessionDep, actor: PostsWrite, response: Response) -> Any:
    """422 `not_eligible` (with every reason) unless the person is a full or probationary member of the post's
    organisation, on the roll and holding no position on `requested_on`; 409 `post_full`, `post_closed`,
    `already_assigned` or `post_limit_reached` (the yearly cap of the duty-post policy)."""
    item = service.create_assignment(session, actor, body)
    response.headers["Location"] = f"{assignments.prefix}/{item.id}"
    return _one(session, item, response)


def _take(verb: str, summary: str, description: str) -> None:
    @assignments.post(f"/{{assignment_id}}/{verb}", response_model=AssignmentPublic,
                      operation_id=f"post_assignments_{verb}", summary=summary, description=description,
                      responses=WRITE_ERRORS)
    def take(assignment_id: ItemId, body: AssignmentTake, session: SessionDep, actor: PostsWrite,
             response: Response) -> Any:
        item = service.get_assignment(session, actor, assignment_id)
        return _one(session, service.take_post(session, actor, item, body, verb=verb), response)

    take.__name__ = f"{verb}_assignment"


def _refuse(verb: str, summary: str, description: str) -> None:
    @assignments.post(f"/{{assignment_id}}/{verb}", response_model=AssignmentPublic,
                      operation_id=f"post_assignments_{verb}", summary=summary, description=description,
                      responses=WRITE_ERRORS)
    def refuse(assignment_id: ItemId, body: AssignmentRefuse, session: SessionDep, actor: PostsWrite,
               response: Response) -> Any:
        item = service.get_assignment(session, actor, assignment_id)
        return _one(session, service.refuse_post(session, actor, item, body.reason, verb=verb), response)

    refuse.__name__ = f"{verb}_assignment"


_TAKES = ("The member holds the post from `assigned_on` (not before the request, within the post's year, not in the "
          "future). Eligibility is checked again on that day (422 not_eligible with every reason); any status but "
          "the pending one is a 409 wrong_status.")
_take("approve", "Approve a member's application: they take the post (eligibility checked on assigned_on)",
      "The organisation approves a member's own application (self_selected). " + _TAKES)
_refuse("reject", "Reject a member's application, with the reason; the place is freed",
        "The organisation turns down a member's own application with the reason; the place it held is freed for "
        "another member. Only a pending application can be rejected (409 otherwise).")
_take("accept", "Record the member's acceptance of the organisation's proposal (eligibility checked on assigned_on)",
      "The member accepts a post the organisation proposed to them (org_assisted). " + _TAKES)
_refuse("decline", "Record that the member declined the organisation's proposal; the place is freed",
        "Records that the member declined a post the organisation proposed, with the reason; the place it held is "
        "freed. Only a pending proposal can be declined (409 otherwise).")


@assignments.post("/{assignment_id}/end", response_model=AssignmentPublic, operation_id="post_assignments_end",
                  summary="End a held post; the place is freed", responses=WRITE_ERRORS)
def end_assignment(assignment_id: ItemId, body: AssignmentEnd, session: SessionDep, actor: PostsWrite,
                   response: Response) -> Any:
    """The member leaves a held post on `ended_on` (not before taking it, and within the post's year) with a reason;
    the place is freed for another member."""
    item = service.get_assignment(session, actor, assignment_id)
    return _one(session, service.end_assignment(session, actor, item, body), response)


@assignments.post("/{assignment_id}/review", response_model=AssignmentPublic,
                  operation_id="post_assignments_review",
                  summary="Year-end review of the member on the post (once)", responses=WRITE_ERRORS)
def review_assignment(assignment_id: ItemId, body: AssignmentReview, session: SessionDep, actor: PostsWrite,
                      response: Response) -> Any:
    """The organisation's year-end review of how the member did on the post, with a grade and comment, once per
    assignment (409 already_reviewed); only a post the member took can be reviewed (409 not_held)."""
    item = service.get_assignment(session, actor, assignment_id)
    return _one(session, service.review_assignment(session, actor, item, body), response)


# ---------------------------------------------------------------------------
# Performance log


@logs.get("", response_model=Page[PostLogPublic], operation_id="post_logs_list",
          summary="List performance log entries in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC})
def list_logs(
    request: Request, session: SessionDep, actor: PostsRead, page: PageDep,
    assignment_id: OptionalIdQuery = None, person_id: OptionalIdQuery = None,
    date_from: Annotated[IsoDate | None, Query(description="Entries on or after this day")] = None,
    date_to: Annotated[IsoDate | None, Query(description="Entries on or before this day")] = None,
    org_id: OptionalIdQuery = None, subtree: bool = False,
) -> Any:
    """Sortable by id, entry_date, hours (default: latest first)."""
    f = service.LogFilters(assignment_id=assignment_id, person_id=person_id, date_from=date_from, date_to=date_to,
                           org_id=org_id, subtree=subtree)
    items, total = service.list_logs(session, actor, f, page)
    return respond(request, PostLogPublic, items, total, page, session=session,
                   present=lambda _s, rows: [PostLogPublic.of(i) for i in rows],
                   filename="post-logs")


@logs.get("/{log_id}", response_model=PostLogPublic, operation_id="post_logs_get",
          summary="Get a performance log entry", responses=READ_ERRORS)
@recorded("post_log")
def get_log(log_id: ItemId, session: SessionDep, actor: PostsRead) -> Any:
    """One performance log entry: what the member did on the post, on which day, and the hours."""
    return PostLogPublic.of(service.get_log(session, actor, log_id))


@logs.post("", response_model=PostLogPublic, status_code=201, operation_id="post_logs_create",
           summary="Log what a member did on their post (and hours)", responses=WRITE_ERRORS)
def create_log(body: PostLogCreate, session: SessionDep, actor: PostsWrite, response: Response) -> Any:
    """Logs what a member did on their post and the hours, dated within the time they held it and not in the future;
    only a post the member took takes entries (409 not_held). Answers 201 with Location."""
    log = service.create_log(session, actor, body)
    response.headers["Location"] = f"{logs.prefix}/{log.id}"
    return PostLogPublic.of(log)


# ---------------------------------------------------------------------------
# Policy


@policies.get("", response_model=list[PostPolicyPublic], operation_id="post_policies_list",
              summary="The duty-post policy by effective year", responses=problem_responses(401, 403))
def list_policies(session: SessionDep, actor: PostsRead) -> Any:
    """The row with the latest effective_year not after a post's year applies to it."""
    return service.list_policies(session)


@policies.post("", response_model=PostPolicyPublic, status_code=201, operation_id="post_policies_create",
               summary="Set the posts-per-member limit from a year on", responses=WRITE_ERRORS)
def create_policy(body: PostPolicyCreate, session: SessionDep, actor: PostsConfigure) -> Any:
    """Sets how many duty posts one member may hold per year, from an effective year on; earlier years keep their
    limit. One policy per effective year (409 duplicate_policy)."""
    return service.create_policy(session, actor, body)


ROUTERS = [posts, assignments, logs, policies]
