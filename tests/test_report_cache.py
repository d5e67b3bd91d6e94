"""Reports answered from memory while the tables they read are unchanged (app.core.report_cache, issue 8).

A report is served from memory only when none of the tables it read has a new token; every commit that wrote
a table gives it one, in the writing transaction. These tests check what a caller sees: the same answer as a
live computation, right after any write (through the API, or committed by another session as another worker
would), per scope and business date, and never across scopes.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core import report_cache
from app.core.permissions import Role
from app.models.accounts import User
from app.models.organizations import Organization
from app.models.responsibilities.problems import Problem
from app.services.responsibilities import clock
from tests.factories import World, access_token, make_org
from tests.funds_support import count_statements

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = "/api/v1/problems"
SUMMARY = f"{PROBLEMS}/summary"


def open_problem(client: TestClient, world: World, org: Organization, who: str = "city", **over: Any) -> None:
    body = {"org_id": org.id, "year": 2019, "source": "debriefing_appraisal", "description": "三会一课落实不到位",
            "cause_analysis": "支部书记重视不够", "rectification_measures": "建立台账", "deadline": "2019-10-31",
            **over}
    r = client.post(PROBLEMS, json=body, headers=world.auth(who))
    assert r.status_code == 201, r.text


def summary(client: TestClient, headers: dict[str, str], org_id: int, **params: Any) -> list[dict[str, Any]]:
    r = client.get(SUMMARY, params={"year": 2019, "org_id": org_id, "rollup": "true", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def row(rows: list[dict[str, Any]], org_id: int) -> dict[str, Any]:
    return next(r for r in rows if r["org_id"] == org_id)


def test_a_repeated_report_reads_only_the_tokens(client: TestClient, world: World, engine: Engine) -> None:
    open_problem(client, world, world.v1)
    first = summary(client, world.auth("city"), world.city.id)
    with count_statements(engine) as seen:
        again = summary(client, world.auth("city"), world.city.id)
    assert again == first
    # The caller, then the tokens: no statement reads the problems or the organisation tree again.
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2, reads
    assert "data_generation" in reads[1]
    assert not any("problem" in s for s in seen), seen


def test_a_write_through_the_api_is_in_the_next_report(client: TestClient, world: World) -> None:
    before = row(summary(client, world.auth("city"), world.city.id), world.t1.id)
    open_problem(client, world, world.v1)
    after = row(summary(client, world.auth("city"), world.city.id), world.t1.id)
    assert after["total"] == before["total"] + 1
    assert after["open"] == before["open"] + 1


def test_a_renamed_organisation_is_in_the_next_report(client: TestClient, world: World) -> None:
    """A report reads more than its own records: the tree (names, paths) is a table it depends on too."""
    summary(client, world.auth("city"), world.city.id)
    etag = client.get(f"/api/v1/organizations/{world.t1.id}", headers=world.auth("city")).headers["etag"]
    r = client.patch(f"/api/v1/organizations/{world.t1.id}", json={"name": "炉城街道（新）"},
                     headers={**world.auth("city"), "If-Match": etag})
    assert r.status_code == 200, r.text
    assert row(summary(client, world.auth("city"), world.city.id), world.t1.id)["org_name"] == "炉城街道（新）"


def test_the_business_date_is_part_of_the_key(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    open_problem(client, world, world.v1, deadline="2019-10-31")
    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 10, 1))
    early = row(summary(client, world.auth("city"), world.city.id), world.t1.id)
    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 12, 1))
    late = row(summary(client, world.auth("city"), world.city.id), world.t1.id)
    assert late["overdue"] == early["overdue"] + 1


def test_a_cached_report_is_never_served_across_scopes(client: TestClient, world: World) -> None:
    """The city's report of a township is in memory; another township's administrator asking for it is refused
    exactly as without the cache, and the township's own administrator gets the same figures."""
    open_problem(client, world, world.v1)
    city_view = summary(client, world.auth("city"), world.t1.id)
    refused = client.get(SUMMARY, params={"year": 2019, "org_id": world.t1.id, "rollup": "true"},
                         headers=world.auth("t2"))
    assert refused.status_code in (403, 404), refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert summary(client, world.auth("t1"), world.t1.id) == city_view
    # The village administrator may ask for their own village only, cached or not.
    assert client.get(SUMMARY, params={"year": 2019, "org_id": world.t1.id},
                      headers=world.auth("v1")).status_code in (403, 404)


def tokens(session: Session) -> dict[str, int]:
    query = select(report_cache.DataGeneration.name, report_cache.DataGeneration.token)
    return {name: token for name, token in session.execute(query)}


def a_problem(org: Organization) -> Problem:
    return Problem(org_id=org.id, year=2019, source="other", description="x", cause_analysis="x",
                   rectification_measures="x")


def test_a_rolled_back_write_leaves_every_token_as_it_was(db: Session, world: World) -> None:
    from app.core.db import new_session

    before = tokens(db)
    s = new_session(write=True)
    s.add(a_problem(world.v1))
    s.flush()
    assert "problem" in s.connection().info[report_cache.WRITTEN]
    s.rollback()
    s.close()
    assert tokens(db) == before


def test_an_audit_row_notes_both_tables_it_writes(db: Session, world: World) -> None:
    """The audit writer's append is one `WITH ... (UPDATE audit_chain_head ...) INSERT INTO audit_log` on
    PostgreSQL and two statements on SQLite: either way both tables count as written."""
    from app.core import audit
    from app.core.db import new_session
    from app.core.scope import Actor

    s = new_session(write=True)
    try:
        s.connection().info.pop(report_cache.WRITTEN, None)
        audit.record(s, actor=Actor.system(), action="test.noted", entity="test", entity_id=1)
        assert {"audit_log", "audit_chain_head"} <= s.connection().info[report_cache.WRITTEN]
    finally:
        s.rollback()
        s.close()


