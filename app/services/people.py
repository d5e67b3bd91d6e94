"""People (party members and cadres), the positions they hold, and the queries other areas ask of them.

Personal data (ID number, phone) is stored encrypted with a keyed hash for uniqueness and exact
lookup, and a masked copy for display; it leaves this module unmasked only for callers holding
`pii_read`, and every such read appends a `person.pii_read` audit row. Audit snapshots carry the
masked values only.

Queries for other areas (keep these names): `office_holders`, `is_without_office`, `service_years`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.permissions import Permission
from app.core.scope import Actor, get_in_scope, require_org_in_scope, scoped_to, subtree_org_ids, within
from app.core.security import decrypt_pii, encrypt_pii, mask_id_number, mask_phone, pii_lookup_hash
from app.core.versioning import versioned_update
from app.models.accounts import User
from app.models.audit import AuditLog
from app.models.organizations import Organization, OrgStatus
from app.models.people import (
    MemberStatus,
    Person,
    PersonCreate,
    PersonLookup,
    PersonPublic,
    PersonStatus,
    PersonUpdate,
    Position,
    PositionCreate,
    PositionPublic,
    PositionTitle,
    ServiceYears,
)
from app.services import organizations as organizations_service

PERSON_SORTABLE = {
    "id": Person.id, "name": Person.name, "org_id": Person.org_id, "birth_date": Person.birth_date,
    "joined_party_on": Person.joined_party_on, "created_at": Person.created_at,
}
PUBLIC_PERSON_SORTABLE = {key: column for key, column in PERSON_SORTABLE.items() if key != "birth_date"}
POSITION_SORTABLE = {
    "id": Position.id, "person_id": Position.person_id, "org_id": Position.org_id, "title": Position.title,
    "started_on": Position.started_on, "ended_on": Position.ended_on,
}
# Never in an audit row: the cipher text and the keyed hashes (the masked copies stand in).
PII_COLUMNS = ("id_number_cipher", "id_number_hash", "phone_cipher", "phone_hash")
# A run of digits this long in a name search is an ID or phone number in a URL: refused.
_DIGIT_RUN = re.compile(r"\d{6,}")
TITLE_ORDER = {title.value: i for i, title in enumerate(PositionTitle)}


@dataclass
class PersonFilters:
    org_id: int | None = None
    subtree: bool = False
    member_status: str | None = None
    status: str | None = None
    gender: str | None = None
    q: str | None = None
    has_position: bool | None = None
    title: str | None = None
    on: dt.date | None = None


@dataclass
class PositionFilters:
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False
    title: str | None = None
    active_on: dt.date | None = None


# --- personal data -----------------------------------------------------------


def audit_snapshot(person: Person) -> dict[str, Any]:
    """The person as an audit row may show it: masked ID and phone, birth date reduced to its year."""
    snap = audit.snapshot(person, exclude=PII_COLUMNS)
    if snap.get("phone_masked"):
        snap["phone_masked"] = mask_phone(snap["phone_masked"])  # a mask stored before bae184d, masked again
    if person.birth_date is not None:
        snap["birth_date"] = f"{person.birth_date.year}-**-**"
    return snap


def from_audit_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """An audit snapshot's fields under the API's names (the inverse of `audit_snapshot`, masked)."""
    out = dict(snap)
    for kind in ("id_number", "phone"):
        if f"{kind}_masked" in out:
            out[kind] = out.pop(f"{kind}_masked")
    if out.get("phone"):
        out["phone"] = mask_phone(out["phone"])  # audit rows written before bae184d hold the old mask
    if "birth_date" in out:
        birth = out.pop("birth_date")
        out["birth_year"] = int(birth[:4]) if isinstance(birth, str) and birth[:4].isdigit() else None
    return out


def to_public(person: Person, *, reveal: bool) -> PersonPublic:
    """The API view of a person: masked unless `reveal` (the caller holds pii_read)."""
    assert person.id is not None
    if reveal:
        id_number = decrypt_pii(person.id_number_cipher) if person.id_number_cipher else None
        phone = decrypt_pii(person.phone_cipher) if person.phone_cipher else None
    else:
        # Masked again on the way out (a good mask is unchanged): masks stored before 2026-11-28 left a short
        # landline whole, and the new mask shows only digits the old one did.
        id_number = person.id_number_masked
        phone = mask_phone(person.phone_masked) if person.phone_masked else None
    return PersonPublic(
        id=person.id, org_id=person.org_id, name=person.name, gender=person.gender, ethnicity=person.ethnicity,
        birth_year=person.birth_date.year if person.birth_date else None,
        birth_date=person.birth_date if reveal else None,
        id_number=id_number, phone=phone, member_status=person.member_status,
        joined_party_on=person.joined_party_on, status=person.status, left_on=person.left_on,
        version=person.version, created_at=person.created_at, updated_at=person.updated_at,
    )


def present(session: Session, actor: Actor, people: Sequence[Person]) -> list[PersonPublic]:
    """People as the actor may see them; an unmasked answer appends one `person.pii_read` audit row."""
    reveal = actor.can(Permission.pii_read)
    out = [to_public(p, reveal=reveal) for p in people]
    if reveal and people:
        ids = [p.id for p in people]
        single = len(people) == 1
        audit.record(session, actor=actor, action="person.pii_read", entity="person",
                     entity_id=ids[0] if single else None,
                     org_id=people[0].org_id if single else actor.org_id, after={"person_ids": ids})
    return out


def _pii_columns(kind: str, value: str | None) -> dict[str, str | None]:
    if value is None:
        return {f"{kind}_cipher": None, f"{kind}_hash": None, f"{kind}_masked": None}
    masked = mask_id_number(value) if kind == "id_number" else mask_phone(value)
    return {f"{kind}_cipher": encrypt_pii(value), f"{kind}_hash": pii_lookup_hash(value), f"{kind}_masked": masked}


def _check_unique_pii(session: Session, actor: Actor, values: dict[str, Any], own_id: int | None) -> None:
    for kind, label in (("id_number", "ID number"), ("phone", "phone number")):
        digest = values.get(f"{kind}_hash")
        if digest is None:
            continue
        hash_col = Person.id_number_hash if kind == "id_number" else Person.phone_hash
        other = session.execute(
            select(Person.id, Organization.path).join(Organization, Organization.id == Person.org_id)
            .where(hash_col == digest)
        ).first()
        if other is not None and other.id != own_id:
            # Name the other record only to someone who may see it.
            where = f" by person {other.id}" if actor.covers(other.path) else ""
            raise conflict(f"duplicate_{kind}", f"This {label} is already registered{where}.")


def _birth_date_of(id_number: str) -> dt.date:
    from stdnum.cn import ric

    return ric.get_birth_date(id_number)


# --- people -------------------------------------------------------------------


def _get_with_path(session: Session, actor: Actor, person_id: int) -> tuple[Person, str]:
    return get_in_scope(session, actor, Person, person_id, "Person")


def get(session: Session, actor: Actor, person_id: int) -> Person:
    """The person, or 404 when absent or their organisation is outside the actor's scope."""
    return _get_with_path(session, actor, person_id)[0]


