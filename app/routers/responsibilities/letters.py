"""HTTP for responsibility letters and their settlement."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.core.errors import problem_responses
from app.core.history import recorded
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
from app.core.report_cache import serves_json
from app.core.versioning import parse_if_match, set_etag
from app.deps import ItemId, LettersManage, LettersRead, LettersSignReport, OptionalIdQuery, SessionDep
from app.models.responsibilities.letters import (
    LetterCreate,
    LetterDetail,
    LetterGenerate,
    LetterGenerateResult,
    LetterItemCreate,
    LetterItemPublic,
    LetterItemUpdate,
    LetterKind,
    LetterPublic,
    LetterReport,
    LetterScore,
    LetterStatus,
    LetterSummaryRow,
    LetterUpdate,
)
from app.routers.responsibilities.common import (
    PATCH_ERRORS,
    READ_ERRORS,
    TAG,
    WRITE_ERRORS,
    IfMatch,
    Rollup,
    Subtree,
    YearQuery,
)
from app.services.responsibilities import letters as service

router = APIRouter(prefix="/api/v1/responsibility-letters", tags=[TAG])


def _detail(session: SessionDep, letter_id: int | None, response: Response) -> LetterDetail:
    assert letter_id is not None
    out = service.detail(session, letter_id)
    set_etag(response, out.version)
    return out


@router.get(
    "", response_model=Page[LetterPublic], operation_id="letters_list",
    summary="List responsibility letters in scope", responses={**READ_ERRORS, **CSV_RESPONSE_DOC},
)
def list_letters(
    request: Request, session: SessionDep, actor: LettersRead, page: PageDep,
    year: YearQuery = None, kind: LetterKind | None = None, status: LetterStatus | None = None,
    holder_person_id: OptionalIdQuery = None, org_id: OptionalIdQuery = None, subtree: Subtree = False,
) -> Any:
    """Sortable by id, year, kind, status, org_id, score, created_at."""
    filters = service.LetterFilters(year=year, kind=kind, status=status, holder_person_id=holder_person_id,
                                    org_id=org_id, subtree=subtree)
    items, total = service.list_page(session, actor, filters, page)
    return respond(request, LetterPublic, items, total, page, filename="responsibility-letters")


@router.get(
    "/summary", response_model=list[LetterSummaryRow], operation_id="letters_summary",
    summary="Letters by kind and status and the settled scores, per organisation", responses=READ_ERRORS,
)
@serves_json
def letters_summary(
    session: SessionDep, actor: LettersRead, year: YearQuery = None, org_id: OptionalIdQuery = None,
    subtree: Subtree = False, rollup: Rollup = False,
) -> Any:
    """Without org_id: the caller's organisation. `score_percent` is the settled score over the settled weight."""
    return service.summary(session, actor, year=year, org_id=org_id, subtree=subtree, rollup=rollup)


@router.post(
    "/generate", response_model=LetterGenerateResult, operation_id="letters_generate",
    summary="Create the missing draft letters of a year for an organisation (or a subtree)", responses=WRITE_ERRORS,
)
def generate_letters(body: LetterGenerate, session: SessionDep, actor: LettersManage) -> Any:
    """The organisation's letter, its current secretary's and one per current committee member, copying the
    template letter's items; with `subtree`, for every active organisation below the caller in that subtree.
    Running it again creates nothing new."""
    ids = service.generate(session, actor, body)
    return {"created": len(ids), "letter_ids": ids}


