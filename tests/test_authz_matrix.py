"""The authorisation matrix: every operation of the OpenAPI document × four roles (city_admin, auditor, township t1,
village v1) × a record in scope and a record in a sibling township/village.

The cases live in tests/authz/ (one module per area). The expected answer of each cell follows from the permission
the route asks for (read from its dependency tree, not restated here) and the scope rule: 403 without the
permission, 403 for an auditor's write, 404 for a sibling's record, 2xx otherwise, unless the case overrides the
cell with a reason. Sibling cells that cannot differ from the in-scope one are N/A (skipped with the reason): the
city and the auditor have no sibling, and a targetless request has no record to move. Meta-tests keep every
operation covered, every public operation declared and every other operation behind a token.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import routing
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.permissions import ROLE_PERMISSIONS, Permission
from app.deps import resolves_actor
from app.main import app
from app.models.audit import AuditLog
from app.models.organizations import Organization
from tests.authz import load_all
from tests.authz.registry import CASES, ROLES, SEES_EVERYTHING, TARGETS, Case, Ctx, Expect
from tests.factories import World
from tests.pii_guard import install as install_pii_guard

load_all()

# Operations that take no bearer token, and why. Nothing else may be public.
PUBLIC = {
    "meta_healthz": "liveness probe",
    "meta_readyz": "readiness probe",
    "meta_metrics": "Prometheus scrape",
    "auth_token": "the login itself",
    "auth_refresh": "authenticated by the refresh token in the body",
}
WORLD_ROLE = {"city": "city_admin", "auditor": "auditor", "t1": "township_admin", "v1": "village_admin"}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    route: Any  # fastapi RouteContext of an APIRoute

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^}/]+\}", "[^/]+", self.path) + "$")


def _walk(dependant: Any) -> Iterator[Any]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def required_permissions(route: Any) -> frozenset[Permission]:
    """Every Permission a route's dependency tree checks: the closures made by app.deps.require()."""
    found: set[Permission] = set()
    for dep in _walk(route.dependant):
        if inspect.isfunction(dep.call) and dep.call.__closure__:
            found.update(v for v in inspect.getclosurevars(dep.call).nonlocals.values() if isinstance(v, Permission))
    return frozenset(found)


def needs_token(route: Any) -> bool:
    return any(resolves_actor(dep.call) for dep in _walk(route.dependant))


def _operations() -> dict[str, Operation]:
    routes = {}
    for rc in routing.iter_route_contexts(app.routes):
        if isinstance(rc.original_route, routing.APIRoute):
            for method in rc.methods:
                routes[(method.lower(), rc.path_format)] = rc
    ops = {}
    for path, items in app.openapi()["paths"].items():
        for method, op in items.items():
            ops[op["operationId"]] = Operation(op["operationId"], method.upper(), path, routes[(method, path)])
    return ops


OPERATIONS = _operations()
COVERED = sorted(op for op in OPERATIONS if op in CASES)


def expected(case: Case, op: Operation, role: str, target: str) -> Expect:
    if (role, target) in case.expect:
        return case.expect[(role, target)]
    needed = required_permissions(op.route)
    lacking = needed - ROLE_PERMISSIONS[WORLD_ROLE[role]]  # type: ignore[index]
    if lacking:
        return Expect(403, "permission_denied", why=f"{role} lacks {', '.join(sorted(lacking))}")
    if role == "auditor" and op.method != "GET" and not case.auditor_writes:
        return Expect(403, why="auditors change nothing")
    if target == "sibling" and role not in SEES_EVERYTHING and not case.targetless:
        return Expect(404, why="the record is outside the role's scope")
    return Expect(None, why="in scope" if target == "in_scope" or role not in SEES_EVERYTHING else "the city sees all")


@pytest.fixture(scope="module")
def shared_client(engine: Any) -> Iterator[TestClient]:
    """One client for the ~2,000 requests of this module (a client per test costs a portal thread each); the
    per-test `db` fixture still gives every request the test's rolled-back transaction."""
    with TestClient(app, raise_server_exceptions=False) as c:
        install_pii_guard(c)  # as on the suite's `client` fixture: no unmasked PII to roles without pii_read
        yield c


@pytest.fixture
def client(shared_client: TestClient, db: Session) -> TestClient:
    return shared_client


def not_applicable(case: Case, role: str, target: str) -> str | None:
    """Why a cell says nothing the in-scope cell does not (it is then skipped, not sent), or None."""
    if target != "sibling" or (role, target) in case.expect:
        return None
    if role in SEES_EVERYTHING:
        return "N/A: the city and the auditor see the whole city, so they have no sibling"
    if case.targetless:
        return f"N/A: the request has no target ({case.targetless})"
    return None


CELLS = [
    pytest.param(op, role, target, id=f"{op}-{role}-{target}",
                 marks=[pytest.mark.skip(reason=na)] if (na := not_applicable(CASES[op], role, target)) else [])
    for op in COVERED for role in ROLES for target in TARGETS
]


