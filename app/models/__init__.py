"""Importing this package registers every table on SQLModel.metadata."""

from app.core import db as _db  # noqa: F401  (naming convention first)
from app.core import idempotency as _idempotency  # noqa: F401  (the idempotency_key table)
from app.core import report_cache as _report_cache  # noqa: F401  (the data_generation table)
from app.models import (  # noqa: F401
    accounts,
    audit,
    clients,
    evaluations,
    frontline,
    funds,
    organizations,
    people,
    posts,
    responsibilities,
    standards,
    training,
)
