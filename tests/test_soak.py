"""A bounded soak: a few thousand mixed requests from four roles at once, then the invariants.

The city administrator creates budget lines, allocates money down to the townships and approves their payment
requests; the township administrators request payments, open problems for their villages and verify or reject
rectifications; the village administrators rectify and submit their problems; the auditor reads lists and the
audit log. Each role runs in a thread of its own through the HTTP API in process (real transactions, committed,
in an organisation subtree of its own). SOAK_REQUESTS scales the run (2,000 by default: about 50 s on two busy cores),
SOAK_SEED picks another mix.

At the end: no answer was a 5xx; no line committed more than it was allocated and each line's sums match the
allocations and approvals behind them; the audit chain verifies (GET /api/v1/audit-log/verify); and the number
of problems and payment requests in each state is what the audit log's transitions add up to.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from app.core import db as core_db
from app.core.permissions import Role
from app.models.accounts import User
from app.models.audit import AuditLog
from app.models.funds.budgets import BudgetAllocation, BudgetLine, Disbursement
from app.models.responsibilities.problems import Problem
from tests.factories import World, access_token, make_org

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "2000"))
SEED = int(os.environ.get("SOAK_SEED", "9"))
LINES, ALLOC, DISB = "/api/v1/budget-lines", "/api/v1/allocations", "/api/v1/disbursements"
PROBLEMS = "/api/v1/problems"


@dataclass
class Soak:
    root: int
    towns: list[int]
    villages: dict[int, list[int]]  # township -> its villages
    tokens: dict[str, str]
    first_audit_id: int
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def soak(engine: Engine, world: World) -> Iterator[Soak]:
    with core_db.session_scope() as s:
        root = make_org(s, None, level="city", domain="organ", name="压测市", code=None)
        towns = [make_org(s, root, level="township", domain="township", name=f"压测镇{i}", code=None)
                 for i in range(2)]
        villages = {t.id: [make_org(s, t, level="village", domain="rural", name=f"压测村{t.id}-{j}", code=None).id
                           for j in range(2)] for t in towns}
        pw = world.users["v1"].password_hash
        users = {"city": User(username=f"soak_city_{root.id}", password_hash=pw, role=Role.city_admin,
                              org_id=root.id),
                 "auditor": User(username=f"soak_auditor_{root.id}", password_hash=pw, role=Role.auditor,
                                 org_id=root.id)}
        for i, t in enumerate(towns):
            users[f"town{i}"] = User(username=f"soak_town{i}_{root.id}", password_hash=pw, role=Role.township_admin,
                                     org_id=t.id)
            users[f"village{i}"] = User(username=f"soak_village{i}_{root.id}", password_hash=pw,
                                        role=Role.village_admin, org_id=villages[t.id][0])  # type: ignore[index]
        s.add_all(users.values())
        s.flush()
        first = (s.scalar(select(func.max(AuditLog.id))) or 0) + 1
        box = Soak(root.id, [t.id for t in towns], villages, {k: access_token(u) for k, u in users.items()},  # type: ignore[misc,arg-type]
                   first)
    yield box
    # The rows stay: a subtree of its own, in the per-run database (dropped after the run); deleting them would
    # only leave audit rows about records that no longer exist.


class Actor:
    def __init__(self, box: Soak, http: TestClient, who: str, rng: random.Random) -> None:
        self.box, self.http, self.who, self.rng = box, http, who, rng
        self.h = {"Authorization": f"Bearer {box.tokens[who]}"}
        self.sent = 0

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, headers=self.h, **kw)
        self.sent += 1
        with self.box.lock:
            self.box.statuses[r.status_code] += 1
            if r.status_code >= 500 or r.status_code in (400, 401, 422):
                self.box.errors.append(f"{self.who} {method} {path} -> {r.status_code} {r.text[:300]}")
        return r

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        r = self.call("GET", path, params={"limit": 200, **params})
        return r.json()["items"] if r.status_code == 200 else []

    def pick(self, path: str, **params: Any) -> dict[str, Any] | None:
        found = self.items(path, **params)
        return self.rng.choice(found) if found else None


def city(a: Actor) -> None:
    box, roll = a.box, a.rng.random()
    if roll < 0.08:
        a.call("POST", LINES, json={"fiscal_year": 2019, "org_id": box.root, "category": "party_work",
                                    "name": "压测经费", "source": "市财政", "allocated": "5000.00"})
    elif roll < 0.35:
        line = a.pick(LINES, org_id=box.root)
        if line:
            a.call("POST", ALLOC, json={"from_line_id": line["id"], "to_org_id": a.rng.choice(box.towns),
                                        "amount": f"{a.rng.randint(1, 15) * 100}.00"})
    elif roll < 0.75:
        d = a.pick(DISB, status="pending", subtree=True)
        if d:
            if a.rng.random() < 0.75:
                a.call("POST", f"{DISB}/{d['id']}/approve")
            else:
                a.call("POST", f"{DISB}/{d['id']}/cancel", json={"reason": "压测撤销"})
    else:
        a.items(a.rng.choice([LINES, DISB, PROBLEMS]), subtree=True)


def township(a: Actor) -> None:
    town = a.box.towns[int(a.who[-1])]
    roll = a.rng.random()
    if roll < 0.35:
        line = a.pick(LINES, org_id=town)
        if line:
            a.call("POST", DISB, json={"line_id": line["id"], "payee_kind": "other", "payee_name": "压测收款",
                                       "purpose": "压测", "disbursed_on": "2019-05-06",
                                       "amount": f"{a.rng.randint(1, 8) * 50}.00"})
    elif roll < 0.55:
        a.call("POST", PROBLEMS, json={"org_id": a.rng.choice(a.box.villages[town]), "year": 2019,
                                       "source": "other", "description": "压测问题"})
    elif roll < 0.85:
        p = a.pick(PROBLEMS, status="submitted", org_id=town, subtree=True)
        if p:
            if a.rng.random() < 0.7:
                a.call("POST", f"{PROBLEMS}/{p['id']}/verify")
            else:
                a.call("POST", f"{PROBLEMS}/{p['id']}/reject", json={"reason": "未整改到位"})
    else:
        a.items(a.rng.choice([LINES, DISB, PROBLEMS]), subtree=True)


def village(a: Actor) -> None:
    village_id = a.box.villages[a.box.towns[int(a.who[-1])]][0]
    roll = a.rng.random()
    if roll < 0.45:
        p = a.pick(PROBLEMS, status="open", org_id=village_id)
        if p:
            a.call("POST", f"{PROBLEMS}/{p['id']}/rectify")
    elif roll < 0.9:
        p = a.pick(PROBLEMS, status="rectifying", org_id=village_id)
        if p:
            a.call("POST", f"{PROBLEMS}/{p['id']}/submit", json={"note": "已整改"})
    else:
        a.items(PROBLEMS, org_id=village_id)


def auditor(a: Actor) -> None:
    roll = a.rng.random()
    if roll < 0.05:
        r = a.call("GET", "/api/v1/audit-log/verify")
        assert r.status_code == 200 and r.json()["ok"], r.text
    elif roll < 0.4:
        a.items("/api/v1/audit-log", org_id=a.box.root)
    else:
        a.items(a.rng.choice([LINES, DISB, PROBLEMS]), org_id=a.box.root, subtree=True)


ROLES: dict[str, Callable[[Actor], None]] = {
    "city": city, "town0": township, "town1": township, "village0": village, "village1": village, "auditor": auditor,
}


def test_soak_keeps_money_states_and_the_audit_chain_consistent(engine: Engine, soak: Soak) -> None:
    from app.main import app

    http = TestClient(app, raise_server_exceptions=False)
    started = time.monotonic()
    per_role = max(REQUESTS // len(ROLES), 1)

    def run(who: str) -> None:
        a = Actor(soak, http, who, random.Random(f"{SEED}-{who}"))
        try:
            while a.sent < per_role:
                ROLES[who](a)
        except Exception as exc:  # reported below, with the rest
            with soak.lock:
                soak.errors.append(f"{who}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(who,)) for who in ROLES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.monotonic() - started
    total = sum(soak.statuses.values())
    print(f"soak: {total} requests in {elapsed:.1f} s, statuses {dict(sorted(soak.statuses.items()))}")
    assert not soak.errors, soak.errors[:10]
    assert total >= per_role * len(ROLES)
    assert soak.statuses[200] + soak.statuses[201] > total // 2, "the mix did mostly nothing"

    with core_db.session_scope(write=False) as s:
        orgs = [soak.root, *soak.towns, *[v for vs in soak.villages.values() for v in vs]]
        lines = list(s.scalars(select(BudgetLine).where(BudgetLine.org_id.in_(orgs))))  # type: ignore[attr-defined]
        assert lines and any(line.approved_fen for line in lines), "no money moved"
        for line in lines:
            assert line.committed_fen == line.allocated_down_fen + line.approved_fen + line.paid_fen
            assert line.committed_fen <= line.allocated_fen, f"line {line.id} overspent"
            down = s.scalar(select(func.coalesce(func.sum(BudgetAllocation.amount_fen), 0))
                            .where(BudgetAllocation.from_line_id == line.id))
            received = s.scalar(select(func.coalesce(func.sum(BudgetAllocation.amount_fen), 0))
                                .where(BudgetAllocation.to_line_id == line.id))
            approved = s.scalar(select(func.coalesce(func.sum(Disbursement.amount_fen), 0)).where(
                Disbursement.line_id == line.id, Disbursement.status == "approved"))
            assert (down, approved) == (line.allocated_down_fen, line.approved_fen), f"line {line.id}"
            if line.org_id != soak.root:
                assert received == line.allocated_fen, f"line {line.id} holds money nobody allocated"

        def actions(entity: str) -> Counter[str]:
            rows = s.execute(select(AuditLog.action, func.count()).where(
                AuditLog.id >= soak.first_audit_id, AuditLog.entity == entity,
                AuditLog.org_id.in_(orgs)).group_by(AuditLog.action))  # type: ignore[union-attr]
            return Counter({action.split(".", 1)[1]: n for action, n in rows})

        def states(model: Any) -> Counter[str]:
            rows = s.execute(select(model.status, func.count()).where(model.org_id.in_(orgs)).group_by(model.status))
            return Counter({str(getattr(status, "value", status)): n for status, n in rows})

        p, ps = actions("problem"), states(Problem)
        if REQUESTS >= 1000:  # a run this long goes through every transition
            assert ps["verified"] > 0 and p["reject"] > 0, (p, ps)
        assert ps == Counter({
            "open": p["open"] - p["rectify"], "rectifying": p["rectify"] + p["reject"] - p["submit"],
            "submitted": p["submit"] - p["verify"] - p["reject"], "verified": p["verify"],
        }) - Counter(), (p, ps)  # "- Counter()" drops the zero counts
        d, ds = actions("disbursement"), states(Disbursement)
        # Only the city approves or cancels, one request at a time, and only what it read as pending.
        assert ds == Counter({"pending": d["create"] - d["approve"] - d["cancel"], "approved": d["approve"],
                              "cancelled": d["cancel"]}) - Counter(), (d, ds)
    r = http.get("/api/v1/audit-log/verify", headers={"Authorization": f"Bearer {soak.tokens['auditor']}"})
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
