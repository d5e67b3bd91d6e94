"""Writers on SQLite queue in the event loop, not in worker threads (app.core.db.writer_gate).

A writer used to wait for SQLite's write lock inside a worker thread while the request holding the lock needed
one more thread for its next step: with as many writers in flight as threads, nothing moved until the wait
timed out (30 s). The thread pool therefore had to stay at anyio's 40; with the gate it can be small.
Password logins, verified one at a time, wait for their turn in the event loop for the same reason."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from app.core.config import get_settings
from app.core.db import get_engine, session_scope
from app.models.accounts import RefreshToken, User
from app.models.organizations import Organization
from tests.factories import PASSWORD

from test_races import Subtree, auth, race, subtree  # noqa: F401  # isort: skip  (the fixture, by name)


def test_more_writers_than_threads_all_finish(subtree: Subtree, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from app.main import app

    monkeypatch.setattr(get_settings(), "worker_threads", 2)
    names = [f"闸门支部{i}" for i in range(8)]
    with TestClient(app) as client:  # the lifespan sets the thread pool from the settings
        calls = [partial(client.post, "/api/v1/organizations", headers=auth(subtree, "town"),
                         json={"parent_id": subtree.village, "level": "branch", "domain": "rural", "name": name})
                 for name in names]
        started = time.monotonic()
        answers = race(calls)
        elapsed = time.monotonic() - started
    with session_scope(write=False) as s:
        made = list(s.scalars(select(Organization.id).where(Organization.parent_id == subtree.village)))
    subtree.extra_orgs.extend(made)
    assert [a.status_code for a in answers] == [201] * len(names), [a.text for a in answers if a.status_code != 201]
    assert len(made) == len(names)
    assert elapsed < 20, f"the writers queued behind a timeout ({elapsed:.1f} s)"


def test_the_lifespan_sizes_the_thread_pool_and_freezes_what_start_up_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    import anyio.to_thread

    from app.main import app

    monkeypatch.setattr(get_settings(), "worker_threads", 3)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.portal is not None
        threads = client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
    assert threads == 3
    assert gc.get_freeze_count() > 0


# --- password logins queue in the event loop too (app.routers.accounts._login_turn) ------------------------


@pytest.fixture
def slow_verification(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Each password verification takes 0.25 s more (a slow argon2); the event is set once one has begun."""
    from app.core import security

    verify = security._password_hash.verify
    begun = threading.Event()

    def slow(password: str, hashed: str) -> bool:
        begun.set()
        time.sleep(0.25)
        return verify(password, hashed)

    monkeypatch.setattr(security._password_hash, "verify", slow)
    return begun


def test_a_burst_of_logins_leaves_the_threads_to_other_requests(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, slow_verification: threading.Event  # noqa: F811
) -> None:
    """Six logins at once on a pool of two threads: a list read sent while they queue is answered before the
    second of them. A login used to wait for the verification before it inside a worker thread, so the burst
    held every thread and the read waited for most of it. PostgreSQL only: on SQLite logins, being writes,
    already queued behind the writer gate, one in a thread at a time."""
    from app.main import app

    if get_engine().dialect.name != "postgresql":
        pytest.skip("on SQLite every login already queues behind the writer gate")

    monkeypatch.setattr(get_settings(), "worker_threads", 2)
    finished: list[str] = []
    login = {"username": f"race_town_{subtree.root}", "password": PASSWORD}
    with TestClient(app) as client:

        def log_in() -> Any:
            answer = client.post("/api/v1/auth/token", data=login)
            finished.append("login")
            return answer

        def read() -> Any:
            slow_verification.wait(10)
            time.sleep(0.05)  # the other logins have queued by now
            answer = client.get("/api/v1/organizations", params={"limit": 5}, headers=auth(subtree, "town"))
            finished.append("read")
            return answer

        answers = race([log_in] * 6 + [read])
    assert [a.status_code for a in answers] == [200] * 7, [a.text for a in answers if a.status_code != 200]
    assert finished.index("read") <= 1, finished


