"""Venues (阵地建设): facility types, the facilities each organisation has, construction investments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid, not_found
from app.core.money import from_fen, to_fen
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope, scoped_to
from app.core.versioning import transition_update, versioned_update
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.standards import (
    CoverageTownship,
    CoverageType,
    Facility,
    FacilityCreate,
    FacilityType,
    FacilityTypeCreate,
    FacilityTypeUpdate,
    FacilityUpdate,
    InvestmentStatus,
    InvestmentYear,
    VenueInvestment,
    VenueInvestmentCreate,
    VenueInvestmentPublic,
    VenueSummary,
)
from app.services.standards.common import percentage, township_id_of

TYPE_SORTABLE = {"id": FacilityType.id, "code": FacilityType.code, "position": FacilityType.position}
FACILITY_SORTABLE = {"id": Facility.id, "org_id": Facility.org_id, "facility_type_id": Facility.facility_type_id,
                     "year_built": Facility.year_built, "area_m2": Facility.area_m2}
INVESTMENT_SORTABLE = {"id": VenueInvestment.id, "year": VenueInvestment.year, "org_id": VenueInvestment.org_id,
                       "amount": VenueInvestment.amount_fen, "created_at": VenueInvestment.created_at}

# ---------------------------------------------------------------- facility types (data the city edits)


def list_types(session: Session, params: PageParams, *, active: bool | None,
               category: str | None) -> tuple[list[FacilityType], int]:
    stmt = select(FacilityType)
    if active is not None:
        stmt = stmt.where(FacilityType.active == active)
    if category:
        stmt = stmt.where(FacilityType.category == category)
    return fetch_page(session, stmt, params, allowed=TYPE_SORTABLE, default=[FacilityType.position],
                      tiebreak=FacilityType.id)


def get_type(session: Session, type_id: int) -> FacilityType:
    row = session.get(FacilityType, type_id)
    if row is None:
        raise not_found("Facility type", type_id)
    return row


def create_type(session: Session, actor: Actor, data: FacilityTypeCreate) -> FacilityType:
    if session.scalar(select(FacilityType.id).where(FacilityType.code == data.code)) is not None:
        raise conflict("duplicate_code", f"Facility type code {data.code} is taken.")
    row = FacilityType(**data.model_dump(), is_assumption=False)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="facility_type.create", entity="facility_type", entity_id=row.id,
                 after=audit.snapshot(row))
    return row


def update_type(session: Session, actor: Actor, row: FacilityType, data: FacilityTypeUpdate,
                expected_version: int) -> FacilityType:
    """Edit a type; once the city has edited a seeded default it is no longer an assumption."""
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "category", "active", "position"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    changes["is_assumption"] = False
    before = audit.snapshot(row)
    versioned_update(session, row, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(row))
    audit.record(session, actor=actor, action="facility_type.update", entity="facility_type", entity_id=row.id,
                 before=b, after=a)
    return row


# ---------------------------------------------------------------- facilities


@dataclass
class FacilityFilters:
    org_id: int | None = None
    subtree: bool = False
    facility_type_id: int | None = None
    condition: str | None = None
    in_use: bool | None = None


def list_facilities(session: Session, actor: Actor, filters: FacilityFilters,
                    params: PageParams) -> tuple[list[Facility], int]:
    stmt = scoped_to(session, select(Facility), Facility.org_id, actor, filters.org_id, subtree=filters.subtree)
    if filters.facility_type_id is not None:
        stmt = stmt.where(Facility.facility_type_id == filters.facility_type_id)
    if filters.condition:
        stmt = stmt.where(Facility.condition == filters.condition)
    if filters.in_use is not None:
        stmt = stmt.where(Facility.in_use == filters.in_use)
    return fetch_page(session, stmt, params, allowed=FACILITY_SORTABLE,
                      default=[Facility.org_id, Facility.facility_type_id], tiebreak=Facility.id)


def get_facility(session: Session, actor: Actor, facility_id: int) -> Facility:
    return get_in_scope(session, actor, Facility, facility_id, "Facility")[0]


def create_facility(session: Session, actor: Actor, data: FacilityCreate) -> Facility:
    """Record that an organisation in scope has a facility of an active type (one row per type)."""
    require_org_in_scope(session, actor, data.org_id)
    kind = session.get(FacilityType, data.facility_type_id)
    if kind is None or not kind.active:
        raise invalid(["body", "facility_type_id"], f"facility type {data.facility_type_id} is unknown or inactive")
    taken = session.scalar(select(Facility.id).where(Facility.org_id == data.org_id,
                                                     Facility.facility_type_id == data.facility_type_id))
    if taken is not None:
        raise conflict("duplicate_facility", f"Facility {taken} already records this type for the organisation.")
    row = Facility(**data.model_dump())
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="facility.create", entity="facility", entity_id=row.id,
                 org_id=row.org_id, after=audit.snapshot(row))
    return row


def update_facility(session: Session, actor: Actor, row: Facility, data: FacilityUpdate,
                    expected_version: int) -> Facility:
    changes = data.model_dump(exclude_unset=True)
    for required in ("condition", "in_use"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    before = audit.snapshot(row)
    versioned_update(session, row, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(row))
    audit.record(session, actor=actor, action="facility.update", entity="facility", entity_id=row.id,
                 org_id=row.org_id, before=b, after=a)
    return row


# ---------------------------------------------------------------- construction investments


def investment_public(row: VenueInvestment) -> VenueInvestmentPublic:
    data = {k: getattr(row, k) for k in VenueInvestmentPublic.model_fields if k != "amount"}
    return VenueInvestmentPublic(**data, amount=from_fen(row.amount_fen))


@dataclass
class InvestmentFilters:
    org_id: int | None = None
    subtree: bool = False
    year: int | None = None
    funding_source: str | None = None
    status: str | None = None


def list_investments(session: Session, actor: Actor, filters: InvestmentFilters,
                     params: PageParams) -> tuple[list[VenueInvestmentPublic], int]:
    stmt = scoped_to(session, select(VenueInvestment), VenueInvestment.org_id, actor, filters.org_id,
                     subtree=filters.subtree)
    if filters.year is not None:
        stmt = stmt.where(VenueInvestment.year == filters.year)
    if filters.funding_source:
        stmt = stmt.where(VenueInvestment.funding_source == filters.funding_source)
    if filters.status:
        stmt = stmt.where(VenueInvestment.status == filters.status)
    return fetch_page(session, stmt, params, allowed=INVESTMENT_SORTABLE, default=[col(VenueInvestment.year).desc()],
                      tiebreak=VenueInvestment.id, present=lambda _s, rows: [investment_public(r) for r in rows])


def get_investment(session: Session, actor: Actor, investment_id: int) -> VenueInvestment:
    return get_in_scope(session, actor, VenueInvestment, investment_id, "Venue investment")[0]


def create_investment(session: Session, actor: Actor, data: VenueInvestmentCreate) -> VenueInvestment:
    require_org_in_scope(session, actor, data.org_id)
    if data.facility_type_id is not None and session.get(FacilityType, data.facility_type_id) is None:
        raise invalid(["body", "facility_type_id"], f"facility type {data.facility_type_id} does not exist")
    values = data.model_dump(exclude={"amount"})
    row = VenueInvestment(**values, amount_fen=to_fen(data.amount), status=InvestmentStatus.recorded,
                          created_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="venue_investment.create", entity="venue_investment",
                 entity_id=row.id, org_id=row.org_id, after=audit.snapshot(row))
    return row


def _require_recorded(row: VenueInvestment) -> None:
    if row.status == InvestmentStatus.cancelled:
        raise conflict("already_cancelled", f"Investment {row.id} is already cancelled.")


def cancel_investment(session: Session, actor: Actor, row: VenueInvestment, reason: str) -> VenueInvestment:
    """An entry made in error is cancelled, never deleted: it leaves the totals and stays on record."""
    _require_recorded(row)
    # A concurrent cancel that committed first makes this one a 409, as if it had come second.
    transition_update(session, row, {"status": InvestmentStatus.cancelled, "cancel_reason": reason},
                      _require_recorded)
    audit.record(session, actor=actor, action="venue_investment.cancel", entity="venue_investment",
                 entity_id=row.id, org_id=row.org_id, before={"status": "recorded"},
                 after={"status": "cancelled", "cancel_reason": reason})
    return row


# ---------------------------------------------------------------- summary


@cached_report()
def summary(session: Session, actor: Actor, *, year: int | None) -> VenueSummary:
    """Facility coverage of villages per township and investment per year, in six queries
    whatever the number of organisations. With `year`, facilities built later and investments
    of later years are left out."""
    scope = in_subtree(Organization.path, actor.org_path)
    village = and_(Organization.level == OrgLevel.village, Organization.status == OrgStatus.active, scope)
    types = list(session.scalars(select(FacilityType).where(FacilityType.active).order_by(FacilityType.position,
                                                                                           FacilityType.id)))
    villages = session.execute(select(Organization.id, Organization.path).where(village)).all()
    built = col(Facility.in_use).is_(True) & col(FacilityType.active).is_(True)
    if year is not None:
        built = built & or_(col(Facility.year_built).is_(None), col(Facility.year_built) <= year)
    present = session.execute(
        select(Facility.org_id, Facility.facility_type_id).join(Organization, Organization.id == Facility.org_id)
        .join(FacilityType, FacilityType.id == Facility.facility_type_id)
        .where(village, built)
    ).all()
    area = session.scalar(
        select(func.coalesce(func.sum(Facility.area_m2), 0)).join(Organization, Organization.id == Facility.org_id)
        .where(scope, Facility.in_use, *(() if year is None else
                                          (or_(col(Facility.year_built).is_(None), col(Facility.year_built) <= year),)))
    )
    inv = (
        select(VenueInvestment.year, func.sum(VenueInvestment.amount_fen), func.count())
        .join(Organization, Organization.id == VenueInvestment.org_id)
        .where(scope, VenueInvestment.status == InvestmentStatus.recorded)
        .group_by(VenueInvestment.year).order_by(VenueInvestment.year)
    )
    if year is not None:
        inv = inv.where(VenueInvestment.year <= year)
    investments = [InvestmentYear(year=y, amount=from_fen(int(fen)), entries=n) for y, fen, n in session.execute(inv)]

    town_of = {vid: township_id_of(path) for vid, path in villages}
    township_ids = {t for t in town_of.values() if t is not None}
    names: dict[int, str] = dict(session.execute(select(Organization.id, Organization.name)
                                 .where(col(Organization.id).in_(township_ids))).all()) if township_ids else {}
    orgs_per_town: dict[int, int] = defaultdict(int)
    for t in town_of.values():
        if t is not None:
            orgs_per_town[t] += 1
    have: dict[int, set[int]] = defaultdict(set)  # org → types present
    for org_id, type_id in present:
        have[org_id].add(type_id)
    townships = []
    for t in sorted(township_ids):
        members = [v for v, tt in town_of.items() if tt == t]
        per_type = [
            CoverageType(facility_type_id=k.id, code=k.code, name=k.name,
                         organizations_with=sum(1 for v in members if k.id in have[v]),
                         coverage=percentage(sum(1 for v in members if k.id in have[v]), len(members)))
            for k in types
        ]
        full = sum(1 for v in members if types and len(have[v]) == len(types))
        townships.append(CoverageTownship(township_id=t, township_name=names.get(t, ""),
                                          organizations=orgs_per_town[t], fully_equipped=full, types=per_type))
    return VenueSummary(year=year, townships=townships, investments=investments,
                        investment_total=from_fen(sum(to_fen(i.amount) for i in investments)),
                        floor_area_m2=int(area or 0))
