"""Hostile and clumsy input: every limit a client could push has a clear problem-details answer and stores
nothing. Also CORS, security headers, switching the docs off, and regression tests for what the contract
fuzzer (tests/test_fuzz_contract.py) found in the shared mechanisms."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.models.audit import AuditLog
from app.models.funds.budgets import BudgetLine
from app.models.organizations import Organization
from app.models.people import Person
from tests.factories import World

PROBLEM = "application/problem+json"
MIB = 1024 * 1024
ORGS = "/api/v1/organizations"
LINES = "/api/v1/budget-lines"


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] and body["type"].startswith("https://")
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Request-ID"]
    return body


def count(db: Session, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def stored(db: Session) -> Iterator[None]:
    """Asserts the test stored nothing: no organisation, budget line, person or audit row."""
    models = (Organization, BudgetLine, Person, AuditLog)
    before = [count(db, m) for m in models]
    yield
    db.expire_all()
    assert [count(db, m) for m in models] == before


def org_body(world: World, **kw: Any) -> dict[str, Any]:
    return {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "新社区",
            "code": "513301001098", **kw}


def line_body(world: World, **kw: Any) -> dict[str, Any]:
    return {"fiscal_year": 2019, "org_id": world.city.id, "category": "party_work", "name": "党建工作经费",
            "source": "市财政", "allocated": "1000.00", **kw}


# --- bodies over 1 MiB ------------------------------------------------------------------------------


def _asgi(app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
          ) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight through the ASGI app, with headers exactly as given (a lying Content-Length)."""
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_body_over_one_mib_is_413_however_it_is_sent(client: TestClient, world: World, stored: None) -> None:
    from app.main import app

    token = world.auth("city")["Authorization"].encode()
    big = json.dumps(org_body(world, name="x" * (MIB + 10))).encode()
    base = [(b"authorization", token), (b"content-type", b"application/json")]
    ways = {
        "honest Content-Length": [*base, (b"content-length", str(len(big)).encode())],
        "lying Content-Length": [*base, (b"content-length", b"100")],
        "chunked, no Content-Length": [*base, (b"transfer-encoding", b"chunked")],
    }
    for way, headers in ways.items():
        chunks = [big[i:i + 65536] for i in range(0, len(big), 65536)]
        status, got, body = _asgi(app, "POST", ORGS, headers, chunks)
        assert status == 413, (way, body)
        assert got[b"content-type"] == PROBLEM.encode() and json.loads(body)["code"] == "payload_too_large"
    # A declared size over the limit is refused before a byte is read.
    status, _, _ = _asgi(app, "POST", LINES, [*base, (b"content-length", str(2 * MIB).encode())], [b""])
    assert status == 413
    # Just under the limit is read and judged on its content (here: a name too long, 422).
    near = json.dumps(org_body(world, name="x" * (MIB - 200))).encode()
    r = client.post(ORGS, content=near, headers={**world.auth("city"), "Content-Type": "application/json"})
    problem(r, 422)


# --- limits on numbers, strings, amounts and dates ------------------------------------------------


@pytest.mark.parametrize("query", ["limit=201", "limit=0", "limit=-1", "limit=99999999999999999999", "offset=-1",
                                   "limit=abc", "offset=10000001", "sort=" + "x" * 201])
def test_page_parameters_out_of_range_are_422(client: TestClient, world: World, query: str) -> None:
    for path in (ORGS, "/api/v1/users", LINES, "/api/v1/people"):
        body = problem(client.get(f"{path}?{query}", headers=world.auth("city")), 422)
        assert body["errors"][0]["loc"][0] == "query"


def test_limit_at_the_maximum_is_accepted(client: TestClient, world: World) -> None:
    r = client.get(f"{ORGS}?limit=200", headers=world.auth("city"))
    assert r.status_code == 200 and r.json()["limit"] == 200


