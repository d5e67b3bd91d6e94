"""The rules of the democratic evaluation of members (民主评议党员) and what follows from it.

- A session per branch (or village organisation) and year enrols its full and probationary members on
  the roll; each entry holds the self-evaluation, the mutual-evaluation tallies and the organisation's
  rating, with the member's duty-post review grades of the year shown as evidence.
- Finalising needs every entry rated and, when an `excellent_share_cap` is in force for the year,
  excellent ratings ≤ cap × entries (compared exactly). It then opens one disposal case per
  unqualified rating; a finalised session is frozen.
- A disposal case: the branch decides the measure, the level above approves (or sends it back). An
  approved removal (除名) sets the person's status to removed (their positions end through the people
  service), ends their duty posts and releases them from the reserve cadre pool.
- Commendation candidates: rated excellent in a finalised session, or an excellent duty-post review.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select, union_all, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import conflict, invalid
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, get_in_scope, require_level_above
from app.core.versioning import transition_update, versioned_update
from app.models.evaluations.common import SettingKey, from_e4, to_e4
from app.models.evaluations.members import (
    CommendationCandidate,
    DemocraticEvaluation,
    DemocraticEvaluationCreate,
    DemocraticEvaluationEntry,
    DemocraticEvaluationPublic,
    DemocraticEvaluationStatus,
    DisposalApproval,
    DisposalCase,
    DisposalCasePublic,
    DisposalDecision,
    DisposalMeasure,
    DisposalStatus,
    EntryPublic,
    EntryUpdate,
    MemberRating,
    ReserveCadre,
    ReserveCadreCreate,
    ReserveCadrePublic,
    ReserveCadreRelease,
    ReserveStatus,
)
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.people import Person, PersonStatus, PersonUpdate
from app.models.posts import AssignmentStatus, PostAssignment, PostReviewGrade
from app.services import people as people_service
from app.services import posts as posts_service
from app.services.evaluations.common import (
    MEMBER_STATUSES,
    names_of,
    not_future,
    org_filter,
    org_in_scope,
    person_in_scope,
    require_member,
    setting,
)

EVALUATION_LEVELS = (OrgLevel.village, OrgLevel.branch)
SESSION_SORTABLE = {"id": DemocraticEvaluation.id, "year": DemocraticEvaluation.year,
                    "held_on": DemocraticEvaluation.held_on, "created_at": DemocraticEvaluation.created_at}
ENTRY_SORTABLE = {"id": DemocraticEvaluationEntry.id, "person_id": DemocraticEvaluationEntry.person_id,
                  "rating": DemocraticEvaluationEntry.rating,
                  "votes_excellent": DemocraticEvaluationEntry.votes_excellent}
CASE_SORTABLE = {"id": DisposalCase.id, "year": DisposalCase.year, "status": DisposalCase.status,
                 "decided_on": DisposalCase.decided_on, "approved_on": DisposalCase.approved_on}
RESERVE_SORTABLE = {"id": ReserveCadre.id, "added_on": ReserveCadre.added_on, "status": ReserveCadre.status}


# ---------------------------------------------------------------------------
# Sessions


def get_session(session: Session, actor: Actor, evaluation_id: int) -> DemocraticEvaluation:
    return get_in_scope(session, actor, DemocraticEvaluation, evaluation_id, "Democratic evaluation")[0]


def session_publics(session: Session, items: list[DemocraticEvaluation]) -> list[DemocraticEvaluationPublic]:
    """With entry and rating counts, in one statement for the whole page."""
    ids = [e.id for e in items]
    counts: dict[int, tuple[int, int]] = {}
    if ids:
        rows = session.execute(
            select(DemocraticEvaluationEntry.evaluation_id, func.count(), func.count(DemocraticEvaluationEntry.rating))
            .where(col(DemocraticEvaluationEntry.evaluation_id).in_(ids))
            .group_by(DemocraticEvaluationEntry.evaluation_id)
        ).all()
        counts = {eid: (int(n), int(r)) for eid, n, r in rows}
    return [DemocraticEvaluationPublic.model_validate(e, update={
        "excellent_cap": from_e4(e.excellent_cap_e4), "members": counts.get(e.id, (0, 0))[0],
        "rated": counts.get(e.id, (0, 0))[1],
    }) for e in items]


@dataclass
class SessionFilters:
    year: int | None = None
    status: str | None = None
    org_id: int | None = None
    subtree: bool = False


def list_sessions(session: Session, actor: Actor, f: SessionFilters,
                  params: PageParams) -> tuple[list[DemocraticEvaluation], int]:
    stmt = org_filter(session, actor, select(DemocraticEvaluation), DemocraticEvaluation.org_id, f.org_id, f.subtree)
    if f.year is not None:
        stmt = stmt.where(DemocraticEvaluation.year == f.year)
    if f.status:
        stmt = stmt.where(DemocraticEvaluation.status == f.status)
    return fetch_page(session, stmt, params, allowed=SESSION_SORTABLE,
                      default=[col(DemocraticEvaluation.year).desc(), DemocraticEvaluation.org_id],
                      tiebreak=DemocraticEvaluation.id)


def _new_entry(ev: DemocraticEvaluation, person_id: int) -> DemocraticEvaluationEntry:
    return DemocraticEvaluationEntry(evaluation_id=ev.id, person_id=person_id, org_id=ev.org_id, year=ev.year)


def _record_entry(session: Session, actor: Actor, entry: DemocraticEvaluationEntry) -> None:
    audit.record(session, actor=actor, action="democratic_evaluation_entry.create",
                 entity="democratic_evaluation_entry", entity_id=entry.id, org_id=entry.org_id,
                 after=audit.snapshot(entry))


def create_session(session: Session, actor: Actor, data: DemocraticEvaluationCreate) -> DemocraticEvaluation:
    """Open the year's session of a branch or village organisation, enrolling its members."""
    org = org_in_scope(session, actor, data.org_id)
    if org.level not in EVALUATION_LEVELS:
        raise invalid(["body", "org_id"], f"members are evaluated in branches or village organisations, "
                      f"not in a {org.level}")
    if org.status != OrgStatus.active:
        raise conflict("org_dissolved", f"Organisation {org.id} is dissolved.")
    if data.held_on is not None:
        if data.held_on.year not in (data.year, data.year + 1):
            raise invalid(["body", "held_on"],
                          f"a {data.year} evaluation is held in {data.year} or early the next year")
        not_future(data.held_on, ["body", "held_on"])
    if session.scalar(select(DemocraticEvaluation.id).where(DemocraticEvaluation.org_id == org.id,
                                                           DemocraticEvaluation.year == data.year)):
        raise conflict("duplicate_evaluation",
                       f"Organisation {org.id} already has a {data.year} democratic evaluation.")
    ev = DemocraticEvaluation(org_id=org.id, year=data.year, held_on=data.held_on)
    session.add(ev)
    session.flush()
    member_ids = list(session.scalars(
        select(Person.id).where(Person.org_id == org.id, Person.status == PersonStatus.active,
                                col(Person.member_status).in_(MEMBER_STATUSES)).order_by(Person.id)
    ))
    audit.record(session, actor=actor, action="democratic_evaluation.create", entity="democratic_evaluation",
                 entity_id=ev.id, org_id=ev.org_id, after={**audit.snapshot(ev), "enrolled": member_ids})
    entries = [_new_entry(ev, pid) for pid in member_ids]
    session.add_all(entries)
    session.flush()
    for entry in entries:
        _record_entry(session, actor, entry)
    return ev


