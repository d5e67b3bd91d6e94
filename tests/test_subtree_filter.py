"""The subtree filter (`path LIKE '<prefix>%'`, app.core.scope) is served by the path index, and LIKE matches
case-sensitively on both databases, so a `q` search finds the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.scope import subtree_org_ids
from tests.factories import World, make_org


def test_the_subtree_filter_searches_the_path_index_on_sqlite(db: Session, world: World) -> None:
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's index is varchar_pattern_ops, made for a prefix LIKE; on the tests' few rows "
                    "its planner rightly prefers a sequential scan, so there is no plan to assert")
    compiled = subtree_org_ids(world.t1.path).compile(conn, compile_kwargs={"literal_binds": True})
    plan = " ".join(row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "SEARCH organization USING COVERING INDEX ix_organization_path (path>? AND path<?)" in plan, plan


def test_a_name_search_is_case_sensitive_on_every_database(client: TestClient, world: World, db: Session) -> None:
    branch = make_org(db, world.v1, level="branch", domain="community", name="Kangding Tea Branch",
                      code="513301001001901")
    db.flush()
    h = world.auth("t1")

    def found(q: str) -> list[int]:
        r = client.get("/api/v1/organizations", params={"q": q}, headers=h)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["items"]]

    assert found("Tea") == [branch.id]
    assert found("tea") == []
