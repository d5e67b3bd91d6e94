"""Responsibility letters (三张责任书): drafted and issued by the level above, signed by the organisation,
settled at year end (对单交账): the organisation reports each item, the level above scores it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, in_subtree, require_level_above, require_org_in_scope, scoped_to
from app.core.versioning import transition_update, versioned_update
from app.models.organizations import Organization, OrgStatus
from app.models.people import Person, Position, PositionTitle
from app.models.responsibilities.letters import (
    LetterCreate,
    LetterDetail,
    LetterGenerate,
    LetterItem,
    LetterItemCreate,
    LetterItemPublic,
    LetterItemUpdate,
    LetterKind,
    LetterPublic,
    LetterStatus,
    LetterSummaryRow,
    LetterUpdate,
    ResponsibilityLetter,
)
from app.services.responsibilities import clock
from app.services.responsibilities.common import holds_office_during, percent, summary_scope

ENTITY = "responsibility_letter"
ITEM_ENTITY = "responsibility_letter_item"
# The position a holder of each personal letter must hold in the organisation during the year.
HOLDER_TITLES: dict[str, tuple[str, ...]] = {
    LetterKind.secretary: (PositionTitle.secretary,),
    LetterKind.committee_member: (PositionTitle.deputy_secretary, PositionTitle.committee_member),
}
ITEMS_OPEN = (LetterStatus.draft, LetterStatus.issued)
SORTABLE = {
    "id": ResponsibilityLetter.id, "year": ResponsibilityLetter.year, "kind": ResponsibilityLetter.kind,
    "status": ResponsibilityLetter.status, "org_id": ResponsibilityLetter.org_id,
    "score": ResponsibilityLetter.score, "created_at": ResponsibilityLetter.created_at,
}
L = ResponsibilityLetter


# ---------------------------------------------------------------- reading


def _item_count() -> Any:
    return (select(func.count()).select_from(LetterItem).where(LetterItem.letter_id == L.id)
            .correlate(L).scalar_subquery())


def _total_weight() -> Any:
    return (select(func.coalesce(func.sum(LetterItem.weight), 0)).where(LetterItem.letter_id == L.id)
            .correlate(L).scalar_subquery())


def _rows() -> Any:
    return (
        select(L, Organization.name, Person.name, _item_count(), _total_weight())
        .join(Organization, Organization.id == L.org_id)
        .outerjoin(Person, Person.id == L.holder_person_id)
    )


def _public(letter: ResponsibilityLetter, org_name: str, holder_name: str | None, count: int,
            weight: int) -> LetterPublic:
    settled = letter.status == LetterStatus.settled and letter.score is not None
    score_percent = percent(letter.score or 0, weight) if settled else None
    return LetterPublic.model_validate(letter, update={
        "org_name": org_name, "holder_name": holder_name, "item_count": count, "total_weight": int(weight or 0),
        "score_percent": score_percent,
    })


def get_with_org(session: Session, actor: Actor, letter_id: int) -> tuple[ResponsibilityLetter, Organization]:
    row = session.execute(
        select(L, Organization).join(Organization, Organization.id == L.org_id).where(L.id == letter_id)
    ).first()
    if row is None or not actor.covers(row[1].path):
        raise not_found("Responsibility letter", letter_id)
    return row[0], row[1]


def detail(session: Session, letter_id: int) -> LetterDetail:
    """The letter with its items (the caller has checked scope)."""
    row = session.execute(_rows().where(L.id == letter_id)).one()
    items = session.scalars(select(LetterItem).where(LetterItem.letter_id == letter_id).order_by(LetterItem.position))
    public = _public(*row)
    return LetterDetail(**public.model_dump(), items=[LetterItemPublic.model_validate(i) for i in items])


@dataclass
class LetterFilters:
    year: int | None = None
    kind: str | None = None
    status: str | None = None
    holder_person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_page(
    session: Session, actor: Actor, filters: LetterFilters, params: PageParams
) -> tuple[list[LetterPublic], int]:
    stmt = scoped_to(session, _rows(), L.org_id, actor, filters.org_id, subtree=filters.subtree)
    for name in ("year", "kind", "status", "holder_person_id"):
        value = getattr(filters, name)
        if value is not None:
            stmt = stmt.where(getattr(L, name) == value)
    return fetch_page(session, stmt, params, allowed=SORTABLE, default=[col(L.year).desc(), L.org_id, L.kind],
                      tiebreak=L.id, rows=True, present=lambda _s, rows: [_public(*r) for r in rows])


# ---------------------------------------------------------------- drafting


def _require_own(actor: Actor, org: Organization, what: str) -> None:
    if actor.org_id != org.id:
        raise ProblemError(403, "own_organization_required",
                           f"Only the users of organisation {org.id} itself may {what}.")


def _status_conflict(letter: ResponsibilityLetter, verb: str, allowed: tuple[LetterStatus, ...]) -> ProblemError:
    want = " or ".join(str(s) for s in allowed)
    return conflict("invalid_status", f"Letter {letter.id} is {letter.status}; only a {want} letter can be {verb}.")


def _require_status(letter: ResponsibilityLetter, verb: str, allowed: tuple[LetterStatus, ...]) -> None:
    if letter.status not in allowed:
        raise _status_conflict(letter, verb, allowed)


def _check_holder(session: Session, *, kind: str, org_id: int, year: int, holder_person_id: int | None) -> None:
    if kind == LetterKind.organization:
        if holder_person_id is not None:
            raise invalid(["body", "holder_person_id"], "an organisation's letter has no personal holder")
        return
    if holder_person_id is None:
        raise invalid(["body", "holder_person_id"], f"a {kind} letter needs its holder")
    held = session.scalar(
        select(Position.id).where(
            Position.person_id == holder_person_id, Position.org_id == org_id,
            col(Position.title).in_(HOLDER_TITLES[kind]), holds_office_during(year),
        ).limit(1)
    )
    if held is None:
        raise invalid(["body", "holder_person_id"],
                      f"person {holder_person_id} held no {' or '.join(HOLDER_TITLES[kind])} position in "
                      f"organisation {org_id} during {year}")


def _check_unique(session: Session, *, kind: str, org_id: int, year: int, holder_person_id: int | None) -> None:
    stmt = select(L.id).where(L.org_id == org_id, L.year == year, L.kind == kind)
    if kind == LetterKind.committee_member:
        stmt = stmt.where(L.holder_person_id == holder_person_id)
    other = session.scalar(stmt.limit(1))
    if other is not None:
        who = f" for person {holder_person_id}" if kind == LetterKind.committee_member else ""
        raise conflict("duplicate_letter", f"Organisation {org_id} already has a {kind} letter{who} for {year} "
                                           f"(letter {other}).")


def _check_due(year: int, due: dt.date, loc: list[str | int]) -> None:
    if due.year != year:
        raise invalid(loc, f"the due date must fall within {year}")


def _item_rows(letter_id: int, items: list[LetterItemCreate], start: int = 1) -> list[LetterItem]:
    return [LetterItem(letter_id=letter_id, position=start + i, **item.model_dump()) for i, item in enumerate(items)]


def _snapshot(letter: ResponsibilityLetter, items: list[LetterItem]) -> dict[str, Any]:
    return {**audit.snapshot(letter), "items": [audit.snapshot(i, exclude=("letter_id",)) for i in items]}


def _active_org(session: Session, actor: Actor, org_id: int) -> Organization:
    path = require_org_in_scope(session, actor, org_id)
    require_level_above(actor, path, "draft its responsibility letters")
    org = session.get(Organization, org_id)
    assert org is not None
    if org.status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org_id} is dissolved.")
    return org


def create(session: Session, actor: Actor, data: LetterCreate) -> ResponsibilityLetter:
    """Draft a letter for an organisation below the actor."""
    _active_org(session, actor, data.org_id)
    _check_holder(session, kind=data.kind, org_id=data.org_id, year=data.year,
                  holder_person_id=data.holder_person_id)
    _check_unique(session, kind=data.kind, org_id=data.org_id, year=data.year,
                  holder_person_id=data.holder_person_id)
    for i, item in enumerate(data.items):
        _check_due(data.year, item.due_date, ["body", "items", i, "due_date"])
    letter = ResponsibilityLetter(**data.model_dump(exclude={"items"}), created_by=actor.user_id)
    session.add(letter)
    session.flush()
    assert letter.id is not None
    items = _item_rows(letter.id, data.items)
    session.add_all(items)
    session.flush()
    audit.record(session, actor=actor, action="letter.create", entity=ENTITY, entity_id=letter.id,
                 org_id=letter.org_id, after=_snapshot(letter, items))
    return letter


def update_fields(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization,
                  data: LetterUpdate, expected_version: int) -> ResponsibilityLetter:
    require_level_above(actor, org.path, "edit its letters")
    if letter.status not in ITEMS_OPEN:
        raise _status_conflict(letter, "edited", ITEMS_OPEN)
    before = audit.snapshot(letter)
    versioned_update(session, letter, expected_version, data.model_dump(exclude_unset=True))
    b, a = audit.changed(before, audit.snapshot(letter))
    audit.record(session, actor=actor, action="letter.update", entity=ENTITY, entity_id=letter.id,
                 org_id=letter.org_id, before=b, after=a)
    return letter


def _items_editable(actor: Actor, letter: ResponsibilityLetter, org: Organization) -> None:
    require_level_above(actor, org.path, "change its letters' items")
    if letter.status not in ITEMS_OPEN:
        raise conflict("items_frozen", f"Letter {letter.id} is {letter.status}: its items are frozen once signed.")


def get_item(session: Session, letter: ResponsibilityLetter, item_id: int) -> LetterItem:
    item = session.get(LetterItem, item_id)
    if item is None or item.letter_id != letter.id:
        raise not_found("Letter item", item_id)
    return item


def add_item(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization,
             data: LetterItemCreate) -> LetterItem:
    _items_editable(actor, letter, org)
    _check_due(letter.year, data.due_date, ["body", "due_date"])
    last = session.scalar(select(func.max(LetterItem.position)).where(LetterItem.letter_id == letter.id)) or 0
    assert letter.id is not None
    item = _item_rows(letter.id, [data], start=last + 1)[0]
    session.add(item)
    session.flush()
    audit.record(session, actor=actor, action="letter_item.create", entity=ITEM_ENTITY, entity_id=item.id,
                 org_id=letter.org_id, after=audit.snapshot(item))
    return item


def update_item(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization, item: LetterItem,
                data: LetterItemUpdate, expected_version: int) -> LetterItem:
    _items_editable(actor, letter, org)
    changes = data.model_dump(exclude_unset=True)
    for key in ("title", "category", "target", "weight", "due_date"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], f"{key} cannot be empty")
    if "due_date" in changes:
        _check_due(letter.year, changes["due_date"], ["body", "due_date"])
    before = audit.snapshot(item)
    versioned_update(session, item, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(item))
    audit.record(session, actor=actor, action="letter_item.update", entity=ITEM_ENTITY, entity_id=item.id,
                 org_id=letter.org_id, before=b, after=a)
    return item


def delete_item(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization,
                item: LetterItem) -> None:
    """Remove an item from a letter not yet signed (the audit log keeps what it said)."""
    _items_editable(actor, letter, org)
    before = audit.snapshot(item)
    session.delete(item)
    session.flush()
    audit.record(session, actor=actor, action="letter_item.delete", entity=ITEM_ENTITY, entity_id=before["id"],
                 org_id=letter.org_id, before=before)


# ---------------------------------------------------------------- issue and sign


def _move(session: Session, actor: Actor, letter: ResponsibilityLetter, action: str, changes: dict[str, Any],
          verb: str, allowed: tuple[LetterStatus, ...], extra: dict[str, Any] | None = None) -> ResponsibilityLetter:
    """Move a letter that was in one of `allowed` (checked by the caller): a concurrent move that committed first
    makes this one the 409 it would have had, had it come second."""
    before = audit.snapshot(letter)
    transition_update(session, letter, changes, lambda current: _require_status(current, verb, allowed))
    b, a = audit.changed(before, audit.snapshot(letter))
    audit.record(session, actor=actor, action=f"letter.{action}", entity=ENTITY, entity_id=letter.id,
                 org_id=letter.org_id, before=b, after={**a, **(extra or {})})
    return letter


def issue(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization) -> ResponsibilityLetter:
    """draft → issued, by the level above; a letter without items is not issued."""
    require_level_above(actor, org.path, "issue its letters")
    _require_status(letter, "issued", (LetterStatus.draft,))
    if not session.scalar(select(func.count()).select_from(LetterItem).where(LetterItem.letter_id == letter.id)):
        raise conflict("no_items", f"Letter {letter.id} has no items to issue.")
    return _move(session, actor, letter, "issue",
                 {"status": LetterStatus.issued, "issued_at": utcnow(), "issued_by": actor.user_id},
                 "issued", (LetterStatus.draft,))


def sign(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization) -> ResponsibilityLetter:
    """issued → signed, by the holder's organisation itself; from here the items are frozen."""
    _require_own(actor, org, "sign its letters")
    _require_status(letter, "signed", (LetterStatus.issued,))
    return _move(session, actor, letter, "sign",
                 {"status": LetterStatus.signed, "signed_at": utcnow(), "signed_by": actor.user_id},
                 "signed", (LetterStatus.issued,))


