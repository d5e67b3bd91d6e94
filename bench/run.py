"""The load run (issue 8): the service and a Starlette hello-world under uvicorn, wrk as the load generator.

Environment:
  BENCH_DATABASE_URL  PostgreSQL server URL (a database bench_<hex> is created there and dropped at the end);
                      unset: a SQLite file, data/bench.db
  BENCH_SCALE         full (default: 18 x 20 x 12 organisations, 150,000 people) or tiny
  BENCH_SECONDS       measured seconds per case and round (default 5)
  BENCH_WARMUP        warm-up seconds before each measurement (default 1)
  BENCH_ROUNDS        rounds, every case once per round, interleaved (default 3)
  BENCH_CONNECTIONS   concurrent connections held by wrk (default 8)
  BENCH_REUSE=1       SQLite only: reuse data/bench.db if it was generated at the same scale
  BENCH_SQLITE_FILE   SQLite only: the database file (default data/bench-<scale>.db), e.g. one per person benching
  BENCH_PG_KEEP       PostgreSQL only: a database name (bench_...) that is kept after the run and reused by the
                      next run with the same name (e.g. one worker, then BENCH_WORKERS=2 on the same rows)
  BENCH_CASES         comma-separated case names to run (default: all)
  BENCH_WORKERS       uvicorn workers of the service (default 1; a complete run with N > 1 writes
                      latest-<database>-<N>-workers.json)
  BENCH_BATCH=0       skip the batch figures (entitlement run, monthly list issue)
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET = "bench-secret-key-that-is-long-enough-for-production-0123456789"
YEAR = 2019


@dataclass
class Case:
    name: str
    description: str
    path: str
    user: str | None = None  # manifest user key; None = no token
    method: str = "GET"
    body: str | None = None
    content_type: str = "application/json"
    server: str = "app"  # or "hello" (the ceiling) or "floor" (bench.floor, the tutorial way)
    expect: int = 200
    # A URL answered before the run whose `next` is appended to `path` as `after` (a keyset cursor made by the
    # service with the bench's SECRET_KEY, so the server accepts it).
    cursor_from: str | None = None
    sql: int | None = None
    single_ms: float | None = None  # one request alone, in-process (the probe before the load)
    connections: int = 0
    seconds: float = 0.0
    rounds: list[dict[str, float]] = field(default_factory=list)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def cases_for(m: Any) -> list[Case]:
    t, v, c = m.sample_township_id, m.sample_village_id, m.city_id
    login = urllib.parse.urlencode({"username": m.users["village"], "password": m.password})
    # Datasets made before `creates_under` existed create under the sample village, as they did.
    creator = "creator" if m.creates_under and "creator" in m.users else "township"
    create = json.dumps({"parent_id": m.creates_under or v, "level": "branch", "domain": "rural",
                         "name": "基准新建支部"}, ensure_ascii=False)
    return [
        Case("ceiling", "Starlette hello-world (same uvicorn, same flags)", "/", server="hello"),
        Case("healthz", "GET /healthz", "/healthz"),
        Case("get_org", "organisation by id, village user", f"/api/v1/organizations/{v}", "village"),
        Case("get_person", "person by id (masked), village user", f"/api/v1/people/{m.sample_person_id}",
             "village"),
        Case("page_township", "people page of 50 + total, township scope, filtered",
             f"/api/v1/people?org_id={t}&subtree=true&member_status=full&limit=50", "township"),
        Case("page_city_first", "assignments page of 50 + total, city scope (155k rows)",
             "/api/v1/assignments?limit=50", "city"),
        Case("page_city_deep", "the same at offset 50,000", "/api/v1/assignments?limit=50&offset=50000", "city"),
        Case("page_city_cursor", "the same page by keyset cursor (after = next of row 50,000)",
             "/api/v1/assignments?limit=50", "city", cursor_from="/api/v1/assignments?limit=1&offset=49999"),
        Case("create_org", "POST a branch under a village (validation, audit row), township user",
             "/api/v1/organizations",
             creator, method="POST", body=create, expect=201),
        Case("report_problems", "problems summary, city rolled up per township",
             f"/api/v1/problems/summary?year={YEAR}&org_id={c}&rollup=true", "city"),
        Case("report_budget", "budget execution, city subtree (own lines, rolled up per township)",
             f"/api/v1/budgets/execution?year={YEAR}&org_id={c}&subtree=true", "city"),
        Case("report_subsidies", "subsidies summary, city subtree",
             f"/api/v1/subsidies/summary?year={YEAR}&org_id={c}&subtree=true", "city"),
        Case("report_posts", "duty posts summary, city subtree (members without office)",
             f"/api/v1/duty-posts/summary?year={YEAR}&org_id={c}&subtree=true", "city"),
        Case("report_dues_arrears", "party dues arrears page, city subtree",
             f"/api/v1/party-dues/arrears?org_id={c}&subtree=true&as_of={YEAR}-12&limit=50", "city"),
        Case("token", "POST /api/v1/auth/token (argon2 verify, refresh token row)", "/api/v1/auth/token",
             method="POST", body=login, content_type="application/x-www-form-urlencoded"),
        # The stack's floor (bench/floor.py): the tutorial way of get_org, page_township and create_org, without
        # what the service adds (token, caller, scope, masking, audit); the same database and uvicorn flags. Last,
        # so that in each round the service's cases run on the dataset as before (floor_create adds branches).
        Case("floor_get_org", "tutorial way: organisation by id (no token)", f"/organizations/{v}", server="floor"),
        Case("floor_page", "tutorial way: people page of 50 + total under a township, filtered (no token)",
             f"/people?org_id={t}&member_status=full&limit=50", server="floor"),
        Case("floor_create", "tutorial way: POST the same branch (no token, no audit row)", "/organizations",
             method="POST", body=create, expect=201, server="floor"),
    ]


# --- the database ---------------------------------------------------------------------------------


@contextmanager
def database(scale_name: str) -> Iterator[tuple[str, Any, str]]:
    """Yield (url, manifest, dialect) of a freshly loaded database; PostgreSQL ones are dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench import dataset

    scale = dataset.TINY if scale_name == "tiny" else dataset.FULL
    admin = os.environ.get("BENCH_DATABASE_URL")
    if not admin:
        path = Path(os.environ.get("BENCH_SQLITE_FILE") or ROOT / "data" / f"bench-{scale_name}.db")
        manifest_file = Path(f"{path}-manifest.json")  # data/*.db-* is ignored by git and removed by make clean
        url = f"sqlite:///{path}"
        if os.environ.get("BENCH_REUSE") == "1" and path.exists() and manifest_file.exists():
            print(f"reusing {path}")
            yield url, dataset.Manifest(**json.loads(manifest_file.read_text())), "sqlite"
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"generating the {scale_name} dataset into {path}")
        manifest = dataset.load(url, scale, log=print)
        manifest_file.write_text(json.dumps(asdict(manifest)))
        yield url, manifest, "sqlite"
        return
    keep = os.environ.get("BENCH_PG_KEEP")
    name = keep or f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    if keep:
        if not re.fullmatch(r"bench_[a-z0-9_]{1,40}", keep):
            raise SystemExit("BENCH_PG_KEEP must look like bench_<letters, digits, _>")
        manifest_file = ROOT / "data" / f"{keep}-{scale_name}.db-manifest.json"
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": keep})
        if exists and manifest_file.exists():
            print(f"reusing PostgreSQL database {keep}")
            yield url, dataset.Manifest(**json.loads(manifest_file.read_text())), "postgresql"
            engine.dispose()
            return
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{keep}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{keep}"'))
        print(f"generating the {scale_name} dataset into PostgreSQL database {keep} (kept)")
        manifest = dataset.load(url, scale, log=print)
        manifest_file.parent.mkdir(exist_ok=True)
        manifest_file.write_text(json.dumps(asdict(manifest)))
        yield url, manifest, "postgresql"
        engine.dispose()
        return
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        print(f"generating the {scale_name} dataset into PostgreSQL database {name}")
        manifest = dataset.load(url, scale, log=print)
        yield url, manifest, "postgresql"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def server_env(url: str, dialect: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "DATABASE_URL", "ENVIRONMENT"))}
    env.update({
        "DATABASE_URL": url, "SECRET_KEY": SECRET, "LOG_LEVEL": "WARNING", "DOCS_ENABLED": "false",
        # Production settings; production refuses SQLite, so SQLite runs as development (the only difference
        # the environment makes is that refusal).
        "ENVIRONMENT": "production" if dialect == "postgresql" else "development",
        # As the Dockerfile sets it: glibc's per-thread malloc arenas otherwise fragment a worker's memory.
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    })
    return env


