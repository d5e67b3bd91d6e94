"""Settings from the environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///data/partyrecords.db"
    secret_key: str = DEFAULT_SECRET
    # Separate key for personal data at rest; derived from secret_key when empty.
    data_key: str = ""
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    refresh_token_days: int = Field(default=14, ge=1, le=90)
    token_issuer: str = "partyrecords"
    token_audience: str = "partyrecords-api"
    login_max_failures: int = 5
    login_window_minutes: int = 15
    problem_escalation_days: int = 30
    docs_enabled: bool = True
    cors_origins: list[str] = []
    db_pool_size: int = 20
    # Threads that run the synchronous routes and database work of one worker process (anyio's default is 40).
    # Fewer threads contend less for the GIL: a get by id went from 389 to 531 requests/s with 4 instead of 40;
    # 4 instead of 8 (2 CPUs, A/B): PostgreSQL get by id x1.07-1.14 and a create's p99 1.6 x p50 instead of
    # 3.5-3.9 x, SQLite township page x1.18, the rest unchanged (issue 8). What waits does so in the event loop,
    # not in a thread (SQLite writers, password hashing), so a small pool does not wedge; exports run outside it
    # (app.core.pagination.EXPORT_THREADS, WORKBOOK_THREADS). Each long request (a report computed afresh
    # on PostgreSQL) holds one thread while it runs: run more workers (processes) rather than more threads.
    # Keep db_pool_size at least this large.
    worker_threads: int = Field(default=4, ge=1, le=200)
    # PostgreSQL: the longest one statement of the service may run, in milliseconds (0: no limit). A statement
    # over it is cancelled by the server and its request answers 503; a stuck query cannot hold a worker thread
    # and a connection for ever. Migrations and the benchmark's bulk loader run without it.
    db_statement_timeout_ms: int = Field(default=60_000, ge=0, le=3_600_000)
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            problems = []
            if self.secret_key == DEFAULT_SECRET or len(self.secret_key.encode()) < 32:
                problems.append("SECRET_KEY must be set to at least 32 bytes")
            if self.database_url.startswith("sqlite"):
                problems.append("DATABASE_URL must point at PostgreSQL")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
