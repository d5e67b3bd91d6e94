"""Regression tests for what the contract fuzzer's coverage phase found (tests/test_fuzz_contract.py), one per
finding, each written before its fix."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import World

# Static paths next to an `/{id}` route of the same collection: `/{id}` took them as an id.
STATIC_SIBLINGS = {
    "/api/v1/people/lookup": "POST",
    "/api/v1/problems/summary": "GET",
    "/api/v1/problems/escalate-overdue": "POST",
    "/api/v1/duty-posts/summary": "GET",
    "/api/v1/responsibility-letters/summary": "GET",
    "/api/v1/responsibility-letters/generate": "POST",
    "/api/v1/monthly-lists/quarterly-review": "GET",
}


@pytest.mark.parametrize("path", sorted(STATIC_SIBLINGS))
def test_allow_names_only_the_methods_of_the_static_path(client: TestClient, world: World, path: str) -> None:
    """Found: OPTIONS /api/v1/people/lookup answered `Allow: GET, POST, PATCH` (GET and PATCH are
    /people/{person_id}'s, which matched "lookup" as an id)."""
    r = client.options(path, headers=world.auth("city"))
    assert r.status_code == 405
    assert r.headers["Allow"] == STATIC_SIBLINGS[path]


@pytest.mark.parametrize("path", sorted(STATIC_SIBLINGS))
def test_an_undeclared_method_on_a_static_path_is_405(client: TestClient, world: World, path: str) -> None:
    """Found: PATCH /api/v1/problems/summary was routed to PATCH /problems/{problem_id} and answered 422
    (`summary` is not an integer) instead of 405."""
    method = "DELETE" if STATIC_SIBLINGS[path] == "POST" else "PATCH"
    r = client.request(method, path, headers={**world.auth("city"), "If-Match": '"1"'}, json={})
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == STATIC_SIBLINGS[path]
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("raw", ["1.0", "+1", "1_0", " 1", "0x1", "１"])
def test_an_id_in_the_path_is_digits_only(client: TestClient, world: World, raw: str) -> None:
    """Found with the above: pydantic's lax mode read "1.0", "+1" and "1_0" in a path as the id 1 or 10."""
    r = client.get(f"/api/v1/organizations/{raw}", headers=world.auth("city"))
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_ids_out_of_range_are_still_validation_errors(client: TestClient, world: World) -> None:
    for raw in ("0", "99999999999"):
        r = client.get(f"/api/v1/organizations/{raw}", headers=world.auth("city"))
        assert r.status_code == 422, r.text
    assert client.get(f"/api/v1/organizations/{world.city.id}", headers=world.auth("city")).status_code == 200