def _holds_office(on: dt.date, title: str | None = None) -> Any:
    cond = and_(Position.person_id == Person.id, Position.started_on <= on,
                or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= on))
    if title is not None:
        cond = and_(cond, Position.title == title)
    return exists().where(cond)


def list_page(session: Session, actor: Actor, filters: PersonFilters, params: PageParams) -> tuple[list[Person], int]:
    """People whose organisation is in the actor's scope; `has_position`/`title` look at positions held on `on`."""
    stmt = scoped_to(session, select(Person), Person.org_id, actor, filters.org_id, subtree=filters.subtree)
    if filters.member_status:
        stmt = stmt.where(Person.member_status == filters.member_status)
    if filters.status:
        stmt = stmt.where(Person.status == filters.status)
    if filters.gender:
        stmt = stmt.where(Person.gender == filters.gender)
    if filters.q:
        if _DIGIT_RUN.search(filters.q):
            raise invalid(["query", "q"], "q searches names; find a person by ID number or phone with "
                          "POST /api/v1/people/lookup (personal data never goes in a URL)")
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(col(Person.name).like(pattern, escape="\\"))
    on = filters.on or dt.date.today()
    if filters.title is not None:
        stmt = stmt.where(_holds_office(on, filters.title))
    if filters.has_position is not None:
        held = _holds_office(on)
        stmt = stmt.where(held if filters.has_position else ~held)
    # Sorting by a hidden birth date would tell its place among dates the caller chooses: pii_read only.
    allowed = PERSON_SORTABLE if actor.can(Permission.pii_read) else PUBLIC_PERSON_SORTABLE
    return fetch_page(session, stmt, params, allowed=allowed, default=[Person.name], tiebreak=Person.id)


