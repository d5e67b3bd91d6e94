"""The rules of the organisation tree."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from app.core import audit
from app.core.errors import ProblemError, conflict, invalid, not_found
from app.core.pagination import PageParams, fetch_page
from app.core.scope import Actor, in_subtree, require_org_in_scope
from app.core.versioning import transition_update, versioned_update
from app.models.accounts import User
from app.models.organizations import (
    CODE_LENGTH,
    LEVEL_DOMAINS,
    PARENT_LEVELS,
    Organization,
    OrganizationCreate,
    OrganizationNode,
    OrganizationUpdate,
    OrgStatus,
)
from app.models.people import Person, PersonStatus

SORTABLE = {
    "id": Organization.id, "name": Organization.name, "code": Organization.code,
    "level": Organization.level, "path": Organization.path, "created_at": Organization.created_at,
}
MAX_TREE_DEPTH = 6
# Built once, its id a bound parameter: Session.get builds its statement and computes its cache key on every call
# (a third of a get by id's ORM work, issue 8).
_BY_ID = select(Organization).where(Organization.id == bindparam("org_id"))
# A new organisation's path ends in its own id, known only once its row is inserted: set by this statement, not a
# second flush of the unit of work (a tenth of a create's instructions, issue 8). `updated_at` is set to itself so
# its onupdate does not fire: the row stays as inserted, as the object in the session holds it.
_ORGS = Organization.__table__.c  # type: ignore[attr-defined]
_SET_PATH = (
    update(Organization.__table__)  # type: ignore[attr-defined]
    .where(_ORGS.id == bindparam("org_id"))
    .values(path=bindparam("new_path"), updated_at=_ORGS.updated_at)
)


@dataclass
class OrganizationFilters:
    level: str | None = None
    domain: str | None = None
    status: str | None = None
    q: str | None = None
    parent_id: int | None = None
    org_id: int | None = None
    subtree: bool = False


def get(session: Session, actor: Actor, org_id: int) -> Organization:
    """The organisation, or 404 when it is absent or outside the actor's scope."""
    org = session.execute(_BY_ID, {"org_id": org_id}).scalar_one_or_none()
    if org is None or not actor.covers(org.path):
        raise not_found("Organization", org_id)
    return org


def list_page(
    session: Session, actor: Actor, filters: OrganizationFilters, params: PageParams
) -> tuple[list[Organization], int]:
    stmt = select(Organization).where(in_subtree(Organization.path, actor.org_path))
    if filters.level:
        stmt = stmt.where(Organization.level == filters.level)
    if filters.domain:
        stmt = stmt.where(Organization.domain == filters.domain)
    if filters.status:
        stmt = stmt.where(Organization.status == filters.status)
    if filters.parent_id is not None:
        stmt = stmt.where(Organization.parent_id == filters.parent_id)
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(col(Organization.name).like(pattern, escape="\\"), col(Organization.code).like(pattern, escape="\\"))
        )
    if filters.org_id is not None:
        path = require_org_in_scope(session, actor, filters.org_id)
        if filters.subtree:
            stmt = stmt.where(in_subtree(Organization.path, path))
        else:
            stmt = stmt.where(Organization.id == filters.org_id)
    return fetch_page(
        session, stmt, params, allowed=SORTABLE, default=[Organization.path], tiebreak=Organization.id
    )


def _check_code(level: str, code: str | None, parent: Organization | None, loc: str = "code") -> None:
    expected = CODE_LENGTH.get(level)
    if code is None:
        if expected is not None:
            raise invalid(["body", loc], f"a {level} needs its {expected}-digit division code")
        return
    if expected is not None and len(code) != expected:
        raise invalid(["body", loc], f"a {level}'s division code has {expected} digits, not {len(code)}")
    if parent is not None and parent.code:
        if not code.startswith(parent.code) or len(code) <= len(parent.code):
            raise invalid(
                ["body", loc], f"the division code must extend the parent's code {parent.code}"
            )


def _check_level(level: str, domain: str, parent: Organization | None) -> None:
    allowed_parents = PARENT_LEVELS[level]
    if parent is None:
        raise invalid(["body", "parent_id"], f"a {level} needs a parent organisation")
    if parent.level not in allowed_parents:
        raise invalid(
            ["body", "parent_id"],
            f"a {level}'s parent must be a {' or '.join(allowed_parents)}, not a {parent.level}",
        )
    domains = LEVEL_DOMAINS.get(level)
    if domains and domain not in domains:
        raise invalid(["body", "domain"], f"a {level} belongs to the {' or '.join(domains)} domain")


