"""Money under concurrency: real threads, each with its own connection and transaction, against committed rows.

These tests commit outside the rolled-back `db` fixture, in an organisation subtree of their own, and delete what
they created afterwards, except the audit rows (append-only; the per-run database is dropped after the run).
On SQLite writers are serialised (BEGIN IMMEDIATE); on PostgreSQL the conditional UPDATEs and row locks decide.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from app.core.db import new_session, session_scope
from app.core.errors import ProblemError
from app.core.idempotency import IdempotencyKey
from app.models.accounts import User
from app.models.funds.budgets import AllocationCreate, BudgetAllocation, BudgetLine, Disbursement
from app.models.organizations import Organization
from app.services.funds import budgets as service
from tests.factories import World, access_token, make_org
from tests.funds_support import actor_of

THREADS = 50


@dataclass
class Sandbox:
    """A committed subtree of its own: a root, a township, two users, one line."""

    root_id: int
    town_id: int
    maker_id: int
    checker_id: int
    line_id: int
    ids: dict[str, list[int]] = field(default_factory=dict)


@pytest.fixture
def sandbox(engine: Engine, world: World) -> Iterator[Sandbox]:
    with session_scope() as s:
        root = make_org(s, None, level="city", domain="organ", name="并发经费市", code=None)
        town = make_org(s, root, level="township", domain="township", name="并发经费镇", code=None)
        pw = world.users["v1"].password_hash
        maker = User(username=f"race_maker_{root.id}", password_hash=pw, role="city_admin", org_id=root.id)
        checker = User(username=f"race_checker_{root.id}", password_hash=pw, role="city_admin", org_id=root.id)
        s.add_all([maker, checker])
        s.flush()
        line = BudgetLine(fiscal_year=2019, org_id=root.id, category="party_work", name="并发", source="test",
                          allocated_fen=10 * 100_00)
        s.add(line)
        s.flush()
        box = Sandbox(root.id, town.id, maker.id, checker.id, line.id)  # type: ignore[arg-type]
    yield box
    with session_scope() as s:
        users = [box.maker_id, box.checker_id]
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id.in_(users)))  # type: ignore[attr-defined]
        s.execute(delete(Disbursement).where(Disbursement.org_id == box.root_id))
        s.execute(delete(BudgetAllocation).where(BudgetAllocation.from_org_id == box.root_id))
        s.execute(delete(BudgetLine).where(BudgetLine.org_id.in_([box.town_id])))  # type: ignore[attr-defined]
        s.execute(delete(BudgetLine).where(BudgetLine.org_id == box.root_id))
        s.execute(delete(User).where(User.id.in_(users)))  # type: ignore[attr-defined]
        s.execute(delete(Organization).where(Organization.id == box.town_id))
        s.execute(delete(Organization).where(Organization.id == box.root_id))


def actor(box: Sandbox, user_id: int) -> Any:
    with session_scope(write=False) as s:
        user = s.get(User, user_id)
        org = s.get(Organization, box.root_id)
        assert user is not None and org is not None
        return actor_of(user, org)


def race(n: int, work: Callable[[int], str]) -> list[str]:
    """Run `work(i)` in n threads released together; collect what each reports."""
    barrier = threading.Barrier(n)
    lock = threading.Lock()
    outcomes: list[str] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            result = work(i)
        except Exception as exc:  # a lost race must be a clean refusal, never anything else
            result = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == n, "a thread did not finish"
    return outcomes


def in_own_transaction(fn: Callable[[Any], None]) -> str:
    session = new_session(write=True)
    try:
        fn(session)
        session.commit()
        return "ok"
    except ProblemError as exc:
        session.rollback()
        return exc.code
    finally:
        session.close()


def test_fifty_concurrent_approvals_against_room_for_ten_approve_exactly_ten(sandbox: Sandbox) -> None:
    with session_scope() as s:
        ids = []
        for i in range(THREADS):
            d = Disbursement(line_id=sandbox.line_id, org_id=sandbox.root_id, payee_kind="other",
                             payee_name=f"收款{i}", purpose="race", disbursed_on=dt.date(2019, 6, 1),
                             amount_fen=100_00, created_by=sandbox.maker_id)
            s.add(d)
            s.flush()
            ids.append(d.id)
    checker = actor(sandbox, sandbox.checker_id)

    def approve(i: int) -> str:
        def work(session: Any) -> None:
            d = service.get_disbursement(session, checker, ids[i])
            service.approve_disbursement(session, checker, d)
        return in_own_transaction(work)

    outcomes = race(THREADS, approve)
    assert sorted(outcomes) == sorted(["ok"] * 10 + ["budget_exceeded"] * 40), outcomes
    with session_scope(write=False) as s:
        line = s.get(BudgetLine, sandbox.line_id)
        assert line is not None
        assert (line.approved_fen, line.committed_fen, line.allocated_fen) == (10 * 100_00,) * 3
        approved = s.scalar(select(func.count()).select_from(Disbursement).where(
            Disbursement.line_id == sandbox.line_id, Disbursement.status == "approved"))
        assert approved == 10


def test_concurrent_allocations_never_overspend_the_line(sandbox: Sandbox) -> None:
    maker = actor(sandbox, sandbox.maker_id)

    def allocate(i: int) -> str:
        return in_own_transaction(lambda session: service.allocate(session, maker, AllocationCreate(
            from_line_id=sandbox.line_id, to_org_id=sandbox.town_id, to_line_id=None,
            amount=Decimal("300.00"))))

    outcomes = race(20, allocate)
    # 1,000.00 holds three allocations of 300.00; the target line is created once (the first allocation).
    assert outcomes.count("ok") == 3, outcomes
    assert set(outcomes) <= {"ok", "budget_exceeded", "validation_error"}, outcomes
    with session_scope(write=False) as s:
        line = s.get(BudgetLine, sandbox.line_id)
        assert line is not None and line.allocated_down_fen == 900_00
        received = s.scalar(select(func.sum(BudgetLine.allocated_fen)).where(BudgetLine.org_id == sandbox.town_id))
        assert received == 900_00


def test_parallel_replays_of_one_idempotency_key_approve_once(sandbox: Sandbox, engine: Engine) -> None:
    from app.main import app

    with session_scope() as s:
        d = Disbursement(line_id=sandbox.line_id, org_id=sandbox.root_id, payee_kind="other", payee_name="收款",
                         purpose="replay", disbursed_on=dt.date(2019, 6, 1), amount_fen=250_00,
                         created_by=sandbox.maker_id)
        s.add(d)
        s.flush()
        d_id = d.id
        checker = s.get(User, sandbox.checker_id)
        assert checker is not None
        token = access_token(checker)
    client = TestClient(app, raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"parallel-{d_id}"}

    def post(i: int) -> str:
        r = client.post(f"/api/v1/disbursements/{d_id}/approve", headers=h)
        return f"{r.status_code} {r.json().get('status')} {r.json().get('approved_by')}"

    outcomes = race(12, post)
    assert set(outcomes) == {f"200 approved {sandbox.checker_id}"}, outcomes
    with session_scope(write=False) as s:
        keys = s.scalar(select(func.count()).select_from(IdempotencyKey).where(
            IdempotencyKey.key == f"parallel-{d_id}"))
        assert keys == 1
        line = s.get(BudgetLine, sandbox.line_id)
        assert line is not None and line.approved_fen == 250_00