# A lookup answers whether a whole number exists: with the masked number (region, last four digits) and the birth
# year it shows, a caller without pii_read had some thirty candidates to try for a full ID number. Every lookup is
# audited, found or not, and a caller gets LOOKUP_LIMIT of them per LOOKUP_WINDOW (429 after): guessing one number
# then takes about half an hour on average, and leaves its trail in the audit log.
LOOKUP_LIMIT = 10
LOOKUP_WINDOW = dt.timedelta(minutes=15)


class LookupMissed(Exception):
    """No person with that number in the caller's scope: a 404 whose audit row is kept (app.routers.people)."""


class LookupThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


def lookup(session: Session, actor: Actor, data: PersonLookup) -> Person:
    """Exact match on the ID number's or phone's keyed hash, answered only within scope (`LookupMissed`
    otherwise). Audited either way; throttled per caller."""
    # The caller's row is locked first: concurrent lookups of one caller count one after the other (PostgreSQL;
    # SQLite serialises writers anyway), or all of them would see the count below the limit.
    session.execute(select(User.id).where(User.id == actor.user_id).with_for_update())
    since = utcnow() - LOOKUP_WINDOW
    recent = list(session.scalars(
        select(AuditLog.at).where(AuditLog.user_id == actor.user_id, AuditLog.action == "person.lookup",
                                  AuditLog.at >= since).order_by(AuditLog.at).limit(LOOKUP_LIMIT)))
    if len(recent) >= LOOKUP_LIMIT:
        oldest = recent[0] if recent[0].tzinfo else recent[0].replace(tzinfo=dt.UTC)
        raise LookupThrottled(max(1, math.ceil((oldest + LOOKUP_WINDOW - utcnow()).total_seconds())))
    if data.id_number is not None:
        by, cond = "id_number", Person.id_number_hash == pii_lookup_hash(data.id_number)
    else:
        assert data.phone is not None
        by, cond = "phone", Person.phone_hash == pii_lookup_hash(data.phone)
    row = session.execute(
        select(Person, Organization.path).join(Organization, Organization.id == Person.org_id).where(cond)
    ).first()
    found = row is not None and actor.covers(row[1])
    audit.record(session, actor=actor, action="person.lookup", entity="person",
                 entity_id=row[0].id if found and row is not None else None,
                 org_id=row[0].org_id if found and row is not None else actor.org_id,
                 after={"by": by, "found": found})
    if not found or row is None:
        raise LookupMissed
    return row[0]