def _lock_draft(session: Session, ev: DemocraticEvaluation) -> None:
    session.refresh(ev, with_for_update=True)
    if ev.status != DemocraticEvaluationStatus.draft:
        raise conflict("evaluation_finalized", f"Democratic evaluation {ev.id} was finalised; it can no longer change.")


def add_entry(session: Session, actor: Actor, ev: DemocraticEvaluation, person_id: int) -> DemocraticEvaluationEntry:
    """Enrol a member the session missed (joined or transferred in later)."""
    _lock_draft(session, ev)
    person = person_in_scope(session, actor, person_id)
    require_member(person, ev.org_id, ["body", "person_id"])
    if session.scalar(select(DemocraticEvaluationEntry.id).where(
            DemocraticEvaluationEntry.evaluation_id == ev.id, DemocraticEvaluationEntry.person_id == person_id)):
        raise conflict("already_enrolled", f"{person.name} is already in democratic evaluation {ev.id}.")
    entry = _new_entry(ev, person_id)
    session.add(entry)
    session.flush()
    _record_entry(session, actor, entry)
    return entry


def finalize_session(session: Session, actor: Actor, ev: DemocraticEvaluation) -> DemocraticEvaluation:
    """Fix the ratings; each unqualified rating opens a disposal case."""
    _lock_draft(session, ev)
    entries = list(session.scalars(
        select(DemocraticEvaluationEntry).where(DemocraticEvaluationEntry.evaluation_id == ev.id)
        .order_by(DemocraticEvaluationEntry.id)
    ))
    if not entries:
        raise conflict("no_entries", f"Democratic evaluation {ev.id} has no members to rate.")
    unrated = [e.person_id for e in entries if e.rating is None]
    if unrated:
        raise conflict("unrated_entries", f"{len(unrated)} members are not rated yet (people {unrated[:20]}).")
    cap = setting(session, SettingKey.excellent_share_cap, ev.year)
    excellent = sum(1 for e in entries if e.rating == MemberRating.excellent)
    if cap is not None and excellent > cap * len(entries):
        raise conflict("excellent_share_exceeded",
                       f"{excellent} of {len(entries)} members are rated excellent; the {ev.year} cap of "
                       f"{cap} allows at most {int(cap * len(entries))}.")
    before = {"status": ev.status}
    versioned_update(session, ev, ev.version, {
        "status": DemocraticEvaluationStatus.finalized, "finalized_at": utcnow(), "finalized_by": actor.user_id,
        "excellent_cap_e4": None if cap is None else to_e4(cap),
    })
    audit.record(session, actor=actor, action="democratic_evaluation.finalize", entity="democratic_evaluation",
                 entity_id=ev.id, org_id=ev.org_id, before=before,
                 after={"status": ev.status, "excellent": excellent, "entries": len(entries),
                        "excellent_cap": from_e4(ev.excellent_cap_e4)})
    for e in entries:
        if e.rating == MemberRating.unqualified:
            case = DisposalCase(entry_id=e.id, person_id=e.person_id, org_id=e.org_id, year=e.year)
            session.add(case)
            session.flush()
            audit.record(session, actor=actor, action="disposal_case.open", entity="disposal_case",
                         entity_id=case.id, org_id=case.org_id, after=audit.snapshot(case))
    return ev


