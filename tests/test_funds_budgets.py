"""The budget ledger: lines, allocations, maker-checker disbursements, reversals, idempotency, the report."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from app.core.idempotency import IdempotencyKey
from app.models.audit import AuditLog
from app.models.funds.budgets import BudgetAllocation, BudgetLine, Disbursement, DisbursementReversal
from tests.factories import World
from tests.funds_support import (
    CITY,
    TOWNSHIP,
    count_statements,
    extra_user,
    headers,
    make_line,
    reload_line,
)

LINES = "/api/v1/budget-lines"
ALLOC = "/api/v1/allocations"
DISB = "/api/v1/disbursements"


def new_line(client: TestClient, world: World, who: str = "city", org_id: int | None = None, amount: str = "500000.00",
             category: str = "party_work", year: int = 2019) -> dict:
    r = client.post(LINES, headers=world.auth(who), json={
        "fiscal_year": year, "org_id": org_id or world.city.id, "category": category, "name": "党建工作经费",
        "source": "市财政", "allocated": amount})
    assert r.status_code == 201, r.text
    return r.json()


def request_payment(client: TestClient, world: World, line_id: int, amount: str, who: str = "city") -> dict:
    r = client.post(DISB, headers=world.auth(who), json={
        "line_id": line_id, "payee_kind": "other", "payee_name": "康定印刷厂", "purpose": "党建资料印制",
        "disbursed_on": "2019-05-06", "amount": amount})
    assert r.status_code == 201, r.text
    return r.json()


# --- amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0.10", "0.01", "1234567.89", "500000", "99999999.99"])
def test_amounts_survive_a_round_trip_as_exact_decimals(client: TestClient, world: World, db: Session,
                                                        amount: str) -> None:
    line = new_line(client, world, amount=amount)
    expected = f"{float(amount):.2f}" if "." not in amount else amount
    assert line["allocated"] == expected and line["available"] == expected
    got = client.get(f"{LINES}/{line['id']}", headers=world.auth("auditor")).json()
    assert got["allocated"] == expected
    stored = db.scalar(select(BudgetLine.allocated_fen).where(BudgetLine.id == line["id"]))
    assert stored == int(expected.replace(".", ""))


def test_floats_and_third_decimals_are_refused(client: TestClient, world: World) -> None:
    for bad in (100.5, "1.005", "abc", "NaN", "-5.00"):
        r = client.post(LINES, headers=world.auth("city"), json={
            "fiscal_year": 2019, "org_id": world.city.id, "category": "training", "name": "x", "source": "y",
            "allocated": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_no_column_holding_money_is_a_float(engine: Engine) -> None:
    insp = inspect(engine)
    money_tables = [t for t in insp.get_table_names() if t.startswith(("budget", "disbursement", "subsidy", "dues"))]
    assert {"budget_line", "disbursement", "subsidy_line", "dues_payment"} <= set(money_tables)
    checked = 0
    for table in insp.get_table_names():
        for column in insp.get_columns(table):
            kind = column["type"]
            assert not isinstance(kind, sqltypes.Float | sqltypes.REAL), (table, column["name"])
            if column["name"].endswith("_fen"):
                assert isinstance(kind, sqltypes.BigInteger), (table, column["name"], kind)
                checked += 1
            if table in money_tables:
                assert not isinstance(kind, sqltypes.Numeric) or isinstance(kind, sqltypes.Integer), (
                    table, column["name"])
    assert checked >= 20


def test_the_database_refuses_an_overspent_line(db: Session, world: World) -> None:
    line = make_line(db, world.city, allocated_fen=1000)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(update(BudgetLine).where(BudgetLine.id == line.id)
                   .values(approved_fen=1001, committed_fen=1001))
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(update(BudgetLine).where(BudgetLine.id == line.id).values(approved_fen=10))  # sum broken


# --- lines and allocations ----------------------------------------------------------------


def test_city_allocates_down_to_a_township_then_a_community(client: TestClient, world: World, db: Session) -> None:
    city_line = new_line(client, world, amount="500000.00")
    r = client.post(ALLOC, headers=world.auth("city"), json={
        "from_line_id": city_line["id"], "to_org_id": world.t1.id, "amount": "200000.00"})
    assert r.status_code == 201, r.text
    t1_line_id = r.json()["to_line_id"]
    t1_line = client.get(f"{LINES}/{t1_line_id}", headers=world.auth("t1")).json()
    assert (t1_line["org_id"], t1_line["allocated"], t1_line["parent_line_id"]) == (world.t1.id, "200000.00",
                                                                                     city_line["id"])
    r = client.post(ALLOC, headers=world.auth("t1"), json={
        "from_line_id": t1_line_id, "to_org_id": world.v1.id, "amount": "50000.00"})
    assert r.status_code == 201, r.text
    city_after = client.get(f"{LINES}/{city_line['id']}", headers=world.auth("city")).json()
    assert (city_after["allocated_down"], city_after["available"]) == ("200000.00", "300000.00")
    t1_after = client.get(f"{LINES}/{t1_line_id}", headers=world.auth("t1")).json()
    assert (t1_after["allocated"], t1_after["allocated_down"], t1_after["available"]) == (
        "200000.00", "50000.00", "150000.00")
    # The village sees its own line only, and the city line is out of its scope.
    v1_lines = client.get(LINES, headers=world.auth("v1")).json()
    assert [x["allocated"] for x in v1_lines["items"]] == ["50000.00"]
    assert client.get(f"{LINES}/{city_line['id']}", headers=world.auth("v1")).status_code == 404
    # Every money movement is in the audit log with before and after amounts.
    # Newest first: rows committed by the concurrency tests stay in the run's database and SQLite reuses ids.
    row = db.scalar(select(AuditLog).where(AuditLog.action == "budget_line.allocate_down",
                                           AuditLog.entity_id == str(city_line["id"]))
                    .order_by(AuditLog.id.desc()))
    assert row is not None and row.before["available"] == "500000.00" and row.after["available"] == "300000.00"


def test_allocating_more_than_available_is_409_with_the_available_amount(client: TestClient, world: World,
                                                                         db: Session) -> None:
    line = new_line(client, world, amount="1000.00")
    r = client.post(ALLOC, headers=world.auth("city"), json={
        "from_line_id": line["id"], "to_org_id": world.t2.id, "amount": "1000.01"})
    assert r.status_code == 409 and r.json()["code"] == "budget_exceeded"
    assert "1000.00 available" in r.json()["detail"]
    assert db.scalar(select(func.count()).select_from(BudgetAllocation)
                     .where(BudgetAllocation.from_line_id == line["id"])) == 0
    assert reload_line(db, line["id"]).committed_fen == 0


def test_allocations_go_down_the_tree_only(client: TestClient, world: World) -> None:
    city_line = new_line(client, world)
    same = client.post(ALLOC, headers=world.auth("city"), json={
        "from_line_id": city_line["id"], "to_org_id": world.city.id, "amount": "1.00"})
    assert same.status_code == 422
    t1_line = new_line(client, world, who="t1", org_id=world.t1.id)
    sideways = client.post(ALLOC, headers=world.auth("t1"), json={
        "from_line_id": t1_line["id"], "to_org_id": world.v2.id, "amount": "1.00"})
    assert sideways.status_code == 404  # v2 is under t2: outside t1's scope
    up = client.post(ALLOC, headers=world.auth("t1"), json={
        "from_line_id": city_line["id"], "to_org_id": world.v1.id, "amount": "1.00"})
    assert up.status_code == 404  # the city's line is not t1's to give


def test_allocation_to_an_existing_line_must_match_year_and_category(client: TestClient, world: World) -> None:
    city_line = new_line(client, world)
    other = new_line(client, world, who="t1", org_id=world.t1.id, category="training")
    r = client.post(ALLOC, headers=world.auth("city"), json={
        "from_line_id": city_line["id"], "to_org_id": world.t1.id, "to_line_id": other["id"], "amount": "1.00"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "to_line_id"]


def test_village_and_auditor_cannot_create_lines(client: TestClient, world: World) -> None:
    body = {"fiscal_year": 2019, "org_id": world.v1.id, "category": "party_work", "name": "x", "source": "y",
            "allocated": "1.00"}
    assert client.post(LINES, headers=world.auth("v1"), json=body).status_code == 403
    assert client.post(LINES, headers=world.auth("auditor"), json=body).status_code == 403
    assert client.post(LINES, headers=world.auth("t2"), json=body).status_code == 404


# --- disbursements ----------------------------------------------------------------------------


def test_maker_cannot_approve_own_disbursement(client: TestClient, world: World, db: Session) -> None:
    line = new_line(client, world, amount="1000.00")
    d = request_payment(client, world, line["id"], "300.00")
    r = client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("city"))
    assert r.status_code == 403 and r.json()["code"] == "maker_checker"
    checker = extra_user(db, world, CITY, world.city)
    r = client.post(f"{DISB}/{d['id']}/approve", headers=headers(checker))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["approved_by"] == checker.id
    after = reload_line(db, line["id"])
    assert (after.approved_fen, after.available_fen) == (30000, 70000)
    assert client.post(f"{DISB}/{d['id']}/approve", headers=headers(checker)).json()["code"] == "invalid_status"


def test_village_requests_and_the_township_approves(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.v1, allocated_fen=50_000_00)
    d = request_payment(client, world, line.id, "2000.00", who="v1")
    assert d["status"] == "pending" and d["org_id"] == world.v1.id
    assert client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("v1")).status_code == 403
    assert client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("t2")).status_code == 404
    assert client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("auditor")).status_code == 403
    r = client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("t1"))
    assert r.status_code == 200, r.text


def test_approval_over_the_available_amount_is_409_and_moves_nothing(client: TestClient, world: World,
                                                                     db: Session) -> None:
    line = make_line(db, world.v1, allocated_fen=1000_00)
    first = request_payment(client, world, line.id, "800.00", who="v1")
    second = request_payment(client, world, line.id, "200.01", who="v1")
    assert client.post(f"{DISB}/{first['id']}/approve", headers=world.auth("t1")).status_code == 200
    r = client.post(f"{DISB}/{second['id']}/approve", headers=world.auth("t1"))
    assert r.status_code == 409 and r.json()["code"] == "budget_exceeded"
    assert "200.00 available" in r.json()["detail"]
    assert db.scalar(select(Disbursement.status).where(Disbursement.id == second["id"])) == "pending"
    assert reload_line(db, line.id).approved_fen == 800_00


def test_pay_then_reverse_gives_the_money_back(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.t1, allocated_fen=1000_00)
    d = request_payment(client, world, line.id, "400.00", who="t1")
    approver = extra_user(db, world, TOWNSHIP, world.t1)
    assert client.post(f"{DISB}/{d['id']}/reverse", headers=headers(approver),
                       json={"reason": "x"}).status_code == 409
    assert client.post(f"{DISB}/{d['id']}/approve", headers=headers(approver)).status_code == 200
    paid = client.post(f"{DISB}/{d['id']}/pay", headers=headers(approver))
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    line_after = reload_line(db, line.id)
    assert (line_after.approved_fen, line_after.paid_fen, line_after.available_fen) == (0, 400_00, 600_00)
    assert client.post(f"{DISB}/{d['id']}/reverse", headers=headers(approver), json={}).status_code == 422
    r = client.post(f"{DISB}/{d['id']}/reverse", headers=headers(approver), json={"reason": "重复支付"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reversed" and r.json()["reversal"]["reason"] == "重复支付"
    assert r.json()["reversal"]["amount"] == "400.00"
    assert reload_line(db, line.id).available_fen == 1000_00
    assert db.scalar(select(func.count()).select_from(DisbursementReversal)
                     .where(DisbursementReversal.disbursement_id == d["id"])) == 1
    again = client.post(f"{DISB}/{d['id']}/reverse", headers=headers(approver), json={"reason": "again"})
    assert again.status_code == 409
    actions = set(db.scalars(select(AuditLog.action).where(AuditLog.entity.in_(["disbursement", "budget_line"]))))
    assert {"disbursement.reverse", "budget_line.reverse", "budget_line.pay", "disbursement.pay"} <= actions


def test_cancelling_an_approved_request_releases_the_money(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.v1, allocated_fen=1000_00)
    d = request_payment(client, world, line.id, "600.00", who="v1")
    assert client.post(f"{DISB}/{d['id']}/approve", headers=world.auth("t1")).status_code == 200
    # Another village user may not cancel someone else's request.
    other = extra_user(db, world, "village_admin", world.v1)
    r = client.post(f"{DISB}/{d['id']}/cancel", headers=headers(other), json={"reason": "不需要"})
    assert r.status_code == 403
    r = client.post(f"{DISB}/{d['id']}/cancel", headers=world.auth("v1"), json={"reason": "不需要"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert reload_line(db, line.id).available_fen == 1000_00


def test_payee_person_must_be_in_scope(client: TestClient, world: World, db: Session) -> None:
    from tests.factories import make_person

    line = make_line(db, world.v1, allocated_fen=1000_00)
    stranger = make_person(db, world.v2, name="外村人")
    r = client.post(DISB, headers=world.auth("v1"), json={
        "line_id": line.id, "payee_kind": "person", "payee_person_id": stranger.id, "purpose": "x",
        "disbursed_on": "2019-05-06", "amount": "1.00"})
    assert r.status_code == 404
    r = client.post(DISB, headers=world.auth("v1"), json={
        "line_id": line.id, "payee_kind": "person", "payee_name": "x", "purpose": "x",
        "disbursed_on": "2019-05-06", "amount": "1.00"})
    assert r.status_code == 422


# --- idempotency ----------------------------------------------------------------------------------


def test_a_replayed_allocation_returns_the_first_answer_and_moves_nothing(client: TestClient, world: World,
                                                                         db: Session) -> None:
    line = new_line(client, world, amount="1000.00")
    body = {"from_line_id": line["id"], "to_org_id": world.t1.id, "amount": "100.00"}
    h = {**world.auth("city"), "Idempotency-Key": "alloc-2019-0001"}
    first = client.post(ALLOC, headers=h, json=body)
    assert first.status_code == 201, first.text
    # Same body with other key order and spacing: still the same request.
    replay = client.post(ALLOC, headers={**h, "Content-Type": "application/json"},
                         content=f'{{ "amount": "100.00", "to_org_id": {world.t1.id}, "from_line_id": {line["id"]} }}')
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    assert db.scalar(select(func.count()).select_from(BudgetAllocation)
                     .where(BudgetAllocation.from_line_id == line["id"])) == 1
    assert reload_line(db, line["id"]).allocated_down_fen == 100_00
    other = client.post(ALLOC, headers=h, json={**body, "amount": "200.00"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # Keys are per user: another user's same key is a new request.
    again = client.post(ALLOC, headers={**world.auth("t1"), "Idempotency-Key": "alloc-2019-0001"},
                        json={**body, "from_line_id": line["id"]})
    assert again.status_code == 404
    assert db.scalar(select(func.count()).select_from(IdempotencyKey)
                     .where(IdempotencyKey.key == "alloc-2019-0001")) == 1


def test_a_replayed_approval_does_not_approve_twice(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.v1, allocated_fen=1000_00)
    d = request_payment(client, world, line.id, "100.00", who="v1")
    h = {**world.auth("t1"), "Idempotency-Key": "approve-1"}
    first = client.post(f"{DISB}/{d['id']}/approve", headers=h)
    second = client.post(f"{DISB}/{d['id']}/approve", headers=h)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert reload_line(db, line.id).approved_fen == 100_00
    # The same key on another disbursement is another request: 422.
    d2 = request_payment(client, world, line.id, "100.00", who="v1")
    assert client.post(f"{DISB}/{d2['id']}/approve", headers=h).status_code == 422


def test_a_failed_request_keeps_no_key_and_may_be_retried(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.v1, allocated_fen=100_00)
    d = request_payment(client, world, line.id, "200.00", who="v1")
    h = {**world.auth("t1"), "Idempotency-Key": "retry-me"}
    assert client.post(f"{DISB}/{d['id']}/approve", headers=h).status_code == 409
    db.execute(update(BudgetLine).where(BudgetLine.id == line.id).values(allocated_fen=1000_00))
    assert client.post(f"{DISB}/{d['id']}/approve", headers=h).status_code == 200


def test_idempotency_key_must_be_well_formed(client: TestClient, world: World) -> None:
    line = new_line(client, world, amount="10.00")
    r = client.post(ALLOC, headers={**world.auth("city"), "Idempotency-Key": "x" * 300},
                    json={"from_line_id": line["id"], "to_org_id": world.t1.id, "amount": "1.00"})
    assert r.status_code == 422


# --- the execution report --------------------------------------------------------------------------


def test_execution_report_rolls_up_per_org_and_category_with_csv(client: TestClient, world: World,
                                                                 db: Session) -> None:
    city_line = new_line(client, world, amount="1000.00", year=2031)
    r = client.post(ALLOC, headers=world.auth("city"), json={
        "from_line_id": city_line["id"], "to_org_id": world.t1.id, "amount": "400.00"})
    t1_line_id = r.json()["to_line_id"]
    d = request_payment(client, world, t1_line_id, "100.00", who="t1")
    approver = extra_user(db, world, TOWNSHIP, world.t1)
    client.post(f"{DISB}/{d['id']}/approve", headers=headers(approver))
    client.post(f"{DISB}/{d['id']}/pay", headers=headers(approver))
    rep = client.get("/api/v1/budgets/execution", params={"year": 2031}, headers=world.auth("auditor"))
    assert rep.status_code == 200, rep.text
    body = rep.json()
    assert body["total"]["allocated"] == "1400.00" and body["total"]["net"] == "1000.00"
    assert body["total"]["paid"] == "100.00" and body["total"]["execution_rate"] == "0.1000"
    by_org = {row["org_id"]: row for row in body["by_organization"]}
    assert by_org[world.t1.id]["net"] == "400.00" and by_org[world.t1.id]["execution_rate"] == "0.2500"
    assert by_org[world.city.id]["available"] == "600.00"
    assert [c["category"] for c in body["by_category"]] == ["party_work"]
    # Lines are the report organisation's own; the township's line is in its rolled-up row, and drilling down
    # (org_id=t1, or t1's own report) lists it.
    assert [ln["line_id"] for ln in body["lines"]] == [city_line["id"]]
    t1_view = client.get("/api/v1/budgets/execution", params={"year": 2031}, headers=world.auth("t1")).json()
    assert [ln["line_id"] for ln in t1_view["lines"]] == [t1_line_id]
    drill = client.get("/api/v1/budgets/execution", params={"year": 2031, "org_id": world.t1.id},
                       headers=world.auth("city")).json()
    assert drill["lines"] == t1_view["lines"] and drill["total"] == by_org[world.t1.id] | {"row_type": "total",
                                                                                          "org_id": None,
                                                                                          "org_name": None}
    csv = client.get("/api/v1/budgets/execution", params={"year": 2031},
                     headers={**world.auth("city"), "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("row_type,") and len(lines) == 1 + 1 + 2 + 1 + 1


def test_execution_report_rolls_the_subtree_up_per_child_in_a_fixed_number_of_statements(
        client: TestClient, world: World, db: Session, engine: Engine) -> None:
    make_line(db, world.v1, year=2033, allocated_fen=100)
    with count_statements(engine) as few:
        first = client.get("/api/v1/budgets/execution", params={"year": 2033}, headers=world.auth("city")).json()
    for org in (world.t1, world.t2, world.v1, world.v1b, world.v2, world.city):
        for i in range(3):
            make_line(db, org, year=2033, allocated_fen=100, name=f"l{i}")
    with count_statements(engine) as many:
        report = client.get("/api/v1/budgets/execution", params={"year": 2033}, headers=world.auth("city")).json()
    assert len(many) == len(few), (len(few), len(many))
    assert first["total"]["allocated"] == "1.00" and report["total"]["allocated"] == "19.00"
    # One row for the city's own lines and one per township, each totalling its whole subtree.
    by_org = {row["org_id"]: (row["lines"], row["allocated"]) for row in report["by_organization"]}
    assert by_org == {world.city.id: (3, "3.00"), world.t1.id: (10, "10.00"), world.t2.id: (6, "6.00")}
    assert len(report["lines"]) == 3


def test_line_list_runs_a_fixed_number_of_statements(client: TestClient, world: World, db: Session,
                                                      engine: Engine) -> None:
    for i in range(3):
        make_line(db, world.t1, year=2032, name=f"l{i}")
    with count_statements(engine) as few:
        assert client.get(LINES, params={"fiscal_year": 2032}, headers=world.auth("city")).json()["total"] == 3
    for i in range(12):
        make_line(db, world.v1, year=2032, name=f"m{i}")
    with count_statements(engine) as many:
        assert client.get(LINES, params={"fiscal_year": 2032}, headers=world.auth("city")).json()["total"] == 15
    assert len(many) == len(few)


def test_party_dues_lines_are_one_per_org_and_year(client: TestClient, world: World, db: Session) -> None:
    new_line(client, world, who="t1", org_id=world.t1.id, category="party_dues", year=2033)
    r = client.post(LINES, headers=world.auth("t1"), json={
        "fiscal_year": 2033, "org_id": world.t1.id, "category": "party_dues", "name": "x", "source": "y",
        "allocated": "1.00"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_dues_line"
    assert db.execute(text("SELECT 1")).scalar() == 1