# ---------------------------------------------------------------- settlement (对单交账)


def _items_by_id(session: Session, letter: ResponsibilityLetter, ids: list[int]) -> dict[int, LetterItem]:
    if len(set(ids)) != len(ids):
        raise invalid(["body", "items"], "each item may appear once")
    found = {i.id: i for i in session.scalars(
        select(LetterItem).where(LetterItem.letter_id == letter.id, col(LetterItem.id).in_(ids)))}
    for n, item_id in enumerate(ids):
        if item_id not in found:
            raise invalid(["body", "items", n, "item_id"], f"item {item_id} is not on letter {letter.id}")
    return {k: v for k, v in found.items() if k is not None}


def _item_update(session: Session, actor: Actor, letter: ResponsibilityLetter, item: LetterItem, action: str,
                 changes: dict[str, Any], recheck: Callable[[LetterItem], None]) -> None:
    before = audit.snapshot(item)
    transition_update(session, item, changes, recheck)
    b, a = audit.changed(before, audit.snapshot(item))
    audit.record(session, actor=actor, action=f"letter_item.{action}", entity=ITEM_ENTITY, entity_id=item.id,
                 org_id=letter.org_id, before=b, after=a)


def report(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization,
           reports: list[Any]) -> ResponsibilityLetter:
    """The organisation reports items (completed / partly / not, with evidence); the letter moves to settling.
    An item may be reported again until it is scored."""
    _require_own(actor, org, "report on its letters")
    allowed = (LetterStatus.signed, LetterStatus.settling)
    _require_status(letter, "reported on", allowed)
    items = _items_by_id(session, letter, [r.item_id for r in reports])
    for n, r in enumerate(reports):
        _require_unscored(items[r.item_id], n)
    now = utcnow()
    for n, r in enumerate(reports):
        _item_update(session, actor, letter, items[r.item_id], "report",
                     {"outcome": r.outcome, "evidence_note": r.evidence_note, "reported_at": now,
                      "reported_by": actor.user_id}, partial(_require_unscored, n=n))
    if letter.status == LetterStatus.signed:
        try:
            _move(session, actor, letter, "settle_start", {"status": LetterStatus.settling}, "reported on", allowed)
        except ProblemError:
            # A concurrent report that committed first moved the letter to settling: had this one come second, it
            # would have found it settling and left it so. Its items' reports stand.
            if letter.status != LetterStatus.settling:
                raise
    return letter


