"""The one scope filter: a user sees the subtree of their organisation."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, bindparam, literal, select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from app.core.errors import ProblemError, not_found
from app.core.permissions import Permission, permissions_for

M = TypeVar("M", bound=SQLModel)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user (or, with user_id None, the system itself)."""

    user_id: int | None
    username: str
    role: str
    org_id: int | None
    org_path: str  # materialised path of the scope root, e.g. "/1/5/"
    permissions: frozenset[Permission] = field(default_factory=frozenset)

    @property
    def sees_everything(self) -> bool:
        return self.org_path.count("/") == 2  # the root of the tree: the city

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def covers(self, path: str) -> bool:
        """The organisation at `path` is inside this actor's subtree (itself included)."""
        return path.startswith(self.org_path)

    def strictly_covers(self, path: str) -> bool:
        """The organisation at `path` is below this actor's own organisation: the level above."""
        return path.startswith(self.org_path) and path != self.org_path

    @classmethod
    def system(cls) -> Actor:
        from app.core.permissions import Role

        return cls(None, "system", "system", None, "/", frozenset(permissions_for(Role.city_admin)))


_PATH = re.compile(r"/(?:[0-9]+/)*")


def in_subtree(path_column: Any, prefix: str) -> ColumnElement[bool]:
    """The organisations at or below `prefix` (a materialised path), by `LIKE 'prefix%'` on the path index.

    The prefix is written into the statement's text (`literal_execute`), not sent as a parameter. PostgreSQL
    plans a statement it has seen a few times (psycopg prepares it) once for any value: such a plan of
    `path LIKE $1` cannot know the prefix, so it read the whole organisation table (3 ms for a township's 13 of
    16,864, twice per page) where the index finds them in 0.01 ms (issue 8). SQLite uses the index for a literal
    prefix as well. Safe as text: a path holds only digits and "/" (checked), so it needs no escaping either."""
    if not _PATH.fullmatch(prefix):
        raise ValueError(f"not an organisation path: {prefix!r}")
    return path_column.like(literal(prefix + "%", String, literal_execute=True))


@functools.lru_cache(maxsize=512)
def subtree_org_ids(prefix: str) -> Select[Any]:
    from app.models.organizations import Organization

    return select(Organization.id).where(in_subtree(Organization.path, prefix))


def scoped(stmt: Select[Any], org_id_column: Any, actor: Actor) -> Select[Any]:
    """Limit `stmt` to rows whose organisation is in the actor's subtree."""
    if actor.org_path == "/" or actor.sees_everything:
        return stmt
    return stmt.where(org_id_column.in_(subtree_org_ids(actor.org_path)))


def within(stmt: Select[Any], org_id_column: Any, org_path: str, *, subtree: bool, org_id: int) -> Select[Any]:
    """The `org_id` (+ `subtree`) list filter of API.md."""
    if subtree:
        return stmt.where(org_id_column.in_(subtree_org_ids(org_path)))
    return stmt.where(org_id_column == org_id)


@functools.cache
def _path_statement() -> Select[Any]:
    # Built once, of the table's columns (no ORM compile step), its id a bound parameter: every list filtered by
    # `org_id` runs it (issue 8).
    from app.models.organizations import Organization

    orgs = Organization.__table__.c  # type: ignore[attr-defined]
    return select(orgs.path).where(orgs.id == bindparam("org_id"))


def scoped_to(
    session: Session, stmt: Select[Any], org_id_column: Any, actor: Actor, org_id: int | None, *, subtree: bool
) -> Select[Any]:
    """The actor's scope and the `org_id` (+ `subtree`) list filter of API.md. An organisation asked for must be in
    scope (404 otherwise, `require_org_in_scope`); then its subtree, within the actor's, is the only filter the
    statement needs (both as two subqueries cost a township's page of people 4 % of its instructions, issue 8).
    The subtree is matched by path prefix, so an organisation moved out of scope after the check (PostgreSQL reads
    each statement at its own snapshot) matches nothing; the organisation alone (`subtree=False`) is matched by id,
    so the statement keeps the actor's scope too."""
    if org_id is None:
        return scoped(stmt, org_id_column, actor)
    path = require_org_in_scope(session, actor, org_id)
    if not subtree:
        stmt = scoped(stmt, org_id_column, actor)
    return within(stmt, org_id_column, path, subtree=subtree, org_id=org_id)


def org_path_of(session: Session, org_id: int) -> str | None:
    return session.scalar(_path_statement(), {"org_id": org_id})


def require_org_in_scope(session: Session, actor: Actor, org_id: int) -> str:
    """Return the organisation's path, or 404 when it is absent or outside the actor's scope."""
    path = org_path_of(session, org_id)
    if path is None or not actor.covers(path):
        raise not_found("Organization", org_id)
    return path


@functools.cache
def _in_scope_statement(model: type[SQLModel]) -> Select[Any]:
    # Built once per model, its id a bound parameter: SQLAlchemy then finds its compiled form by a cache key it
    # computed once, where a statement built per call has its key computed on every call (issue 8).
    from app.models.organizations import Organization

    return (
        select(model, Organization.path)
        .join(Organization, Organization.id == model.org_id)  # type: ignore[attr-defined]
        .where(model.id == bindparam("record_id"))  # type: ignore[attr-defined]
    )


def get_in_scope(session: Session, actor: Actor, model: type[M], record_id: int, what: str) -> tuple[M, str]:
    """The record and its organisation's path, or 404 when absent or outside the actor's scope (one statement)."""
    row = session.execute(_in_scope_statement(model), {"record_id": record_id}).first()
    if row is None or not actor.covers(row[1]):
        raise not_found(what, record_id)
    return row[0], row[1]


def require_level_above(actor: Actor, path: str, what: str) -> None:
    """Only a user whose scope strictly contains the organisation may do this (403)."""
    if not actor.strictly_covers(path):
        raise ProblemError(
            403, "level_above_required",
            f"Only the level above the organisation may {what}.",
        )