def _check_membership(member_status: str, joined_on: dt.date | None, birth_date: dt.date | None) -> None:
    if member_status != MemberStatus.none and joined_on is None:
        raise invalid(["body", "joined_party_on"], "joined_party_on is required for a party member")
    if member_status == MemberStatus.none and joined_on is not None:
        raise invalid(["body", "joined_party_on"], "joined_party_on is only for party members")
    if joined_on is not None and birth_date is not None and joined_on <= birth_date:
        raise invalid(["body", "joined_party_on"], "joined_party_on must be after the birth date")


def _active_org(session: Session, actor: Actor, org_id: int) -> Organization:
    org = organizations_service.get(session, actor, org_id)
    if org.status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org.id} is dissolved.")
    return org


def create(session: Session, actor: Actor, data: PersonCreate) -> Person:
    """Register a person in an active organisation in scope.

    The birth date is taken from the ID number when absent and must agree with it when both are
    sent; ID number and phone must not belong to anyone else (409 duplicate_id_number / duplicate_phone).
    """
    _active_org(session, actor, data.org_id)
    fields = data.model_dump(exclude={"id_number", "phone"})
    if data.id_number is not None:
        from_id = _birth_date_of(data.id_number)
        if fields["birth_date"] is None:
            fields["birth_date"] = from_id
        elif fields["birth_date"] != from_id:
            raise invalid(["body", "birth_date"], "the birth date differs from the one in the ID number")
    _check_membership(data.member_status, data.joined_party_on, fields["birth_date"])
    pii = {**_pii_columns("id_number", data.id_number), **_pii_columns("phone", data.phone)}
    _check_unique_pii(session, actor, pii, own_id=None)
    person = Person(**fields, **pii)
    session.add(person)
    session.flush()
    audit.record(session, actor=actor, action="person.create", entity="person", entity_id=person.id,
                 org_id=person.org_id, after=audit_snapshot(person))
    return person


def update_fields(
    session: Session, actor: Actor, person: Person, data: PersonUpdate, expected_version: int
) -> Person:
    """Edit the fields the PATCH names, if nobody changed the person since the client read them.

    `org_id` transfers the person to another active organisation in scope (positions stay as they are).
    `status` other than active records that the person left the roll on `left_on` (default today, not in
    the future): every position they hold after that day ends on it (one `position.end` audit row each);
    a position starting after that day makes the change a 409 (`position_starts_after_leaving`). A person
    may come back to active (transferred back in, a removal corrected), which clears `left_on` but reopens
    no position; a deceased person's status is final (409 `person_deceased`).
    While an ID number is on record the birth date follows it: a new number brings its birth date, and
    the birth date alone cannot be edited (422).
    """
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "gender", "member_status", "status", "org_id"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    if "org_id" in changes and changes["org_id"] != person.org_id:
        _active_org(session, actor, changes["org_id"])

    # Personal data: replaced (or cleared with null) as a whole.
    pii: dict[str, Any] = {}
    for kind in ("id_number", "phone"):
        if kind in changes:
            pii.update(_pii_columns(kind, changes.pop(kind)))
    _check_unique_pii(session, actor, pii, own_id=person.id)
    birth_date = changes.get("birth_date", person.birth_date)
    if "id_number_cipher" in pii and data.id_number is not None:
        from_id = _birth_date_of(data.id_number)
        if "birth_date" not in changes:
            changes["birth_date"] = birth_date = from_id
        elif birth_date != from_id:
            raise invalid(["body", "birth_date"], "the birth date differs from the one in the ID number")
    elif "birth_date" in changes and "id_number_cipher" not in pii and person.id_number_cipher:
        # Refused whatever the value: comparing it with the stored number would let a caller
        # without pii_read find the hidden birth date (and with the masked number, the whole number).
        raise invalid(["body", "birth_date"], "the birth date comes from the ID number: change the ID number instead")
    _check_membership(changes.get("member_status", person.member_status),
                      changes.get("joined_party_on", person.joined_party_on), birth_date)

    leaving_on = _status_change(person, changes)
    ending = _positions_held_after(session, person.id, leaving_on) if leaving_on is not None else []
    before = audit_snapshot(person)
    versioned_update(session, person, expected_version, {**changes, **pii})
    b, a = audit.changed(before, audit_snapshot(person))
    audit.record(session, actor=actor, action="person.update", entity="person", entity_id=person.id,
                 org_id=person.org_id, before=b, after=a)
    if leaving_on is not None:
        _end_positions(session, actor, ending, leaving_on, reason=f"person {person.status}")
    return person