@router.post(
    "", response_model=LetterDetail, status_code=201, operation_id="letters_create",
    summary="Draft a responsibility letter (the level above)", responses=WRITE_ERRORS,
)
def create_letter(body: LetterCreate, session: SessionDep, actor: LettersManage, response: Response) -> Any:
    """The level above drafts a responsibility letter (责任书) for an organisation below it for a year; items are added
    before it is issued. Audited; answers 201 with Location."""
    letter = service.create(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{letter.id}"
    return _detail(session, letter.id, response)


@router.get(
    "/{letter_id}", response_model=LetterDetail, operation_id="letters_get",
    summary="Get a letter with its items", responses=READ_ERRORS,
)
@recorded("responsibility_letter")
def get_letter(letter_id: ItemId, session: SessionDep, actor: LettersRead, response: Response) -> Any:
    """One responsibility letter in scope with its items, their weights, reports and scores, and the letter's status
    (draft, issued, signed, settling, settled). The ETag header is the version for If-Match."""
    service.get_with_org(session, actor, letter_id)
    return _detail(session, letter_id, response)


@router.patch(
    "/{letter_id}", response_model=LetterDetail, operation_id="letters_update",
    summary="Edit a letter not yet signed (If-Match required)", responses=PATCH_ERRORS,
)
def update_letter(letter_id: ItemId, body: LetterUpdate, session: SessionDep, actor: LettersManage,
                  response: Response, if_match: IfMatch = None) -> Any:
    """Edits a letter's title while it is not yet signed (the level above only), with If-Match (428 without it, 412
    when stale); a letter in any later status is a 409."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.update_fields(session, actor, letter, org, body, parse_if_match(if_match))
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/items", response_model=LetterItemPublic, status_code=201, operation_id="letters_add_item",
    summary="Add an item to a letter not yet signed", responses=WRITE_ERRORS,
)
def add_item(letter_id: ItemId, body: LetterItemCreate, session: SessionDep, actor: LettersManage,
             response: Response) -> Any:
    """Adds an item (a commitment with its category, target, weight and due date) to a letter not yet signed; once
    signed the items are frozen (409). Answers 201 with Location and the item's ETag."""
    letter, org = service.get_with_org(session, actor, letter_id)
    item = service.add_item(session, actor, letter, org, body)
    response.headers["Location"] = f"{router.prefix}/{letter_id}/items/{item.id}"
    set_etag(response, item.version)
    return item


@router.patch(
    "/{letter_id}/items/{item_id}", response_model=LetterItemPublic, operation_id="letters_update_item",
    summary="Edit an item of a letter not yet signed (If-Match required)", responses=PATCH_ERRORS,
)
def update_item(letter_id: ItemId, item_id: ItemId, body: LetterItemUpdate, session: SessionDep,
                actor: LettersManage, response: Response, if_match: IfMatch = None) -> Any:
    """Edits an item of a letter not yet signed, with the item's ETag in If-Match; its due date must fall in the
    letter's year."""
    letter, org = service.get_with_org(session, actor, letter_id)
    item = service.get_item(session, letter, item_id)
    item = service.update_item(session, actor, letter, org, item, body, parse_if_match(if_match))
    set_etag(response, item.version)
    return item


@router.delete(
    "/{letter_id}/items/{item_id}", status_code=204, operation_id="letters_delete_item",
    summary="Remove an item from a letter not yet signed", responses=WRITE_ERRORS,
)
def delete_item(letter_id: ItemId, item_id: ItemId, session: SessionDep, actor: LettersManage) -> Response:
    """Removes an item from a letter not yet signed; the audit log keeps what it said. Answers 204."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.delete_item(session, actor, letter, org, service.get_item(session, letter, item_id))
    return Response(status_code=204)


@router.post(
    "/{letter_id}/issue", response_model=LetterDetail, operation_id="letters_issue",
    summary="Issue a draft letter to its organisation (the level above)", responses=WRITE_ERRORS,
)
def issue_letter(letter_id: ItemId, session: SessionDep, actor: LettersManage, response: Response) -> Any:
    """The level above issues a draft letter to its organisation (draft → issued); a letter without items is a 409
    no_items."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.issue(session, actor, letter, org)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/sign", response_model=LetterDetail, operation_id="letters_sign",
    summary="Sign an issued letter (the organisation itself); its items are then frozen", responses=WRITE_ERRORS,
)
def sign_letter(letter_id: ItemId, session: SessionDep, actor: LettersSignReport, response: Response) -> Any:
    """The organisation itself signs an issued letter (issued → signed); from then on its items are frozen. The level
    above cannot sign for it."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.sign(session, actor, letter, org)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/report", response_model=LetterDetail, operation_id="letters_report",
    summary="Report on items at year end (the organisation itself)", responses=WRITE_ERRORS,
)
def report_letter(letter_id: ItemId, body: LetterReport, session: SessionDep, actor: LettersSignReport,
                  response: Response) -> Any:
    """The organisation reports on its items at year end (completed, partly or not, with evidence); the letter moves to
    settling. An item may be reported again until it is scored (409 item_scored)."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.report(session, actor, letter, org, body.items)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/score", response_model=LetterDetail, operation_id="letters_score",
    summary="Score reported items, 0 to each item's weight (the level above)", responses=WRITE_ERRORS,
)
def score_letter(letter_id: ItemId, body: LetterScore, session: SessionDep, actor: LettersManage,
                 response: Response) -> Any:
    """The level above scores reported items, each from 0 to its weight (422 otherwise); an item not yet reported is a
    409 item_not_reported. The organisation never scores its own letter."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.score(session, actor, letter, org, body.items)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/settle", response_model=LetterDetail, operation_id="letters_settle",
    summary="Close the settlement once every item is scored (the level above)",
    responses=problem_responses(401, 403, 404, 409),
)
def settle_letter(letter_id: ItemId, session: SessionDep, actor: LettersManage, response: Response) -> Any:
    """The level above closes the settlement (settling → settled) once every item is scored (409 items_unscored
    otherwise); the letter's score is the sum of its items' scores."""
    letter, org = service.get_with_org(session, actor, letter_id)
    service.settle(session, actor, letter, org)
    return _detail(session, letter_id, response)

