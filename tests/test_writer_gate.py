"""Writers on SQLite queue in the event loop, not in worker threads (app.core.db.writer_gate).

A writer used to wait for SQLite's write lock inside a worker thread while the request holding the lock needed
one more thread for its next step: with as many writers in flight as threads, nothing moved until the wait
timed out (30 s). The thread pool therefore had to stay at anyio's 40; with the gate it can be small.
Password logins, verified one at a time, wait for their turn in the event loop for the same reason."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from app.core.config import get_settings
from app.core.db import session_scope
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


@dataclass
class Held:
    """Password verifications held until `release` is set (or 10 s pass); `begun` is set once one has begun."""

    begun: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def after(self, calls: int) -> Callable[[Callable[[], Any]], Any]:
        """Wrap `calls` requests: once all of them have answered, the verifications go on."""
        left = [calls]
        lock = threading.Lock()

        def wrap(call: Callable[[], Any]) -> Any:
            try:
                return call()
            finally:
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        self.release.set()

        return wrap

    def once_begun(self, call: Callable[[], Any]) -> Any:
        self.begun.wait(10)
        return call()


@pytest.fixture
def held_verification(monkeypatch: pytest.MonkeyPatch) -> Held:
    from app.core import security

    verify, held = security._password_hash.verify, Held()

    def slow(password: str, hashed: str) -> bool:
        held.begun.set()
        held.release.wait(10)
        return verify(password, hashed)

    monkeypatch.setattr(security._password_hash, "verify", slow)
    return held


def test_a_burst_of_logins_leaves_the_threads_to_other_requests(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, held_verification: Held  # noqa: F811
) -> None:
    """Six logins at once on a pool of two threads, the first one's verification held: a list read sent while
    they queue is answered before any of them. A login used to wait for the verification before it inside a
    worker thread, so the burst held every thread and the read waited until the verification was let go (10 s).
    That could happen on PostgreSQL; on SQLite logins, being writes, also queue behind the writer gate."""
    from app.main import app

    monkeypatch.setattr(get_settings(), "worker_threads", 2)
    finished: list[str] = []
    login = {"username": f"race_town_{subtree.root}", "password": PASSWORD}
    with TestClient(app) as client:

        def log_in() -> Any:
            answer = client.post("/api/v1/auth/token", data=login)
            finished.append("login")
            return answer

        def read() -> Any:
            time.sleep(0.05)  # the other logins have queued by now
            answer = client.get("/api/v1/organizations", params={"limit": 5}, headers=auth(subtree, "town"))
            finished.append("read")
            return answer

        answers = race([log_in] * 6 + [partial(held_verification.once_begun, partial(held_verification.after(1),
                                                                                     read))])
    assert [a.status_code for a in answers] == [200] * 7, [a.text for a in answers if a.status_code != 200]
    assert finished[0] == "read", finished


def test_a_login_that_waits_too_long_for_its_turn_is_a_503_and_issues_nothing(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, held_verification: Held  # noqa: F811
) -> None:
    from app.main import app
    from app.routers import accounts

    monkeypatch.setattr(accounts, "WRITER_WAIT_SECONDS", 0.05)
    user = f"race_village_{subtree.root}"
    with session_scope(write=False) as s:
        before = s.scalar(select(func.count()).select_from(RefreshToken))
    with TestClient(app) as client:
        log_in = partial(client.post, "/api/v1/auth/token", data={"username": user, "password": PASSWORD})
        answers = race([log_in, partial(held_verification.once_begun, partial(held_verification.after(1), log_in))])
    assert [a.status_code for a in answers] == [200, 503], [a.text for a in answers]
    busy = answers[1]
    assert busy.json()["code"] == "service_unavailable" and busy.headers["Retry-After"] == "5"
    assert busy.headers["content-type"].startswith("application/problem+json")
    with session_scope(write=False) as s:
        assert s.scalar(select(func.count()).select_from(RefreshToken)) == before + 1  # one login's pair only


def test_what_hashes_a_password_takes_the_turn_and_nothing_else_does(
    subtree: Subtree, monkeypatch: pytest.MonkeyPatch, held_verification: Held  # noqa: F811
) -> None:
    """While a login's verification is held, a user creation and a user edit that sets a password (both hash
    one) wait for their turn and, with the wait cut to 0.05 s, answer 503; a token request without a password,
    a client-credentials request, an edit of a name and a body that is not JSON hash nothing, take no turn and
    get their own answers (after the login on SQLite, where they are writes)."""
    from app.main import app
    from app.routers import accounts

    monkeypatch.setattr(accounts, "WRITER_WAIT_SECONDS", 0.05)
    user = f"race_village_{subtree.root}"
    edited = f"/api/v1/users/{subtree.user_ids[2]}"  # the village's administrator, in the town's scope
    held = held_verification
    then_let_go = held.after(2)  # the two that wait for a turn

    with TestClient(app) as client:
        token = partial(client.post, "/api/v1/auth/token")
        town = auth(subtree, "town")
        answers = race([partial(token, data={"username": user, "password": PASSWORD})] + [
            partial(held.once_begun, call) for call in (
                partial(then_let_go, partial(client.post, "/api/v1/users", headers=town, json={
                    "username": f"turn_{subtree.root}", "password": "a-long-password-1", "role": "village_admin",
                    "org_id": subtree.village})),
                partial(token, data={"username": user}),
                partial(token, data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}),
                partial(then_let_go, partial(client.patch, edited, headers=town,
                                             json={"password": "another-long-password"})),
                partial(client.patch, edited, headers=town, json={"full_name": "改名不等待"}),
                partial(client.patch, edited, headers={**town, "Content-Type": "application/json"},
                        content=b"{not json"),
            )
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
