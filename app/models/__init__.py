"""Importing this package registers every table on SQLModel.metadata."""

from app.core import db as _db  # noqa: F401  (naming convention first)
from app.models import accounts, audit, organizations, people, responsibilities, standards  # noqa: F401
