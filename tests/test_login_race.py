"""Login throttling under a burst of parallel attempts: real threads, each with its own connection and transaction,
against a committed user. Exactly `login_max_failures` wrong passwords are tried; every other attempt waits for the
window (on PostgreSQL the advisory lock on the username decides, on SQLite the serialised writers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine

from app.core.config import get_settings
from app.core.db import session_scope
from app.models.accounts import LoginFailure, User
from app.services import accounts
from tests.factories import World
from tests.test_funds_concurrency import race

THREADS = 16


@pytest.fixture
def committed_user(engine: Engine, world: World) -> Iterator[str]:
    name = f"race_login_{uuid.uuid4().hex[:8]}"
    with session_scope() as s:
        s.add(User(username=name, password_hash=world.users["v1"].password_hash, role="village_admin",
                   org_id=world.v1.id))
    yield name
    with session_scope() as s:
        s.execute(delete(LoginFailure).where(LoginFailure.username == name))
        s.execute(delete(User).where(User.username == name))


def _burst(username: str, password: str) -> list[str]:
    def attempt(i: int) -> str:
        # Half the burst spells the username in capitals: one account, one count.
        name = username.upper() if i % 2 else username
        try:
            with session_scope() as s:
                try:
                    accounts.login(s, name, password)
                    return "ok"
                except accounts.LoginRejected:
                    return "rejected"  # its failure row commits with the transaction
        except accounts.LoginThrottled:
            return "throttled"

    return race(THREADS, attempt)


def test_a_parallel_burst_of_wrong_passwords_gets_exactly_the_allowed_tries(committed_user: str) -> None:
    limit = get_settings().login_max_failures
    outcomes = _burst(committed_user, "wrong-password-123")
    assert len(outcomes) == THREADS, outcomes
    assert outcomes.count("rejected") == limit, sorted(outcomes)
    assert outcomes.count("throttled") == THREADS - limit, sorted(outcomes)
    with session_scope() as s, pytest.raises(accounts.LoginThrottled):
        accounts.login(s, committed_user, "correct-horse-battery")
