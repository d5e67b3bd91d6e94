"""Organisational life (组织生活): required frequencies, meeting records and compliance."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import extract, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.errors import conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, get_in_scope, in_subtree, require_org_in_scope, scoped_to
from app.core.versioning import versioned_update
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.standards import (
    Cadence,
    ComplianceReport,
    ComplianceRow,
    MeetingFrequency,
    MeetingFrequencyCreate,
    MeetingFrequencyUpdate,
    MeetingRecord,
    MeetingRecordCreate,
    MeetingRecordUpdate,
    MeetingType,
)
from app.services.responsibilities import clock  # the business date (Beijing), which tests patch

MEETING_LEVELS = (OrgLevel.village, OrgLevel.branch)

RECORD_SORTABLE = {
    "id": MeetingRecord.id, "held_on": MeetingRecord.held_on, "org_id": MeetingRecord.org_id,
    "meeting_type": MeetingRecord.meeting_type, "created_at": MeetingRecord.created_at,
}
FREQUENCY_SORTABLE = {
    "id": MeetingFrequency.id, "meeting_type": MeetingFrequency.meeting_type,
    "effective_from_year": MeetingFrequency.effective_from_year,
}

# ---------------------------------------------------------------- required frequencies


def list_frequencies(session: Session, params: PageParams, *, meeting_type: str | None = None,
                     year: int | None = None) -> tuple[list[MeetingFrequency], int]:
    stmt = select(MeetingFrequency)
    if meeting_type:
        stmt = stmt.where(MeetingFrequency.meeting_type == meeting_type)
    if year is not None:
        stmt = stmt.where(MeetingFrequency.effective_from_year <= year)
    return fetch_page(session, stmt, params, allowed=FREQUENCY_SORTABLE,
                      default=[MeetingFrequency.meeting_type, col(MeetingFrequency.effective_from_year).desc()],
                      tiebreak=MeetingFrequency.id)


def get_frequency(session: Session, frequency_id: int) -> MeetingFrequency:
    row = session.get(MeetingFrequency, frequency_id)
    if row is None:
        raise not_found("Meeting frequency", frequency_id)
    return row


def create_frequency(session: Session, actor: Actor, data: MeetingFrequencyCreate) -> MeetingFrequency:
    """A new requirement for a meeting type from a year on (earlier years keep theirs)."""
    taken = session.scalar(select(MeetingFrequency.id).where(
        MeetingFrequency.meeting_type == data.meeting_type,
        MeetingFrequency.effective_from_year == data.effective_from_year))
    if taken is not None:
        raise conflict("duplicate_frequency", f"Frequency {taken} already sets {data.meeting_type} from "
                       f"{data.effective_from_year}; edit it instead.")
    row = MeetingFrequency(**data.model_dump())
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="meeting_frequency.create", entity="meeting_frequency",
                 entity_id=row.id, after=audit.snapshot(row))
    return row


def update_frequency(session: Session, actor: Actor, row: MeetingFrequency, data: MeetingFrequencyUpdate,
                     expected_version: int) -> MeetingFrequency:
    changes = data.model_dump(exclude_unset=True)
    if "cadence" in changes and changes["cadence"] is None:
        raise invalid(["body", "cadence"], "cadence cannot be empty")
    before = audit.snapshot(row)
    versioned_update(session, row, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(row))
    audit.record(session, actor=actor, action="meeting_frequency.update", entity="meeting_frequency",
                 entity_id=row.id, before=b, after=a)
    return row


def frequencies_in_force(session: Session, year: int) -> dict[str, Cadence]:
    """Per meeting type, the cadence whose effective year is the latest not after `year` (one query)."""
    rows = session.execute(
        select(MeetingFrequency.meeting_type, MeetingFrequency.cadence, MeetingFrequency.effective_from_year)
        .where(MeetingFrequency.effective_from_year <= year)
        .order_by(MeetingFrequency.effective_from_year)
    ).all()
    out: dict[str, Cadence] = {}
    for meeting_type, cadence, _ in rows:
        out[meeting_type] = Cadence(cadence)
    return out


# ---------------------------------------------------------------- meeting records


@dataclass
class RecordFilters:
    org_id: int | None = None
    subtree: bool = False
    meeting_type: str | None = None
    year: int | None = None
    held_from: dt.date | None = None
    held_to: dt.date | None = None


def list_records(session: Session, actor: Actor, filters: RecordFilters,
                 params: PageParams) -> tuple[list[MeetingRecord], int]:
    stmt = scoped_to(session, select(MeetingRecord), MeetingRecord.org_id, actor, filters.org_id,
                     subtree=filters.subtree)
    if filters.meeting_type:
        stmt = stmt.where(MeetingRecord.meeting_type == filters.meeting_type)
    if filters.year is not None:
        stmt = stmt.where(MeetingRecord.held_on >= dt.date(filters.year, 1, 1),
                          MeetingRecord.held_on <= dt.date(filters.year, 12, 31))
    if filters.held_from is not None:
        stmt = stmt.where(MeetingRecord.held_on >= filters.held_from)
    if filters.held_to is not None:
        stmt = stmt.where(MeetingRecord.held_on <= filters.held_to)
    return fetch_page(session, stmt, params, allowed=RECORD_SORTABLE, default=[col(MeetingRecord.held_on).desc()],
                      tiebreak=MeetingRecord.id)


def get_record(session: Session, actor: Actor, record_id: int) -> MeetingRecord:
    return get_in_scope(session, actor, MeetingRecord, record_id, "Meeting record")[0]


def _held(held_on: dt.date) -> None:
    """A meeting is recorded once held: a future one counted its period as met (compliance, audit suggestions)."""
    if held_on > clock.today():
        raise invalid(["body", "held_on"], "a meeting is recorded after it was held, not before")


def create_record(session: Session, actor: Actor, data: MeetingRecordCreate) -> MeetingRecord:
    """Record a meeting of a village or branch organisation in the actor's scope."""
    require_org_in_scope(session, actor, data.org_id)
    org = session.get(Organization, data.org_id)
    assert org is not None
    if org.level not in MEETING_LEVELS:
        raise invalid(["body", "org_id"], "meetings are recorded for village organisations and branches")
    if org.status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org.id} is dissolved.")
    _held(data.held_on)
    row = MeetingRecord(**data.model_dump(), created_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="meeting_record.create", entity="meeting_record", entity_id=row.id,
                 org_id=row.org_id, after=audit.snapshot(row, exclude=("minutes",)))
    return row