def _check_unique(session: Session, *, code: str | None, credit_code: str | None, own_id: int | None) -> None:
    if code is not None:
        other = session.scalar(select(Organization.id).where(Organization.code == code))
        if other is not None and other != own_id:
            raise conflict("duplicate_code", f"Division code {code} is already used by organisation {other}.")
    if credit_code is not None:
        other = session.scalar(select(Organization.id).where(Organization.credit_code == credit_code))
        if other is not None and other != own_id:
            raise conflict("duplicate_credit_code", f"Credit code {credit_code} is already in use.")


def create(session: Session, actor: Actor, data: OrganizationCreate) -> Organization:
    """Create an organisation under a parent in the actor's scope."""
    if data.level == "city" or data.parent_id is None:
        raise invalid(["body", "parent_id"], "a city is the root of the tree and is created by the seed, not the API")
    parent = get(session, actor, data.parent_id)
    if parent.status != OrgStatus.active:
        raise conflict("parent_dissolved", f"Organisation {parent.id} is dissolved and takes no new children.")
    _check_level(data.level, data.domain, parent)
    _check_code(data.level, data.code, parent)
    _check_unique(session, code=data.code, credit_code=data.credit_code, own_id=None)
    org = Organization(**data.model_dump(), path=parent.path + "new/")
    session.add(org)
    session.flush()
    path = f"{parent.path}{org.id}/"
    session.execute(_SET_PATH, {"org_id": org.id, "new_path": path})
    set_committed_value(org, "path", path)
    audit.record(session, actor=actor, action="organization.create", entity="organization",
                 entity_id=org.id, org_id=org.id, after=audit.snapshot(org))
    return org


def _require_manager(actor: Actor, org: Organization, what: str) -> None:
    # The city's own record is kept by city users; every other one by the level above.
    if actor.strictly_covers(org.path) or (actor.sees_everything and org.parent_id is None):
        return
    raise ProblemError(403, "level_above_required", f"Only the level above organisation {org.id} may {what} it.")


def update_fields(
    session: Session, actor: Actor, org: Organization, data: OrganizationUpdate, expected_version: int
) -> Organization:
    """Edit the fields the PATCH names, if nobody changed the record since the client read it."""
    _require_manager(actor, org, "edit")
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "domain"):
        if required in changes and changes[required] is None:
            raise invalid(["body", required], f"{required} cannot be empty")
    if "domain" in changes:
        domains = LEVEL_DOMAINS.get(org.level)
        if domains and changes["domain"] not in domains:
            raise invalid(["body", "domain"], f"a {org.level} belongs to the {' or '.join(domains)} domain")
    if "code" in changes and changes["code"] != org.code:
        parent = session.get(Organization, org.parent_id) if org.parent_id else None
        _check_code(org.level, changes["code"], parent)
        has_coded_children = session.scalar(
            select(func.count()).select_from(Organization)
            .where(Organization.parent_id == org.id, Organization.code.is_not(None))
        )
        if has_coded_children:
            raise conflict("code_in_use", "Children's division codes extend this code; move or recode them first.")
    _check_unique(session, code=changes.get("code"), credit_code=changes.get("credit_code"), own_id=org.id)
    before = audit.snapshot(org)
    versioned_update(session, org, expected_version, changes)
    b, a = audit.changed(before, audit.snapshot(org))
    audit.record(session, actor=actor, action="organization.update", entity="organization",
                 entity_id=org.id, org_id=org.id, before=b, after=a)
    return org


def _require_not_dissolved(org: Organization) -> None:
    if org.status == OrgStatus.dissolved:
        raise conflict("already_dissolved", f"Organisation {org.id} is already dissolved.")


def dissolve(session: Session, actor: Actor, org: Organization) -> Organization:
    """Dissolve (never delete): refused while active children, people or users remain."""
    _require_manager(actor, org, "dissolve")
    _require_not_dissolved(org)
    children = session.scalar(
        select(func.count()).select_from(Organization)
        .where(Organization.parent_id == org.id, Organization.status == OrgStatus.active)
    )
    if children:
        raise conflict("has_active_children", f"Organisation {org.id} still has {children} active child organisations.")
    people = session.scalar(
        select(func.count()).select_from(Person)
        .where(Person.org_id == org.id, Person.status == PersonStatus.active)
    )
    if people:
        raise conflict("has_active_people",
                       f"Organisation {org.id} still has {people} active people; transfer them first.")
    users = session.scalar(
        select(func.count()).select_from(User).where(User.org_id == org.id, col(User.is_active).is_(True))
    )
    if users:
        raise conflict("has_active_users", f"Organisation {org.id} still has {users} active user accounts.")
    before = {"status": org.status}
    # A concurrent dissolver that committed first makes this one a 409, as if it had come second.
    transition_update(session, org, {"status": OrgStatus.dissolved}, _require_not_dissolved)
    audit.record(session, actor=actor, action="organization.dissolve", entity="organization",
                 entity_id=org.id, org_id=org.id, before=before, after={"status": org.status})
    return org


