"""Record history from the audit log: the versions of one record, and the record as it stood at a time.

An item GET opts in with `@recorded("<audit entity>")` placed between its route decorator and the function:
- the GET gains `?as_of=<time with offset>`: the record as it stood then (404 if it did not exist then);
- app.routers.changes adds `GET <the item's path>/history` (operationId `<the GET's minus _get>_history`) with
  the same permission and the same scope check, because it runs the GET itself to check them.

How `as_of` rebuilds a record: the GET's answer of today, then, newest first, every audit row of the record
written after `as_of` is undone by putting back the values its `before` recorded. Each row records the old and
new values of the fields it changed, so this is exact for every field the log records; fields the log never
records (names of related records, nested lists of other records) are as they are now. Undoing from today's
record (rather than replaying `after` snapshots from the creation) also rebuilds records whose creation predates
the log (seeded or migrated data). A record with `created_at` after `as_of` did not exist then; a record without
`created_at` did not if its first audit row came after `as_of` and created it (no `before`).

Personal data: audit rows hold masked values only (see app.services.people.audit_snapshot), so a history and an
`as_of` answer are masked for every caller, and the GET runs as a caller without `pii_read` (no unmasked read, no
`person.pii_read` row). `restore` maps a snapshot's field names to the API's (e.g. the masked ID number).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.errors import not_found
from app.core.permissions import Permission
from app.core.scope import Actor
from app.models.audit import AuditLog
from app.models.changes import FieldChange, Version
from app.models.common import Timestamp

# Audit rows of a record that record a read or a session, not a change of the record.
NOT_CHANGES = frozenset({"person.pii_read", "person.lookup", "auth.login", "auth.logout"})
HISTORY_SORTABLE = {"id": AuditLog.id, "at": AuditLog.at}

Restore = Callable[[dict[str, Any]], dict[str, Any]]

AsOf = Annotated[
    Timestamp | None,
    Query(description="The record as it stood at this time (ISO 8601 with offset), rebuilt from the audit log; "
                      "404 if it did not exist then. Fields the audit log does not record (e.g. names of related "
                      "records) are as they are now; personal data is masked."),
]


@dataclasses.dataclass(frozen=True)
class Recorded:
    """An item GET whose record the audit log keeps, and how to call it."""

    entity: str
    endpoint: Callable[..., Any]  # the undecorated GET
    params: Sequence[inspect.Parameter]  # its parameters, annotations evaluated
    id_param: str
    actor_param: str
    session_param: str
    restore: Restore | None

    def check(self, session: Session, actor: Actor, item_id: int) -> Any:
        """Run the GET for its permission and scope check (404 out of scope); its answer, as a caller without
        pii_read sees it. Headers it sets go nowhere."""
        kwargs: dict[str, Any] = {}
        for p in self.params:
            if p.name == self.id_param:
                kwargs[p.name] = item_id
            elif p.name == self.actor_param:
                kwargs[p.name] = masked_actor(actor)
            elif p.name == self.session_param:
                kwargs[p.name] = session
            elif p.annotation is Response:
                kwargs[p.name] = Response()
            elif p.default is not inspect.Parameter.empty:
                kwargs[p.name] = _plain_default(p.default)
            else:
                raise TypeError(f"{self.endpoint.__name__}: cannot call with parameter {p.name}")
        return self.endpoint(**kwargs)


def _plain_default(default: Any) -> Any:
    """The default of a parameter declared as `x: T = Query(...)` is the Query object; its own default then."""
    from fastapi.params import Param

    return default.default if isinstance(default, Param) else default


def masked_actor(actor: Actor) -> Actor:
    return dataclasses.replace(actor, permissions=actor.permissions - {Permission.pii_read})


def _is_actor(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and typing.get_args(annotation)[0] is Actor


def recorded(entity: str, *, restore: Restore | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an item GET (under its route decorator): adds `as_of` and registers its history."""
    from app.deps import ItemId, SessionDep

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__name__}: @recorded supports plain (def) endpoints")
        sig = inspect.signature(fn, eval_str=True)
        params = list(sig.parameters.values())
        ids = [p.name for p in params if p.annotation is ItemId]
        actors = [p.name for p in params if _is_actor(p.annotation)]
        sessions = [p.name for p in params if p.annotation is SessionDep]
        if len(ids) != 1 or len(actors) != 1 or len(sessions) != 1:
            raise TypeError(f"{fn.__name__}: @recorded needs one ItemId, one actor and one SessionDep parameter")
        info = Recorded(entity, fn, params, ids[0], actors[0], sessions[0], restore)
        known = {info.id_param, info.actor_param, info.session_param}
        unfilled = [p.name for p in params if p.name not in known and p.annotation is not Response
                    and p.default is inspect.Parameter.empty]
        if unfilled:  # the history route calls the GET with only these (fail at import, not on a request)
            raise TypeError(f"{fn.__name__}: @recorded cannot fill parameters {unfilled}")

        @functools.wraps(fn)
        def endpoint(*args: Any, as_of: dt.datetime | None = None, **kwargs: Any) -> Any:
            if as_of is None:
                return fn(*args, **kwargs)
            current = info.check(kwargs[info.session_param], kwargs[info.actor_param], kwargs[info.id_param])
            return record_as_of(kwargs[info.session_param], info, kwargs[info.id_param], _as_dict(current), as_of)

        extra = inspect.Parameter("as_of", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=AsOf)
        endpoint.__signature__ = sig.replace(parameters=[*params, extra])  # type: ignore[attr-defined]
        endpoint.__recorded__ = info  # type: ignore[attr-defined]
        return endpoint

    return decorate


