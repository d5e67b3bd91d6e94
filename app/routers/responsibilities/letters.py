"""HTTP for responsibility letters and their settlement."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.core.errors import problem_responses
from app.core.pagination import CSV_RESPONSE_DOC, Page, PageDep, respond
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
    letter = service.create(session, actor, body)
    response.headers["Location"] = f"{router.prefix}/{letter.id}"
    return _detail(session, letter.id, response)


@router.get(
    "/{letter_id}", response_model=LetterDetail, operation_id="letters_get",
    summary="Get a letter with its items", responses=READ_ERRORS,
)
def get_letter(letter_id: ItemId, session: SessionDep, actor: LettersRead, response: Response) -> Any:
    service.get_with_org(session, actor, letter_id)
    return _detail(session, letter_id, response)


@router.patch(
    "/{letter_id}", response_model=LetterDetail, operation_id="letters_update",
    summary="Edit a letter not yet signed (If-Match required)", responses=PATCH_ERRORS,
)
def update_letter(letter_id: ItemId, body: LetterUpdate, session: SessionDep, actor: LettersManage,
                  response: Response, if_match: IfMatch = None) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.update_fields(session, actor, letter, org, body, parse_if_match(if_match))
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/items", response_model=LetterItemPublic, status_code=201, operation_id="letters_add_item",
    summary="Add an item to a letter not yet signed", responses=WRITE_ERRORS,
)
def add_item(letter_id: ItemId, body: LetterItemCreate, session: SessionDep, actor: LettersManage,
             response: Response) -> Any:
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
    letter, org = service.get_with_org(session, actor, letter_id)
    service.delete_item(session, actor, letter, org, service.get_item(session, letter, item_id))
    return Response(status_code=204)


@router.post(
    "/{letter_id}/issue", response_model=LetterDetail, operation_id="letters_issue",
    summary="Issue a draft letter to its organisation (the level above)", responses=WRITE_ERRORS,
)
def issue_letter(letter_id: ItemId, session: SessionDep, actor: LettersManage, response: Response) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.issue(session, actor, letter, org)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/sign", response_model=LetterDetail, operation_id="letters_sign",
    summary="Sign an issued letter (the organisation itself); its items are then frozen", responses=WRITE_ERRORS,
)
def sign_letter(letter_id: ItemId, session: SessionDep, actor: LettersSignReport, response: Response) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.sign(session, actor, letter, org)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/report", response_model=LetterDetail, operation_id="letters_report",
    summary="Report on items at year end (the organisation itself)", responses=WRITE_ERRORS,
)
def report_letter(letter_id: ItemId, body: LetterReport, session: SessionDep, actor: LettersSignReport,
                  response: Response) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.report(session, actor, letter, org, body.items)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/score", response_model=LetterDetail, operation_id="letters_score",
    summary="Score reported items, 0 to each item's weight (the level above)", responses=WRITE_ERRORS,
)
def score_letter(letter_id: ItemId, body: LetterScore, session: SessionDep, actor: LettersManage,
                 response: Response) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.score(session, actor, letter, org, body.items)
    return _detail(session, letter_id, response)


@router.post(
    "/{letter_id}/settle", response_model=LetterDetail, operation_id="letters_settle",
    summary="Close the settlement once every item is scored (the level above)",
    responses=problem_responses(401, 403, 404, 409),
)
def settle_letter(letter_id: ItemId, session: SessionDep, actor: LettersManage, response: Response) -> Any:
    letter, org = service.get_with_org(session, actor, letter_id)
    service.settle(session, actor, letter, org)
    return _detail(session, letter_id, response)