def _status_change(person: Person, changes: dict[str, Any]) -> dt.date | None:
    """Validate a status change in `changes` (adjusting left_on); the leaving date when the person leaves."""
    new_status = changes.get("status", person.status)
    left_on = changes.get("left_on")
    if new_status == PersonStatus.active:
        if left_on is not None:
            raise invalid(["body", "left_on"], "left_on goes with a status other than active")
        if person.status != PersonStatus.active:
            if person.status == PersonStatus.deceased:
                raise conflict("person_deceased", f"Person {person.id} is recorded as deceased.")
            changes["left_on"] = None
        return None
    if new_status != person.status and person.status == PersonStatus.deceased:
        raise conflict("person_deceased", f"Person {person.id} is recorded as deceased.")
    if left_on is not None and left_on > dt.date.today():
        raise invalid(["body", "left_on"], "left_on cannot be in the future")
    if person.status == PersonStatus.active:
        changes["left_on"] = left_on = left_on or dt.date.today()
        return left_on
    if "left_on" in changes and left_on is None:
        raise invalid(["body", "left_on"], "left_on cannot be empty while the person is not active")
    return left_on  # a corrected leaving date ends what is still held after it


def _positions_held_after(session: Session, person_id: int | None, day: dt.date) -> list[Position]:
    held = list(session.scalars(
        select(Position).where(Position.person_id == person_id,
                               or_(col(Position.ended_on).is_(None), col(Position.ended_on) > day))
        .order_by(Position.id)
    ))
    late = [p.id for p in held if p.started_on > day]
    if late:
        raise conflict("position_starts_after_leaving",
                       f"Positions {late} start after {day.isoformat()}; end or correct them first.")
    return held


def _end_positions(session: Session, actor: Actor, positions: list[Position], day: dt.date, reason: str) -> None:
    if not positions:
        return
    before = {p.id: p.ended_on for p in positions}
    session.execute(
        update(Position).where(col(Position.id).in_(list(before)))
        .values(ended_on=day, updated_at=utcnow()).execution_options(synchronize_session=False)
    )
    for p in positions:
        session.refresh(p)
        audit.record(session, actor=actor, action="position.end", entity="position", entity_id=p.id,
                     org_id=p.org_id, before={"ended_on": before[p.id]}, after={"ended_on": day, "reason": reason})


# --- positions -------------------------------------------------------------------


def _position_row(session: Session, position_id: int) -> tuple[Position, str, str] | None:
    person_org = aliased(Organization)
    row = session.execute(
        select(Position, Organization.path, person_org.path)
        .join(Organization, Organization.id == Position.org_id)
        .join(Person, Person.id == Position.person_id)
        .join(person_org, person_org.id == Person.org_id)
        .where(Position.id == position_id)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def get_position(session: Session, actor: Actor, position_id: int) -> Position:
    """The position, or 404 unless its organisation or its holder's organisation is in scope."""
    row = _position_row(session, position_id)
    if row is None or not (actor.covers(row[1]) or actor.covers(row[2])):
        raise not_found("Position", position_id)
    return row[0]


def _visible_positions(actor: Actor) -> Any:
    stmt = select(Position)
    if actor.sees_everything:
        return stmt
    mine = subtree_org_ids(actor.org_path)
    return stmt.join(Person, Person.id == Position.person_id).where(
        or_(col(Position.org_id).in_(mine), col(Person.org_id).in_(mine))
    )


def _active_on(on: dt.date) -> Any:
    return and_(Position.started_on <= on, or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= on))


