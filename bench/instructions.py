"""Instructions per request (issue 8): `python -m bench.instructions [case ...]`.

A machine shared with others gives requests/s that move by 10-30 % between two runs of the same code, more than
most changes to the request path are worth. This counts the CPU instructions the service executes per request
instead, with valgrind's callgrind: the same code on the same data gives the same figure to about 1 %, whatever
else the machine is doing. Compare two checkouts (a `git worktree` of the base) case by case:

    .venv/bin/python -m bench.instructions get_org page_township              # this checkout
    BENCH_CODE=/tmp/base .venv/bin/python -m bench.instructions get_org       # another checkout, same data

Each case runs in its own process under `valgrind --tool=callgrind --instr-atstart=no`: the app is imported and
warmed up (50 requests) uninstrumented, then BENCH_REQUESTS (100) requests are counted, one after another,
sent straight to the ASGI app (no uvicorn, no sockets: the parsing and writing a hello-world also pays are left
out). The counted part includes the worker threads' work. Instructions are not time (cache misses, system calls
and the database server's own work on PostgreSQL are not in them): confirm a gain with `make bench`.

Needs valgrind with its headers (Debian: valgrind) and a C compiler, for the two-function library that turns
counting on and off. The dataset is the benchmark's: the SQLite file of `make bench` (made if missing; each
case runs on a copy of it), or a kept PostgreSQL database (BENCH_DATABASE_URL with BENCH_PG_KEEP). Cases are
`make bench`'s, except the ceiling and the token (argon2 under valgrind takes minutes).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

SKIPPED = {"ceiling", "token"}
DEFAULT_CASES = ["healthz", "get_org", "get_person", "page_township", "create_org", "report_problems"]
WARM_UP = 50
_SWITCH = """#include <valgrind/callgrind.h>
void counting_on(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void counting_off(void) { CALLGRIND_DUMP_STATS_AT("counted"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:  # under valgrind, with the checkout to count on its path: stdlib and app only
        asyncio.run(_drive(json.loads(argv[1]), int(argv[2])))
        return 0
    from bench.run import ROOT, cases_for, database, server_env

    for tool in ("valgrind", "cc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install -y valgrind gcc)")
    os.environ.setdefault("BENCH_REUSE", "1")  # the SQLite file of `make bench`, made only if it is missing
    requests = int(os.environ.get("BENCH_REQUESTS", "100"))
    code = Path(os.environ.get("BENCH_CODE", ROOT)).resolve()
    with database(os.environ.get("BENCH_SCALE", "full")) as (url, manifest, dialect), \
            tempfile.TemporaryDirectory() as tmp:
        known = {c.name: c for c in cases_for(manifest) if c.name not in SKIPPED}
        wanted = argv or DEFAULT_CASES
        if unknown := [name for name in wanted if name not in known]:
            raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(known)}")
        switch = Path(tmp) / "switch.so"
        (Path(tmp) / "switch.c").write_text(_SWITCH)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", switch, Path(tmp) / "switch.c"], check=True)
        print(f"{dialect} · {code} · {requests} requests per case after {WARM_UP} to warm up")
        for name in wanted:
            # SQLite: every case on its own copy, so a create leaves the dataset as it was for the next run
            # (PostgreSQL: on the kept database itself).
            case_url = _copy_sqlite(url, Path(tmp) / "case.db") if dialect == "sqlite" else url
            env = {**server_env(case_url, dialect), "PYTHONPATH": str(code), "BENCH_SWITCH": str(switch)}
            out = Path(tmp) / f"{name}.callgrind"
            job = {"case": dataclasses.asdict(known[name]), "users": manifest.users, "password": manifest.password}
            run = subprocess.run(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                 sys.executable, __file__, "--child", json.dumps(job), str(requests)],
                env=env, cwd=code, capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"{name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
            print(f"{name:<22} {_counted(Path(tmp), out.name) / requests:>14,.0f} instructions per request")
    return 0


def _copy_sqlite(url: str, target: Path) -> str:
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(target) as copy:
        source.backup(copy)  # consistent, with what the source's WAL holds
    return f"sqlite:///{target}"


def _counted(folder: Path, prefix: str) -> int:
    """The total of the dump `counting_off` asked for (callgrind writes it beside the one at exit)."""
    for dump in sorted(folder.glob(prefix + ".*")):
        text = dump.read_text(errors="replace")
        if re.search(r"^desc: Trigger: Client Request: counted$", text, re.MULTILINE):
            found = re.search(r"^(?:summary|totals):\s+(\d+)$", text, re.MULTILINE)
            if found:
                return int(found.group(1))
    raise SystemExit(f"no dump of the counted requests in {folder} for {prefix}")


async def _drive(job: dict[str, Any], requests: int) -> None:
    from app.main import create_app

    app, case, switch = create_app(), job["case"], ctypes.CDLL(os.environ["BENCH_SWITCH"])
    async with app.router.lifespan_context(app):
        headers = {}
        if case["user"]:  # argon2 is slow under valgrind: only the case's user logs in
            username = job["users"][case["user"]]
            form = urllib.parse.urlencode({"username": username, "password": job["password"]}).encode()
            status, body = await _call(app, "POST", "/api/v1/auth/token",
                                       {"Content-Type": "application/x-www-form-urlencoded"}, form)
            if status != 200:
                raise SystemExit(f"login of {username}: {status} {body[:200]!r}")
            headers["Authorization"] = f"Bearer {json.loads(body)['access_token']}"
        if case["body"] is not None:
            headers["Content-Type"] = case["content_type"]
        path = case["path"]
        if case["cursor_from"]:
            status, body = await _call(app, "GET", case["cursor_from"], headers, b"")
            cursor = json.loads(body).get("next") if status == 200 else None
            if cursor is None:
                raise SystemExit(f"{case['name']}: {case['cursor_from']} gave no cursor: {status} {body[:300]!r}")
            path += "&after=" + urllib.parse.quote(cursor)
        content = (case["body"] or "").encode()
        for i in range(WARM_UP + requests):
            if i == WARM_UP:
                switch.counting_on()
            status, body = await _call(app, case["method"], path, headers, content)
            if status != case["expect"]:
                raise SystemExit(f"{case['name']}: {status} {body[:300]!r}")
        switch.counting_off()


async def _call(app: Any, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One request straight to the ASGI app."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": urllib.parse.unquote(path), "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {},
        "headers": [(b"host", b"127.0.0.1")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent = False
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