def test_a_statement_with_common_table_expressions_notes_every_table_it_writes() -> None:
    from types import SimpleNamespace

    conn: Any = SimpleNamespace(info={})
    report_cache._note(conn, None, 'WITH a AS (UPDATE "x_table" SET v = 1 RETURNING id), b AS (DELETE FROM y_table) '
                       "INSERT INTO z_table SELECT id FROM a", None, None, False)
    report_cache._note(conn, None, "WITH a AS (SELECT id FROM w_table FOR UPDATE) SELECT * FROM a", None, None, False)
    assert conn.info[report_cache.WRITTEN] == {"x_table", "y_table", "z_table"}


def test_a_commit_gives_exactly_the_written_tables_new_tokens(db: Session, world: World) -> None:
    from app.core.db import new_session

    before = tokens(db)
    s = new_session(write=True)
    s.connection().info.pop(report_cache.WRITTEN, None)
    s.add(a_problem(world.v1))
    s.commit()
    s.close()
    after = tokens(db)
    assert {name for name in after if after[name] != before.get(name)} == {"problem"}


def test_a_report_computed_after_writing_in_the_same_transaction_is_not_kept(db: Session, world: World) -> None:
    from app.core.db import new_session
    from app.core.scope import Actor
    from app.services.responsibilities import problems

    city = world.users["city"]
    actor = Actor(user_id=city.id, username=city.username, role=city.role, org_id=world.city.id,
                  org_path=world.city.path, permissions=frozenset())
    report_cache.clear()
    s = new_session(write=True)
    s.add(a_problem(world.v1))
    s.flush()
    problems.summary(s, actor, year=2019, org_id=world.city.id, subtree=False, rollup=True)
    assert len(report_cache._cache) == 0
    s.rollback()
    s.close()


# --- a write committed by another session, as another worker or host would --------------------------------


@pytest.fixture
def committed_city(engine: Engine, world: World) -> Iterator[tuple[int, int, str]]:
    """A city of its own, committed (no outer test transaction), and its administrator's token."""
    from app.core.db import session_scope

    with session_scope() as s:
        root = make_org(s, None, level="city", domain="organ", name="缓存市", code=None)
        town = make_org(s, root, level="township", domain="township", name="缓存镇", code=None)
        village = make_org(s, town, level="village", domain="rural", name="缓存村", code=None)
        user = User(username=f"cache_city_{root.id}", password_hash=world.users["v1"].password_hash,
                    role=Role.city_admin, org_id=root.id)
        s.add(user)
        s.flush()
        assert root.id and town.id and village.id and user.id
        ids = (root.id, town.id, village.id, user.id)
        token = access_token(user)
    yield ids[0], ids[2], token
    with session_scope() as s:
        s.execute(delete(Problem).where(Problem.org_id == ids[2]))
        s.execute(delete(User).where(User.id == ids[3]))
        for org_id in (ids[2], ids[1], ids[0]):
            s.execute(delete(Organization).where(Organization.id == org_id))


def test_a_write_committed_by_another_process_is_in_the_next_report(
    engine: Engine, committed_city: tuple[int, int, str]
) -> None:
    """Another process (a second worker, another host, a CLI) commits a problem: it shares nothing with this
    process's memory, only the database, where its commit gave the problem table a new token."""
    from app.main import app

    root, village, token = committed_city
    headers = {"Authorization": f"Bearer {token}"}
    writer = (
        "import sys\n"
        "from app.core.db import configure_engine, session_scope\n"
        "from app.models.responsibilities.problems import Problem\n"
        "configure_engine(sys.argv[1])\n"
        "with session_scope() as s:\n"
        f"    s.add(Problem(org_id={village}, year=2019, source='other', description='另一进程写入',"
        " cause_analysis='x', rectification_measures='x'))\n"
    )
    with TestClient(app) as client:
        first = summary(client, headers, root)
        assert summary(client, headers, root) == first  # from memory
        done = subprocess.run([sys.executable, "-c", writer, engine.url.render_as_string(hide_password=False)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        after = summary(client, headers, root)
    assert sum(r["total"] for r in after) == sum(r["total"] for r in first) + 1


@pytest.mark.parametrize("path", [
    "/api/v1/problems/summary?year=2019&rollup=true", "/api/v1/responsibility-letters/summary?year=2019",
    "/api/v1/duty-posts/summary?year=2019", "/api/v1/audits/summary?year=2019", "/api/v1/venues/summary",
    "/api/v1/budgets/execution?year=2019&subtree=true", "/api/v1/subsidies/summary?year=2019&subtree=true",
    "/api/v1/dual-evaluations/summary?year=2019", "/api/v1/frontline-groups/summary?year=2019",
])
def test_an_answer_from_memory_is_the_same_bytes(client: TestClient, world: World, path: str) -> None:
    """The first answer after a computation is serialised by FastAPI; later ones are the bytes kept with the
    entry (serves_json): the same document, byte for byte, with the same media type."""
    open_problem(client, world, world.v1)
    report_cache.clear()
    first = client.get(path, headers=world.auth("city"))
    again = client.get(path, headers=world.auth("city"))
    served = client.get(path, headers=world.auth("city"))
    assert first.status_code == again.status_code == served.status_code == 200, first.text
    assert again.content == first.content and served.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert report_cache.CACHE_LOOKUPS.labels("hit")._value.get() >= 2
