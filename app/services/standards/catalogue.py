"""The catalogue: standard sets per year and domain, their items, and their life cycle.

Only the city edits sets (the route asks for standards_manage). A retired set never changes,
and a published set changes only while no audit uses it; otherwise the city publishes a new
edition (new_version copies it into a draft; publishing the draft retires the old edition).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor
from app.core.versioning import transition_update, versioned_update
from app.models.standards import (
    Aspect,
    AspectMax,
    StandardAudit,
    StandardItem,
    StandardItemCreate,
    StandardItemPublic,
    StandardItemUpdate,
    StandardSet,
    StandardSetCreate,
    StandardSetDetail,
    StandardSetPublic,
    StandardSetStatus,
    StandardSetUpdate,
)
from app.services.standards.common import ASPECT_ORDER

SET_SORTABLE = {
    "id": StandardSet.id, "year": StandardSet.year, "domain": StandardSet.domain,
    "edition": StandardSet.edition, "status": StandardSet.status, "created_at": StandardSet.created_at,
}


@dataclass
class SetFilters:
    year: int | None = None
    domain: str | None = None
    status: str | None = None


def list_sets(session: Session, filters: SetFilters, params: PageParams) -> tuple[list[StandardSet], int]:
    """The catalogue is city-wide: everyone who reads standards reads every set."""
    stmt = select(StandardSet)
    if filters.year is not None:
        stmt = stmt.where(StandardSet.year == filters.year)
    if filters.domain:
        stmt = stmt.where(StandardSet.domain == filters.domain)
    if filters.status:
        stmt = stmt.where(StandardSet.status == filters.status)
    return fetch_page(session, stmt, params, allowed=SET_SORTABLE,
                      default=[col(StandardSet.year).desc(), StandardSet.domain, col(StandardSet.edition).desc()],
                      tiebreak=StandardSet.id)


def get_set(session: Session, set_id: int) -> StandardSet:
    std = session.get(StandardSet, set_id)
    if std is None:
        raise not_found("Standard set", set_id)
    return std


def items_of(session: Session, set_id: int) -> list[StandardItem]:
    rows = list(session.scalars(select(StandardItem).where(StandardItem.set_id == set_id)))
    rows.sort(key=lambda i: (ASPECT_ORDER[i.aspect], i.position, i.code))
    return rows


def in_use(session: Session, set_id: int) -> bool:
    return bool(session.scalar(select(exists().where(StandardAudit.set_id == set_id))))


def detail(session: Session, std: StandardSet) -> StandardSetDetail:
    items = items_of(session, std.id)
    aspects = []
    for aspect in Aspect:
        mine = [i for i in items if i.aspect == aspect]
        aspects.append(AspectMax(aspect=aspect, items=len(mine), max_score=sum(i.max_score for i in mine)))
    return StandardSetDetail(
        **StandardSetPublic.model_validate(std).model_dump(),
        items=[StandardItemPublic.model_validate(i) for i in items],
        aspects=aspects, max_score=sum(i.max_score for i in items), in_use=in_use(session, std.id),
    )


def _require_editable(session: Session, std: StandardSet) -> None:
    """A retired set never changes; a published one only while no audit uses it."""
    if std.status == StandardSetStatus.retired:
        raise conflict("set_retired", f"Standard set {std.id} is retired and cannot change.")
    if std.status == StandardSetStatus.published and in_use(session, std.id):
        raise conflict("set_in_use", f"Standard set {std.id} is used by audits: publish a new version "
                       f"(POST /api/v1/standard-sets/{std.id}/new-version) to change it.")


def _next_edition(session: Session, year: int, domain: str) -> int:
    current = session.scalar(
        select(func.max(StandardSet.edition)).where(StandardSet.year == year, StandardSet.domain == domain))
    return (current or 0) + 1


def _refuse_second_draft(session: Session, year: int, domain: str) -> None:
    draft = session.scalar(select(StandardSet.id).where(
        StandardSet.year == year, StandardSet.domain == domain, StandardSet.status == StandardSetStatus.draft))
    if draft is not None:
        raise conflict("draft_exists", f"Standard set {draft} is already the draft for {domain} {year}; edit it.")


def create_set(session: Session, actor: Actor, data: StandardSetCreate) -> StandardSet:
    """A new draft set; its edition follows the last one for the same year and domain."""
    _refuse_second_draft(session, data.year, data.domain)
    std = StandardSet(**data.model_dump(), edition=_next_edition(session, data.year, data.domain),
                      status=StandardSetStatus.draft)
    session.add(std)
    session.flush()
    audit.record(session, actor=actor, action="standard_set.create", entity="standard_set", entity_id=std.id,
                 after=audit.snapshot(std))
    return std


def update_set(session: Session, actor: Actor, std: StandardSet, data: StandardSetUpdate,
               expected_version: int) -> StandardSet:
    """Edit the name, description or rating thresholds of an editable set."""
    _require_editable(session, std)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise invalid(["body", "name"], "name cannot be empty")
    for key in ("demonstration_min_pct", "compliant_min_pct"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], f"{key} cannot be empty")
    demo = changes.get("demonstration_min_pct", std.demonstration_min_pct)
    compliant = changes.get("compliant_min_pct", std.compliant_min_pct)
    if not compliant < demo:
        raise invalid(["body", "compliant_min_pct"], "compliant_min_pct must be below demonstration_min_pct")
    before = audit.snapshot(std)
    versioned_update(session, std, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(std))
    audit.record(session, actor=actor, action="standard_set.update", entity="standard_set", entity_id=std.id,
                 before=b, after=a)
    return std


def _touch(session: Session, std: StandardSet) -> None:
    """An item change is a change of the set: its ETag moves on. A concurrent change of the set that committed
    first (a publish, another item change) makes this one a 409, never a 412: items are changed without If-Match."""
    transition_update(session, std, {}, lambda current: _require_editable(session, current))


def _check_item_code(session: Session, set_id: int, code: str, own_id: int | None) -> None:
    other = session.scalar(select(StandardItem.id).where(StandardItem.set_id == set_id, StandardItem.code == code))
    if other is not None and other != own_id:
        raise conflict("duplicate_item_code", f"Item code {code} is already used in standard set {set_id}.")


def _check_meeting_type(aspect: str, meeting_type: str | None) -> None:
    if meeting_type is not None and aspect != Aspect.organizational_life:
        raise invalid(["body", "meeting_type"], "only organisational-life items name a meeting type")


def get_item(session: Session, std: StandardSet, item_id: int) -> StandardItem:
    item = session.get(StandardItem, item_id)
    if item is None or item.set_id != std.id:
        raise not_found("Standard item", item_id)
    return item


def add_item(session: Session, actor: Actor, std: StandardSet, data: StandardItemCreate) -> StandardItem:
    _require_editable(session, std)
    _check_item_code(session, std.id, data.code, None)
    _check_meeting_type(data.aspect, data.meeting_type)
    item = StandardItem(set_id=std.id, **data.model_dump())
    session.add(item)
    session.flush()
    _touch(session, std)
    audit.record(session, actor=actor, action="standard_item.create", entity="standard_item", entity_id=item.id,
                 after=audit.snapshot(item))
    return item


def update_item(session: Session, actor: Actor, std: StandardSet, item: StandardItem,
                data: StandardItemUpdate) -> StandardItem:
    _require_editable(session, std)
    changes = data.model_dump(exclude_unset=True)
    for required in ("aspect", "code", "requirement", "max_score", "position"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    if "code" in changes:
        _check_item_code(session, std.id, changes["code"], item.id)
    _check_meeting_type(changes.get("aspect", item.aspect), changes.get("meeting_type", item.meeting_type))
    before = audit.snapshot(item)
    for key, value in changes.items():
        setattr(item, key, value)
    item.updated_at = utcnow()
    session.flush()
    _touch(session, std)
    b, a = audit.changed(before, audit.snapshot(item))
    audit.record(session, actor=actor, action="standard_item.update", entity="standard_item", entity_id=item.id,
                 before=b, after=a)
    return item


def delete_item(session: Session, actor: Actor, std: StandardSet, item: StandardItem) -> None:
    """Items of an unused set may go: no audit has scored them."""
    _require_editable(session, std)
    before = audit.snapshot(item)
    item_id = item.id
    session.delete(item)
    session.flush()
    _touch(session, std)
    audit.record(session, actor=actor, action="standard_item.delete", entity="standard_item", entity_id=item_id,
                 before=before)


def _require_draft(std: StandardSet) -> None:
    if std.status != StandardSetStatus.draft:
        raise conflict("set_not_draft", f"Standard set {std.id} is {std.status}; only a draft can be published.")


def _require_published(std: StandardSet) -> None:
    if std.status != StandardSetStatus.published:
        raise conflict("set_not_published", f"Standard set {std.id} is {std.status}; only a published set retires.")


def publish(session: Session, actor: Actor, std: StandardSet) -> StandardSet:
    """Draft → published; the edition it replaces for the same year and domain is retired."""
    _require_draft(std)
    items = items_of(session, std.id)
    missing = [a.value for a in Aspect if not any(i.aspect == a for i in items)]
    if missing:
        raise conflict("aspects_missing", f"Standard set {std.id} has no items for: {', '.join(missing)}.")
    previous = session.scalar(select(StandardSet).where(
        StandardSet.year == std.year, StandardSet.domain == std.domain,
        StandardSet.status == StandardSetStatus.published).with_for_update())
    now = utcnow()
    if previous is not None:
        versioned_update(session, previous, previous.version,
                         {"status": StandardSetStatus.retired, "retired_at": now})
        audit.record(session, actor=actor, action="standard_set.retire", entity="standard_set",
                     entity_id=previous.id, before={"status": "published"},
                     after={"status": "retired", "replaced_by": std.id})
    # A concurrent publisher that committed first makes this one a 409, as if it had come second.
    transition_update(session, std, {"status": StandardSetStatus.published, "published_at": now}, _require_draft)
    audit.record(session, actor=actor, action="standard_set.publish", entity="standard_set", entity_id=std.id,
                 before={"status": "draft"}, after={"status": "published"})
    return std


def retire(session: Session, actor: Actor, std: StandardSet) -> StandardSet:
    """Published → retired: no new audits use it; audits already using it keep it."""
    _require_published(std)
    # A concurrent retirement (or a publish replacing it) that committed first makes this one a 409.
    transition_update(session, std, {"status": StandardSetStatus.retired, "retired_at": utcnow()}, _require_published)
    audit.record(session, actor=actor, action="standard_set.retire", entity="standard_set", entity_id=std.id,
                 before={"status": "published"}, after={"status": "retired"})
    return std


def new_version(session: Session, actor: Actor, std: StandardSet) -> StandardSet:
    """Copy a set and its items into the next edition, as a draft."""
    _refuse_second_draft(session, std.year, std.domain)
    copy = StandardSet(
        year=std.year, domain=std.domain, edition=_next_edition(session, std.year, std.domain), name=std.name,
        description=std.description, status=StandardSetStatus.draft,
        demonstration_min_pct=std.demonstration_min_pct, compliant_min_pct=std.compliant_min_pct,
        previous_id=std.id,
    )
    session.add(copy)
    session.flush()
    audit.record(session, actor=actor, action="standard_set.new_version", entity="standard_set", entity_id=copy.id,
                 after={**audit.snapshot(copy), "copied_from": std.id})
    copies = [
        StandardItem(set_id=copy.id, aspect=item.aspect, code=item.code, requirement=item.requirement,
                     max_score=item.max_score, evidence=item.evidence, meeting_type=item.meeting_type,
                     position=item.position)
        for item in items_of(session, std.id)
    ]
    session.add_all(copies)
    session.flush()
    for item in copies:
        audit.record(session, actor=actor, action="standard_item.create", entity="standard_item",
                     entity_id=item.id, after=audit.snapshot(item))
    return copy