# --- SQL statements per request: counted in-process, once per case --------------------------------


def count_sql(url: str, dialect: str, manifest: Any, cases: list[Case]) -> None:
    """Send each case once through the app in this process with a cursor-execute counter on the engine.

    No flag in the service: the count is deterministic per request, so it is taken here, outside the timed runs.
    """
    os.environ.update(server_env(url, dialect))
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from app.core import db as core_db
    from app.core.config import get_settings

    get_settings.cache_clear()
    from app.main import create_app

    engine = core_db.configure_engine(url)
    counter = {"n": 0}

    def count(*_: Any) -> None:
        counter["n"] += 1

    event.listen(engine, "before_cursor_execute", count)
    client = TestClient(create_app())
    tokens = login_all(lambda path, data: client.post(path, data=data), manifest)
    for case in cases:
        if case.server != "app":
            continue
        headers = request_headers(case, tokens)
        if case.cursor_from:
            resolve_cursor(client, case, headers)
        counter["n"] = 0
        t0 = time.perf_counter()
        response = client.request(case.method, case.path, content=case.body, headers=headers)
        case.single_ms = (time.perf_counter() - t0) * 1000
        case.sql = counter["n"]
        if case.method == "GET" and case.single_ms < 10_000:
            t0 = time.perf_counter()
            client.request(case.method, case.path, headers=headers)
            case.single_ms = min(case.single_ms, (time.perf_counter() - t0) * 1000)
        if response.status_code != case.expect:
            raise SystemExit(f"{case.name}: {case.method} {case.path} answered {response.status_code}: "
                             f"{response.text[:300]}")
    event.remove(engine, "before_cursor_execute", count)
    engine.dispose()