def test_a_login_that_waits_too_long_for_its_turn_is_a_503_and_issues_nothing(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, slow_verification: threading.Event  # noqa: F811
) -> None:
    from app.main import app
    from app.routers import accounts

    monkeypatch.setattr(accounts, "WRITER_WAIT_SECONDS", 0.05)
    user = f"race_village_{subtree.root}"
    with session_scope(write=False) as s:
        before = s.scalar(select(func.count()).select_from(RefreshToken))
    with TestClient(app) as client:
        answers = race([partial(client.post, "/api/v1/auth/token", data={"username": user, "password": PASSWORD})
                        for _ in range(2)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 503], [a.text for a in answers]
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.json()["code"] == "service_unavailable" and busy.headers["Retry-After"] == "5"
    assert busy.headers["content-type"].startswith("application/problem+json")
    with session_scope(write=False) as s:
        assert s.scalar(select(func.count()).select_from(RefreshToken)) == before + 1  # one login's pair only


def test_what_hashes_a_password_takes_the_turn_and_nothing_else_does(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, slow_verification: threading.Event  # noqa: F811
) -> None:
    """While a login verifies (0.25 s), a user creation and a user edit that sets a password (both hash one) wait
    for their turn and, with the wait cut to 0.05 s, answer 503; a token request without a password, a
    client-credentials request, an edit of a name and a body that is not JSON hash nothing, take no turn and
    get their own answers."""
    from app.main import app
    from app.routers import accounts

    monkeypatch.setattr(accounts, "WRITER_WAIT_SECONDS", 0.05)
    user = f"race_village_{subtree.root}"
    edited = f"/api/v1/users/{subtree.user_ids[2]}"  # the village's administrator, in the town's scope

    def once_a_login_verifies(call: Any) -> Any:
        slow_verification.wait(10)
        return call()

    with TestClient(app) as client:
        token = partial(client.post, "/api/v1/auth/token")
        answers = race([
            partial(token, data={"username": user, "password": PASSWORD}),
            partial(once_a_login_verifies, partial(
                client.post, "/api/v1/users", headers=auth(subtree, "town"),
                json={"username": f"turn_{subtree.root}", "password": "a-long-password-1", "role": "village_admin",
                      "org_id": subtree.village})),
            partial(once_a_login_verifies, partial(token, data={"username": user})),
            partial(once_a_login_verifies, partial(token, data={"grant_type": "client_credentials",
                                                                "client_id": "nobody", "client_secret": "x"})),
            partial(once_a_login_verifies, partial(client.patch, edited, headers=auth(subtree, "town"),
                                                   json={"password": "another-long-password"})),
            partial(once_a_login_verifies, partial(client.patch, edited, headers=auth(subtree, "town"),
                                                   json={"full_name": "改名不等待"})),
            partial(once_a_login_verifies, partial(client.patch, edited, headers={
                **auth(subtree, "town"), "Content-Type": "application/json"}, content=b"{not json")),
        ])
    with session_scope() as s:  # made only if it did not wait for its turn; removed so the fixture can clean up
        made = s.execute(delete(User).where(User.username == f"turn_{subtree.root}")).rowcount  # type: ignore[attr-defined]
    assert [a.status_code for a in answers] == [200, 503, 422, 401, 503, 200, 422], [a.text for a in answers]
    assert answers[1].json()["code"] == "service_unavailable"
    assert made == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[" * 100_000, b"null", b'{"password": 1'])
def test_a_user_edit_that_is_not_json_is_a_422_whatever_it_claims_to_be(
    subtree: Subtree, content_type: str | None, body: bytes  # noqa: F811
) -> None:
    """The edit's password turn reads the body to see whether it sets a password; what is not JSON (or not an
    object) sets none, and the route refuses it as it did before."""
    from app.main import app

    headers = auth(subtree, "town", **({"Content-Type": content_type} if content_type else {}))
    with TestClient(app) as client:
        r = client.patch(f"/api/v1/users/{subtree.user_ids[2]}", content=body, headers=headers)
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