@pytest.mark.parametrize("change", [
    {"name": "名" * 101},  # max_length 100, counted in characters
    {"name": ""},
    {"code": "5" * 21},
    {"credit_code": "9" * 19},
    {"altitude_m": 9001},
    {"altitude_m": 2**31},
    {"altitude_m": 2**63},
    {"altitude_m": 10**40},
    {"parent_id": 2**31},
    {"parent_id": 0},
    {"parent_id": -(2**63) - 1},
    {"altitude_m": 1.5},
    {"altitude_m": "NaN"},
    {"unknown_field": 1},
])
def test_strings_and_integers_beyond_their_ranges_are_422(
    client: TestClient, world: World, stored: None, change: dict[str, Any]
) -> None:
    body = problem(client.post(ORGS, json=org_body(world, **change), headers=world.auth("city")), 422)
    assert body["errors"], body


def test_ids_in_paths_beyond_the_integer_column_are_422_never_a_database_error(
    client: TestClient, world: World
) -> None:
    for bad in ("2147483648", "9223372036854775808", "99999999999999999999999", "0"):
        problem(client.get(f"{ORGS}/{bad}", headers=world.auth("city")), 422)
    # An id is digits only (app/main.py): any other segment names no resource (tests/test_fuzz_findings.py).
    for bad in ("-1", "1e3", "１"):
        problem(client.get(f"{ORGS}/{bad}", headers=world.auth("city")), 404)
    problem(client.get(f"{ORGS}/2147483647", headers=world.auth("city")), 404)


@pytest.mark.parametrize("amount", ["1.001", "0.005", "1e-3", "1E+20", "10000000000000", "-1.00", "NaN", "Infinity",
                                    "", "1,000.00", "0x10", 1.001, True, None,
                                    # finite Decimals past what any arithmetic survives (decimal.Overflow)
                                    "1E+1000000", "-1e999999999", "1e-999999999"])
def test_amounts_beyond_two_decimals_or_the_column_are_422(
    client: TestClient, world: World, stored: None, amount: Any
) -> None:
    problem(client.post(LINES, json=line_body(world, allocated=amount), headers=world.auth("city")), 422)


def test_amount_with_two_decimals_is_accepted_exactly(client: TestClient, world: World, db: Session) -> None:
    r = client.post(LINES, json=line_body(world, allocated="1234567.89"), headers=world.auth("city"))
    assert r.status_code == 201, r.text
    assert r.json()["allocated"] == "1234567.89"
    assert db.get(BudgetLine, r.json()["id"]).allocated_fen == 123456789  # type: ignore[union-attr]


@pytest.mark.parametrize("field,value", [
    ("joined_party_on", "1899-12-31"), ("joined_party_on", "2101-01-01"), ("joined_party_on", "0001-01-01"),
    ("joined_party_on", "9999-12-31"), ("joined_party_on", "2019-02-30"), ("joined_party_on", "2019-13-01"),
    ("joined_party_on", "+002019-01-01"), ("joined_party_on", "not a date"), ("joined_party_on", 20190101),
    ("birth_date", "1850-01-01"),
])
def test_dates_out_of_range_are_422(
    client: TestClient, world: World, stored: None, field: str, value: Any
) -> None:
    body = {"org_id": world.v1.id, "name": "扎西", "gender": "male", "member_status": "full",
            "joined_party_on": "2001-07-01", field: value}
    problem(client.post("/api/v1/people", json=body, headers=world.auth("city")), 422)


# --- NUL, surrogates and invalid UTF-8 (found by the fuzzer: invalid UTF-8 in a JSON body was a 400
# the contract did not declare; NUL reaches PostgreSQL as a driver error and SQLite stores it) --------


@pytest.mark.parametrize("raw", [
    b'{"name": "a\\u0000b"}',
    b'{"name": "\\u0000"}',
    b'{"name": "a\\\\\\u0000"}',  # an escaped backslash, then a real \u0000
    b'{"name": "\\ud800"}',  # a lone high surrogate: no driver can encode it
    b'{"name": "\\udc00x"}',
    b'{"name": "\\ud83d\\u0041"}',
    b'{"name": "\xff\xfe"}',  # not UTF-8 at all
    b'{"name": "\xc3"}',  # a truncated sequence
    b'{"name": "a\x00b"}',  # a raw NUL: not even JSON
])
def test_nul_surrogates_and_invalid_utf8_in_json_are_422_and_store_nothing(
    client: TestClient, world: World, stored: None, raw: bytes
) -> None:
    body = json.dumps(org_body(world)).encode()
    body = body.replace(b'"name": "\\u65b0\\u793e\\u533a"', raw[1:-1])
    assert raw[1:-1] in body
    for path in (ORGS, LINES):
        r = client.post(path, content=body, headers={**world.auth("city"), "Content-Type": "application/json"})
        problem(r, 422)