def probe_floor(base: str, cases: list[Case]) -> None:
    """The floor's cases once each before the load, as `count_sql` sends the service's: the answer must be the
    expected one (a floor that answered 422 would otherwise only show as wrk's errors), and the time alone."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as client:
        for case in cases:
            if case.server != "floor":
                continue
            headers = {"Content-Type": case.content_type} if case.body is not None else {}
            for _ in range(1 if case.method == "POST" else 3):  # the first GET also opens the pool's connection
                t0 = time.perf_counter()
                response = client.request(case.method, case.path, content=case.body, headers=headers)
                alone = (time.perf_counter() - t0) * 1000
                case.single_ms = alone if case.single_ms is None else min(case.single_ms, alone)
                if response.status_code != case.expect:
                    raise SystemExit(f"{case.name}: {case.method} {case.path} answered {response.status_code}: "
                                     f"{response.text[:300]}")
            print(f"probe {case.name:<20} {case.single_ms:.0f} ms alone (over HTTP)", flush=True)


def resolve_cursor(client: Any, case: Case, headers: dict[str, str]) -> None:
    """Append `after` = the `next` of `case.cursor_from` (a page of one row) to the case's path. A smaller
    dataset (BENCH_SCALE=tiny) has fewer rows: the cursor of its last row is taken (an empty page, as the deep
    offset gives there)."""
    assert case.cursor_from is not None
    page = client.get(case.cursor_from, headers=headers).json()
    if page.get("next") is None and page.get("total"):
        base = case.cursor_from.split("&offset=")[0]
        page = client.get(f"{base}&offset={page['total'] - 1}", headers=headers).json()
    if page.get("next") is None:
        raise SystemExit(f"{case.name}: {case.cursor_from} gave no cursor: {json.dumps(page)[:300]}")
    case.path += "&after=" + urllib.parse.quote(page["next"])


def login_all(post: Any, manifest: Any) -> dict[str, str]:
    tokens = {}
    for key in ("city", "township", "village", "creator"):
        if key not in manifest.users:
            continue
        r = post("/api/v1/auth/token", {"username": manifest.users[key], "password": manifest.password})
        if r.status_code != 200:
            raise SystemExit(f"login of {manifest.users[key]} failed: {r.status_code} {r.text[:200]}")
        tokens[key] = r.json()["access_token"]
    return tokens


def request_headers(case: Case, tokens: dict[str, str]) -> dict[str, str]:
    headers = {}
    if case.user:
        headers["Authorization"] = f"Bearer {tokens[case.user]}"
    if case.body is not None:
        headers["Content-Type"] = case.content_type
    return headers


# --- batch figures: in-process, timed, rolled back (the dataset is unchanged) --------------------------


def batch_figures(url: str, manifest: Any) -> dict[str, Any]:
    """A subsidy entitlement run over every cadre of the dataset (the city's run of its yearly and basic-pay
    kinds, through the service), against a bare bulk INSERT of the same lines; and a monthly list of three tasks
    issued to every village. Each in its own transaction, rolled back, so reruns find the same dataset."""
    from sqlalchemy import delete, insert, select
    from sqlalchemy.orm import Session

    from app.core import db as core_db
    from app.models.accounts import User
    from app.models.funds.subsidies import SubsidyLine, SubsidyPolicyCreate, SubsidyRunCreate, SubsidyRunKind
    from app.models.responsibilities.monthly import MonthlyListCreate
    from app.services import accounts
    from app.services.funds import subsidies
    from app.services.responsibilities import monthly
    from bench import dataset

    engine = core_db.configure_engine(url)
    out: dict[str, Any] = {}
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == manifest.users["city"]))
        assert user is not None
        actor = accounts.actor_for(session, user)
        lines = {k: b for k, b in session.execute(select(SubsidyRunKind.kind, SubsidyRunKind.budget_line_id))}
        # The dataset's runs were generated without policies: the bench's own rates, in this transaction only.
        for kind in lines:
            flat = dataset.INSURANCE_FEN if kind == "accident_insurance" else dataset.PENSION_FEN
            rates = ([{"title": t, "amount": f"{fen / 100:.2f}"} for t, fen in dataset.BASIC_PAY_FEN.items()]
                     if kind == "basic_pay" else [{"amount": f"{flat / 100:.2f}"}])
            subsidies.create_policy(session, actor, SubsidyPolicyCreate.model_validate({
                "kind": kind, "name": f"bench {kind}", "valid_from": f"{YEAR}-01-01", "rates": rates}))
        body = SubsidyRunCreate.model_validate({"year": YEAR, "org_id": manifest.city_id, "kinds": [
            {"kind": k, "budget_line_id": b} for k, b in sorted(lines.items())]})
        t0 = time.perf_counter()
        run, _ = subsidies.create_run(session, actor, body)
        session.flush()
        run_s = time.perf_counter() - t0
        table = SubsidyLine.__table__  # type: ignore[attr-defined]
        rows = [dict(r._mapping) for r in session.execute(select(table).where(table.c.run_id == run.id))]
        session.execute(delete(table).where(table.c.run_id == run.id))
        for r in rows:
            r.pop("id")
        t0 = time.perf_counter()
        session.connection().execute(insert(table), rows)
        bare_s = time.perf_counter() - t0
        session.rollback()
        out["entitlement_run"] = {
            "kinds": sorted(lines), "lines": len(rows), "seconds": round(run_s, 2),
            "lines_per_second": round(len(rows) / run_s) if run_s else None,
            "bare_bulk_insert_seconds": round(bare_s, 2), "ratio_to_bare_insert": round(run_s / bare_s, 2),
        }
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == manifest.users["city"]))
        assert user is not None
        actor = accounts.actor_for(session, user)
        month = f"{YEAR + 1}-01"
        draft = MonthlyListCreate.model_validate({"month": month, "title": "基准月度清单", "tasks": [
            {"title": f"任务{i}", "category": "organization_building", "deadline": f"{month}-28",
             "target_mode": "all_villages"} for i in range(3)]})
        lst = monthly.create(session, actor, draft)
        session.flush()
        t0 = time.perf_counter()
        monthly.issue(session, actor, lst)
        session.flush()
        issue_s = time.perf_counter() - t0
        villages = len(manifest.village_ids)
        session.rollback()
        out["monthly_list_issue"] = {"villages": villages, "tasks": 3, "assignments": 3 * villages,
                                     "seconds": round(issue_s, 2)}
    engine.dispose()
    return out


# --- servers and wrk ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app_path: str, env: dict[str, str], workers: int = 1) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app_path, "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise SystemExit(f"{app_path} did not start: {err[-2000:]}") from None
                time.sleep(0.2)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of the resident set (VmHWM: the peak since the process started) of the worker; with
    several workers (uvicorn's children), the largest of theirs."""
    children: list[int] = []
    with suppress(OSError):
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    peaks = []
    for p in children or [pid]:
        with suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks) if peaks else float("nan")


