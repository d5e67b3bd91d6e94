"""Matrix cases of the three lists: responsibility letters, monthly lists and assignments, problems and inspections."""

from __future__ import annotations

import datetime as dt

from app.models.organizations import Organization
from app.models.responsibilities.letters import LetterItem, ResponsibilityLetter
from app.models.responsibilities.monthly import MonthlyList, MonthlyTask, MonthlyTaskTarget, TaskAssignment
from app.models.responsibilities.problems import Problem, QuarterlyInspection
from tests.authz.registry import Ctx, Req, case, if_match, unique

YEAR = 2025
ISSUED_LISTS = "an issued monthly list goes to every organisation; drafts are the city office's own papers"


# --- responsibility letters ------------------------------------------------------------------
# The level above drafts, issues, scores and settles; the organisation itself signs and reports.


def letter_at(ctx: Ctx, owner: Organization, status: str = "draft", *, reported: bool = False,
              scored: bool = False) -> tuple[ResponsibilityLetter, LetterItem]:
    letter = ResponsibilityLetter(year=YEAR, org_id=owner.id, kind="organization", status=status)
    ctx.db.add(letter)
    ctx.db.flush()
    item = LetterItem(letter_id=letter.id, position=1, title="阵地建设", category="organization_building",
                      target="活动室达标", weight=10, due_date=dt.date(YEAR, 12, 31),
                      outcome="completed" if reported or scored else None,
                      evidence_note="照片" if reported or scored else None, score=8 if scored else None)
    ctx.db.add(item)
    ctx.db.flush()
    return letter, item


@case("letters_list")
def letters_list(ctx: Ctx, owner: Organization) -> Req:
    letter_at(ctx, owner)
    return Req("GET", "/api/v1/responsibility-letters", params={"org_id": owner.id, "subtree": "true"})


@case("letters_summary")
def letters_summary(ctx: Ctx, owner: Organization) -> Req:
    letter_at(ctx, owner, "settling", reported=True)
    return Req("GET", "/api/v1/responsibility-letters/summary",
               params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


@case("letters_generate")
def letters_generate(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/responsibility-letters/generate", json={"year": YEAR, "org_id": owner.id})


@case("letters_create")
def letters_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/responsibility-letters", json={
        "year": YEAR, "org_id": owner.id, "kind": "organization",
        "items": [{"title": "组织生活", "category": "organization_building", "target": "按月开展", "weight": 20,
                   "due_date": f"{YEAR}-12-31"}],
    })


@case("letters_get")
def letters_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/responsibility-letters/{letter_at(ctx, owner)[0].id}")


@case("letters_update")
def letters_update(ctx: Ctx, owner: Organization) -> Req:
    letter, _ = letter_at(ctx, owner)
    return Req("PATCH", f"/api/v1/responsibility-letters/{letter.id}", json={"title": "改名"},
               headers=if_match(letter.version))


@case("letters_add_item")
def letters_add_item(ctx: Ctx, owner: Organization) -> Req:
    letter, _ = letter_at(ctx, owner)
    return Req("POST", f"/api/v1/responsibility-letters/{letter.id}/items", json={
        "title": "党员发展", "category": "other", "target": "发展 1 名", "weight": 5, "due_date": f"{YEAR}-10-01",
    })


@case("letters_update_item")
def letters_update_item(ctx: Ctx, owner: Organization) -> Req:
    letter, item = letter_at(ctx, owner)
    return Req("PATCH", f"/api/v1/responsibility-letters/{letter.id}/items/{item.id}", json={"weight": 12},
               headers=if_match(item.version))


@case("letters_delete_item")
def letters_delete_item(ctx: Ctx, owner: Organization) -> Req:
    letter, item = letter_at(ctx, owner)
    return Req("DELETE", f"/api/v1/responsibility-letters/{letter.id}/items/{item.id}")


