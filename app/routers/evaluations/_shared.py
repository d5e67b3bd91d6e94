"""What the evaluation routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.core.errors import problem_responses
from app.models.evaluations.common import YEAR_MAX, YEAR_MIN

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)
YearQuery = Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX)]
OptionalYear = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]