# ---------------------------------------------------------------------------
# Entries


def get_entry(session: Session, actor: Actor, entry_id: int) -> DemocraticEvaluationEntry:
    return get_in_scope(session, actor, DemocraticEvaluationEntry, entry_id, "Democratic evaluation entry")[0]


def entry_publics(session: Session, items: list[DemocraticEvaluationEntry]) -> list[EntryPublic]:
    """With names and the post review grades of the year as evidence: two statements for the whole page."""
    names = names_of(session, {e.person_id for e in items})
    grades: dict[tuple[int, int], list[PostReviewGrade]] = {}
    for year in {e.year for e in items}:
        for pid, gs in posts_service.review_grades_by_person(
                session, {e.person_id for e in items if e.year == year}, year).items():
            grades[(pid, year)] = gs
    return [EntryPublic.model_validate(e, update={
        "person_name": names.get(e.person_id), "post_review_grades": grades.get((e.person_id, e.year), []),
    }) for e in items]


@dataclass
class EntryFilters:
    evaluation_id: int | None = None
    person_id: int | None = None
    rating: str | None = None
    year: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_entries(session: Session, actor: Actor, f: EntryFilters,
                 params: PageParams) -> tuple[list[DemocraticEvaluationEntry], int]:
    entry = DemocraticEvaluationEntry
    stmt = org_filter(session, actor, select(entry), entry.org_id, f.org_id, f.subtree)
    for column, value in ((entry.evaluation_id, f.evaluation_id), (entry.person_id, f.person_id),
                          (entry.rating, f.rating), (entry.year, f.year)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=ENTRY_SORTABLE, default=[entry.evaluation_id],
                      tiebreak=entry.id)


