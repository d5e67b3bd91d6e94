"""Test database per run (SQLite file, or a fresh PostgreSQL database when
TEST_DATABASE_URL is set), built with `alembic upgrade head`; each test rolls back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.core import db as core_db
from app.core import report_cache
from tests.factories import World, build_world

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alembic_config(url: str) -> Config:
    cfg = Config(os.path.join(ROOT, "alembic.ini"))
    cfg.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    cfg.attributes["url"] = url
    return cfg


def _create_postgres_database(admin_url: str) -> tuple[str, str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(make_url(admin_url).set(database=name).render_as_string(hide_password=False)), name


def _drop_postgres_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if admin_url:
        url, name = _create_postgres_database(admin_url)
        yield url
        core_db.configure_engine("sqlite://")  # release the pool before dropping
        _drop_postgres_database(admin_url, name)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    command.upgrade(alembic_config(database_url), "head")
    engine = core_db.configure_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def world(engine: Engine) -> World:
    """The shared, committed base data every test starts from."""
    with core_db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def db(engine: Engine, world: World) -> Iterator[Session]:
    """Every session the app opens during the test joins one outer transaction that is rolled back."""
    conn = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False,
                           autoflush=False)
    saved = core_db._holder.factory
    core_db._holder.factory = factory
    session = factory()
    # What a test writes through this session is seen by the app's sessions on the same connection as if it
    # had committed: its tables get new tokens for the report cache right away (app.core.report_cache).
    event.listen(session, "after_flush_postexec", lambda s, _context: report_cache.announce(s))
    try:
        yield session
    finally:
        session.close()
        core_db._holder.factory = saved
        outer.rollback()
        conn.close()


@pytest.fixture
def client(db: Session) -> Iterator[TestClient]:
    from app.main import app

    with TestClient(app, raise_server_exceptions=False) as c:
        from tests.pii_guard import install as install_pii_guard

        install_pii_guard(c)  # every body sent to a role without pii_read is checked for unmasked PII
        yield c


@pytest.fixture
def app_client(db: Session) -> TestClient:
    return TestClient(__import__("app.main", fromlist=["app"]).app, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the seeded service running under uvicorn (tests/live_service.py), shared by the session."""
    from tests.live_service import running_service

    with running_service(tmp_path_factory.mktemp("live-service")) as base:
        yield base
