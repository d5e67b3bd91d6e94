"""Service clients: other government systems that call the API with the OAuth2 client-credentials grant."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import StringConstraints
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.permissions import Permission
from app.models.common import CreateModel, created_at_field, id_field, updated_at_field

CLIENT_NAME_PATTERN = r"^\S(?:.*\S)?$"  # no leading or trailing blanks


class ServiceClient(SQLModel, table=True):
    """One client. Its principal is a user_account row of role service_client (`user_id`): that row carries the
    token_version that revocation and rotation bump, and is the id every record the client writes refers to
    (created_by, approved_by, idempotency keys, audit rows), so nothing downstream needs to know about clients."""

    __tablename__ = "service_client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100, unique=True)
    user_id: int = Field(foreign_key="user_account.id", unique=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    permissions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    # token_digest() of the secret: 256 random bits need no slow hash, and the token endpoint stays fast.
    secret_hash: str = Field(max_length=64)
    is_active: bool = True
    created_by: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()
    secret_rotated_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ClientCreate(CreateModel):
    name: Annotated[str, StringConstraints(pattern=CLIENT_NAME_PATTERN)] = Field(
        min_length=2, max_length=100, description="Unique (case-insensitive); audit rows name the client by it")
    org_id: int = id_field(description="The root of the client's scope: it sees and changes only this subtree")
    permissions: list[Permission] | None = Field(
        default=None, max_length=len(Permission),
        description="A subset of the permissions the creating administrator holds, never users_manage or "
                    "clients_manage. Default: read-only (every *_read permission except pii_read).")


class ClientPublic(SQLModel):
    id: int
    client_id: str
    name: str
    org_id: int
    permissions: list[Permission]
    is_active: bool
    created_by: int | None
    created_at: dt.datetime
    secret_rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ClientWithSecret(ClientPublic):
    client_secret: str = Field(description="Shown this once: only its hash is stored")


class ClientToken(SQLModel):
    """The client-credentials answer (RFC 6749 §4.4.3): an access token and no refresh token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    scope: str = Field(description="The permissions the token carries, space-separated and sorted: those the "
                                   "request's `scope` named, or all the client's when it named none")
