"""PostgreSQL test support: wait until a request under test waits on a lock that the test holds."""

from __future__ import annotations

import time

from sqlalchemy import Connection, text


def lock_waiters(conn: Connection, timeout: float = 30) -> list[int]:
    """The pids of this database's other backends that wait on a lock, as soon as there is one; empty if none
    did within `timeout` seconds. `conn` is an autocommit connection of the test's own."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = list(conn.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")))
        if waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.05)
