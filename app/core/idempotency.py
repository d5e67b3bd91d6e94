"""Idempotency-Key for POSTs that move money (API.md): a replay returns the first answer and moves nothing.

How a route uses it (any area may):

    from app.core import idempotency
    from app.core.idempotency import IdempotencyDep

    @router.post("/things", status_code=201, ...)
    def create_thing(body: ThingCreate, session: SessionDep, actor: ThingsWrite, idem: IdempotencyDep) -> Any:
        replay = idempotency.begin(session, actor, idem)
        if replay is not None:
            return replay                       # the stored answer; nothing else runs
        thing = service.create(session, actor, body)
        return idempotency.finish(session, idem, 201, ThingPublic.model_validate(thing),
                                  headers={"Location": f"/api/v1/things/{thing.id}"})

Rules it keeps:
- Keys are per user: the table is unique on (user_id, key). Without the header the route runs normally.
- `begin` claims the key by inserting its row in the request's own transaction, before the work. The work,
  the key and the stored answer commit together or not at all: a request that fails (any 4xx, 5xx) leaves no
  key, so the client may retry it with the same key.
- A replay with the same method, path and body (JSON compared canonically: key order and whitespace do not
  matter) gets the stored status and body back, with the header `Idempotent-Replayed: true`, and moves nothing.
  The same key with another method, path or body is 422 `idempotency_key_reused`.
- Concurrent requests with one key: the unique constraint decides. On PostgreSQL the second INSERT waits for the
  first transaction; when it commits, the loser reads the winner's stored answer and returns it (if the winner
  rolled back, the loser proceeds as the first). On SQLite writers are serialised (BEGIN IMMEDIATE), so the
  second request simply finds the row. A row without an answer (a transaction still running where its row is
  visible) answers 409 `idempotency_in_flight`: retry later.
- Keys are kept at least RETENTION (24 h); `purge_expired` deletes older ones. It runs whenever the service starts
  (`python -m app serve`) and with `python -m app purge`, which a deployment runs daily (cron, a systemd timer or
  a Kubernetes CronJob); a key older than RETENTION that is still there only means it was not purged yet.
- Store only what the client may see again: the answer is replayed to the same user only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, Index, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import Column, Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.core.errors import ProblemError
from app.core.scope import Actor

RETENTION = dt.timedelta(hours=24)
REPLAY_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,255}$"


class IdempotencyKey(SQLModel, table=True):
    """One claimed key: the request it was first used for and the answer that request got."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_key_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    user_id: int = Field(foreign_key="user_account.id")
    method: str = Field(max_length=10)
    path: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    response_status: int | None = None
    response_body: Any | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    response_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


@dataclass
class IdempotentRequest:
    """What the dependency read from the request; `row_id` is set once `begin` has claimed the key."""

    key: str | None
    method: str
    path: str
    request_hash: str
    row_id: int | None = None


def body_hash(raw: bytes) -> str:
    """SHA-256 of the body; JSON bodies canonically (sorted keys, no whitespace) so formatting is no change."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


async def idempotency_request(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=255, pattern=KEY_PATTERN,
               description="Makes the POST safe to retry: a replay with the same key and body returns the first "
                           "answer and moves nothing; the same key with another body is 422. Kept at least 24 h."),
    ] = None,
) -> IdempotentRequest:
    raw = await request.body()  # FastAPI has already read (and cached) the body of a route with one
    return IdempotentRequest(key=idempotency_key, method=request.method, path=request.url.path[:255],
                             request_hash=body_hash(raw))


IdempotencyDep = Annotated[IdempotentRequest, Depends(idempotency_request)]


def _find(session: Session, user_id: int, key: str) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))


def _replay(row: IdempotencyKey, req: IdempotentRequest) -> JSONResponse:
    if (row.method, row.path, row.request_hash) != (req.method, req.path, req.request_hash):
        raise ProblemError(
            422, "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request; use a new key for a new request.",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "key already used with another request"}],
        )
    if row.response_status is None:
        raise ProblemError(409, "idempotency_in_flight",
                           "A request with this Idempotency-Key is still being processed; retry shortly.",
                           headers={"Retry-After": "1"})
    headers = {**(row.response_headers or {}), REPLAY_HEADER: "true"}
    return JSONResponse(row.response_body, status_code=row.response_status, headers=headers)


def begin(session: Session, actor: Actor, req: IdempotentRequest) -> JSONResponse | None:
    """Claim the key for this request, or return the stored answer of its first use (None: go ahead)."""
    if req.key is None:
        return None
    if actor.user_id is None:
        raise ProblemError(422, "idempotency_unsupported", "Idempotency keys belong to a user.")
    existing = _find(session, actor.user_id, req.key)
    if existing is not None:
        return _replay(existing, req)
    row = IdempotencyKey(key=req.key, user_id=actor.user_id, method=req.method, path=req.path,
                         request_hash=req.request_hash)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # A concurrent request with this key committed first: answer as it did.
        winner = _find(session, actor.user_id, req.key)
        if winner is None:  # pragma: no cover - the winner vanished (purged): a conflict, not a 500
            raise ProblemError(409, "idempotency_in_flight", "Retry the request.") from None
        return _replay(winner, req)
    req.row_id = row.id
    return None


def finish(
    session: Session, req: IdempotentRequest, status: int, body: BaseModel | Any, *,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Store the answer with the claimed key (if any) and return it as the response."""
    content = jsonable_encoder(body)
    if req.row_id is not None:
        session.execute(
            update(IdempotencyKey).where(IdempotencyKey.id == req.row_id)
            .values(response_status=status, response_body=content, response_headers=headers or None)
            .execution_options(synchronize_session=False)
        )
        session.flush()
    return JSONResponse(content, status_code=status, headers=headers)


def purge_expired(session: Session, *, now: dt.datetime | None = None) -> int:
    """Delete keys older than RETENTION; returns how many."""
    cutoff = (now or utcnow()) - RETENTION
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
