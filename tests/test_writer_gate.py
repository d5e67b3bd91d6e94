"""Writers on SQLite queue in the event loop, not in worker threads (app.core.db.writer_gate).

A writer used to wait for SQLite's write lock inside a worker thread while the request holding the lock needed
one more thread for its next step: with as many writers in flight as threads, nothing moved until the wait
timed out (30 s). The thread pool therefore had to stay at anyio's 40; with the gate it can be small."""

from __future__ import annotations

import time
from functools import partial

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.config import get_settings
from app.core.db import session_scope
from app.models.organizations import Organization

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