def _require_unscored(item: LetterItem, n: int) -> None:
    if item.score is not None:
        raise conflict("item_scored", f"Item {item.id} (#{n}) is already scored; its report is final.")


def score(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization,
          scores: list[Any]) -> ResponsibilityLetter:
    """The level above scores reported items, each from 0 to its weight; the organisation never scores its own."""
    require_level_above(actor, org.path, "score its letters")
    _require_status(letter, "scored", (LetterStatus.settling,))
    items = _items_by_id(session, letter, [s.item_id for s in scores])
    for n, s in enumerate(scores):
        item = items[s.item_id]
        _require_reported(item)
        if s.score > item.weight:
            raise invalid(["body", "items", n, "score"], f"the score must be between 0 and the weight {item.weight}")
    now = utcnow()
    for s in scores:
        _item_update(session, actor, letter, items[s.item_id], "score",
                     {"score": s.score, "scored_at": now, "scored_by": actor.user_id}, _require_reported)
    return letter


def _require_reported(item: LetterItem) -> None:
    if item.outcome is None:
        raise conflict("item_not_reported", f"Item {item.id} has not been reported by the organisation yet.")


def settle(session: Session, actor: Actor, letter: ResponsibilityLetter, org: Organization) -> ResponsibilityLetter:
    """settling → settled once every item is scored; the letter's score is the sum of its items' scores."""
    require_level_above(actor, org.path, "close its settlement")
    _require_status(letter, "settled", (LetterStatus.settling,))
    unscored, total = session.execute(
        select(func.count(LetterItem.id).filter(col(LetterItem.score).is_(None)), func.sum(LetterItem.score))
        .where(LetterItem.letter_id == letter.id)
    ).one()
    if unscored:
        raise conflict("items_unscored", f"Letter {letter.id} still has {unscored} unscored item(s).")
    return _move(session, actor, letter, "settle", {
        "status": LetterStatus.settled, "score": int(total or 0), "settled_at": utcnow(),
        "settled_by": actor.user_id,
    }, "settled", (LetterStatus.settling,))


