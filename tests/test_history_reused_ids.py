"""A record's history starts at its own creation, even under an id another record had (app.core.history).

SQLite reuses the id of a deleted record (the largest): the audit rows of the old record stay under that id. No
recorded collection deletes through the API, so the old record is deleted in the database (as the concurrency
tests do with what they committed); on PostgreSQL the sequence is set back so that the new record gets the id too.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from app.models.posts import DutyPost
from tests.factories import World

POSTS = "/api/v1/duty-posts"


def _post(client: TestClient, world: World, title: str) -> int:
    r = client.post(POSTS, headers=world.auth("v1"), json={
        "org_id": world.v1.id, "year": 2019, "title": title, "field": "stability", "duties": "x"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_a_new_record_under_a_reused_id_has_only_its_own_history(client: TestClient, world: World,
                                                                  db: Session) -> None:
    old = _post(client, world, "旧岗")
    assert client.post(f"{POSTS}/{old}/close", headers=world.auth("v1")).status_code == 200
    old_history = client.get(f"{POSTS}/{old}/history", headers=world.auth("v1")).json()
    assert [v["action"] for v in old_history["items"]] == ["duty_post.close", "duty_post.create"]

    db.execute(delete(DutyPost).where(DutyPost.id == old))
    db.flush()
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT setval(pg_get_serial_sequence('duty_post', 'id'), :next, false)"), {"next": old})
    new = _post(client, world, "新岗")
    assert new == old, "the new post should take the deleted one's id"

    history = client.get(f"{POSTS}/{new}/history", headers=world.auth("v1")).json()
    assert [v["action"] for v in history["items"]] == ["duty_post.create"], history
    assert history["total"] == 1
    created = {c["field"]: c["after"] for c in history["items"][0]["changes"]}
    assert created["title"] == "新岗"
    assert client.get(f"{POSTS}/{new}", headers=world.auth("v1")).json()["status"] == "open"
