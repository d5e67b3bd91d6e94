"""Matrix cases of duty posts: posts, assignments, performance logs, the policy and the summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.models.organizations import Organization
from app.models.posts import DutyPost, PostAssignment, PostLog
from tests.authz.people import person_at
from tests.authz.registry import Ctx, Req, case, if_match, unique

# Last year: every date the rules check ("not in the future", "in the post's year") is then valid.
YEAR = dt.date.today().year - 1


def _day(month: int, day: int) -> str:
    return dt.date(YEAR, month, day).isoformat()


def post_at(ctx: Ctx, owner: Organization, *, status: str = "open", filled: int = 0) -> DutyPost:
    post = DutyPost(org_id=owner.id, year=YEAR, title=unique("岗位"), field="mediation", duties="调解邻里纠纷",
                    capacity=3, filled=filled, status=status)
    ctx.db.add(post)
    ctx.db.flush()
    return post


def assignment_at(ctx: Ctx, owner: Organization, status: str, **fields: Any) -> PostAssignment:
    """An assignment of a member of `owner` on a post of `owner`, in `status` (rows written directly)."""
    route = "org_assisted" if status in ("proposed", "declined") else "self_selected"
    if status in ("active", "ended"):
        fields.setdefault("assigned_on", dt.date(YEAR, 2, 1))
    post = post_at(ctx, owner, filled=1 if status in ("applied", "proposed", "active") else 0)
    a = PostAssignment(post_id=post.id, person_id=person_at(ctx, owner).id, org_id=owner.id, year=YEAR,
                       route=fields.pop("route", route), status=status, requested_on=dt.date(YEAR, 1, 10), **fields)
    ctx.db.add(a)
    ctx.db.flush()
    return a


# --- posts ------------------------------------------------------------------


@case("posts_list")
def posts_list(ctx: Ctx, owner: Organization) -> Req:
    post_at(ctx, owner)
    return Req("GET", "/api/v1/duty-posts", params={"org_id": owner.id, "subtree": "true"})


@case("posts_summary")
def posts_summary(ctx: Ctx, owner: Organization) -> Req:
    assignment_at(ctx, owner, "active")
    return Req("GET", "/api/v1/duty-posts/summary", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


@case("posts_get")
def posts_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/duty-posts/{post_at(ctx, owner).id}")


@case("posts_create")
def posts_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/duty-posts", json={
        "org_id": owner.id, "year": YEAR, "title": "政策宣传岗", "field": "policy_publicity", "duties": "宣讲政策",
        "capacity": 2,
    })


@case("posts_update")
def posts_update(ctx: Ctx, owner: Organization) -> Req:
    post = post_at(ctx, owner)
    return Req("PATCH", f"/api/v1/duty-posts/{post.id}", json={"capacity": 4}, headers=if_match(post.version))


@case("posts_close")
def posts_close(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/duty-posts/{post_at(ctx, owner).id}/close")


@case("posts_reopen")
def posts_reopen(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/duty-posts/{post_at(ctx, owner, status='closed').id}/reopen")


# --- assignments ------------------------------------------------------------


@case("post_assignments_list")
def post_assignments_list(ctx: Ctx, owner: Organization) -> Req:
    assignment_at(ctx, owner, "applied")
    return Req("GET", "/api/v1/post-assignments", params={"org_id": owner.id, "subtree": "true"})


@case("post_assignments_get")
def post_assignments_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/post-assignments/{assignment_at(ctx, owner, 'applied').id}")


@case("post_assignments_create")
def post_assignments_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/post-assignments", json={
        "post_id": post_at(ctx, owner).id, "person_id": person_at(ctx, owner).id, "route": "self_selected",
        "requested_on": _day(1, 15),
    })


@case("post_assignments_approve")
def post_assignments_approve(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "applied")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/approve", json={"assigned_on": _day(2, 1)})


@case("post_assignments_reject")
def post_assignments_reject(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "applied")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/reject", json={"reason": "名额已满"})


@case("post_assignments_accept")
def post_assignments_accept(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "proposed")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/accept", json={"assigned_on": _day(2, 1)})


@case("post_assignments_decline")
def post_assignments_decline(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "proposed")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/decline", json={"reason": "外出务工"})


@case("post_assignments_end")
def post_assignments_end(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "active")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/end", json={"ended_on": _day(10, 1), "reason": "调整"})


@case("post_assignments_review")
def post_assignments_review(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "active")
    return Req("POST", f"/api/v1/post-assignments/{a.id}/review",
               json={"grade": "good", "reviewed_on": _day(12, 20)})


# --- performance log --------------------------------------------------------


def log_at(ctx: Ctx, owner: Organization) -> PostLog:
    a = assignment_at(ctx, owner, "active")
    log = PostLog(assignment_id=a.id, person_id=a.person_id, org_id=owner.id, entry_date=dt.date(YEAR, 3, 1),
                  description="走访", hours_tenths=15)
    ctx.db.add(log)
    ctx.db.flush()
    return log


@case("post_logs_list")
def post_logs_list(ctx: Ctx, owner: Organization) -> Req:
    log_at(ctx, owner)
    return Req("GET", "/api/v1/post-logs", params={"org_id": owner.id, "subtree": "true"})


@case("post_logs_get")
def post_logs_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/post-logs/{log_at(ctx, owner).id}")


@case("post_logs_create")
def post_logs_create(ctx: Ctx, owner: Organization) -> Req:
    a = assignment_at(ctx, owner, "active")
    return Req("POST", "/api/v1/post-logs", json={
        "assignment_id": a.id, "entry_date": _day(4, 2), "description": "入户宣讲", "hours": "2.5",
    })


# --- policy (city-wide data) --------------------------------------------------


@case("post_policies_list", targetless="the policy is city-wide data, owned by no organisation")
def post_policies_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/duty-post-policies")


@case("post_policies_create", targetless="the policy is city-wide data, owned by no organisation")
def post_policies_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/duty-post-policies", json={"effective_year": 2099, "max_posts_per_member": 3})