def test_escapes_that_are_text_are_accepted(client: TestClient, world: World, db: Session) -> None:
    # "\\u0000" is a backslash followed by "u0000"; a surrogate pair is one emoji.
    raw = json.dumps(org_body(world, name="x")).encode().replace(b'"name": "x"', b'"name": "a\\\\u0000 \\ud83d\\ude00"')
    r = client.post(ORGS, content=raw, headers={**world.auth("city"), "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "a\\u0000 \U0001f600"


@pytest.mark.parametrize("query", ["name=%00", "q=a%00b", "name=%FF", "name=%C3", "name=%ED%A0%80", "sort=%FFname"])
def test_nul_and_invalid_utf8_in_query_parameters_are_422(client: TestClient, world: World, query: str) -> None:
    for path in (ORGS, "/api/v1/people", LINES):
        problem(client.get(f"{path}?{query}", headers=world.auth("city")), 422)


def test_nul_and_invalid_utf8_in_paths_and_login_forms_are_422(client: TestClient, world: World) -> None:
    problem(client.get(f"{ORGS}/1%00", headers=world.auth("city")), 422)
    problem(client.get(f"{ORGS}/%FF", headers=world.auth("city")), 422)
    for form in (b"username=city%00admin&password=x", b"username=%FF&password=x", b"username=a&password=%00"):
        r = client.post("/api/v1/auth/token", content=form,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        problem(r, 422)


def test_valid_unicode_in_queries_and_bodies_is_untouched(client: TestClient, world: World) -> None:
    r = client.get(f"{ORGS}?name=%E7%82%89%E5%9F%8E+x", headers=world.auth("city"))  # 炉城 x
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/auth/token", data={"username": "城市", "password": "密码 ünïcode"})
    assert r.status_code == 401, r.text


# --- CORS, security headers, docs switch ------------------------------------------------------------


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch, db: Session) -> Iterator[Any]:
    """create_app() under other settings; the process settings are restored afterwards."""

    def build(**env: str) -> TestClient:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        from app.main import create_app

        return TestClient(create_app(), raise_server_exceptions=False)

    yield build
    monkeypatch.undo()
    get_settings.cache_clear()


def test_cors_answers_only_configured_origins_and_never_with_credentials(make_app: Any, world: World) -> None:
    allowed, other = "https://records.kangding.gov.cn", "https://evil.example.com"
    c = make_app(CORS_ORIGINS=json.dumps([allowed]))
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization,Content-Type"}
    ok = c.options(ORGS, headers={"Origin": allowed, **pre})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == allowed
    assert "Access-Control-Allow-Credentials" not in ok.headers
    bad = c.options(ORGS, headers={"Origin": other, **pre})
    assert bad.status_code == 400 and "Access-Control-Allow-Origin" not in bad.headers
    got = c.get(ORGS, headers={"Origin": other, **world.auth("city")})
    assert "Access-Control-Allow-Origin" not in got.headers
    got = c.get(ORGS, headers={"Origin": allowed, **world.auth("city")})
    assert got.headers["Access-Control-Allow-Origin"] == allowed and got.headers["Vary"].lower().find("origin") >= 0
    # Even a wildcard configuration never pairs `*` with credentials.
    star = make_app(CORS_ORIGINS='["*"]').get(ORGS, headers={"Origin": other, **world.auth("city")})
    assert star.headers.get("Access-Control-Allow-Credentials") != "true"


def test_without_cors_origins_no_cross_origin_headers_at_all(make_app: Any, world: World) -> None:
    c = make_app(CORS_ORIGINS="[]")
    r = c.options(ORGS, headers={"Origin": "https://records.kangding.gov.cn", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = c.get(ORGS, headers={"Origin": "https://records.kangding.gov.cn", **world.auth("city")})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_docs_can_be_switched_off(make_app: Any) -> None:
    off = make_app(DOCS_ENABLED="false")
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        problem(off.get(path), 404)
    on = make_app(DOCS_ENABLED="true")
    assert on.get("/openapi.json").status_code == 200 and on.get("/docs").status_code == 200


def test_security_headers_on_every_kind_of_answer(client: TestClient, world: World) -> None:
    h = world.auth("city")
    answers = {
        "ok": client.get(ORGS, headers=h),
        "csv": client.get(ORGS, headers={**h, "Accept": "text/csv"}),
        "401": client.get(ORGS),
        "403": client.post(ORGS, json=org_body(world), headers=world.auth("auditor")),
        "404": client.get("/nowhere", headers=h),
        "405": client.delete(ORGS, headers=h),
        "422": client.get(f"{ORGS}?limit=999", headers=h),
        "422-guard": client.get(f"{ORGS}?name=%00", headers=h),
        "health": client.get("/healthz"),
        "docs": client.get("/openapi.json"),
    }
    for name, r in answers.items():
        assert r.headers["X-Content-Type-Options"] == "nosniff", name
        assert r.headers["X-Frame-Options"] == "DENY", name
        assert r.headers["Referrer-Policy"] == "no-referrer", name
        assert r.headers["X-Request-ID"], name
    for name in ("ok", "csv", "401", "403", "404", "405", "422", "422-guard"):
        assert answers[name].headers["Cache-Control"] == "no-store", name
    # Anything asked with a token is not cached, even outside /api/.
    assert client.get("/healthz", headers=h).headers["Cache-Control"] == "no-store"


def test_production_refuses_to_create_the_app_with_defaults(make_app: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="refusing to start in production"):
        make_app(ENVIRONMENT="production", DATABASE_URL="sqlite:///data/x.db",
                 SECRET_KEY="dev-insecure-secret-change-me-0123456789abcdef")


def test_every_documented_422_is_a_problem_document(client: TestClient, world: World) -> None:
    # Found by the fuzzer: operations that declared no 422 of their own were documented with FastAPI's
    # application/json HTTPValidationError, while the answer is application/problem+json.
    doc = client.get("/openapi.json").json()
    documented = [(path, method, list(op["responses"]["422"].get("content", {})))
                  for path, ops in doc["paths"].items() for method, op in ops.items() if "422" in op["responses"]]
    assert documented and all(types == [PROBLEM] for _, _, types in documented), \
        [d for d in documented if d[2] != [PROBLEM]]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    r = client.post("/api/v1/responsibility-letters/11185005769/settle", headers=world.auth("city"))
    assert problem(r, 422)["errors"][0]["loc"] == ["path", "letter_id"]


def test_405_allow_lists_every_method_of_the_path(client: TestClient, world: World) -> None:
    # Found by the fuzzer: Starlette's Allow named only the first route's method (FastAPI adds one route per
    # method), so `OPTIONS /api/v1/users` said `Allow: GET` although POST is there too.
    def allow(r: Any) -> set[str]:
        problem(r, 405)
        return {m.strip() for m in r.headers["Allow"].split(",")}

    assert {"GET", "POST"} <= allow(client.options("/api/v1/users", headers=world.auth("city")))
    assert {"GET", "PATCH"} <= allow(client.delete(f"/api/v1/users/{world.users['v1'].id}", headers=world.auth("city")))
    assert "DELETE" not in allow(client.put(ORGS, headers=world.auth("city")))


@pytest.mark.parametrize("as_of", ["0000-01", "1999-12", "2101-01", "9999-12"])
def test_dues_arrears_month_outside_the_years_is_422_not_500(client: TestClient, world: World, as_of: str) -> None:
    # Found by the fuzzer: `as_of=0000-01` matched the month pattern and parse_month's ValueError was a 500.
    problem(client.get(f"/api/v1/party-dues/arrears?as_of={as_of}", headers=world.auth("city")), 422)
    assert client.get("/api/v1/party-dues/arrears?as_of=2019-03", headers=world.auth("city")).status_code == 200