def list_positions(
    session: Session, actor: Actor, filters: PositionFilters, params: PageParams
) -> tuple[list[Position], int]:
    """Positions whose organisation or holder's organisation is in scope."""
    stmt = _visible_positions(actor)
    if filters.person_id is not None:
        stmt = stmt.where(Position.person_id == filters.person_id)
    if filters.org_id is not None:
        path = require_org_in_scope(session, actor, filters.org_id)
        stmt = within(stmt, Position.org_id, path, subtree=filters.subtree, org_id=filters.org_id)
    if filters.title:
        stmt = stmt.where(Position.title == filters.title)
    if filters.active_on is not None:
        stmt = stmt.where(_active_on(filters.active_on))
    return fetch_page(session, stmt, params, allowed=POSITION_SORTABLE,
                      default=[Position.started_on], tiebreak=Position.id)


def positions_public(session: Session, positions: Iterable[Position]) -> list[PositionPublic]:
    """Positions with their holders' names, in one query whatever their number."""
    items = list(positions)
    person_ids = {p.person_id for p in items}
    names: dict[int, str] = {}
    if person_ids:
        rows = session.execute(select(Person.id, Person.name).where(col(Person.id).in_(person_ids)))
        names.update(rows.all())
    return [PositionPublic.model_validate(p, update={"person_name": names.get(p.person_id)}) for p in items]


def create_position(session: Session, actor: Actor, data: PositionCreate) -> Position:
    """Record a position held by a person in scope in an organisation in scope.

    The organisation must be the person's own or one above or below it in the tree, except for a
    resident first secretary, who is sent from elsewhere: any organisation in the actor's scope.
    An open position needs an active person and an active organisation; a closed one (history)
    may be recorded for anyone, ending no later than the day they left. Overlapping positions with the
    same title in the same organisation are a 409 (`overlapping_position`).
    """
    person, person_path = _get_with_path(session, actor, data.person_id)
    # Serialise position changes per person so two overlapping creates cannot both pass the check.
    session.execute(select(Person.id).where(Person.id == person.id).with_for_update())
    org = organizations_service.get(session, actor, data.org_id)
    if data.title != PositionTitle.resident_first_secretary and not (
        org.path.startswith(person_path) or person_path.startswith(org.path)
    ):
        raise invalid(["body", "org_id"], "the position's organisation must be the person's own organisation or "
                      "one above or below it (only a resident first secretary comes from elsewhere)")
    if data.ended_on is None:
        if person.status != PersonStatus.active:
            raise conflict("person_not_active", f"Person {person.id} is {person.status}; only history "
                           "(a position with ended_on) can be recorded.")
        if org.status != OrgStatus.active:
            raise conflict("organization_dissolved", f"Organisation {org.id} is dissolved.")
    elif person.left_on is not None and data.ended_on > person.left_on:
        raise conflict("person_not_active", f"Person {person.id} left on {person.left_on.isoformat()}.")
    overlap = session.scalar(
        select(Position.id).where(
            Position.person_id == person.id, Position.org_id == org.id, Position.title == data.title,
            or_(col(Position.ended_on).is_(None), col(Position.ended_on) >= data.started_on),
            *([Position.started_on <= data.ended_on] if data.ended_on is not None else []),
        ).limit(1)
    )
    if overlap is not None:
        raise conflict("overlapping_position",
                       f"Person {person.id} already holds this title in organisation {org.id} during that "
                       f"time (position {overlap}).")
    position = Position(**data.model_dump())
    session.add(position)
    session.flush()
    audit.record(session, actor=actor, action="position.create", entity="position", entity_id=position.id,
                 org_id=position.org_id, after=audit.snapshot(position))
    return position