def update_record(session: Session, actor: Actor, row: MeetingRecord, data: MeetingRecordUpdate,
                  expected_version: int) -> MeetingRecord:
    changes = data.model_dump(exclude_unset=True)
    for required in ("held_on", "topic", "expected_count", "present_count"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    if changes.get("held_on") is not None and changes["held_on"] != row.held_on:
        _held(changes["held_on"])
    expected = changes.get("expected_count", row.expected_count)
    present = changes.get("present_count", row.present_count)
    if present > expected:
        raise invalid(["body", "present_count"], "present_count cannot exceed expected_count")
    if changes.get("lecturer") is not None and row.meeting_type != MeetingType.party_lecture:
        raise invalid(["body", "lecturer"], "only a party lecture has a lecturer")
    before = audit.snapshot(row, exclude=("minutes",))
    versioned_update(session, row, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(row, exclude=("minutes",)))
    if "minutes" in changes:
        a["minutes_changed"] = True
    audit.record(session, actor=actor, action="meeting_record.update", entity="meeting_record", entity_id=row.id,
                 org_id=row.org_id, before=b, after=a)
    return row


# ---------------------------------------------------------------- compliance


def _periods(cadence: Cadence, year: int, quarter: int | None) -> list[tuple[str, dt.date, dt.date, set[int]]]:
    """The periods of a cadence inside the window: label, first day, last day, months covered."""
    months = range(1, 13) if quarter is None else range(3 * quarter - 2, 3 * quarter + 1)
    out = []
    if cadence == Cadence.monthly:
        for m in months:
            last = (dt.date(year + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1))
            out.append((f"{year}-{m:02d}", dt.date(year, m, 1), last, {m}))
    elif cadence == Cadence.quarterly:
        for q in ([quarter] if quarter else [1, 2, 3, 4]):
            first = dt.date(year, 3 * q - 2, 1)
            last = dt.date(year + (q == 4), (3 * q) % 12 + 1, 1) - dt.timedelta(days=1)
            out.append((f"{year}-Q{q}", first, last, {3 * q - 2, 3 * q - 1, 3 * q}))
    elif quarter is None:
        # A yearly meeting is judged over a whole year only: a quarter cannot miss it.
        out.append((f"{year}", dt.date(year, 1, 1), dt.date(year, 12, 31), set(range(1, 13))))
    return out


def _compliance_rows(orgs: list[tuple[int, str]], cadences: dict[str, Cadence],
                     counts: dict[tuple[int, str], dict[int, int]], year: int, quarter: int | None,
                     as_of: dt.date) -> list[ComplianceRow]:
    rows = []
    for org_id, org_name in orgs:
        for meeting_type in MeetingType:
            cadence = cadences.get(meeting_type.value)
            by_month = counts.get((org_id, meeting_type.value), {})
            held = sum(by_month.values())
            required = met = 0
            missed: list[str] = []
            for label, _first, last, months in _periods(cadence, year, quarter) if cadence else []:
                ok = any(by_month.get(m) for m in months)
                if not ok and last >= as_of:
                    continue  # not over yet: nothing missed so far
                required += 1
                if ok:
                    met += 1
                else:
                    missed.append(label)
            rows.append(ComplianceRow(
                org_id=org_id, org_name=org_name, meeting_type=meeting_type, cadence=cadence, required=required,
                held=held, periods_met=met, missed_periods=missed, compliant=not missed,
            ))
    return rows


def _window(year: int, quarter: int | None) -> tuple[dt.date, dt.date]:
    if quarter is None:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    first = dt.date(year, 3 * quarter - 2, 1)
    last = dt.date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1) - dt.timedelta(days=1)
    return first, last