@case("letters_issue")
def letters_issue(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/responsibility-letters/{letter_at(ctx, owner)[0].id}/issue")


# Signing and reporting are the organisation's own acts: the township signs its own letter (t1), the village its own.
@case("letters_sign", township_owner="t1")
def letters_sign(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/responsibility-letters/{letter_at(ctx, owner, 'issued')[0].id}/sign")


@case("letters_report", township_owner="t1")
def letters_report(ctx: Ctx, owner: Organization) -> Req:
    letter, item = letter_at(ctx, owner, "signed")
    return Req("POST", f"/api/v1/responsibility-letters/{letter.id}/report",
               json={"items": [{"item_id": item.id, "outcome": "completed", "evidence_note": "会议记录"}]})


@case("letters_score")
def letters_score(ctx: Ctx, owner: Organization) -> Req:
    letter, item = letter_at(ctx, owner, "settling", reported=True)
    return Req("POST", f"/api/v1/responsibility-letters/{letter.id}/score",
               json={"items": [{"item_id": item.id, "score": 9}]})


@case("letters_settle")
def letters_settle(ctx: Ctx, owner: Organization) -> Req:
    letter, _ = letter_at(ctx, owner, "settling", scored=True)
    return Req("POST", f"/api/v1/responsibility-letters/{letter.id}/settle")


# --- monthly lists (kept by the city office) and their assignments ----------------------------------


def monthly_list(ctx: Ctx, owner: Organization, status: str = "draft") -> tuple[MonthlyList, MonthlyTask]:
    lst = MonthlyList(org_id=ctx.world.city.id, month=f"{YEAR}-05", title=unique("五月清单"), status=status)
    ctx.db.add(lst)
    ctx.db.flush()
    task = MonthlyTask(list_id=lst.id, position=1, title="主题党日", category="organization_building",
                       deadline=dt.date(YEAR, 5, 31), target_mode="chosen")
    ctx.db.add(task)
    ctx.db.flush()
    ctx.db.add(MonthlyTaskTarget(task_id=task.id, org_id=owner.id, subtree=False))
    ctx.db.flush()
    return lst, task


def assignment_at(ctx: Ctx, owner: Organization, status: str = "pending") -> TaskAssignment:
    lst, task = monthly_list(ctx, owner, "issued")
    a = TaskAssignment(task_id=task.id, list_id=lst.id, org_id=owner.id, month=lst.month, category=task.category,
                       deadline=task.deadline, status=status,
                       done_on=dt.date(YEAR, 5, 20) if status == "done" else None)
    ctx.db.add(a)
    ctx.db.flush()
    return a


@case("monthly_lists_list", targetless=ISSUED_LISTS)
def monthly_lists_list(ctx: Ctx, owner: Organization) -> Req:
    monthly_list(ctx, owner, "issued")
    return Req("GET", "/api/v1/monthly-lists")


@case("monthly_lists_get", targetless=ISSUED_LISTS)
def monthly_lists_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/monthly-lists/{monthly_list(ctx, owner, 'issued')[0].id}")


@case("monthly_lists_quarterly_review")
def monthly_lists_quarterly_review(ctx: Ctx, owner: Organization) -> Req:
    assignment_at(ctx, owner, "done")
    return Req("GET", "/api/v1/monthly-lists/quarterly-review",
               params={"year": YEAR, "quarter": 2, "org_id": owner.id})


@case("monthly_lists_create", targetless=ISSUED_LISTS)
def monthly_lists_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/monthly-lists", json={
        "month": f"{YEAR}-06", "title": "六月清单",
        "tasks": [{"title": "七一活动", "category": "other", "deadline": f"{YEAR}-06-30", "target_mode": "chosen",
                   "targets": [{"org_id": owner.id}]}],
    })


@case("monthly_lists_update", targetless=ISSUED_LISTS)
def monthly_lists_update(ctx: Ctx, owner: Organization) -> Req:
    lst, _ = monthly_list(ctx, owner)
    return Req("PATCH", f"/api/v1/monthly-lists/{lst.id}", json={"title": "改名"}, headers=if_match(lst.version))