@pytest.mark.parametrize(("operation_id", "role", "target"), CELLS)
def test_authz_cell(operation_id: str, role: str, target: str, client: TestClient, db: Session,
                    world: World) -> None:
    case, op = CASES[operation_id], OPERATIONS[operation_id]
    ctx = Ctx(db=db, world=world, role=role, target=target)
    owner = ctx.org(case.owner_key(role, target))
    req = case.build(ctx, owner)
    db.flush()
    assert req.method == op.method and op.pattern.match(req.path), (
        f"the case of {operation_id} sent {req.method} {req.path}, not {op.method} {op.path}")
    want = expected(case, op, role, target)
    last_audit = db.scalar(select(func.coalesce(func.max(AuditLog.id), 0)))
    r = client.request(req.method, req.path, params=req.params, json=req.json, data=req.data,
                       headers={**world.auth(role), **req.headers})
    where = f"{role} → {target} ({case.owner_key(role, target)}): {req.method} {req.path}"
    audited = db.execute(select(AuditLog.action, AuditLog.user_id).where(AuditLog.id > last_audit)).all()
    if want.status is None:
        assert 200 <= r.status_code < 300, f"{where}: expected {want.describe()}, got {r.status_code} {r.text[:300]}"
        if op.method != "GET" and not case.reads:
            # Every change writes its audit rows in the same transaction, in the acting user's name.
            assert audited, f"{where}: a {r.status_code} write left no audit row"
            assert {u for _, u in audited} == {world.users[role].id}, f"{where}: audit rows of others: {audited}"
        return
    kept = case.audits_refusal[0] if case.audits_refusal else None
    assert all(action == kept and user == world.users[role].id for action, user in audited), (
        f"{where}: a refused request ({r.status_code}) left audit rows {audited}")
    assert r.status_code == want.status, f"{where}: expected {want.describe()}, got {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    if want.code:
        assert r.json().get("code") == want.code, f"{where}: expected code {want.code}, got {r.json()}"


def _is_page(op: Operation) -> bool:
    schema = app.openapi()
    ok = schema["paths"][op.path][op.method.lower()]["responses"].get("200", {})
    ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    props = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
    return op.method == "GET" and "{" not in op.path and {"items", "total"} <= set(props)


LISTS = [
    pytest.param(op, role, id=f"{op}-{role}")
    for op in COVERED if _is_page(OPERATIONS[op]) and not CASES[op].targetless
    for role in ROLES if role not in SEES_EVERYTHING
    if required_permissions(OPERATIONS[op].route) <= ROLE_PERMISSIONS[WORLD_ROLE[role]]  # type: ignore[index]
]


@pytest.mark.parametrize(("operation_id", "role"), LISTS)
def test_unfiltered_list_holds_only_records_in_scope(operation_id: str, role: str, client: TestClient,
                                                     db: Session, world: World) -> None:
    """With a record on each side of the fence and no org filter, a list shows only the caller's side."""
    case = CASES[operation_id]
    sibling = Ctx(db=db, world=world, role=role, target="sibling")
    case.build(sibling, sibling.org(case.owner_key(role, "sibling")))
    ctx = Ctx(db=db, world=world, role=role, target="in_scope")
    req = case.build(ctx, ctx.org(case.owner_key(role, "in_scope")))
    db.flush()
    params = {k: v for k, v in (req.params or {}).items() if k not in ("org_id", "subtree")}
    r = client.get(req.path, params={**params, "limit": 200}, headers={**world.auth(role), **req.headers})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    root = ctx.org(role)
    in_scope = {o.id for o in db.query(Organization).filter(Organization.path.startswith(root.path))}

    def orgs_of(item: dict[str, Any]) -> list[int]:
        if case.item_orgs is not None:
            return case.item_orgs(db, item)
        if "org_id" in item:
            return [item["org_id"]]
        if "path" in item:  # organisations themselves
            return [item["id"]]
        raise AssertionError(f"{operation_id}: items carry neither org_id nor path; give the case item_orgs=")

    assert items, f"{operation_id} as {role}: the list is empty, so nothing was checked"
    leaks = [i for i in items if not set(orgs_of(i)) & in_scope]
    assert not leaks, f"{operation_id} as {role} shows records outside its scope: {leaks[:3]}"


@pytest.mark.parametrize("operation_id", sorted(op for op in OPERATIONS if op not in PUBLIC))
def test_operation_needs_a_token(operation_id: str, client: TestClient) -> None:
    op = OPERATIONS[operation_id]
    path = re.sub(r"\{[^}/]+\}", "1", op.path)
    r = client.request(op.method, path)
    assert r.status_code == 401, f"{op.method} {path} without a token answered {r.status_code} {r.text[:200]}"
    assert r.json()["code"] == "unauthenticated" and r.headers.get("WWW-Authenticate") == "Bearer"


def test_no_operation_left_out() -> None:
    missing = sorted(op for op in OPERATIONS if op not in CASES and op not in PUBLIC)
    assert not missing, (
        f"{len(missing)} operation(s) have no authorisation-matrix case; add one to tests/authz/<area>.py: "
        + ", ".join(missing))


def test_no_case_for_an_unknown_operation() -> None:
    stale = sorted(set(CASES) - set(OPERATIONS))
    assert not stale, f"cases for operations the API does not have: {stale}"
    assert not set(PUBLIC) & set(CASES), "a public operation has a matrix case"


def test_public_operations_take_no_token_and_the_rest_do() -> None:
    wrong = [op for op, o in OPERATIONS.items() if needs_token(o.route) == (op in PUBLIC)]
    assert not wrong, f"public/token mismatch (update PUBLIC or the route): {wrong}"


def test_only_declared_operations_need_no_permission() -> None:
    # An operation without a permission is open to every role: that must be a decision, written in its case.
    undeclared = [op for op in COVERED if not required_permissions(OPERATIONS[op].route) and not CASES[op].any_user]
    needless = [op for op in COVERED if required_permissions(OPERATIONS[op].route) and CASES[op].any_user]
    assert not undeclared, f"operations open to any logged-in user without `any_user=` in their case: {undeclared}"
    assert not needless, f"`any_user=` on operations that do ask for a permission: {needless}"


def test_overrides_stay_few() -> None:
    overrides = sum(len(c.expect) for c in CASES.values())
    cells = len(COVERED) * len(ROLES) * len(TARGETS)
    assert overrides <= max(10, cells // 10), f"{overrides} overridden cells out of {cells}: fix the API or the rule"
