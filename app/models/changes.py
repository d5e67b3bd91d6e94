"""What the change feed and record histories answer: audit rows read as changes and versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from app.models.audit import AuditLogPublic


class ChangeFeed(BaseModel):
    """One batch of the change feed, oldest first (commit order)."""

    items: list[AuditLogPublic]
    next: str = Field(description="Pass as `after` to get the changes committed after these (also when `items` is "
                                  "empty: poll with it to resume exactly where this batch ended)")
    limit: int


class FieldChange(BaseModel):
    field: str
    before: Any = Field(default=None, description="The value before the change (null when the record was created)")
    after: Any = Field(default=None, description="The value after the change")


class Version(BaseModel):
    """One change of a record, from its audit row."""

    audit_id: int = Field(description="The audit row (GET /api/v1/audit-log?entity_id=… shows it whole)")
    at: dt.datetime
    action: str
    user_id: int | None = Field(description="Who made the change (null: the system)")
    username: str | None
    role: str | None
    request_id: str | None
    changes: list[FieldChange] = Field(description="The fields the change recorded, with their values before and "
                                                   "after; personal data masked as in the audit log")