@case("monthly_lists_issue", targetless=ISSUED_LISTS)
def monthly_lists_issue(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/monthly-lists/{monthly_list(ctx, owner)[0].id}/issue")


@case("monthly_lists_add_task", targetless=ISSUED_LISTS)
def monthly_lists_add_task(ctx: Ctx, owner: Organization) -> Req:
    lst, _ = monthly_list(ctx, owner)
    return Req("POST", f"/api/v1/monthly-lists/{lst.id}/tasks", json={
        "title": "走访", "category": "other", "deadline": f"{YEAR}-05-25", "target_mode": "all_villages",
    })


@case("monthly_lists_update_task", targetless=ISSUED_LISTS)
def monthly_lists_update_task(ctx: Ctx, owner: Organization) -> Req:
    lst, task = monthly_list(ctx, owner)
    return Req("PATCH", f"/api/v1/monthly-lists/{lst.id}/tasks/{task.id}", json={"title": "改名"},
               headers=if_match(task.version))


@case("monthly_lists_cancel_task", targetless=ISSUED_LISTS)
def monthly_lists_cancel_task(ctx: Ctx, owner: Organization) -> Req:
    lst, task = monthly_list(ctx, owner)
    return Req("POST", f"/api/v1/monthly-lists/{lst.id}/tasks/{task.id}/cancel", json={"reason": "重复"})


@case("assignments_list")
def assignments_list(ctx: Ctx, owner: Organization) -> Req:
    assignment_at(ctx, owner)
    return Req("GET", "/api/v1/assignments", params={"org_id": owner.id, "subtree": "true"})


@case("assignments_get")
def assignments_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/assignments/{assignment_at(ctx, owner).id}")


# The assigned organisation reports its own progress: the township reports its own assignment (t1).
@case("assignments_report", township_owner="t1")
def assignments_report(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/assignments/{assignment_at(ctx, owner).id}/progress",
               json={"status": "in_progress", "note": "已部署"})


@case("assignments_reopen")
def assignments_reopen(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/assignments/{assignment_at(ctx, owner, 'done').id}/reopen",
               json={"reason": "材料不全"})


# --- problems and quarterly inspections -------------------------------------------------------------


def problem_at(ctx: Ctx, owner: Organization, status: str = "open") -> Problem:
    p = Problem(org_id=owner.id, year=YEAR, source="other", description="台账不全", status=status,
                deadline=dt.date(YEAR, 9, 30))
    ctx.db.add(p)
    ctx.db.flush()
    return p


def inspection_at(ctx: Ctx, owner: Organization) -> QuarterlyInspection:
    row = QuarterlyInspection(org_id=owner.id, visited_on=dt.date(YEAR, 4, 10), year=YEAR, quarter=2,
                              inspectors="组织部", findings="总体良好")
    ctx.db.add(row)
    ctx.db.flush()
    return row


@case("problems_list")
def problems_list(ctx: Ctx, owner: Organization) -> Req:
    problem_at(ctx, owner)
    return Req("GET", "/api/v1/problems", params={"org_id": owner.id, "subtree": "true"})


@case("problems_summary")
def problems_summary(ctx: Ctx, owner: Organization) -> Req:
    problem_at(ctx, owner)
    return Req("GET", "/api/v1/problems/summary", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


@case("problems_escalate_overdue", targetless="escalates every overdue problem in the caller's scope; no target")
def problems_escalate_overdue(ctx: Ctx, owner: Organization) -> Req:
    problem_at(ctx, owner)
    return Req("POST", "/api/v1/problems/escalate-overdue")


@case("problems_create")
def problems_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/problems", json={
        "org_id": owner.id, "year": YEAR, "source": "frontline_visit", "description": "会议记录缺失",
    })


@case("problems_get")
def problems_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/problems/{problem_at(ctx, owner).id}")


@case("problems_update")
def problems_update(ctx: Ctx, owner: Organization) -> Req:
    p = problem_at(ctx, owner)
    return Req("PATCH", f"/api/v1/problems/{p.id}", json={"cause_analysis": "制度不落实"}, headers=if_match(p.version))


@case("problems_rectify")
def problems_rectify(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/problems/{problem_at(ctx, owner).id}/rectify")


@case("problems_submit")
def problems_submit(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/problems/{problem_at(ctx, owner, 'rectifying').id}/submit",
               json={"note": "已补齐"})


@case("problems_verify")
def problems_verify(ctx: Ctx, owner: Organization) -> Req:
    p = problem_at(ctx, owner, "submitted")
    return Req("POST", f"/api/v1/problems/{p.id}/verify")


@case("problems_reject")
def problems_reject(ctx: Ctx, owner: Organization) -> Req:
    p = problem_at(ctx, owner, "submitted")
    return Req("POST", f"/api/v1/problems/{p.id}/reject", json={"reason": "证据不足"})


@case("inspections_list")
def inspections_list(ctx: Ctx, owner: Organization) -> Req:
    inspection_at(ctx, owner)
    return Req("GET", "/api/v1/quarterly-inspections", params={"org_id": owner.id, "subtree": "true"})


@case("inspections_get")
def inspections_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/quarterly-inspections/{inspection_at(ctx, owner).id}")


@case("inspections_create")
def inspections_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/quarterly-inspections", json={
        "org_id": owner.id, "visited_on": f"{YEAR}-04-12", "inspectors": "组织部 张三", "findings": "阵地不足",
        "problems": [{"description": "活动室面积不足"}],
    })
