"""The rules of duty posts (设岗定责): see `rules.py` for what holds them together.

`rules` holds the policy, who may hold a post and the posts themselves; `assignments` the
applications, proposals and their outcomes, reviews and the ending of a member's posts;
`reports` the performance log and the summary.
"""

from app.services.posts.assignments import (
    AssignmentFilters,
    assignment_public,
    create_assignment,
    end_assignment,
    end_member_posts,
    get_assignment,
    list_assignments,
    refuse_post,
    review_assignment,
    review_grades_by_person,
    take_post,
)
from app.services.posts.reports import LogFilters, create_log, get_log, list_logs, summary
from app.services.posts.rules import (
    PostFilters,
    create_policy,
    create_post,
    eligibility_problems,
    get_post,
    holds_office_clause,
    list_policies,
    list_posts,
    max_posts_for_year,
    set_post_status,
    today,
    update_post,
)

__all__ = [
    "AssignmentFilters", "LogFilters", "PostFilters", "assignment_public", "create_assignment", "create_log",
    "create_policy", "create_post", "eligibility_problems", "end_assignment", "end_member_posts", "get_assignment",
    "get_log", "get_post", "holds_office_clause", "list_assignments", "list_logs", "list_policies", "list_posts",
    "max_posts_for_year", "refuse_post", "review_assignment", "review_grades_by_person", "set_post_status",
    "summary", "take_post", "today", "update_post",
]