def end_position(session: Session, actor: Actor, position: Position, ended_on: dt.date) -> Position:
    """End an open position on `ended_on` (inclusive: the last day held); 409 if it already has an end.

    Whoever sees the position may end it: its organisation's side or its holder's side (the holder's
    home organisation ends a resident first secretary's posting when calling them back)."""
    if ended_on < position.started_on:
        raise invalid(["body", "ended_on"], "ended_on must not be before started_on")
    if position.ended_on is not None:
        raise conflict("position_already_ended", f"Position {position.id} ended on {position.ended_on.isoformat()}.")
    result = session.execute(
        update(Position).where(Position.id == position.id, col(Position.ended_on).is_(None))
        .values(ended_on=ended_on, updated_at=utcnow()).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("position_already_ended", f"Position {position.id} was ended meanwhile.")
    session.refresh(position)
    audit.record(session, actor=actor, action="position.end", entity="position", entity_id=position.id,
                 org_id=position.org_id, before={"ended_on": None}, after={"ended_on": ended_on})
    return position


# --- queries for other areas -------------------------------------------------------


def office_holders(
    session: Session, *, org_id: int, on: dt.date, titles: set[str] | None = None
) -> list[Position]:
    """Who held office in the organisation on `on`: positions with started_on <= on <= ended_on (both
    inclusive; an open position has no end), optionally only `titles`; secretary first, then by title
    order, start date and id. No scope check: callers check the organisation is in scope."""
    stmt = select(Position).where(Position.org_id == org_id, _active_on(on))
    if titles:
        stmt = stmt.where(col(Position.title).in_([str(t) for t in titles]))
    rows = list(session.scalars(stmt))
    rows.sort(key=lambda p: (TITLE_ORDER.get(p.title, len(TITLE_ORDER)), p.started_on, p.id or 0))
    return rows


def is_without_office(session: Session, *, person_id: int, on: dt.date) -> bool:
    """True when the person holds no position in any organisation on `on` (a 无职党员 that day).

    Looks at positions only: callers decide whether the person must be a party member or active."""
    held = session.scalar(
        select(Position.id).where(Position.person_id == person_id, _active_on(on)).limit(1)
    )
    return held is None


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return dt.date(day.year + years, 3, 1)


def _completed_years(start: dt.date, end_exclusive: dt.date) -> tuple[int, int]:
    """Completed calendar years from `start` up to (not including) `end_exclusive`, and the days left over."""
    years = end_exclusive.year - start.year
    if (end_exclusive.month, end_exclusive.day) < (start.month, start.day):
        years -= 1
    return years, (end_exclusive - _add_years(start, years)).days


def service_years(
    session: Session, *, person_id: int, as_of: dt.date, titles: set[str] | None = None
) -> ServiceYears:
    """Years of service up to `as_of` (inclusive) in any position (or only `titles`), any organisation.

    Positions are clipped to `as_of` (an open one counts to `as_of`; one starting later not at all),
    then merged where they overlap or follow each other without a gap day, so no day counts twice.
    Each continuous stretch counts its completed calendar years; the days left over from several
    stretches are added up and make a further year per full 365 days. `days` is the total of days served.
    """
    stmt = select(Position.started_on, Position.ended_on).where(
        Position.person_id == person_id, Position.started_on <= as_of
    )
    if titles:
        stmt = stmt.where(col(Position.title).in_([str(t) for t in titles]))
    spans = sorted((s, min(e, as_of) if e is not None else as_of) for s, e in session.execute(stmt))
    merged: list[list[dt.date]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    days = years = 0
    rests: list[int] = []
    for start, end in merged:
        end_exclusive = end + dt.timedelta(days=1)
        days += (end_exclusive - start).days
        whole, rest = _completed_years(start, end_exclusive)
        years += whole
        if rest:
            rests.append(rest)
    if len(rests) > 1:
        years += sum(rests) // 365
    return ServiceYears(person_id=person_id, as_of=as_of, days=days, years=years)