def update_entry(session: Session, actor: Actor, entry: DemocraticEvaluationEntry, data: EntryUpdate,
                 expected_version: int) -> DemocraticEvaluationEntry:
    """Record the self-evaluation, tallies and rating (PATCH; only while the session is a draft)."""
    ev = session.get(DemocraticEvaluation, entry.evaluation_id)
    assert ev is not None
    _lock_draft(session, ev)
    changes = data.model_dump(exclude_unset=True)
    for key in ("votes_excellent", "votes_qualified", "votes_basically_qualified", "votes_unqualified"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], f"{key} cannot be empty")
    before = audit.snapshot(entry)
    versioned_update(session, entry, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(entry))
    audit.record(session, actor=actor, action="democratic_evaluation_entry.update",
                 entity="democratic_evaluation_entry", entity_id=entry.id, org_id=entry.org_id, before=b, after=a)
    return entry


# ---------------------------------------------------------------------------
# Disposal cases


def get_case(session: Session, actor: Actor, case_id: int) -> DisposalCase:
    return get_in_scope(session, actor, DisposalCase, case_id, "Disposal case")[0]


def case_publics(session: Session, items: list[DisposalCase]) -> list[DisposalCasePublic]:
    names = names_of(session, {c.person_id for c in items})
    return [DisposalCasePublic.model_validate(c, update={"person_name": names.get(c.person_id)}) for c in items]