def lua_script(case: Case, tokens: dict[str, str]) -> str:
    lines = [f'wrk.method = "{case.method}"']
    for k, v in request_headers(case, tokens).items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    if case.body is not None:
        lines.append(f"wrk.body = {json.dumps(case.body, ensure_ascii=False)}")
    # Count answers with any other status than the expected one (wrk itself only counts non-2xx/3xx).
    lines += [
        "local threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function init(args) unexpected = 0 end",
        f"function response(status, headers, body) if status ~= {case.expect} then unexpected = unexpected + 1 end end",
        "function done(summary, latency, requests)",
        "  local n = 0",
        '  for _, t in ipairs(threads) do n = n + t:get("unexpected") end',
        '  io.write("UNEXPECTED " .. n .. "\\n")',
        "end",
    ]
    return "\n".join(lines) + "\n"


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(token: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", token)
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNIT[match.group(2)]


def wrk(url: str, case: Case, tokens: dict[str, str], seconds: float, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, encoding="utf-8") as fh:
        fh.write(lua_script(case, tokens))
        script = fh.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
             "-s", script, url + case.path],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(script)
    result: dict[str, float] = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": 0.0,
                                "requests": 0.0}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            result["rps"] = float(s.split()[1])
        elif s.startswith("50%"):
            result["p50"] = _ms(s.split()[1])
        elif s.startswith("99%"):
            result["p99"] = _ms(s.split()[1])
        elif s.startswith("UNEXPECTED "):
            result["errors"] += float(s.split()[-1])
        elif s.startswith("Socket errors:"):
            result["errors"] += sum(float(x) for x in re.findall(r"\d+", s))
        elif re.match(r"^\d+ requests in", s):
            result["requests"] = float(s.split()[0])
    return result


