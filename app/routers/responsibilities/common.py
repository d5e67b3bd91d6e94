"""Query parameters the three lists' routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query

from app.core.errors import problem_responses
from app.models.responsibilities.common import MONTH_PATTERN

TAG = "responsibilities"
READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)

YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]
MonthQuery = Annotated[str | None, Query(pattern=MONTH_PATTERN, max_length=7, description="YYYY-MM")]
Subtree = Annotated[bool, Query(description="With org_id: also every organisation below it")]
Rollup = Annotated[bool, Query(description="One row per organisation directly below org_id, counting its whole "
                                           "subtree (the per-township overview under the city)")]
IfMatch = Annotated[str | None, Header(description="The ETag of the version being changed")]