def _monthly_counts(session: Session, org_filter: object, year: int,
                    quarter: int | None) -> dict[tuple[int, str], dict[int, int]]:
    first, last = _window(year, quarter)
    last = min(last, clock.today())  # a meeting dated ahead (stored before 8720f68 refused them) is not held yet
    month = extract("month", MeetingRecord.held_on)
    stmt = (
        select(MeetingRecord.org_id, MeetingRecord.meeting_type, month.label("m"), func.count())
        .where(MeetingRecord.held_on >= first, MeetingRecord.held_on <= last, org_filter)
        .group_by(MeetingRecord.org_id, MeetingRecord.meeting_type, month)
    )
    counts: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
    for org_id, meeting_type, m, n in session.execute(stmt):
        counts[(org_id, meeting_type)][int(m)] = n
    return counts


def compliance(session: Session, actor: Actor, *, year: int, quarter: int | None, org_id: int | None,
               subtree: bool, as_of: dt.date | None = None) -> ComplianceReport:
    """Held vs required per organisation and meeting type, in three queries whatever the number of organisations.

    A period counts once it is over (or once it has its meeting): the current month is never "missed" yet.
    """
    as_of = as_of or clock.today()
    org_stmt = select(Organization.id, Organization.name).where(
        col(Organization.level).in_(MEETING_LEVELS), Organization.status == OrgStatus.active)
    if org_id is not None:
        path = require_org_in_scope(session, actor, org_id)
        org_stmt = org_stmt.where(in_subtree(Organization.path, path)) if subtree else \
            org_stmt.where(Organization.id == org_id)
    else:
        org_stmt = org_stmt.where(in_subtree(Organization.path, actor.org_path))
    org_ids = org_stmt.with_only_columns(Organization.id)
    orgs = [(r[0], r[1]) for r in session.execute(org_stmt.order_by(Organization.path, Organization.id))]
    cadences = frequencies_in_force(session, year)
    counts = _monthly_counts(session, col(MeetingRecord.org_id).in_(org_ids), year, quarter)
    rows = _compliance_rows(orgs, cadences, counts, year, quarter, as_of)
    return ComplianceReport(year=year, quarter=quarter, rows=rows, organizations=len(orgs),
                            compliant_rows=sum(1 for r in rows if r.compliant))


def compliance_for_org(session: Session, org_id: int, org_name: str, year: int,
                       quarter: int | None, as_of: dt.date | None = None) -> dict[str, ComplianceRow]:
    """One organisation's compliance by meeting type (the audit's suggested scores)."""
    cadences = frequencies_in_force(session, year)
    counts = _monthly_counts(session, MeetingRecord.org_id == org_id, year, quarter)
    rows = _compliance_rows([(org_id, org_name)], cadences, counts, year, quarter, as_of or clock.today())
    return {r.meeting_type.value: r for r in rows}