def recorded_info(endpoint: Any) -> Recorded | None:
    return getattr(endpoint, "__recorded__", None)


def _as_dict(answer: Any) -> dict[str, Any]:
    if isinstance(answer, BaseModel):
        return answer.model_dump(warnings=False)  # ORM rows hold enum fields as plain strings
    if isinstance(answer, dict):
        return dict(answer)
    raise TypeError(f"cannot rebuild a {type(answer).__name__} as of a time")


def _changes_of(entity: str, entity_id: int) -> Select[Any]:
    """The audit rows of the record now at `entity_id`: from its latest creation on.

    SQLite reuses the id of a deleted record (the largest), so older rows under the same id may be another record's.
    A creation row is the one whose `after` is the new record's snapshot, naming its own id (changes record only the
    fields they change, never the id; reads and deletions have no such `after`). A record without one (seeded or
    migrated before the log, or made in bulk) keeps all its rows."""
    own = (AuditLog.entity == entity, AuditLog.entity_id == str(entity_id), col(AuditLog.action).not_in(NOT_CHANGES))
    # Compared as text (as_string casts): no cast to a number fails on another entity's id, whatever the plan.
    created = (select(func.max(AuditLog.id))
               .where(*own, col(AuditLog.after)["id"].as_string() == str(entity_id)).scalar_subquery())
    return select(AuditLog).where(*own, AuditLog.id >= func.coalesce(created, 0))


def record_as_of(session: Session, info: Recorded, item_id: int, current: dict[str, Any],
                 when: dt.datetime) -> dict[str, Any]:
    """`current` (the GET's answer now) with every change after `when` undone; 404 if it did not exist then.

    Existence: `created_at` when the record has one; otherwise the record's first change row, if it came after
    `when` and has no `before` (it created the record). Two statements at most, whatever the number of changes."""
    changes = _changes_of(info.entity, item_id)
    later = session.execute(
        changes.where(AuditLog.at > when).with_only_columns(AuditLog.before).order_by(col(AuditLog.id).desc())
    ).scalars().all()
    created = current.get("created_at")
    if isinstance(created, dt.datetime):
        if created > when:
            raise not_found(info.entity, item_id)
    elif later and later[-1] is None and session.scalar(
        changes.where(AuditLog.at <= when).with_only_columns(AuditLog.id).limit(1)
    ) is None:
        raise not_found(info.entity, item_id)
    for before in later:
        if before:
            values = info.restore(before) if info.restore else before
            current.update({k: v for k, v in values.items() if k in current})
    return current


def history_statement(entity: str, entity_id: int) -> Select[Any]:
    """The audit rows that changed one record (sorted and paged by app.core.pagination.fetch_page)."""
    return _changes_of(entity, entity_id)


def versions(restore: Restore | None) -> Callable[[Session, list[AuditLog]], list[Version]]:
    """The `present` of a history page: each audit row as a version with its field-level changes."""

    def present(session: Session, rows: list[AuditLog]) -> list[Version]:
        return [_version(row, restore) for row in rows]

    return present


def _version(row: AuditLog, restore: Restore | None) -> Version:
    before = dict(row.before or {})
    after = dict(row.after or {})
    if restore:
        before, after = restore(before) if before else before, restore(after) if after else after
    fields = list(after) + [k for k in before if k not in after]
    changes = [FieldChange(field=k, before=before.get(k), after=after.get(k))
               for k in fields if before.get(k) != after.get(k) or (k in after and k not in before)]
    return Version(audit_id=row.id, at=row.at, action=row.action, user_id=row.user_id, username=row.username,
                   role=row.role, request_id=row.request_id, changes=changes)
