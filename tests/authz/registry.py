"""How an authorisation-matrix case is described.

A case belongs to one operation (its operationId). Given the organisation that must own the target record, it
builds that record inside the rolled-back test transaction (factories or service functions, never HTTP) and
returns the request to send. The matrix sends it as each role, once for a record in the role's scope and once
for a record in a sibling township/village, and compares the answer with the default rule:

    the role lacks the operation's permission      -> 403 permission_denied
    an auditor calling a write                     -> 403 (auditors change nothing)
    a sibling record (township and village roles)  -> 404
    otherwise                                      -> 2xx

A case overrides a cell only with a reason (`Expect(..., why=...)`); overrides must stay few.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.models.accounts import User
from app.models.organizations import Organization
from tests.factories import World

ROLES = ("city", "auditor", "t1", "v1")
TARGETS = ("in_scope", "sibling")
# The city and the auditor see the whole city: they have no sibling. Their "sibling" cell targets another
# township's village (v2) and expects the in-scope answer.
SEES_EVERYTHING = frozenset({"city", "auditor"})

# The organisation (a World attribute) that owns the target record, by role and target.
IN_SCOPE = {"city": "v1", "auditor": "v1", "t1": "v1", "v1": "v1"}
SIBLING = {"city": "v2", "auditor": "v2", "t1": "v2", "v1": "v1b"}

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other record in the run uses (usernames, codes, titles)."""
    return f"{prefix}{next(_seq)}"


@dataclass
class Req:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Expect:
    """The answer a cell expects: `status` None means any 2xx; `code` is the problem's code when given."""

    status: int | None
    code: str | None = None
    why: str = ""

    def describe(self) -> str:
        s = "2xx" if self.status is None else str(self.status)
        return f"{s}{' ' + self.code if self.code else ''}{' (' + self.why + ')' if self.why else ''}"


OK = Expect(None)


@dataclass
class Ctx:
    """What a case's builder gets: the test session, the world, and who is asking for what."""

    db: Session
    world: World
    role: str
    target: str

    def org(self, key: str) -> Organization:
        """A fresh copy of a World organisation, loaded in the test session (current version)."""
        org = self.db.get(Organization, getattr(self.world, key).id)
        assert org is not None
        return org

    @property
    def user(self) -> User:
        """The acting user."""
        user = self.db.get(User, self.world.users[self.role].id)
        assert user is not None
        return user

    def user_at(self, org: Organization) -> User:
        """A new active user of the role that belongs at `org`'s level (no password hashing: cheap)."""
        role = {"city": "city_admin", "township": "township_admin", "village": "village_admin"}[org.level]
        user = User(username=unique("authz_user_"), password_hash=self.world.users["v1"].password_hash,
                    role=role, org_id=org.id)
        self.db.add(user)
        self.db.flush()
        return user

    def parent_of(self, org: Organization) -> Organization:
        assert org.parent_id is not None
        parent = self.db.get(Organization, org.parent_id)
        assert parent is not None
        return parent


Build = Callable[[Ctx, Organization], Req]
Cell = tuple[str, str]  # (role, target)
# The organisations a list item belongs to (it is in scope when one of them is), for items without `org_id`.
ItemOrgs = Callable[[Session, dict[str, Any]], list[int]]


@dataclass
class Case:
    operation_id: str
    build: Build
    module: str
    # The township role's in-scope target: a village under it ("v1") or the township itself ("t1").
    township_owner: str = "v1"
    expect: dict[Cell, Expect] = field(default_factory=dict)
    # Why the operation needs no permission beyond a valid token (None: it must need one).
    any_user: str | None = None
    # Why an auditor may call this write (None: auditors get 403 on it).
    auditor_writes: str | None = None
    # Why the request does not depend on the target (None: it does; sibling targets are 404).
    targetless: str | None = None
    # Why a POST only reads (so it writes no audit row of a change), e.g. a lookup keeping a number out of the URL.
    reads: str | None = None
    item_orgs: ItemOrgs | None = None
    # (action, why): the audit row a refused request still writes, in the caller's name (e.g. a lookup's miss).
    audits_refusal: tuple[str, str] | None = None

    def owner_key(self, role: str, target: str) -> str:
        if target == "in_scope":
            return self.township_owner if role == "t1" else IN_SCOPE[role]
        if role == "t1" and self.township_owner == "t1":
            return "t2"
        return SIBLING[role]


CASES: dict[str, Case] = {}


def case(
    operation_id: str, *, township_owner: str = "v1", expect: dict[Cell, Expect] | None = None,
    any_user: str | None = None, auditor_writes: str | None = None, targetless: str | None = None,
    item_orgs: ItemOrgs | None = None, reads: str | None = None, audits_refusal: tuple[str, str] | None = None,
) -> Callable[[Build], Build]:
    """Register the decorated builder as the matrix case of `operation_id`."""

    def register(build: Build) -> Build:
        if operation_id in CASES:
            raise ValueError(f"two authz cases for {operation_id}: {CASES[operation_id].module} and {build.__module__}")
        for cell, exp in (expect or {}).items():
            if cell[0] not in ROLES or cell[1] not in TARGETS or not exp.why:
                raise ValueError(f"{operation_id}: override {cell} needs a known role/target and a reason")
        CASES[operation_id] = Case(
            operation_id=operation_id, build=build, module=build.__module__, township_owner=township_owner,
            expect=dict(expect or {}), any_user=any_user, auditor_writes=auditor_writes, targetless=targetless,
            item_orgs=item_orgs, reads=reads, audits_refusal=audits_refusal,
        )
        return build

    return register


def if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


def level_above_only(what: str) -> dict[Cell, Expect]:
    """The override of an act only the level above may do: the village role's in-scope target is its own
    organisation, so it gets 403 level_above_required instead of 2xx."""
    return {("v1", "in_scope"): Expect(403, "level_above_required", why=f"only the level above {what}")}