# ---------------------------------------------------------------- generate


def _shift_year(day: dt.date, year: int) -> dt.date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February
        return day.replace(year=year, day=28)


def generate(session: Session, actor: Actor, data: LetterGenerate) -> list[int]:
    """Create the missing drafts for the year: each organisation's own letter, its current secretary's and one
    per current committee member, copying the template's items. Running it again creates nothing."""
    path = require_org_in_scope(session, actor, data.org_id)
    if not data.subtree:
        require_level_above(actor, path, "draft its responsibility letters")
    template_items: list[LetterItem] = []
    if data.template_letter_id is not None:
        template, _ = get_with_org(session, actor, data.template_letter_id)
        template_items = list(session.scalars(
            select(LetterItem).where(LetterItem.letter_id == template.id).order_by(LetterItem.position)))
    orgs = [o for o in session.scalars(
        select(Organization).where(
            in_subtree(Organization.path, path) if data.subtree else Organization.id == data.org_id,
            Organization.status == OrgStatus.active,
        ).order_by(Organization.path)
    ) if actor.strictly_covers(o.path)]
    if not orgs:
        return []
    org_ids = [o.id for o in orgs]
    on = min(clock.today(), dt.date(data.year, 12, 31))
    held = session.execute(
        select(Position.org_id, Position.person_id, Position.title).where(
            col(Position.org_id).in_(org_ids),
            col(Position.title).in_([t for titles in HOLDER_TITLES.values() for t in titles]),
            Position.started_on <= on, (col(Position.ended_on).is_(None)) | (col(Position.ended_on) >= on),
        ).order_by(Position.org_id, Position.started_on, Position.id)
    ).all()
    existing = {
        (org_id, kind, holder if kind == LetterKind.committee_member else None)
        for org_id, kind, holder in session.execute(
            select(L.org_id, L.kind, L.holder_person_id).where(L.year == data.year, col(L.org_id).in_(org_ids)))
    }
    existing_secretary = {o for o, k, _ in existing if k == LetterKind.secretary}
    letters = [
        ResponsibilityLetter(year=data.year, org_id=org.id, kind=LetterKind.organization, created_by=actor.user_id)
        for org in orgs if (org.id, LetterKind.organization, None) not in existing
    ]
    secretaries = {(org_id, person_id) for org_id, person_id, title in held if title == PositionTitle.secretary}
    for org_id, person_id, title in held:
        if title != PositionTitle.secretary and (org_id, person_id) in secretaries:
            continue  # the secretary signs the secretary's letter, not a committee member's as well
        if title == PositionTitle.secretary:
            # One secretary letter per organisation and year: the longest-serving current secretary's.
            if org_id in existing_secretary:
                continue
            existing_secretary.add(org_id)
            key: tuple[int, str, int | None] = (org_id, LetterKind.secretary, None)
        else:
            key = (org_id, LetterKind.committee_member, person_id)
            if key in existing:
                continue
        existing.add(key)
        letters.append(ResponsibilityLetter(year=data.year, org_id=org_id, kind=key[1], holder_person_id=person_id,
                                            created_by=actor.user_id))
    session.add_all(letters)
    session.flush()
    items: dict[int, list[LetterItem]] = {}
    for letter in letters:
        assert letter.id is not None
        items[letter.id] = [
            LetterItem(letter_id=letter.id, position=t.position, title=t.title, category=t.category, target=t.target,
                       weight=t.weight, due_date=_shift_year(t.due_date, data.year))
            for t in template_items
        ]
    session.add_all([i for rows in items.values() for i in rows])
    session.flush()
    for letter in letters:
        assert letter.id is not None
        audit.record(session, actor=actor, action="letter.generate", entity=ENTITY, entity_id=letter.id,
                     org_id=letter.org_id, after={**_snapshot(letter, items[letter.id]),
                                                  "template_letter_id": data.template_letter_id})
    return [letter.id for letter in letters if letter.id is not None]


