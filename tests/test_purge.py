"""`python -m app purge` (also run by `serve` at start) deletes what is kept only for a while, nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.__main__ import main
from app.core.config import get_settings
from app.core.idempotency import RETENTION, IdempotencyKey
from app.models.accounts import LoginFailure
from tests.factories import World


def test_purge_deletes_expired_keys_and_old_failures_only(db: Session, world: World,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    user_id = world.users["v1"].id
    assert user_id is not None

    def key(name: str, age: dt.timedelta) -> IdempotencyKey:
        return IdempotencyKey(key=name, user_id=user_id, method="POST", path="/x", request_hash="0" * 64,
                              created_at=now - age)

    window = dt.timedelta(minutes=get_settings().login_window_minutes)
    db.add_all([key("purge-old", RETENTION + dt.timedelta(minutes=1)), key("purge-new", RETENTION / 2),
                LoginFailure(username="purge_old", at=now - window - dt.timedelta(minutes=1)),
                LoginFailure(username="purge_new", at=now)])
    db.flush()
    assert main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "idempotency_keys=" in out and "login_failures=" in out
    keys = set(db.scalars(select(IdempotencyKey.key).where(IdempotencyKey.key.like("purge-%"))))  # type: ignore[attr-defined]
    assert keys == {"purge-new"}
    failures = set(db.scalars(select(LoginFailure.username).where(LoginFailure.username.like("purge_%"))))  # type: ignore[attr-defined]
    assert failures == {"purge_new"}
