"""Cross-cutting rules: problem details, request ids and headers, health, metrics, enums, migrations,
the OpenAPI contract, production settings and JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from app.core.config import DEFAULT_SECRET, Settings
from app.core.enums import REGISTRY
from app.core.observability import JsonFormatter
from app.models.accounts import User
from tests.conftest import _create_postgres_database, _drop_postgres_database, alembic_config
from tests.factories import PASSWORD, World

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
ID_NUMBER = "513301198001010012"  # shaped like a real one; must never reach a log
PHONE = "13812345678"


def _assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] and body["title"] and body["type"].startswith("https://")
    assert r.headers.get("X-Request-ID")
    return body


# --- problem details ------------------------------------------------------------


def test_unexpected_exception_is_a_500_problem_without_traceback(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import accounts

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"internal detail {ID_NUMBER} at /srv/secret/path.py")

    monkeypatch.setattr(accounts, "me", explode)
    r = client.get("/api/v1/auth/me", headers={**world.auth("v1"), "X-Request-ID": "trace-me-500"})
    body = _assert_problem(r, 500)
    assert body["code"] == "internal_error"
    for leak in ("Traceback", "RuntimeError", "internal detail", ID_NUMBER, "/srv/secret", ".py"):
        assert leak not in r.text
    # Even a crash carries the request id and the security headers.
    assert r.headers["X-Request-ID"] == "trace-me-500"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("error", [IntegrityError("INSERT", {}, Exception("duplicate")), RuntimeError("disk full")])
def test_a_failed_commit_never_answers_2xx(
    client: TestClient, world: World, db: Session, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def failing_commit(self: Session) -> None:
        raise error

    monkeypatch.setattr(Session, "commit", failing_commit)
    body = {"username": "commit_fails", "password": "long-enough-pass", "role": "village_admin",
            "org_id": world.v1.id}
    r = client.post("/api/v1/users", json=body, headers=world.auth("city"))
    _assert_problem(r, 409 if isinstance(error, IntegrityError) else 500)
    monkeypatch.undo()
    assert db.scalar(select(func.count()).select_from(User).where(User.username == "commit_fails")) == 0


def test_validation_errors_list_loc_and_msg(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/users", json={"username": "ok_name", "password": "short", "role": "pope",
                                           "org_id": "abc"}, headers=world.auth("city"))
    body = _assert_problem(r, 422)
    assert body["code"] == "validation_error"
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert {("body", "password"), ("body", "role"), ("body", "org_id")} <= locs
    assert all(isinstance(e["msg"], str) and e["msg"] for e in body["errors"])
    r = client.post("/api/v1/users", content=b"{not json", headers={**world.auth("city"),
                                                                  "Content-Type": "application/json"})
    assert _assert_problem(r, 422)["errors"]
    r = client.get("/api/v1/users", params={"limit": "many"}, headers=world.auth("city"))
    assert _assert_problem(r, 422)["errors"][0]["loc"] == ["query", "limit"]


def test_unknown_route_and_wrong_method_are_problems(client: TestClient, world: World) -> None:
    assert _assert_problem(client.get("/api/v1/no-such-thing", headers=world.auth("city")), 404)["code"] == "not_found"
    assert _assert_problem(client.get("/nothing-here"), 404)
    r = client.delete("/api/v1/users", headers=world.auth("city"))
    assert _assert_problem(r, 405)["code"] == "method_not_allowed"
    assert r.headers["Allow"]


def test_body_over_one_mib_is_413(client: TestClient, world: World) -> None:
    big = b'{"username": "' + b"x" * (1024 * 1024) + b'"}'
    headers = {**world.auth("city"), "Content-Type": "application/json"}
    assert _assert_problem(client.post("/api/v1/users", content=big, headers=headers), 413)["code"] == \
        "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"username": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    assert _assert_problem(client.post("/api/v1/users", content=chunks(), headers=headers), 413)
    # A form login is a body too.
    r = client.post("/api/v1/auth/token", content=b"username=a&password=" + b"p" * (1024 * 1024 + 1),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert _assert_problem(r, 413)


# --- request ids and headers ---------------------------------------------------------


def test_every_response_has_a_request_id_echoed_when_sane(client: TestClient, world: World) -> None:
    responses = [client.get("/healthz"), client.get("/api/v1/auth/me"), client.get("/missing"),
                 client.get("/api/v1/organizations", headers=world.auth("city"))]
    for r in responses:
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"]), r.headers
    assert len({r.headers["X-Request-ID"] for r in responses}) == len(responses)
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123_X.y"}).headers["X-Request-ID"] == "abc-123_X.y"
    for insane in ("has space", "x" * 65, "<script>", "a\tb", "日本", "ok\n"):
        got = client.get("/healthz", headers={"X-Request-ID": insane.encode()})
        assert got.headers["X-Request-ID"] != insane and re.fullmatch(r"[0-9a-f]{32}", got.headers["X-Request-ID"])


def test_security_headers_and_no_store(client: TestClient, world: World) -> None:
    for r in (client.get("/healthz"), client.get("/api/v1/users", headers=world.auth("city")),
              client.get("/api/v1/users")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    authed = client.get("/api/v1/users", headers=world.auth("city"))
    assert authed.headers["Cache-Control"] == "no-store"
    assert authed.headers.get_list("Cache-Control") == ["no-store"]
    login = client.post("/api/v1/auth/token", data={"username": "v1_admin", "password": PASSWORD})
    assert login.status_code == 200 and login.headers["Cache-Control"] == "no-store"


# --- health and metrics ------------------------------------------------------------------


def test_a_route_that_answers_itself_refuses_dependencies() -> None:
    # Nothing would solve them, while the contract would show them (a security scheme, say).
    from fastapi import APIRouter, Depends

    from app.routers.meta import _AnswersItself, healthz

    with pytest.raises(RuntimeError, match="takes no dependencies"):
        APIRouter().add_api_route("/probe", healthz, dependencies=[Depends(lambda: None)],
                                  route_class_override=_AnswersItself)


def test_healthz_and_readyz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    # Answered by the endpoint itself (app.routers.meta._AnswersItself): still what the contract says.
    assert r.headers["content-type"] == "application/json" and r.headers["content-length"] == str(len(r.content))
    schema = client.get("/openapi.json").json()["paths"]["/healthz"]["get"]["responses"]["200"]
    assert schema["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert client.post("/healthz").status_code == 405
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-dir/deeper/records.db",
                                 "postgresql+psycopg://postgres@127.0.0.1:1/nothing"])
def test_readyz_is_503_when_the_database_is_unreachable(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    from app.routers import meta

    broken = create_engine(url, connect_args={"connect_timeout": 2} if url.startswith("postgres") else {})
    monkeypatch.setattr(meta, "get_engine", lambda: broken)
    try:
        body = _assert_problem(client.get("/readyz"), 503)
    finally:
        broken.dispose()
    assert body["code"] == "database_unavailable"
    assert client.get("/healthz").status_code == 200  # the process itself is fine


def test_metrics_count_requests_by_route_template(client: TestClient, world: World) -> None:
    user_id = world.users["v2"].id
    assert client.get(f"/api/v1/users/{user_id}", headers=world.auth("city")).status_code == 200
    client.get(f"/api/v1/no-such-thing/{user_id}")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = [line for line in r.text.splitlines() if line.startswith("http_requests_total{")]
    assert any('route="/api/v1/users/{user_id}"' in s and 'status="200"' in s and 'method="GET"' in s
               for s in samples), samples
    assert any('route="unmatched"' in s and 'status="404"' in s for s in samples)
    assert not any(f"/{user_id}\"" in s for s in samples)
    latency = [line for line in r.text.splitlines() if line.startswith("http_request_duration_seconds_count{")]
    assert any('route="/api/v1/users/{user_id}"' in s and 'status="200"' in s for s in latency), latency


# --- enums ---------------------------------------------------------------------------


def test_meta_enums_lists_every_labeled_enum(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/meta/enums").status_code == 401
    r = client.get("/api/v1/meta/enums", headers=world.auth("v1"))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(REGISTRY)
    for name, enum in REGISTRY.items():
        assert [v["value"] for v in body[name]] == [m.value for m in enum], name
        for v in body[name]:
            assert v["zh"] and v["en"], (name, v)
    roles = {v["value"]: v for v in body["role"]}
    assert roles["city_admin"]["zh"] == "市级管理员" and roles["city_admin"]["en"] == "City administrator"
    assert {"role", "permission"} <= set(body)


# --- migrations --------------------------------------------------------------------------


@pytest.fixture
def scratch_database_url(tmp_path: Path) -> Iterator[str]:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if admin_url:
        url, name = _create_postgres_database(admin_url)
        try:
            yield url
        finally:
            _drop_postgres_database(admin_url, name)
    else:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"


def test_migrations_round_trip_and_match_the_models(scratch_database_url: str) -> None:
    cfg = alembic_config(scratch_database_url)
    command.upgrade(cfg, "heads")
    command.downgrade(cfg, "base")
    engine = create_engine(scratch_database_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        command.upgrade(cfg, "heads")
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert {"audit_log", "audit_chain_head", "user_account", "organization"} <= tables
            assert conn.execute(text("SELECT last_id FROM audit_chain_head WHERE id = 1")).scalar() == 0
            if conn.dialect.name == "postgresql":
                triggers = conn.execute(text(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal"
                )).scalar()
                assert triggers == 2
    finally:
        engine.dispose()
    # Autogenerate finds nothing to do: the migrations build exactly what the models describe.
    command.check(cfg)


# --- the OpenAPI contract ----------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi_doc() -> dict[str, Any]:
    from app.main import create_app

    doc: dict[str, Any] = create_app().openapi()
    return doc


PUBLIC_PROBES = {"meta_healthz", "meta_readyz", "meta_metrics"}  # no input, no auth: nothing to refuse


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, op


def test_openapi_document_matches_the_code() -> None:
    from app.__main__ import render_openapi

    committed = ROOT / "openapi" / "openapi.json"
    assert committed.exists(), "openapi/openapi.json is missing: run `make openapi`"
    assert render_openapi() == committed.read_text(encoding="utf-8"), \
        "openapi/openapi.json is out of date: run `make openapi` and commit it"


def test_every_operation_is_named_tagged_and_declares_its_errors(openapi_doc: dict[str, Any]) -> None:
    problems: list[str] = []
    seen: set[str] = set()
    for path, method, op in _operations(openapi_doc):
        where = f"{method.upper()} {path}"
        op_id = op.get("operationId", "")
        if not re.fullmatch(r"[a-z_]+_[a-z_]+", op_id):
            problems.append(f"{where}: operationId {op_id!r} is not area_action")
        if op_id in seen:
            problems.append(f"{where}: duplicate operationId {op_id}")
        seen.add(op_id)
        if not op.get("tags"):
            problems.append(f"{where}: no tag")
        if not op.get("summary"):
            problems.append(f"{where}: no summary")
        statuses = set(op.get("responses", {}))
        if op_id not in PUBLIC_PROBES and not any(s.startswith("4") for s in statuses):
            problems.append(f"{where}: declares no 4xx response")
        if op.get("security") and "401" not in statuses:
            problems.append(f"{where}: needs a token but does not declare 401")
        if (op.get("parameters") or op.get("requestBody")) and "422" not in statuses:
            problems.append(f"{where}: takes input but does not declare 422")
        for status, response in op.get("responses", {}).items():
            if "$ref" in response:  # a shared response (#/components/responses/...)
                response = openapi_doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
            if status[0] in "45" and PROBLEM not in response.get("content", {}):
                problems.append(f"{where}: {status} is not declared as {PROBLEM}")
    assert not problems, "\n".join(problems)


def test_no_model_field_relies_on_the_ignored_regex_argument() -> None:
    """SQLModel's Field(regex=...) is silently dropped under pydantic 2: the pattern is never checked.
    Use Annotated[str, StringConstraints(pattern=...)] (or schema_extra={"pattern": ...}) instead."""
    import app.models  # noqa: F401  (every model imported)

    offenders = []
    stack: list[type[SQLModel]] = [SQLModel]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__module__.startswith("app."):
            continue
        for name, info in cls.model_fields.items():
            if getattr(info, "_attributes_set", {}).get("regex") and not _has_pattern(info):
                offenders.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert not offenders, "fields whose regex is never checked:\n" + "\n".join(sorted(set(offenders)))


def _has_pattern(info: Any) -> bool:
    return any(getattr(m, "pattern", None) for m in info.metadata)


# --- production settings -----------------------------------------------------------------


GOOD_SECRET = "a" * 16 + "production-secret-0123456789"
PG_URL = "postgresql+psycopg://app@db:5432/records"


@pytest.mark.parametrize("overrides", [
    {"secret_key": DEFAULT_SECRET},
    {"secret_key": ""},
    {"secret_key": "short-secret"},
    {"secret_key": "x" * 31},
    {"database_url": "sqlite:///data/partyrecords.db"},
    {"database_url": "sqlite://"},
])
def test_production_refuses_unsafe_settings(overrides: dict[str, str]) -> None:
    values = {"environment": "production", "secret_key": GOOD_SECRET, "database_url": PG_URL, **overrides}
    with pytest.raises(ValidationError, match="refusing to start in production"):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_starts_with_safe_settings_and_development_is_lenient() -> None:
    prod = Settings(_env_file=None, environment="production", secret_key=GOOD_SECRET,  # type: ignore[call-arg]
                    database_url=PG_URL)
    assert prod.environment == "production" and not prod.is_sqlite
    dev = Settings(_env_file=None, environment="development", secret_key=DEFAULT_SECRET)  # type: ignore[call-arg]
    assert dev.is_sqlite
    with pytest.raises(ValidationError):
        Settings(_env_file=None, access_token_minutes=60)  # type: ignore[call-arg]


def test_production_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "too-short")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


# --- logs ------------------------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def test_log_lines_are_json_and_hold_no_secrets_or_personal_data(
    client: TestClient, world: World, captured_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import accounts

    new_password = f"pw-{uuid.uuid4().hex}"
    login = client.post("/api/v1/auth/token", data={"username": "v1_admin", "password": PASSWORD})
    token = login.json()["access_token"]
    client.post("/api/v1/auth/token", data={"username": "v1_admin", "password": "wrong-" + PASSWORD})
    client.post("/api/v1/users", json={"username": f"logged_{uuid.uuid4().hex[:8]}", "password": new_password,
                                       "role": "village_admin", "org_id": world.v1.id}, headers=world.auth("city"))
    client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    client.get("/api/v1/organizations", params={"q": ID_NUMBER}, headers=world.auth("city"))

    def explode(*args: Any, **kwargs: Any) -> None:
        # A library echoing its input into an exception message (it happens): logs must not keep it.
        raise ValueError(f"bad input id={ID_NUMBER} phone={PHONE} auth=Bearer {token}")

    monkeypatch.setattr(accounts, "me", explode)
    crash = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert crash.status_code == 500

    lines = [line for line in captured_logs.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg", "request_id"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "app.access"]
    assert any(e.get("route") == "/api/v1/auth/me" and e.get("status") == 200 for e in access)
    # Every authenticated call is logged under its caller; a refused token names nobody.
    assert any(e.get("route") == "/api/v1/auth/me" and e.get("user") == "v1_admin" and e.get("role") == "village_admin"
               for e in access)
    assert all("user" not in e for e in access if e.get("route") == "/api/v1/auth/token")
    crash_logs = [e for e in entries if e["level"] == "ERROR"]
    assert crash_logs and all(e["request_id"] == crash.headers["X-Request-ID"] for e in crash_logs)
    text_all = captured_logs.getvalue()
    for secret in (PASSWORD, new_password, token, token.split(".")[2], ID_NUMBER, PHONE, "Authorization"):
        assert secret not in text_all, secret


def test_a_sqlite_connection_keeps_a_page_cache_of_one_mebibyte(db: Session) -> None:
    """Each pooled SQLite connection has its own page cache: 1 MiB each, not SQLite's 2, keeps the worker's memory
    under the 250 MB issue 8 allows with a dozen connections in the pool (app.core.db)."""
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -1024