@dataclass
class CaseFilters:
    year: int | None = None
    status: str | None = None
    measure: str | None = None
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_cases(session: Session, actor: Actor, f: CaseFilters, params: PageParams) -> tuple[list[DisposalCase], int]:
    stmt = org_filter(session, actor, select(DisposalCase), DisposalCase.org_id, f.org_id, f.subtree)
    for column, value in ((DisposalCase.year, f.year), (DisposalCase.status, f.status),
                          (DisposalCase.measure, f.measure), (DisposalCase.person_id, f.person_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return fetch_page(session, stmt, params, allowed=CASE_SORTABLE, default=[col(DisposalCase.year).desc()],
                      tiebreak=DisposalCase.id)


def _case_status(case: DisposalCase, expected: DisposalStatus, verb: str) -> None:
    if case.status != expected:
        raise conflict("wrong_status", f"Disposal case {case.id} is {case.status}; only a case that is {expected} "
                       f"can be {verb}.")


def _case_update(session: Session, actor: Actor, case: DisposalCase, verb: str, changes: dict[str, Any],
                 expected: DisposalStatus) -> None:
    """Move a case found `expected` (checked by the caller): a concurrent move that committed first makes this one
    the 409 it would have had, had it come second."""
    before = audit.snapshot(case)
    transition_update(session, case, changes, lambda current: _case_status(current, expected, verb))
    b, a = audit.changed(before, audit.snapshot(case))
    audit.record(session, actor=actor, action=f"disposal_case.{verb}", entity="disposal_case", entity_id=case.id,
                 org_id=case.org_id, before=b, after=a)


def decide_case(session: Session, actor: Actor, case: DisposalCase, data: DisposalDecision) -> DisposalCase:
    """The branch chooses the measure; the case then awaits the level above."""
    _case_status(case, DisposalStatus.open, "decided")
    not_future(data.decided_on, ["body", "decided_on"])
    if data.decided_on.year < case.year:
        raise invalid(["body", "decided_on"], f"the decision follows the {case.year} evaluation")
    _case_update(session, actor, case, "decide", {
        "status": DisposalStatus.decided, "measure": data.measure, "decided_on": data.decided_on,
        "correct_by": data.correct_by, "decision_note": data.note, "rejection_reason": None,
    }, DisposalStatus.open)
    return case


def _case_path(session: Session, case: DisposalCase) -> str:
    path = session.scalar(select(Organization.path).where(Organization.id == case.org_id))
    assert path is not None
    return path


def reject_case(session: Session, actor: Actor, case: DisposalCase, reason: str) -> DisposalCase:
    """The level above sends the decision back to the branch, which decides again."""
    require_level_above(actor, _case_path(session, case), "send back a disposal decision")
    _case_status(case, DisposalStatus.decided, "sent back")
    _case_update(session, actor, case, "reject", {
        "status": DisposalStatus.open, "measure": None, "decided_on": None, "correct_by": None,
        "rejection_reason": reason,
    }, DisposalStatus.decided)
    return case


def approve_case(session: Session, actor: Actor, case: DisposalCase, data: DisposalApproval) -> DisposalCase:
    """The level above approves the measure; a removal takes the person off the roll and ends their posts. A
    removal of someone who has since moved out of the case's organisation is refused (409 person_moved): the
    branch that decided it no longer holds them, and its approver may not even see where they are now."""
    case_path = _case_path(session, case)
    require_level_above(actor, case_path, "approve a disposal of an unqualified member")
    _case_status(case, DisposalStatus.decided, "approved")
    assert case.decided_on is not None
    if data.approved_on < case.decided_on:
        raise invalid(["body", "approved_on"], "approved_on cannot be before the branch's decision")
    not_future(data.approved_on, ["body", "approved_on"])
    person = _locked_member(session, case, case_path) if case.measure == DisposalMeasure.removal else None
    _case_update(session, actor, case, "approve", {
        "status": DisposalStatus.approved, "approved_on": data.approved_on, "approving_org_id": actor.org_id,
        "approved_by": actor.user_id,
    }, DisposalStatus.decided)
    if person is not None:
        _remove_member(session, actor, case, person, data.approved_on)
    return case


def _locked_member(session: Session, case: DisposalCase, case_path: str) -> Person:
    # Locked and read afresh: a concurrent edit of the person commits first and the removal applies on top of it.
    # Read without the lock, the version was stale by then and the approver, who sent no If-Match for the person,
    # got a 412 (PostgreSQL; SQLite serialises writers anyway).
    person = session.get(Person, case.person_id, with_for_update=True, populate_existing=True)
    assert person is not None
    path = session.scalar(select(Organization.path).where(Organization.id == person.org_id))
    if path is None or not path.startswith(case_path):
        raise conflict("person_moved", f"The person of disposal case {case.id} is no longer in its organisation: "
                       "the removal it decided cannot be approved. Reject the case instead.")
    return person


def _remove_member(session: Session, actor: Actor, case: DisposalCase, person: Person, on: dt.date) -> None:
    if person.status != PersonStatus.removed:
        people_service.update_fields(session, actor, person, PersonUpdate(status=PersonStatus.removed, left_on=on),
                                     person.version)
    reason = f"除名(处置案 {case.id})"
    posts_service.end_member_posts(session, actor, person_id=person.id, on=on, reason=reason)
    for row in session.scalars(select(ReserveCadre).where(ReserveCadre.person_id == person.id,
                                                          ReserveCadre.status == ReserveStatus.active)):
        _release(session, actor, row, max(on, row.added_on), reason)


# ---------------------------------------------------------------------------
# Commendation candidates


@dataclass
class CandidateFilters:
    year: int
    org_id: int | None = None
    subtree: bool = False
    reason: str | None = None  # "rated_excellent" or "post_review_excellent"


def commendation_candidates(session: Session, actor: Actor, f: CandidateFilters,
                            params: PageParams) -> tuple[list[CommendationCandidate], int]:
    """Members rated excellent (finalised sessions) or with an excellent post review: two statements."""
    entry, held = DemocraticEvaluationEntry, PostAssignment
    rated = org_filter(session, actor, select(col(entry.person_id).label("person_id"),
                                              literal(1).label("rated"), literal(0).label("post"))
                       .join(DemocraticEvaluation, DemocraticEvaluation.id == entry.evaluation_id)
                       .where(entry.year == f.year, entry.rating == MemberRating.excellent,
                              DemocraticEvaluation.status == DemocraticEvaluationStatus.finalized),
                       entry.org_id, f.org_id, f.subtree)
    reviewed = org_filter(session, actor, select(held.person_id, literal(0), literal(1))
                          .where(held.year == f.year, held.review_grade == PostReviewGrade.excellent,
                                 col(held.status).in_((AssignmentStatus.active, AssignmentStatus.ended))),
                          held.org_id, f.org_id, f.subtree)
    both = union_all(rated, reviewed).subquery()
    agg = (select(both.c.person_id, func.max(both.c.rated).label("rated"), func.max(both.c.post).label("post"))
           .group_by(both.c.person_id).subquery())
    stmt = (select(Person.id, Person.name, Person.org_id, agg.c.rated, agg.c.post)
            .join(agg, agg.c.person_id == Person.id).where(Person.status == PersonStatus.active))
    if f.reason == "rated_excellent":
        stmt = stmt.where(agg.c.rated == 1)
    elif f.reason == "post_review_excellent":
        stmt = stmt.where(agg.c.post == 1)
    return fetch_page(session, stmt, params, allowed={"person_id": Person.id, "name": Person.name,
                                                     "org_id": Person.org_id},
                      default=[Person.org_id], tiebreak=Person.id, rows=True, present=lambda _s, rows: [
                          CommendationCandidate(person_id=pid, person_name=name, org_id=org_id, year=f.year,
                                                rated_excellent=bool(r), post_review_excellent=bool(p))
                          for pid, name, org_id, r, p in rows])


# ---------------------------------------------------------------------------
# Reserve cadre pool


def get_reserve(session: Session, actor: Actor, reserve_id: int) -> ReserveCadre:
    return get_in_scope(session, actor, ReserveCadre, reserve_id, "Reserve cadre")[0]


def reserve_publics(session: Session, items: list[ReserveCadre]) -> list[ReserveCadrePublic]:
    names = names_of(session, {r.person_id for r in items})
    return [ReserveCadrePublic.model_validate(r, update={"person_name": names.get(r.person_id)}) for r in items]


@dataclass
class ReserveFilters:
    status: str | None = None
    person_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def list_reserve(session: Session, actor: Actor, f: ReserveFilters,
                 params: PageParams) -> tuple[list[ReserveCadre], int]:
    stmt = org_filter(session, actor, select(ReserveCadre), ReserveCadre.org_id, f.org_id, f.subtree)
    if f.status:
        stmt = stmt.where(ReserveCadre.status == f.status)
    if f.person_id is not None:
        stmt = stmt.where(ReserveCadre.person_id == f.person_id)
    return fetch_page(session, stmt, params, allowed=RESERVE_SORTABLE, default=[col(ReserveCadre.added_on).desc()],
                      tiebreak=ReserveCadre.id)


def add_reserve(session: Session, actor: Actor, data: ReserveCadreCreate) -> ReserveCadre:
    """A branch (or village) marks one of its members into the reserve cadre pool, with a reason."""
    org = org_in_scope(session, actor, data.org_id)
    if org.level not in EVALUATION_LEVELS:
        raise invalid(["body", "org_id"], f"the reserve cadre pool is kept by branches and villages, not a {org.level}")
    person = person_in_scope(session, actor, data.person_id)
    require_member(person, org.id, ["body", "person_id"])
    not_future(data.added_on, ["body", "added_on"])
    if session.scalar(select(ReserveCadre.id).where(ReserveCadre.org_id == org.id,
                                                    ReserveCadre.person_id == person.id,
                                                    ReserveCadre.status == ReserveStatus.active)):
        raise conflict("already_in_pool", f"{person.name} is already in organisation {org.id}'s reserve cadre pool.")
    row = ReserveCadre(org_id=org.id, person_id=person.id, reason=data.reason, added_on=data.added_on,
                       added_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="reserve_cadre.add", entity="reserve_cadre", entity_id=row.id,
                 org_id=row.org_id, after=audit.snapshot(row))
    return row


def _release(session: Session, actor: Actor, row: ReserveCadre, on: dt.date, reason: str) -> None:
    before = audit.snapshot(row)
    result = session.execute(
        update(ReserveCadre).where(ReserveCadre.id == row.id, ReserveCadre.status == ReserveStatus.active)
        .values(status=ReserveStatus.released, released_on=on, release_reason=reason,
                version=ReserveCadre.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("already_released", f"Reserve cadre entry {row.id} was released meanwhile.")
    session.refresh(row)
    b, a = audit.changed(before, audit.snapshot(row))
    audit.record(session, actor=actor, action="reserve_cadre.release", entity="reserve_cadre", entity_id=row.id,
                 org_id=row.org_id, before=b, after=a)


def release_reserve(session: Session, actor: Actor, row: ReserveCadre, data: ReserveCadreRelease) -> ReserveCadre:
    if row.status != ReserveStatus.active:
        raise conflict("already_released", f"Reserve cadre entry {row.id} is already released.")
    if data.released_on < row.added_on:
        raise invalid(["body", "released_on"], "released_on cannot be before added_on")
    not_future(data.released_on, ["body", "released_on"])
    _release(session, actor, row, data.released_on, data.reason)
    return row