def _require_movable(org: Organization, new_parent: Organization, code: str | None) -> None:
    if new_parent.path.startswith(org.path):
        raise conflict("cycle", "An organisation cannot move under itself or one of its descendants.")
    if new_parent.id == org.parent_id and code in (None, org.code):
        raise conflict("same_parent", f"Organisation {org.id} is already under {new_parent.id}.")
    if new_parent.status != OrgStatus.active:
        raise conflict("parent_dissolved", f"Organisation {new_parent.id} is dissolved and takes no new children.")


def move(session: Session, actor: Actor, org: Organization, parent_id: int, code: str | None) -> Organization:
    """Re-parent an organisation; its whole subtree's paths are rewritten in one statement."""
    _require_manager(actor, org, "move")
    new_parent = get(session, actor, parent_id)
    _require_movable(org, new_parent, code)
    _check_level(org.level, org.domain, new_parent)
    new_code = code if code is not None else org.code
    try:
        _check_code(org.level, new_code, new_parent)
    except ProblemError:
        if code is None:
            raise invalid(["body", "code"], f"the code {org.code} does not extend the new parent's "
                          f"{new_parent.code}: send the new division code") from None
        raise
    if new_code != org.code:
        has_coded_children = session.scalar(
            select(func.count()).select_from(Organization)
            .where(Organization.parent_id == org.id, Organization.code.is_not(None))
        )
        if has_coded_children:
            raise conflict("code_in_use", "Children's division codes extend this code; recode them first.")
        _check_unique(session, code=new_code, credit_code=None, own_id=org.id)
    old_prefix = org.path
    new_prefix = f"{new_parent.path}{org.id}/"
    before = {"parent_id": org.parent_id, "path": old_prefix, "code": org.code}
    # The organisation's own row first, conditional on the version read above: a concurrent mover that committed
    # first makes this one a 409 (as if it had come second) before any path of the subtree is rewritten from a
    # prefix that is no longer the organisation's.
    transition_update(session, org, {"parent_id": new_parent.id, "code": new_code},
                      lambda current: _require_movable(current, new_parent, code))
    session.execute(
        update(Organization)
        .where(in_subtree(Organization.path, old_prefix))
        .values(path=literal(new_prefix) + func.substr(Organization.path, len(old_prefix) + 1))
        .execution_options(synchronize_session=False)
    )
    session.refresh(org)
    audit.record(session, actor=actor, action="organization.move", entity="organization", entity_id=org.id,
                 org_id=org.id, before=before,
                 after={"parent_id": org.parent_id, "path": org.path, "code": org.code})
    return org


def tree(session: Session, actor: Actor, org: Organization, depth: int) -> OrganizationNode:
    """The subtree below `org`, `depth` levels deep, in one query."""
    slashes = func.length(Organization.path) - func.length(func.replace(Organization.path, "/", ""))
    base = org.path.count("/")
    rows = session.execute(
        select(Organization.id, Organization.parent_id, Organization.level, Organization.domain,
               Organization.name, Organization.code, Organization.status, slashes.label("slashes"))
        .where(in_subtree(Organization.path, org.path), slashes <= base + depth + 1)
        .order_by(Organization.path)
    ).all()
    nodes: dict[int, OrganizationNode] = {}
    root: OrganizationNode | None = None
    for r in rows:
        node = OrganizationNode(id=r.id, level=r.level, domain=r.domain, name=r.name, code=r.code,
                                status=r.status, children=[])
        if r.slashes == base + depth + 1:
            parent = nodes.get(r.parent_id)
            if parent is not None:
                parent.children_truncated = True
            continue
        nodes[r.id] = node
        if r.id == org.id:
            root = node
        elif r.parent_id in nodes:
            nodes[r.parent_id].children.append(node)
    assert root is not None
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.code or "", n.id))
    return root

