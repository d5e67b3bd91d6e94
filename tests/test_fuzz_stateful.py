"""Stateful contract fuzzing: schemathesis follows the contract's OpenAPI links (create -> get -> update,
app/core/openapi.py `add_links`), so the read and the update run against a record the create really made.

In process, as tests/test_fuzz_contract.py (its hooks and checks, its seed), in the `db` fixture's rolled-back
transaction, as the city administrator: every answer must be declared by the contract (no 5xx,
a declared status and content type, a body matching its schema). Only the contract's own links are followed
(schemathesis's link inference is off), with schema-valid data so that the chains really happen. Bounded
(few scenarios of few steps, derandomized): some ten seconds.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import Phase, settings
from schemathesis.config import SchemathesisConfig
from sqlalchemy import Connection
from sqlalchemy.orm import Session

# The module pytest collects (tests/ has no __init__.py), not tests.test_fuzz_contract: importing it under a second
# name would register its schemathesis checks twice.
from test_fuzz_contract import HEALTH, SEED  # isort: skip

from app.main import app
from tests.factories import World

SCENARIOS = 12  # hypothesis examples: each is one scenario
STEPS = 6  # at most this many calls per scenario

schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict({
    "seed": SEED,
    "request-timeout": 120,
    "generation": {
        "mode": "positive",
        "database": "none",
        "deterministic": True,
        "no-shrink": True,
        "allow-x00": False,
    },
    "phases": {"stateful": {"enabled": True, "inference": {"algorithms": []}}},
    "checks": {
        "enabled": True,
        # As in tests/test_fuzz_contract.py: its `valid_data_accepted` replaces this one.
        "positive_data_acceptance": {"enabled": False},
        "missing_required_header": {"expected-statuses": [400, 401, 403, 406, 415, 422, 428]},
    },
}))


def test_the_contract_links_create_to_get_and_update() -> None:
    """The links are there, and each one names an operation of the contract and its id parameter."""
    doc = app.openapi()
    operations = {op["operationId"]: (path, op) for path, item in doc["paths"].items()
                  for op in item.values() if isinstance(op, dict) and "operationId" in op}
    links = doc["paths"]["/api/v1/organizations"]["post"]["responses"]["201"]["links"]
    assert links["organizations_get"]["parameters"] == {"org_id": "$response.body#/id"}
    assert links["organizations_update"]["parameters"] == {"org_id": "$response.body#/id"}
    assert "If-Match" in links["organizations_update"]["description"]
    nested = doc["paths"]["/api/v1/standard-sets/{set_id}/items"]["post"]["responses"]["201"]["links"]
    assert nested["standard_items_update"]["parameters"] == {"set_id": "$request.path.set_id",
                                                             "item_id": "$response.body#/id"}
    for path, item in doc["paths"].items():
        for link in item.get("post", {}).get("responses", {}).get("201", {}).get("links", {}).values():
            target_path, target = operations[link["operationId"]]
            assert target_path.startswith(path)
            names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert set(link["parameters"]) == names, (path, link)


def test_stateful(world: World, db: Session) -> None:
    who = "city"  # holds every permission: each create's random data (any org_id) is in scope
    connection = db.get_bind()
    assert isinstance(connection, Connection)

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        """Each scenario starts from the same data (a savepoint rolled back at its end): what one scenario
        created would change the next one's answers, which Hypothesis takes for a flaky test."""

        def setup(self) -> None:
            etags.clear()  # SQLite gives a rolled-back record's id to the next one
            self.savepoint = connection.begin_nested()

        def teardown(self) -> None:
            self.savepoint.rollback()

        def before_call(self, case: Any) -> None:
            path = case.formatted_path
            if case.method == "PATCH" and path in created:
                # As the link's description says: the ETag of the GET goes into If-Match (instead of a generated
                # one; schemathesis links set parameters, not this header).
                etag = etags.get(path) or reader.get(path, headers=world.auth(who)).headers.get("ETag")
                headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "if-match"}
                case.headers = {**headers, "If-Match": etag}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": world.auth(who)}

        def after_call(self, response: Any, case: Any) -> None:
            path = case.formatted_path
            etags[path] = response.headers.get("ETag") or ""
            if response.status_code == 201 and isinstance(body := _json(response), dict) and "id" in body:
                created.add(f"{path}/{body['id']}")
            elif case.method in ("GET", "PATCH") and path in created:
                followed.append((case.method, case.operation.path, response.status_code))

    reader = TestClient(app, raise_server_exceptions=False)
    created: set[str] = set()
    etags: dict[str, str] = {}
    followed: list[tuple[str, str, int]] = []

    Machine.run(settings=settings(
        max_examples=SCENARIOS, stateful_step_count=STEPS, derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=HEALTH,
    ))
    # The links were followed: a record a scenario created was read, and changed, by its id.
    assert {method for method, _, status in followed if status == 200} == {"GET", "PATCH"}, followed


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
