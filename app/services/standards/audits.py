"""Audits against the catalogue: self-assessments by the organisation, reviews by the level above.

draft → submitted → finalized. The author side (the organisation itself for a self-assessment,
a user whose scope strictly contains it for a review) scores and submits; the level above
returns or finalises. A finalised audit never changes. Finalising a review rated backward
opens one problem per aspect below the set's backward threshold, once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core import audit
from app.core.db import utcnow
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.report_cache import cached_report
from app.core.scope import Actor, in_subtree, require_level_above, require_org_in_scope, scoped_to
from app.core.versioning import transition_update
from app.models.organizations import Organization, OrgLevel, OrgStatus
from app.models.standards import (
    Aspect,
    AspectScore,
    AuditComparison,
    AuditCreate,
    AuditDetail,
    AuditItemScore,
    AuditKind,
    AuditPublic,
    AuditScore,
    AuditStatus,
    AuditSummary,
    CompareAspect,
    CompareItem,
    Rating,
    ScoresIn,
    StandardAudit,
    StandardItem,
    StandardSet,
    StandardSetStatus,
    SummaryAspect,
    SummaryOrg,
    SummaryTownship,
)
from app.services.standards import meetings
from app.services.standards.catalogue import items_of
from app.services.standards.common import (
    below_backward_threshold,
    percentage,
    period_key,
    rating_for,
    township_id_of,
)

PROBLEM_SOURCE = "standards_audit"
LINK_ENTITY = "standard_audit"

AUDIT_SORTABLE = {
    "id": StandardAudit.id, "year": StandardAudit.year, "org_id": StandardAudit.org_id,
    "status": StandardAudit.status, "score_total": StandardAudit.score_total,
    "finalized_at": StandardAudit.finalized_at, "created_at": StandardAudit.created_at,
}


@dataclass
class AuditFilters:
    org_id: int | None = None
    subtree: bool = False
    set_id: int | None = None
    year: int | None = None
    quarter: int | None = None
    kind: str | None = None
    status: str | None = None
    rating: str | None = None


def public(a: StandardAudit) -> AuditPublic:
    return AuditPublic(**{k: getattr(a, k) for k in AuditPublic.model_fields if k != "percentage"},
                       percentage=percentage(a.score_total, a.score_max))


def list_audits(session: Session, actor: Actor, filters: AuditFilters,
                params: PageParams) -> tuple[list[AuditPublic], int]:
    stmt = scoped_to(session, select(StandardAudit), StandardAudit.org_id, actor, filters.org_id,
                     subtree=filters.subtree)
    for name in ("set_id", "year", "quarter", "kind", "status", "rating"):
        value = getattr(filters, name)
        if value is not None:
            stmt = stmt.where(getattr(StandardAudit, name) == value)
    return fetch_page(session, stmt, params, allowed=AUDIT_SORTABLE,
                      default=[col(StandardAudit.year).desc(), StandardAudit.org_id], tiebreak=StandardAudit.id,
                      present=lambda _s, rows: [public(a) for a in rows])


def get_audit(session: Session, actor: Actor, audit_id: int) -> tuple[StandardAudit, Organization]:
    """The audit and its organisation, or 404 when either is out of the actor's scope."""
    row = session.execute(
        select(StandardAudit, Organization).join(Organization, Organization.id == StandardAudit.org_id)
        .where(StandardAudit.id == audit_id)
    ).first()
    if row is None or not actor.covers(row[1].path):
        raise not_found("Audit", audit_id)
    return row[0], row[1]


def _require_author(actor: Actor, a: StandardAudit, org: Organization) -> None:
    if a.kind == AuditKind.self_assessment:
        if actor.org_id != org.id:
            raise ProblemError(403, "own_organization_required",
                               "Only the organisation itself makes and edits its self-assessment.")
    else:
        require_level_above(actor, org.path, "review it")


def _scores(session: Session, audit_id: int) -> dict[int, AuditScore]:
    return {s.item_id: s for s in session.scalars(select(AuditScore).where(AuditScore.audit_id == audit_id))}


def _aspect_scores(items: list[StandardItem], scores: dict[int, AuditScore], std: StandardSet) -> list[AspectScore]:
    out = []
    for aspect in Aspect:
        mine = [i for i in items if i.aspect == aspect]
        got = sum(scores[i.id].score for i in mine if i.id in scores)
        top = sum(i.max_score for i in mine)
        out.append(AspectScore(aspect=aspect, score=got, max_score=top, percentage=percentage(got, top),
                               below_backward_threshold=below_backward_threshold(got, top, std.compliant_min_pct)))
    return out


