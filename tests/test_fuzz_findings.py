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


# Lax coercion: pydantic's lax mode took well-formed values of a neighbouring type where the contract names one.
LAX_QUERIES = [
    "/api/v1/organizations?updated_since=0.5",  # a date-time as a Unix timestamp (every list's updated_since)
    "/api/v1/audit-log?to=0.5",
    "/api/v1/audit-log?from=1700000000",
    "/api/v1/party-dues/rates?on=0",  # a date as a Unix timestamp
    "/api/v1/post-logs?date_to=0",
    "/api/v1/subsidy-policies?on=2019-01-01T00:00:00",  # a date as a date-time at midnight
]


@pytest.mark.parametrize("url", LAX_QUERIES)
def test_dates_and_times_in_queries_are_iso_8601_only(client: TestClient, world: World, url: str) -> None:
    """Found: `?updated_since=0.5`, `?to=0.5` and `?on=0` were read as Unix timestamps and answered 200."""
    r = client.get(url, headers=world.auth("city"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_iso_dates_and_times_in_queries_still_work(client: TestClient, world: World) -> None:
    for url in ("/api/v1/organizations?updated_since=2019-01-01T00:00:00Z", "/api/v1/party-dues/rates?on=2019-05-01",
                "/api/v1/audit-log?from=2019-01-01T00:00:00%2B08:00", "/api/v1/post-logs?date_to=2019-12-31"):
        assert client.get(url, headers=world.auth("city")).status_code == 200, url


# Body fields given a JSON value of another type than the contract's (found on the operations named).
LAX_BODIES = [
    ("/api/v1/budget-lines", {"allocated": 0}),  # a yuan string as a JSON number
    ("/api/v1/budget-lines", {"allocated": 100}),
    ("/api/v1/facility-types", {"position": False}),  # an integer as a boolean
    ("/api/v1/cadre-duties", {"sort_order": True}),
    ("/api/v1/training/policies", {"school_min_hours": False}),
    ("/api/v1/evaluation-settings", {"value": 0}),  # a decimal string as a JSON number
    ("/api/v1/facilities", {"in_use": 0}),  # a boolean as an integer
    ("/api/v1/problems", {"deadline": 0}),  # a date as a Unix timestamp
    ("/api/v1/problems", {"deadline": "2019-06-30T00:00:00"}),
]


@pytest.mark.parametrize(("path", "field"), LAX_BODIES, ids=[f"{p}-{next(iter(f))}" for p, f in LAX_BODIES])
def test_body_fields_take_only_the_json_type_the_contract_names(
    client: TestClient, world: World, path: str, field: dict[str, object]
) -> None:
    """Found: `"position": false` was stored as 0, `"in_use": 0` as false, `"allocated": 0` as 0.00 yuan."""
    r = client.post(path, json=field, headers=world.auth("city"))
    assert r.status_code == 422, r.text
    name = next(iter(field))
    assert any(name in str(e.get("loc")) + str(e.get("msg")) for e in r.json()["errors"]), r.json()["errors"]