# ---------------------------------------------------------------- summary


@cached_report()
def summary(session: Session, actor: Actor, *, year: int | None, org_id: int | None, subtree: bool,
            rollup: bool) -> list[LetterSummaryRow]:
    """Per organisation: letters by kind and status, the settled score and its share of the settled weight."""
    scope = summary_scope(session, actor, org_id, subtree=subtree, rollup=rollup)
    conditions: list[Any] = []
    if year is not None:
        conditions.append(L.year == year)
    by_status: Any = session.execute(scope.join(
        select(scope.key, L.kind, L.status, func.count()).select_from(L), L.org_id
    ).where(*conditions).group_by(scope.key, L.kind, L.status)).all()
    for org, kind, status, count in by_status:
        scope.add(org, f"{kind}:{status}", count)
        scope.add(org, "total", count)
    scores: Any = session.execute(scope.join(
        select(scope.key, func.sum(LetterItem.score), func.sum(LetterItem.weight)).select_from(L)
        .join(LetterItem, LetterItem.letter_id == L.id), L.org_id
    ).where(*conditions, L.status == LetterStatus.settled).group_by(scope.key)).all()
    for org, total_score, weight in scores:
        scope.add(org, "settled_score", int(total_score or 0))
        scope.add(org, "settled_weight", int(weight or 0))
    out = []
    for row in scope.ordered():
        c = row.counts
        letters = {k.value: {s.value: c.get(f"{k}:{s}", 0) for s in LetterStatus} for k in LetterKind}
        settled = sum(v[LetterStatus.settled] for v in letters.values())
        out.append(LetterSummaryRow(
            org_id=row.org.id or 0, org_name=row.org.name, org_code=row.org.code, org_level=row.org.level,
            total=c.get("total", 0), letters=letters, settled=settled,
            settled_score=c.get("settled_score", 0), settled_weight=c.get("settled_weight", 0),
            score_percent=percent(c.get("settled_score", 0), c.get("settled_weight", 0)),
        ))
    return out