def _suggestions(session: Session, a: StandardAudit, org: Organization,
                 items: list[StandardItem]) -> dict[int, tuple[int, str]]:
    """Organisational-life items: the score the meeting records suggest (max × periods met / required)."""
    life = [i for i in items if i.aspect == Aspect.organizational_life]
    if not life:
        return {}
    rows = meetings.compliance_for_org(session, org.id, org.name, a.year, a.quarter)
    out: dict[int, tuple[int, str]] = {}
    for item in life:
        chosen = [rows[item.meeting_type]] if item.meeting_type else list(rows.values())
        required = sum(r.required for r in chosen)
        if not required:
            continue
        met = sum(r.periods_met for r in chosen)
        basis = ", ".join(f"{r.meeting_type.value} {r.periods_met}/{r.required}" for r in chosen if r.required)
        out[item.id or 0] = (item.max_score * met // required, basis)
    return out


def detail(session: Session, a: StandardAudit, org: Organization) -> AuditDetail:
    from app.models.responsibilities import Problem

    std = session.get(StandardSet, a.set_id)
    assert std is not None
    items = items_of(session, a.set_id)
    scores = _scores(session, a.id)
    suggested = _suggestions(session, a, org, items)
    problem_ids = list(session.scalars(
        select(Problem.id).where(Problem.link_entity == LINK_ENTITY, Problem.link_id == a.id).order_by(Problem.id)))
    return AuditDetail(
        **public(a).model_dump(),
        aspects=_aspect_scores(items, scores, std),
        items=[
            AuditItemScore(
                item_id=i.id, aspect=i.aspect, code=i.code, requirement=i.requirement, max_score=i.max_score,
                score=scores[i.id].score if i.id in scores else None,
                note=scores[i.id].note if i.id in scores else None,
                suggested_score=suggested[i.id][0] if i.id in suggested else None,
                suggestion_basis=suggested[i.id][1] if i.id in suggested else None,
            )
            for i in items
        ],
        problem_ids=problem_ids,
    )


def _finalized_review(session: Session, org_id: int, set_id: int, period: str,
                      exclude_id: int | None = None) -> int | None:
    stmt = select(StandardAudit.id).where(
        StandardAudit.org_id == org_id, StandardAudit.set_id == set_id, StandardAudit.period == period,
        StandardAudit.kind == AuditKind.review, StandardAudit.status == AuditStatus.finalized)
    if exclude_id is not None:
        stmt = stmt.where(StandardAudit.id != exclude_id)
    return session.scalar(stmt)


def create(session: Session, actor: Actor, data: AuditCreate) -> StandardAudit:
    """Open a draft audit of an organisation against a published set of its domain."""
    require_org_in_scope(session, actor, data.org_id)
    org = session.get(Organization, data.org_id)
    assert org is not None
    std = session.get(StandardSet, data.set_id)
    if std is None:
        raise invalid(["body", "set_id"], f"standard set {data.set_id} does not exist")
    if std.domain != org.domain:
        raise invalid(["body", "set_id"], f"standard set {std.id} is for the {std.domain} domain; "
                      f"organisation {org.id} is in the {org.domain} domain")
    if std.status != StandardSetStatus.published:
        raise conflict("set_not_published", f"Standard set {std.id} is {std.status}; audits use a published set.")
    if org.level == OrgLevel.city:
        raise invalid(["body", "org_id"], "the city has no level above to review it")
    if org.status != OrgStatus.active:
        raise conflict("organization_dissolved", f"Organisation {org.id} is dissolved.")
    probe = StandardAudit(org_id=org.id, set_id=std.id, year=data.year, quarter=data.quarter,
                          period=period_key(data.year, data.quarter), kind=data.kind)
    _require_author(actor, probe, org)
    if data.kind == AuditKind.review:
        done = _finalized_review(session, org.id, std.id, probe.period)
        if done is not None:
            raise conflict("duplicate_review", f"Audit {done} is already the finalised review of organisation "
                           f"{org.id} against set {std.id} for {probe.period}.")
    max_total = 0
    for item in items_of(session, std.id):
        max_total += item.max_score
    a = StandardAudit(org_id=org.id, set_id=std.id, year=data.year, quarter=data.quarter, period=probe.period,
                      kind=data.kind, status=AuditStatus.draft, score_total=0, score_max=max_total,
                      summary=data.summary, created_by=actor.user_id)
    session.add(a)
    session.flush()
    audit.record(session, actor=actor, action="standard_audit.create", entity="standard_audit", entity_id=a.id,
                 org_id=a.org_id, after=audit.snapshot(a))
    return a


def _require_draft(a: StandardAudit) -> None:
    if a.status == AuditStatus.finalized:
        raise conflict("audit_finalized", f"Audit {a.id} is finalised and cannot change.")
    if a.status != AuditStatus.draft:
        raise conflict("audit_not_draft", f"Audit {a.id} is {a.status}; scores change only in a draft.")


def _totals(items: list[StandardItem], scores: dict[int, AuditScore], std: StandardSet) -> dict[str, Any]:
    total = sum(s.score for s in scores.values())
    top = sum(i.max_score for i in items)
    return {"score_total": total, "score_max": top,
            "rating": rating_for(total, top, demonstration_min_pct=std.demonstration_min_pct,
                                 compliant_min_pct=std.compliant_min_pct)}


def put_scores(session: Session, actor: Actor, a: StandardAudit, org: Organization, data: ScoresIn) -> StandardAudit:
    """Score items of a draft (0 to each item's maximum); totals and rating follow."""
    _require_author(actor, a, org)
    _require_draft(a)
    std = session.get(StandardSet, a.set_id)
    assert std is not None
    items = {i.id: i for i in items_of(session, a.set_id)}
    for n, entry in enumerate(data.scores):
        item = items.get(entry.item_id)
        if item is None:
            raise invalid(["body", "scores", n, "item_id"], f"item {entry.item_id} is not in standard set {std.id}")
        if entry.score > item.max_score:
            raise invalid(["body", "scores", n, "score"],
                          f"item {item.code} scores at most {item.max_score}, not {entry.score}")
    scores = _scores(session, a.id)
    changed_rows: list[tuple[AuditScore, dict[str, Any] | None]] = []
    for entry in data.scores:
        row = scores.get(entry.item_id)
        if row is None:
            row = AuditScore(audit_id=a.id, item_id=entry.item_id, score=entry.score, note=entry.note)
            session.add(row)
            scores[entry.item_id] = row
            changed_rows.append((row, None))
        elif (row.score, row.note) != (entry.score, entry.note):
            changed_rows.append((row, {"score": row.score, "note": row.note}))
            row.score, row.note, row.updated_at = entry.score, entry.note, utcnow()
    session.flush()
    for row, before in changed_rows:
        after = {"item_id": row.item_id, "score": row.score, "note": row.note}
        audit.record(session, actor=actor, action="standard_audit.score", entity="standard_audit_score",
                     entity_id=row.id, org_id=a.org_id, before=before, after=after)
    changes = _totals(list(items.values()), scores, std)
    if data.summary is not None:
        changes["summary"] = data.summary
    before_audit = audit.snapshot(a)
    # No If-Match on scores: a concurrent submit (or scoring) that committed first makes this one a 409.
    transition_update(session, a, changes, _require_draft)
    b, af = audit.changed(before_audit, audit.snapshot(a))
    if af:
        audit.record(session, actor=actor, action="standard_audit.update", entity="standard_audit",
                     entity_id=a.id, org_id=a.org_id, before=b, after=af)
    return a


def submit(session: Session, actor: Actor, a: StandardAudit, org: Organization) -> StandardAudit:
    """Draft → submitted, once every item has a score."""
    _require_author(actor, a, org)
    _require_draft(a)
    items = items_of(session, a.set_id)
    scores = _scores(session, a.id)
    missing = [i.code for i in items if i.id not in scores]
    if missing:
        raise conflict("scores_incomplete", f"Score every item before submitting; missing: {', '.join(missing)}.")
    transition_update(session, a, {"status": AuditStatus.submitted, "submitted_at": utcnow()}, _require_draft)
    audit.record(session, actor=actor, action="standard_audit.submit", entity="standard_audit", entity_id=a.id,
                 org_id=a.org_id, before={"status": "draft"}, after={"status": "submitted"})
    return a


def return_to_draft(session: Session, actor: Actor, a: StandardAudit, org: Organization) -> StandardAudit:
    """The level above sends a submitted audit back for correction."""
    require_level_above(actor, org.path, "return its audit")
    _require_submitted(a, "goes back to draft")
    transition_update(session, a, {"status": AuditStatus.draft, "submitted_at": None},
                      lambda current: _require_submitted(current, "goes back to draft"))
    audit.record(session, actor=actor, action="standard_audit.return", entity="standard_audit", entity_id=a.id,
                 org_id=a.org_id, before={"status": "submitted"}, after={"status": "draft"})
    return a


def _require_submitted(a: StandardAudit, outcome: str) -> None:
    if a.status != AuditStatus.submitted:
        raise conflict("audit_finalized" if a.status == AuditStatus.finalized else "audit_not_submitted",
                       f"Audit {a.id} is {a.status}; only a submitted audit {outcome}.")


def finalize(session: Session, actor: Actor, a: StandardAudit, org: Organization) -> StandardAudit:
    """Submitted → finalized by the level above; a backward review lands its weak aspects on the problem list."""
    require_level_above(actor, org.path, "finalise its audit")
    _require_submitted(a, "can be finalised")
    if a.kind == AuditKind.review:
        done = _finalized_review(session, a.org_id, a.set_id, a.period, exclude_id=a.id)
        if done is not None:
            raise conflict("duplicate_review", f"Audit {done} is already the finalised review of organisation "
                           f"{a.org_id} against set {a.set_id} for {a.period}.")
    std = session.get(StandardSet, a.set_id)
    assert std is not None
    items = items_of(session, a.set_id)
    scores = _scores(session, a.id)
    changes = {**_totals(items, scores, std), "status": AuditStatus.finalized, "finalized_at": utcnow(),
               "finalized_by": actor.user_id}
    # A concurrent finaliser (or a return to draft) that committed first makes this one a 409.
    transition_update(session, a, changes, lambda current: _require_submitted(current, "can be finalised"))
    audit.record(session, actor=actor, action="standard_audit.finalize", entity="standard_audit", entity_id=a.id,
                 org_id=a.org_id, before={"status": "submitted"},
                 after={"status": "finalized", "score_total": a.score_total, "score_max": a.score_max,
                        "rating": a.rating})
    if a.kind == AuditKind.review and a.rating == Rating.backward:
        _open_problems(session, actor, a, org, std, items, scores)
    return a


@dataclass(frozen=True)
class BackwardProblem:
    aspect: Aspect
    origin_key: str
    description: str
    deadline: dt.date


def backward_problems(a: StandardAudit, std: StandardSet, items: list[StandardItem],
                      scores: dict[int, AuditScore]) -> list[BackwardProblem]:
    """The problems a backward review opens: one per aspect below the set's backward threshold."""
    out = []
    for aspect in _aspect_scores(items, scores, std):
        if not aspect.below_backward_threshold:
            continue
        weak = [i.code for i in items if i.aspect == aspect.aspect and i.id in scores
                and below_backward_threshold(scores[i.id].score, i.max_score, std.compliant_min_pct)]
        description = (
            f"标准化建设考评（{a.period}，{std.name}）{aspect.aspect.zh}得分 {aspect.score}/{aspect.max_score}"
            f"（{aspect.percentage}%），低于后进线 {std.compliant_min_pct}%。"
            + (f"失分项：{'、'.join(weak)}。" if weak else "")
        )
        out.append(BackwardProblem(aspect=aspect.aspect, origin_key=f"standards_audit:{a.id}:{aspect.aspect.value}",
                                   description=description[:2000], deadline=dt.date(a.year + 1, 6, 30)))
    return out


def _open_problems(session: Session, actor: Actor, a: StandardAudit, org: Organization, std: StandardSet,
                   items: list[StandardItem], scores: dict[int, AuditScore]) -> None:
    from app.services.responsibilities import open_problem

    for spec in backward_problems(a, std, items, scores):
        open_problem(
            session, actor, org_id=org.id, year=a.year, source=PROBLEM_SOURCE, description=spec.description,
            deadline=spec.deadline, link_entity=LINK_ENTITY, link_id=a.id, origin_key=spec.origin_key,
        )


# ---------------------------------------------------------------- compare and summary


def compare(session: Session, actor: Actor, a: StandardAudit, other_id: int) -> AuditComparison:
    """Item by item: this audit against the other kind for the same organisation, set and period."""
    b, _ = get_audit(session, actor, other_id)
    if (b.org_id, b.set_id, b.period) != (a.org_id, a.set_id, a.period) or b.kind == a.kind or b.id == a.id:
        raise invalid(["query", "with"], "compare a self-assessment with the review of the same organisation, "
                      "standard set and period")
    items = items_of(session, a.set_id)
    sa, sb = _scores(session, a.id), _scores(session, b.id)
    rows = []
    for i in items:
        x = sa[i.id].score if i.id in sa else None
        y = sb[i.id].score if i.id in sb else None
        rows.append(CompareItem(
            item_id=i.id, aspect=i.aspect, code=i.code, max_score=i.max_score, score=x, other_score=y,
            change=None if x is None or y is None else y - x,
            note=sa[i.id].note if i.id in sa else None, other_note=sb[i.id].note if i.id in sb else None,
        ))
    aspects = []
    for aspect in Aspect:
        x = sum(r.score or 0 for r in rows if r.aspect == aspect)
        y = sum(r.other_score or 0 for r in rows if r.aspect == aspect)
        aspects.append(CompareAspect(aspect=aspect, score=x, other_score=y, change=y - x))
    pa, pb = public(a), public(b)
    return AuditComparison(audit=pa, other=pb, score_change=pb.score_total - pa.score_total,
                           percentage_change=round(pb.percentage - pa.percentage, 2), aspects=aspects, items=rows)


@cached_report()
def summary(session: Session, actor: Actor, *, year: int, org_id: int | None, subtree: bool,
            domain: str | None) -> AuditSummary:
    """Per organisation the latest finalised rating (a review before a self-assessment), per-aspect
    averages and per-township counts, in four queries whatever the number of organisations."""
    prefix = actor.org_path
    if org_id is not None:
        prefix = require_org_in_scope(session, actor, org_id)
    stmt = (
        select(StandardAudit.id, StandardAudit.org_id, StandardAudit.kind, StandardAudit.period,
               StandardAudit.score_total, StandardAudit.score_max, StandardAudit.rating,
               Organization.name, Organization.path)
        .join(Organization, Organization.id == StandardAudit.org_id)
        .where(StandardAudit.year == year, StandardAudit.status == AuditStatus.finalized,
               col(StandardAudit.rating).is_not(None), in_subtree(Organization.path, prefix))
    )
    if org_id is not None and not subtree:
        stmt = stmt.where(StandardAudit.org_id == org_id)
    if domain:
        stmt = stmt.where(Organization.domain == domain)
    review_first = case((StandardAudit.kind == AuditKind.review, 0), else_=1)
    rows = session.execute(stmt.order_by(StandardAudit.org_id, review_first, col(StandardAudit.finalized_at).desc(),
                                         col(StandardAudit.id).desc())).all()
    latest: dict[int, Any] = {}
    for r in rows:
        latest.setdefault(r.org_id, r)
    # Aspect sums of every audit the first query may have chosen (same filter, one grouped query).
    audit_ids = stmt.with_only_columns(StandardAudit.id)
    sums: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for audit_id, aspect, got, top in session.execute(
        select(AuditScore.audit_id, StandardItem.aspect, func.sum(AuditScore.score), func.sum(StandardItem.max_score))
        .join(StandardItem, StandardItem.id == AuditScore.item_id)
        .where(col(AuditScore.audit_id).in_(audit_ids))
        .group_by(AuditScore.audit_id, StandardItem.aspect)
    ):
        sums[audit_id][aspect] = (int(got or 0), int(top or 0))
    township_ids = {t for t in (township_id_of(r.path) for r in latest.values()) if t is not None}
    names: dict[int, str] = dict(session.execute(
        select(Organization.id, Organization.name).where(col(Organization.id).in_(township_ids))).all()) \
        if township_ids else {}
    orgs: list[SummaryOrg] = []
    per_township: dict[int, SummaryTownship] = {}
    aspect_pcts: dict[str, list[float]] = defaultdict(list)
    totals = {"audited": 0, "demonstration": 0, "compliant": 0, "backward": 0}
    for r in sorted(latest.values(), key=lambda r: r.path):
        t = township_id_of(r.path)
        orgs.append(SummaryOrg(org_id=r.org_id, org_name=r.name, township_id=t, audit_id=r.id, kind=r.kind,
                               period=r.period, percentage=percentage(r.score_total, r.score_max), rating=r.rating))
        totals["audited"] += 1
        totals[str(r.rating)] += 1
        if t is not None and t in names:
            row = per_township.setdefault(t, SummaryTownship(township_id=t, township_name=names[t], demonstration=0,
                                                             compliant=0, backward=0, audited=0))
            row.audited += 1
            setattr(row, r.rating, getattr(row, r.rating) + 1)
        for aspect, (got, top) in sums.get(r.id, {}).items():
            aspect_pcts[aspect].append(percentage(got, top))
    aspects = [
        SummaryAspect(aspect=a, audits=len(aspect_pcts[a.value]),
                      average_percentage=round(sum(aspect_pcts[a.value]) / len(aspect_pcts[a.value]), 2)
                      if aspect_pcts[a.value] else 0.0)
        for a in Aspect
    ]
    return AuditSummary(year=year, organizations=orgs, aspects=aspects,
                        townships=sorted(per_township.values(), key=lambda t: t.township_id), totals=totals)
