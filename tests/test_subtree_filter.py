"""The subtree filter (`path LIKE '<prefix>%'`, app.core.scope) is served by the path index, and LIKE matches
case-sensitively on both databases, so a `q` search finds the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.core.permissions import permissions_for
from app.core.scope import Actor, in_subtree, scoped_to, subtree_org_ids
from app.models.organizations import Organization
from app.models.people import Person
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


def test_a_list_filtered_by_an_organisation_in_scope_carries_one_scope_condition(db: Session, world: World) -> None:
    """`scoped_to`: an `org_id` in the caller's scope with its subtree replaces the caller's subtree (which holds it)
    in the statement; without one the caller's subtree is the condition; one outside it is a 404."""
    user = world.users["t1"]
    actor = Actor(user.id, user.username, user.role, world.t1.id, world.t1.path, permissions_for(user.role))
    stmt = select(Person.id)

    def where(org_id: int | None, subtree: bool) -> tuple[str, list[object]]:
        compiled = scoped_to(db, stmt, Person.org_id, actor, org_id, subtree=subtree).compile(db.connection())
        return str(compiled), list(compiled.params.values())

    sql, values = where(world.v1.id, True)
    assert sql.count("LIKE") == 1 and values == [f"{world.v1.path}%"]
    sql, values = where(None, False)
    assert sql.count("LIKE") == 1 and values == [f"{world.t1.path}%"]
    # one organisation by id: the caller's subtree stays in the statement (a move out of scope after the check)
    sql, values = where(world.v1.id, False)
    assert sql.count("LIKE") == 1 and values == [f"{world.t1.path}%", world.v1.id]
    for outside in (world.t2.id, world.city.id, 10**9):
        with pytest.raises(ProblemError) as refused:
            scoped_to(db, stmt, Person.org_id, actor, outside, subtree=True)
        assert refused.value.status == 404


def test_the_subtree_prefix_travels_in_the_sql_text_not_as_a_parameter(
    client: TestClient, db: Session, world: World
) -> None:
    """A prepared statement's generic plan on PostgreSQL cannot use the path index for `path LIKE $1` (it read the
    whole organisation table, twice per page); with the prefix in the text every plan can. What the driver
    receives for a township's page of people is checked on each database."""
    sent: list[tuple[str, object]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        sent.append((statement, parameters))

    db.connection()  # the app's sessions share this connection (conftest): listen on its engine
    engine = db.get_bind().engine  # type: ignore[union-attr]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        r = client.get("/api/v1/people", params={"org_id": world.t1.id, "subtree": "true"},
                       headers=world.auth("t1"))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert r.status_code == 200, r.text
    scoped = [(sql, params) for sql, params in sent if "LIKE" in sql and "FROM person" in sql]
    assert len(scoped) == 2, sent  # the count and the page
    for sql, params in scoped:
        assert f"LIKE '{world.t1.path}%" in sql, sql
        values = params.values() if isinstance(params, dict) else params
        assert not any(isinstance(v, str) and v.startswith(world.t1.path) for v in values), params  # type: ignore[union-attr]


@pytest.mark.parametrize("prefix", ["/1/2", "1/2/", "/1/2/' OR '1'='1/", "/1/%/", ""])
def test_only_an_organisation_path_is_written_into_the_sql(prefix: str) -> None:
    with pytest.raises(ValueError):
        in_subtree(Organization.path, prefix)