# --- the run --------------------------------------------------------------------------------------

MAX_SINGLE_MS = env_float("BENCH_MAX_SINGLE_MS", 3000)


def plan(case: Case, seconds: float, connections: int) -> None:
    """Heavy cases get fewer connections and a longer run; one slower than BENCH_MAX_SINGLE_MS alone is not
    loaded at all (the table shows its single-request time): the run stays bounded."""
    single = case.single_ms or 0.0
    if single > MAX_SINGLE_MS:
        case.connections, case.seconds = 0, 0.0
        return
    case.connections = connections if single < 200 else 2
    case.seconds = max(seconds, min(30.0, 5 * single / 1000))


def drain(base: str, limit: float = 120.0) -> None:
    """Wait until the service is idle again (requests queued by a slow case have finished): /healthz answers
    within 100 ms twice in a row, or `limit` seconds pass."""
    import httpx

    deadline, quick = time.monotonic() + limit, 0
    with httpx.Client(base_url=base, timeout=limit) as client:
        while quick < 2 and time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                client.get("/healthz")
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            quick = quick + 1 if time.perf_counter() - t0 < 0.1 else 0


def machine() -> dict[str, Any]:
    model = ""
    with suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": platform.platform(), "load_avg_start": os.getloadavg()}


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)", file=sys.stderr)
        return 2
    seconds = env_float("BENCH_SECONDS", 5)
    warmup = env_float("BENCH_WARMUP", 1)
    rounds = int(env_float("BENCH_ROUNDS", 3))
    connections = int(env_float("BENCH_CONNECTIONS", 8))
    scale_name = os.environ.get("BENCH_SCALE", "full")
    wanted = {n for n in os.environ.get("BENCH_CASES", "").split(",") if n}
    workers = int(env_float("BENCH_WORKERS", 1))
    with_batch = os.environ.get("BENCH_BATCH", "1") != "0"
    info = machine()
    with database(scale_name) as (url, manifest, dialect):
        cases = [c for c in cases_for(manifest) if not wanted or c.name in wanted or c.name == "ceiling"]
        count_sql(url, dialect, manifest, cases)
        for case in cases:
            if case.server != "floor":  # probed over HTTP once it is served (probe_floor)
                print(f"probe {case.name:<20} {case.sql} SQL statements, {case.single_ms or 0:.0f} ms alone",
                      flush=True)
        batch = batch_figures(url, manifest) if with_batch else {}
        if batch:
            print(f"batch {json.dumps(batch, ensure_ascii=False)}", flush=True)
        env = server_env(url, dialect)
        with serve("bench.hello:app", env) as (hello_port, _), \
                serve("bench.floor:app", env, workers) as (floor_port, _), \
                serve("app.main:app", env, workers) as (app_port, proc):
            import httpx

            base = {"app": f"http://127.0.0.1:{app_port}", "hello": f"http://127.0.0.1:{hello_port}",
                    "floor": f"http://127.0.0.1:{floor_port}"}
            with httpx.Client(base_url=base["app"]) as client:
                tokens = login_all(lambda path, data: client.post(path, data=data), manifest)
            probe_floor(base["floor"], cases)
            for case in cases:
                plan(case, seconds, connections)
            for r in range(rounds):
                for case in cases:
                    if not case.connections:
                        continue
                    if warmup > 0:
                        wrk(base[case.server], case, tokens, warmup, case.connections)
                        drain(base["app"])
                    res = wrk(base[case.server], case, tokens, case.seconds, case.connections)
                    drain(base["app"])
                    case.rounds.append(res)
                    print(f"round {r + 1}/{rounds} {case.name:<20} {res['rps']:9.1f} req/s  p50 {res['p50']:8.2f} ms"
                          f"  p99 {res['p99']:8.2f} ms  errors {int(res['errors'])}  c={case.connections}",
                          flush=True)
            rss = peak_rss_mb(proc.pid)
    report = summarise(cases, info, dialect, manifest, rss, seconds, warmup, rounds, connections, scale_name,
                       workers)
    report["batch"] = batch
    print()
    print(table(report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Only a complete run replaces the committed results; a partial or tiny one goes to partial-*.json.tmp (ignored).
    complete = scale_name == "full" and not wanted and with_batch
    if complete and workers > 1:
        names: tuple[str, ...] = (f"latest-{dialect}-{workers}-workers.json",)
    else:
        names = ("latest.json", f"latest-{dialect}.json") if complete else (f"partial-{dialect}.json.tmp",)
    for name in names:
        (RESULTS / name).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("\nwritten to " + " and ".join(str(RESULTS / n) for n in names))
    return 0


def summarise(cases: list[Case], info: dict[str, Any], dialect: str, manifest: Any, rss: float, seconds: float,
              warmup: float, rounds: int, connections: int, scale_name: str, workers: int = 1) -> dict[str, Any]:
    ceiling = next(c for c in cases if c.name == "ceiling")
    rows = []
    for case in cases:
        ratios = [r["rps"] / c["rps"] for r, c in zip(case.rounds, ceiling.rounds, strict=False) if c["rps"]]
        loaded = bool(case.rounds)
        rows.append({
            "case": case.name, "description": case.description, "method": case.method, "path": case.path,
            "rps": statistics.median(r["rps"] for r in case.rounds) if loaded else None,
            "p50_ms": statistics.median(r["p50"] for r in case.rounds) if loaded else None,
            "p99_ms": statistics.median(r["p99"] for r in case.rounds) if loaded else None,
            "ratio": statistics.median(ratios) if ratios else None,
            "single_ms": None if case.single_ms is None else round(case.single_ms, 1),
            "connections": case.connections, "seconds": case.seconds,
            "sql": case.sql, "errors": int(sum(r["errors"] for r in case.rounds)),
            "requests": int(sum(r["requests"] for r in case.rounds)), "rounds": case.rounds,
        })
    info = {**info, "load_avg_end": os.getloadavg()}
    return {
        "database": dialect, "scale": scale_name, "dataset_rows": manifest.counts,
        "dataset_load_seconds": round(manifest.seconds, 1), "machine": info,
        "settings": {"seconds": seconds, "warmup": warmup, "rounds": rounds, "connections": connections,
                     "load_generator": "wrk -t1", "workers": workers,
                     "server": f"uvicorn, {workers} worker{'s' if workers > 1 else ''}, --no-access-log, "
                               "LOG_LEVEL=WARNING",
                     "environment": "production" if dialect == "postgresql" else "development"},
        "worker_peak_rss_mb": round(rss, 1), "cases": rows,
    }


def table(report: dict[str, Any]) -> str:
    workers = report["settings"].get("workers", 1)
    head = (f"{report['database']} · {report['scale']} dataset ({sum(report['dataset_rows'].values()):,} rows, "
            f"loaded in {report['dataset_load_seconds']} s) · {report['machine']['cpus']} CPUs · {workers} "
            f"worker{'s' if workers > 1 else ''} · worker peak RSS {report['worker_peak_rss_mb']} MB")
    lines = [head, "", "| case | req/s | p50 ms | p99 ms | × ceiling | SQL/req | alone ms | conns | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def num(value: float | None, fmt: str) -> str:
        if value is None:
            return "–"
        if fmt == "rate":  # three significant digits, whatever the magnitude
            return f"{value:.3g}" if value < 100 else f"{value:.0f}"
        return format(value, fmt)

    for r in report["cases"]:
        lines.append(f"| {r['case']} | {num(r['rps'], 'rate')} | {num(r['p50_ms'], '.1f')} | {num(r['p99_ms'], '.1f')} "
                     f"| {num(r['ratio'], '.4f')} | {num(r['sql'], 'd')} | {num(r['single_ms'], '.0f')} "
                     f"| {r['connections'] or 'not loaded'} | {r['errors']} |")
    batch = report.get("batch") or {}
    if "entitlement_run" in batch:
        e = batch["entitlement_run"]
        lines += ["", f"Entitlement run over every cadre ({', '.join(e['kinds'])}): {e['lines']:,} lines in "
                      f"{e['seconds']} s ({e['lines_per_second']:,} lines/s); a bare bulk INSERT of the same lines "
                      f"{e['bare_bulk_insert_seconds']} s: × {e['ratio_to_bare_insert']}"]
    if "monthly_list_issue" in batch:
        m = batch["monthly_list_issue"]
        lines += [f"Monthly list of {m['tasks']} tasks issued to every village ({m['villages']:,}): "
                  f"{m['assignments']:,} assignments in {m['seconds']} s"]
    return "\n".join(lines)
