"""Optimistic concurrency: ETag from `version`, If-Match on PATCH, conditional UPDATE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Response
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.errors import ProblemError, conflict


def etag_for(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag_for(version)


def parse_if_match(if_match: str | None) -> int:
    """The version the client last saw: 428 without the header, 412 when unreadable."""
    if if_match is None or not if_match.strip():
        raise ProblemError(
            428, "if_match_required", "Send If-Match with the ETag of the version you are changing."
        )
    raw = if_match.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit() or len(raw) > 12:
        raise ProblemError(412, "version_mismatch", "If-Match does not name a version of this record.")
    return int(raw)


def versioned_update(session: Session, obj: Any, expected_version: int, changes: dict[str, Any]) -> None:
    """Apply `changes` only if the row is still at `expected_version` (412 otherwise).

    The check is in the UPDATE's WHERE clause, so two writers holding the same
    ETag cannot both win, whatever the interleaving.
    """
    model = type(obj)
    if obj.version != expected_version:
        raise _stale(obj.version)
    values = {**changes, "version": model.version + 1}
    if hasattr(model, "updated_at"):
        from app.core.db import utcnow

        values["updated_at"] = utcnow()
    result = session.execute(
        update(model)
        .where(model.id == obj.id, model.version == expected_version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _stale(None)
    session.refresh(obj)


def transition_update(session: Session, obj: Any, changes: dict[str, Any], recheck: Callable[[Any], None]) -> None:
    """Apply a state change the client did not make conditional (no If-Match) to the version read here.

    When a concurrent writer committed first (PostgreSQL: both read the same version and the conditional UPDATE
    lets one through), the record is read again and `recheck` raises the 409 its new state calls for: the answer
    this request would have had, had it come second. A 412 would ask a client that sent no If-Match for another.
    """
    try:
        versioned_update(session, obj, obj.version, changes)
    except ProblemError as exc:
        if exc.status != 412:
            raise
        session.refresh(obj)
        recheck(obj)
        raise conflict("conflict", "The record was changed by a concurrent request; fetch it again.") from None


def _stale(current: int | None) -> ProblemError:
    detail = "The record was changed since you read it; fetch it again and reapply your change."
    if current is not None:
        detail += f" Current version is {current}."
    return ProblemError(412, "version_mismatch", detail)
