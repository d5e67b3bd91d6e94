"""The service as integrators meet it: uvicorn on a free loopback port, on a scratch SQLite database migrated and
seeded with the demo data (`python -m app migrate`, `python -m app seed-demo`). One per test session, started
only when a test asks for the `live_service` fixture (tests/conftest.py): the /docs browser test and the
generated-client scenarios share it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "kangding-demo-2019"  # app/demo/platform.py (DEMO_PASSWORD is removed from the service's env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@contextmanager
def running_service(tmp: Path) -> Iterator[str]:
    """Yield the base URL of a seeded service running in a child process; stop it afterwards."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEMO_PASSWORD", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp / 'demo.db'}", DOCS_ENABLED="true", LOG_LEVEL="WARNING",
               ENVIRONMENT="test", SECRET_KEY=os.environ.get("SECRET_KEY", "live-test-secret-key-0123456789abcdef"))
    for step in (["migrate"], ["seed-demo"]):
        done = subprocess.run([sys.executable, "-m", "app", *step], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    port = free_port()
    log = open(tmp / "uvicorn.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and httpx.get(f"{base}/healthz", timeout=2).status_code == 200,
                   60, "the service")
        yield base
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a child process this test started: politely, then for good."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
