"""User accounts, refresh tokens and login attempts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import StringConstraints
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.core.enums import LabeledEnum
from app.core.permissions import Permission, Role
from app.models.common import CreateModel, UpdateModel, created_at_field, enum_field, id_field, updated_at_field

USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,50}$"


class GrantType(LabeledEnum):
    """OAuth2 grants the token endpoint takes (RFC 6749 §4.3 and §4.4)."""

    password = "password", "密码授权", "Password"
    client_credentials = "client_credentials", "客户端凭证授权", "Client credentials"


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=50, unique=True)
    full_name: str | None = Field(default=None, max_length=50)
    password_hash: str = Field(max_length=255)
    role: Role = enum_field(index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    is_active: bool = True
    token_version: int = 1
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class RefreshToken(SQLModel, table=True):
    """One row per issued refresh token; a family is one login's chain of rotations."""

    __tablename__ = "refresh_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    family_id: str = Field(max_length=32, index=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    issued_at: dt.datetime = created_at_field()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(
        default=None, sa_type=UTCDateTime
    )
    revoked_at: dt.datetime | None = Field(
        default=None, sa_type=UTCDateTime
    )


class LoginFailure(SQLModel, table=True):
    """Failed logins by username, in the database so every worker sees the same count."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_username_at", "username", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100)
    at: dt.datetime = created_at_field()


class TokenPair(SQLModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(CreateModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class PasswordChange(CreateModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=10, max_length=128,
                              description="10 to 128 characters, not the current one, not containing the username")


class UserCreate(CreateModel):
    # pattern via StringConstraints: SQLModel's Field(regex=...) is silently ignored under pydantic 2.
    username: Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)] = Field(max_length=50)
    full_name: str | None = Field(default=None, min_length=1, max_length=50)
    password: str = Field(min_length=10, max_length=128)
    role: Role
    org_id: int = id_field()


class UserUpdate(UpdateModel):
    full_name: str | None = Field(default=None, min_length=1, max_length=50)
    password: str | None = Field(default=None, min_length=10, max_length=128)
    role: Role | None = None
    is_active: bool | None = None


class UserPublic(SQLModel):
    id: int
    username: str
    full_name: str | None
    role: Role
    org_id: int = id_field()
    is_active: bool
    created_at: dt.datetime


class MeOrganization(SQLModel):
    id: int
    name: str
    level: str
    code: str | None


class Me(SQLModel):
    id: int
    username: str
    full_name: str | None
    role: Role
    organization: MeOrganization
    permissions: list[Permission]
